package bundle

import (
	"errors"
	"io"
	"os"
	"path/filepath"
)

var errFound = errors.New("found")

// ExtractEntry copies one file of a bundle (archive or directory), given by
// its path relative to the bundle root, into dir under its base name. It
// returns the copy's path, or "" when the bundle has no such file. The walk
// stops as soon as the file is copied.
func ExtractEntry(bundlePath, rel, dir string) (string, error) {
	dst := filepath.Join(dir, filepath.Base(rel))
	err := Walk(bundlePath, ReadLimits{}, func(r string, _ int64, body io.Reader) error {
		if r != rel {
			return nil
		}
		f, err := os.Create(dst)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(dst)
			return err
		}
		return errFound
	})
	switch {
	case errors.Is(err, errFound):
		return dst, nil
	case err != nil:
		return "", err
	}
	return "", nil
}
