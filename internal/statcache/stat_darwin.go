//go:build darwin

package statcache

import "syscall"

// FromSys converts a stat result.
func FromSys(st *syscall.Stat_t) Stat {
	return Stat{Size: st.Size, ModNs: st.Mtimespec.Nano(), ChangNs: st.Ctimespec.Nano(), Ino: st.Ino, Dev: uint64(st.Dev)}
}

// Supported reports whether file status can be trusted here.
const Supported = true
