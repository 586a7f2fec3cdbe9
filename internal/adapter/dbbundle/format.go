package dbbundle

import (
	"os"

	"github.com/stellaops/stella/internal/xerr"
)

// Format is a db bundle of metadata.json and one DB file with the checks of
// its format: M is what CheckMetadata learns, I what CheckDB learns.
type Format[M, I any] struct {
	Spec // Files must be MetadataFile and DBFile
	// DBFile is the DB file's name ("trivy.db").
	DBFile string
	// CacheSubdir is the folder of a trivy cache that holds the DB ("db").
	CacheSubdir string
	// VerifyPrefix starts the name of Verify's temporary directory.
	VerifyPrefix string
	// CheckMetadata checks metadata.json; CheckDB checks the DB file (a
	// temporary file under another name).
	CheckMetadata func([]byte) (M, error)
	CheckDB       func(path string) (I, error)
	// BeforeInstall, if set, runs in the cache folder after the checks and
	// before the files are installed.
	BeforeInstall func(dbDir string) error
}

// Extract extracts the bundle into temporary files in dir (Spec.Extract)
// and checks them: metadata.json, then the DB. On success it returns the
// temporary paths by file name; the caller removes or renames them. On
// error none is left; md and info are what the checks learnt before one
// failed.
func (f Format[M, I]) Extract(bundlePath, dir string) (tmps map[string]string, md M, info I, err error) {
	tmps, err = f.Spec.Extract(bundlePath, dir)
	if err != nil {
		return nil, md, info, err
	}
	defer func() {
		if err != nil {
			Remove(tmps)
			tmps = nil
		}
	}()
	mb, err := os.ReadFile(tmps[MetadataFile])
	if err != nil {
		return tmps, md, info, xerr.Wrap(xerr.Internal, err, "read %s", MetadataFile)
	}
	if md, err = f.CheckMetadata(mb); err != nil {
		return tmps, md, info, err
	}
	if info, err = f.CheckDB(tmps[f.DBFile]); err != nil {
		return tmps, md, info, err
	}
	return tmps, md, info, nil
}

// Verify checks a bundle as Import does without installing it: the files
// are extracted into a new directory under tmpDir ("" = os.TempDir()),
// which is removed.
func (f Format[M, I]) Verify(bundlePath, tmpDir string) (md M, info I, err error) {
	dir, err := os.MkdirTemp(tmpDir, f.VerifyPrefix)
	if err != nil {
		return md, info, xerr.Wrap(xerr.Internal, err, "temporary directory")
	}
	defer os.RemoveAll(dir)
	_, md, info, err = f.Extract(bundlePath, dir)
	return md, info, err
}

// Import installs a bundle into the trivy cache cacheDir: it extracts the
// files into temporary files in <cacheDir>/<CacheSubdir>, checks them, runs
// BeforeInstall, then renames them into place, the DB first, metadata.json
// last. The cache is unchanged when any check fails.
func (f Format[M, I]) Import(bundlePath, cacheDir string) error {
	dbDir, err := f.Prepare(bundlePath, cacheDir, f.CacheSubdir)
	if err != nil {
		return err
	}
	tmps, _, _, err := f.Extract(bundlePath, dbDir)
	if err != nil {
		return err
	}
	defer Remove(tmps)
	if f.BeforeInstall != nil {
		if err := f.BeforeInstall(dbDir); err != nil {
			return err
		}
	}
	return Install(dbDir, tmps, []string{f.DBFile, MetadataFile})
}
