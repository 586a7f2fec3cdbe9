//go:build linux

package evidence

import (
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// readDirents lists a folder in lexical order. On Linux it reads the
// folder's entries with getdents64 and parses them here: os.File.ReadDir
// makes an object per entry, and a delta run, which lists every folder
// but reads few files, spent a tenth of its listing on them. The names
// are slices of one string per folder.
func readDirents(dir string) ([]dirent, error) {
	fd, err := openDir(dir)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	bp := direntBufs.Get().(*[32 << 10]byte)
	defer direntBufs.Put(bp)
	buf := bp[:]
	var names []byte
	type ent struct {
		off, n int
		typ    byte
	}
	var ents []ent
	// struct linux_dirent64: d_ino u64, d_off s64, d_reclen u16, d_type u8,
	// d_name (NUL-terminated, padded).
	const (
		reclenOff = int(unsafe.Offsetof(unix.Dirent{}.Reclen))
		typeOff   = int(unsafe.Offsetof(unix.Dirent{}.Type))
		nameOff   = int(unsafe.Offsetof(unix.Dirent{}.Name))
	)
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "readdirent", Path: dir, Err: err}
		}
		if n <= 0 {
			break
		}
		for b := buf[:n]; len(b) > 0; {
			if len(b) < nameOff {
				return nil, &fs.PathError{Op: "readdirent", Path: dir, Err: unix.EIO}
			}
			reclen := int(*(*uint16)(unsafe.Pointer(&b[reclenOff])))
			if reclen < nameOff || reclen > len(b) {
				return nil, &fs.PathError{Op: "readdirent", Path: dir, Err: unix.EIO}
			}
			ino := *(*uint64)(unsafe.Pointer(&b[0]))
			typ := b[typeOff]
			name := b[nameOff:reclen]
			if i := slices.Index(name, 0); i >= 0 {
				name = name[:i]
			}
			b = b[reclen:]
			if ino == 0 || string(name) == "." || string(name) == ".." {
				continue
			}
			ents = append(ents, ent{len(names), len(name), typ})
			names = append(names, name...)
		}
	}
	all := string(names)
	out := make([]dirent, len(ents))
	for i, e := range ents {
		name := all[e.off : e.off+e.n]
		typ, ok := direntType(e.typ)
		if !ok {
			// The filesystem does not give types here: ask the entry.
			if fi, err := os.Lstat(dir + string(os.PathSeparator) + name); err == nil {
				typ = fi.Mode().Type()
			} // else vanished since the listing: taken as a file, whose read reports it
		}
		out[i] = dirent{name: name, typ: typ}
	}
	slices.SortFunc(out, func(a, b dirent) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

func openDir(dir string) (int, error) {
	for {
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// direntType converts a d_type to the type bits of fs.FileMode; ok is
// false for DT_UNKNOWN.
func direntType(t byte) (fs.FileMode, bool) {
	switch t {
	case unix.DT_REG:
		return 0, true
	case unix.DT_DIR:
		return fs.ModeDir, true
	case unix.DT_LNK:
		return fs.ModeSymlink, true
	case unix.DT_FIFO:
		return fs.ModeNamedPipe, true
	case unix.DT_SOCK:
		return fs.ModeSocket, true
	case unix.DT_CHR:
		return fs.ModeDevice | fs.ModeCharDevice, true
	case unix.DT_BLK:
		return fs.ModeDevice, true
	}
	return 0, false
}

// direntBufs recycles the getdents buffers of the folders listed.
var direntBufs = sync.Pool{New: func() any { return new([32 << 10]byte) }}
