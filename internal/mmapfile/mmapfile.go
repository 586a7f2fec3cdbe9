// Package mmapfile maps a whole file read-only into memory (read into the
// heap where the platform cannot map files), for the run caches that are
// looked up in place: the stat cache and the mirror state.
package mmapfile

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
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
	f, err := Open(path)
	if f == nil {
		return nil, nil, err
	}
	defer f.Close() // the mapping outlives the file
	return Map(f)
}

// MapSum is Map plus the CRC-32C (Castagnoli) of all of the file but its
// last four bytes, where the run caches keep their checksum. The sum is
// taken with read(2) before the file is mapped, not through the mapping:
// on the virtual machines these runs use, faulting in every page of a
// mapping costs more than copying the bytes (a 69 MB mirror state: 45–60
// ms against 20 ms), and the caches drop those pages right after the check
// anyway. sum is 0 for a file shorter than four bytes.
func MapSum(f *os.File) (data []byte, release func() error, sum uint32, err error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, 0, err
	}
	if n := fi.Size() - 4; n > 0 {
		h := crc32.New(castagnoli)
		if _, err := io.CopyBuffer(h, io.NewSectionReader(f, 0, n), make([]byte, 1<<20)); err != nil {
			return nil, nil, 0, err
		}
		sum = h.Sum32()
	}
	data, release, err = Map(f)
	if err == nil && int64(len(data)) != fi.Size() {
		release() // changed between the sum and the mapping
		return nil, nil, 0, fmt.Errorf("%s changed while it was opened", f.Name())
	}
	return data, release, sum, err
}

// MapPathSum is MapSum of the file at path: no bytes, no release and no
// error when there is no such file.
func MapPathSum(path string) (data []byte, release func() error, sum uint32, err error) {
	f, err := Open(path)
	if f == nil {
		return nil, nil, 0, err
	}
	defer f.Close() // the mapping outlives the file
	return MapSum(f)
}

// Open opens the file at path for reading: (nil, nil) when there is none.
func Open(path string) (*os.File, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return f, err
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)
