//go:build !unix

package evidence

import "os"

type regularFile struct {
	*os.File
	size int64
}

// openRegular opens p for reading; a file that is not a regular file is
// refused with notRegular.
func openRegular(p string) (*regularFile, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, notRegular(fi.Mode().Type())
	}
	return &regularFile{File: f, size: fi.Size()}, nil
}
