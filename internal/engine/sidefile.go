package engine

import (
	"log/slog"
	"os"
	"path/filepath"
)

// sideFiles are the files a run keeps beside its bundle in its folder, not
// in it: caches for the next run of its chain (the stat cache, the
// document list, the mirror state). Each is written under a .partial name
// and renamed into place only when it is complete and the run succeeded;
// anything else is removed when the run ends.
type sideFiles struct {
	dir   string
	files map[string]*sideFile
}

type sideFile struct {
	path string
	done bool
}

func newSideFiles(dir string) *sideFiles { return &sideFiles{dir: dir, files: map[string]*sideFile{}} }

// file returns where to write the side file name and the function to call
// once it is complete.
func (s *sideFiles) file(name string) (string, func()) {
	f := &sideFile{path: filepath.Join(s.dir, name+".partial")}
	os.Remove(f.path) // a left-over of a run that died (a file: nothing else is ours to remove)
	s.files[name] = f
	return f.path, func() { f.done = true }
}

// commit renames the complete side files into place (the run succeeded).
func (s *sideFiles) commit(log *slog.Logger, runID string) {
	for name, f := range s.files {
		if !f.done {
			continue
		}
		if err := os.Rename(f.path, filepath.Join(s.dir, name)); err != nil {
			log.Warn("run.side_file", "runId", runID, "file", name, "err", err.Error())
		}
	}
}

// cleanup removes what was not committed.
func (s *sideFiles) cleanup() {
	for _, f := range s.files {
		os.Remove(f.path)
	}
}
