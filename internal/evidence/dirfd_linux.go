//go:build linux

package evidence

import (
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/stellaops/stella/internal/statcache"
)

// openDirFD opens a folder so that its files are looked up relative to it
// (one path component for the kernel to resolve instead of the whole
// path); -1 when it cannot, and then files are looked up by path.
func openDirFD(dir string) int {
	for {
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1
		}
		return fd
	}
}

func closeDirFD(fd int) {
	if fd >= 0 {
		unix.Close(fd)
	}
}

// lstatRegularAt is lstatRegular of name in the folder dfd (p is its path).
func lstatRegularAt(dfd int, name, p string) (statcache.Stat, bool) {
	if dfd < 0 {
		return lstatRegular(p)
	}
	var st unix.Stat_t
	for {
		err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.EINTR {
			continue
		}
		if err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			return statcache.Stat{}, false
		}
		// As statcache.FromSys converts the status of an open file.
		return statcache.Stat{Size: st.Size, ModNs: st.Mtim.Nano(), ChangNs: st.Ctim.Nano(), Ino: st.Ino, Dev: uint64(st.Dev)}, true
	}
}

// openRegularAt is openRegular of name in the folder dfd (p is its path).
func openRegularAt(dfd int, name, p string) (*regularFile, error) {
	if dfd < 0 {
		return openRegular(p)
	}
	return openWith(p, func() (int, error) {
		return syscall.Openat(dfd, name, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	})
}
