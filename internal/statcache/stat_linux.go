//go:build linux

package statcache

import "syscall"

// FromSys converts a stat result.
func FromSys(st *syscall.Stat_t) Stat {
	return Stat{Size: st.Size, ModNs: st.Mtim.Nano(), ChangNs: st.Ctim.Nano(), Ino: st.Ino, Dev: uint64(st.Dev)}
}

// Supported reports whether file status can be trusted here.
const Supported = true
