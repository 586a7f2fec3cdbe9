// Package mmapfile maps a whole file read-only into memory (read into the
// heap where the platform cannot map files), for the run caches that are
// looked up in place: the stat cache and the mirror state.
package mmapfile

import (
	"errors"
	"os"
)

// Map returns the bytes of f and a function that releases them (again: a
// no-op). An empty file gives no bytes. Where files cannot be mapped, they
// are read.
func Map(f *os.File) (data []byte, release func() error, err error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if fi.Size() == 0 {
		return nil, func() error { return nil }, nil
	}
	data, unmap, err := mapFile(f, fi.Size())
	if err != nil {
		return nil, nil, err
	}
	var released bool
	return data, func() error {
		if released {
			return nil
		}
		released = true
		return unmap()
	}, nil
}

// MapPath maps the file at path: no bytes, no release and no error when
// there is no such file.
func MapPath(path string) (data []byte, release func() error, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	defer f.Close() // the mapping outlives the file
	return Map(f)
}
