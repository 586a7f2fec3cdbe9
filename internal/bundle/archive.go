package bundle

import (
	"archive/tar"
	"bufio"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"
)

// ArchiveOptions control WriteArchive.
type ArchiveOptions struct {
	Root  string // root folder inside the archive ("mirror", "json", "trivy"); "" = none
	Codec Codec  // outer compression (zstd for .tar.zst, gzip for .tar.gz)
	Level int
}

// WriteArchive writes every staged file as a deterministic tar stream to w:
// entries sorted by name, a directory entry before the files in it, mtime 0,
// uid/gid 0, no owner names, modes 0644 for files and 0755 for directories.
func (s *Stage) WriteArchive(w io.Writer, opt ArchiveOptions) error {
	cw, err := Compressor(w, opt.Codec, opt.Level)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(cw, 1<<20)
	tw := tar.NewWriter(bw)
	names := s.Paths()
	type ent struct {
		name string
		rel  string // "" for a directory
	}
	var ents []ent
	dirs := map[string]bool{}
	addDir := func(d string) {}
	addDir = func(d string) {
		if d == "." || d == "" || dirs[d] {
			return
		}
		addDir(path.Dir(d))
		dirs[d] = true
		ents = append(ents, ent{name: d + "/"})
	}
	for _, rel := range names {
		full := rel
		if opt.Root != "" {
			full = opt.Root + "/" + rel
		}
		addDir(path.Dir(full))
		ents = append(ents, ent{name: full, rel: rel})
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].name < ents[j].name })
	epoch := time.Unix(0, 0).UTC()
	for _, e := range ents {
		h := &tar.Header{Name: e.name, ModTime: epoch, Uid: 0, Gid: 0, Format: tar.FormatPAX}
		if e.rel == "" {
			h.Typeflag = tar.TypeDir
			h.Mode = 0o755
		} else {
			st, err := os.Stat(filepath.Join(s.dir, filepath.FromSlash(e.rel)))
			if err != nil {
				return err
			}
			h.Typeflag = tar.TypeReg
			h.Mode = 0o644
			h.Size = st.Size()
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("tar %s: %w", e.name, err)
		}
		if e.rel != "" {
			if _, err := s.CopyTo(tw, e.rel); err != nil {
				return fmt.Errorf("tar %s: %w", e.name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return cw.Close()
}

// WriteArchiveFile writes the archive to dst atomically: into dst+".partial",
// synced, then renamed, so no reader ever sees a half-written bundle under
// its final name. It returns the archive's sha256 (hex) and size.
func (s *Stage) WriteArchiveFile(dst string, opt ArchiveOptions) (string, int64, error) {
	tmp := dst + ".partial"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return "", 0, err
	}
	hw := newHashWriter(f)
	err = s.WriteArchive(hw, opt)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return "", 0, err
	}
	syncDir(filepath.Dir(dst))
	return hw.sum(), hw.n, nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
