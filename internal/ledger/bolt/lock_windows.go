//go:build windows

package bolt

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// errWouldBlock is what tryLock returns when another open file holds the lock.
var errWouldBlock = windows.ERROR_LOCK_VIOLATION

func lockFileEx(f *os.File, flags uint32) error {
	ol := new(windows.Overlapped)
	return windows.LockFileEx(windows.Handle(f.Fd()), flags, 0, 1, 0, ol)
}

// tryLock takes an exclusive lock on f without waiting.
func tryLock(f *os.File) error {
	return lockFileEx(f, windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY)
}

// blockLock waits for an exclusive lock on f.
func blockLock(f *os.File) error { return lockFileEx(f, windows.LOCKFILE_EXCLUSIVE_LOCK) }

// samePath reports whether path still names the open file f.
func samePath(f *os.File, path string) (bool, error) {
	a, err := f.Stat()
	if err != nil {
		return false, err
	}
	b, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(a, b), nil
}

// fileID identifies an open file and its size.
type fileID struct {
	dev, ino uint64
	size     int64
}

func statFile(f *os.File) (fileID, error) {
	var info windows.ByHandleFileInformation
	if err := windows.GetFileInformationByHandle(windows.Handle(f.Fd()), &info); err != nil {
		return fileID{}, &os.PathError{Op: "stat", Path: f.Name(), Err: err}
	}
	return fileID{dev: uint64(info.VolumeSerialNumber), ino: uint64(info.FileIndexHigh)<<32 | uint64(info.FileIndexLow),
		size: int64(info.FileSizeHigh)<<32 | int64(info.FileSizeLow)}, nil
}
