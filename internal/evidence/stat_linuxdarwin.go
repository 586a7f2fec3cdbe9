//go:build linux || darwin

package evidence

import (
	"syscall"

	"github.com/stellaops/stella/internal/statcache"
)

// stat is the status the file had when it was opened.
func (f *regularFile) stat() (statcache.Stat, bool) { return statcache.FromSys(&f.st), true }

// lstatRegular is the status of p when it is a regular file.
func lstatRegular(p string) (statcache.Stat, bool) {
	var st syscall.Stat_t
	for {
		err := syscall.Lstat(p, &st)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
			return statcache.Stat{}, false
		}
		return statcache.FromSys(&st), true
	}
}
