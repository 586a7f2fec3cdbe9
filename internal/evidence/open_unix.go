//go:build unix

package evidence

import (
	"io"
	"io/fs"
	"syscall"
)

// regularFile is an open regular file read with plain system calls: on
// Linux os.Open also tries to register every file with the network poller
// (four more system calls per document, a tenth of a large run's time).
type regularFile struct {
	fd   int
	size int64
	st   syscall.Stat_t
}

// openRegular opens p for reading; a file that is not a regular file (a
// FIFO, a device, replaced since it was listed) is refused with notRegular
// without blocking.
func openRegular(p string) (*regularFile, error) {
	return openWith(p, func() (int, error) {
		return syscall.Open(p, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	})
}

// openWith is openRegular with the file (p) opened by open.
func openWith(p string, open func() (int, error)) (*regularFile, error) {
	var fd int
	var err error
	for {
		fd, err = open()
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	var st syscall.Stat_t
	for {
		err = syscall.Fstat(fd, &st)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		syscall.Close(fd)
		return nil, &fs.PathError{Op: "stat", Path: p, Err: err}
	}
	if t := uint32(st.Mode) & syscall.S_IFMT; t != syscall.S_IFREG {
		syscall.Close(fd)
		return nil, notRegular(unixType(t))
	}
	return &regularFile{fd: fd, size: st.Size, st: st}, nil
}

func unixType(t uint32) fs.FileMode {
	switch t {
	case syscall.S_IFIFO:
		return fs.ModeNamedPipe
	case syscall.S_IFSOCK:
		return fs.ModeSocket
	case syscall.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFBLK:
		return fs.ModeDevice
	case syscall.S_IFDIR:
		return fs.ModeDir
	case syscall.S_IFLNK:
		return fs.ModeSymlink
	}
	return fs.ModeIrregular
}

func (f *regularFile) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		n, err := syscall.Read(f.fd, b)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return 0, err
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

func (f *regularFile) Close() error { return syscall.Close(f.fd) }
