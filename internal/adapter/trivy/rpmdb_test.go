package trivy

import (
	"bytes"
	"encoding/binary"
	"hash/adler32"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// writeRPMNDB writes an rpm package database in rpm's "ndb" format
// (Packages.db, rpm >= 4.16), which trivy reads through go-rpmdb like the
// SQLite and Berkeley DB ones. pkgs maps package name -> "[epoch:]version-release".
// Each package is one rpm header with NAME, VERSION, RELEASE, EPOCH, ARCH,
// SOURCERPM and VENDOR, written as a legacy (region-less) header blob.
func writeRPMNDB(t testing.TB, path string, pkgs map[string]string) {
	t.Helper()
	var names []string
	for n := range pkgs {
		names = append(names, n)
	}
	sort.Strings(names)
	le := binary.LittleEndian
	const slotsPerPage = 4096 / 16
	if len(names) > slotsPerPage-2 {
		t.Fatal("too many packages for one slot page")
	}
	var buf bytes.Buffer
	// NDB header: magic "RpmP", version 0, generation, one slot page.
	for _, v := range []uint32{'R' | 'p'<<8 | 'm'<<16 | 'P'<<24, 0, 1, 1, 0, 0, 0, 0} {
		binary.Write(&buf, le, v)
	}
	blobs := make([][]byte, len(names))
	for i, n := range names {
		blobs[i] = rpmHeaderBlob(n, pkgs[n])
	}
	blk := uint32(4096 / 16) // blobs start after the slot page, in 16-byte blocks
	for i := 0; i < slotsPerPage-2; i++ {
		var idx, off, cnt uint32
		if i < len(blobs) {
			idx, off = uint32(i+1), blk
			cnt = uint32((16 + len(blobs[i]) + 16 + 15) / 16)
			blk += cnt
		}
		for _, v := range []uint32{'S' | 'l'<<8 | 'o'<<16 | 't'<<24, idx, off, cnt} {
			binary.Write(&buf, le, v)
		}
	}
	for i, b := range blobs {
		start := buf.Len()
		for _, v := range []uint32{'B' | 'l'<<8 | 'b'<<16 | 'S'<<24, uint32(i + 1), adler32.Checksum(b), uint32(len(b))} {
			binary.Write(&buf, le, v)
		}
		buf.Write(b)
		for (buf.Len()-start)%16 != 0 || buf.Len()-start < 16+len(b)+16 {
			buf.WriteByte(0)
		}
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// rpmHeaderBlob is an rpm header (big-endian index entries + data store)
// of one installed package.
func rpmHeaderBlob(name, evr string) []byte {
	epoch := 0
	if e, rest, ok := strings.Cut(evr, ":"); ok {
		epoch, _ = strconv.Atoi(e)
		evr = rest
	}
	ver, rel, _ := strings.Cut(evr, "-")
	type entry struct {
		tag, typ int32
		data     []byte
		count    int32
	}
	str := func(tag int32, s string) entry { return entry{tag, 6, append([]byte(s), 0), 1} } // RPM_STRING_TYPE
	var ep [4]byte
	binary.BigEndian.PutUint32(ep[:], uint32(epoch))
	entries := []entry{
		{1003, 4, ep[:], 1}, // EPOCH, RPM_INT32_TYPE, first so that it is aligned
		str(1000, name),     // NAME
		str(1001, ver),      // VERSION
		str(1002, rel),      // RELEASE
		str(1011, "AlmaLinux"),
		str(1022, "x86_64"),                        // ARCH
		str(1044, name+"-"+ver+"-"+rel+".src.rpm"), // SOURCERPM
	}
	var index, data bytes.Buffer
	be := binary.BigEndian
	for _, e := range entries {
		for _, v := range []int32{e.tag, e.typ, int32(data.Len()), e.count} {
			binary.Write(&index, be, v)
		}
		data.Write(e.data)
	}
	var out bytes.Buffer
	binary.Write(&out, be, int32(len(entries)))
	binary.Write(&out, be, int32(data.Len()))
	out.Write(index.Bytes())
	out.Write(data.Bytes())
	return out.Bytes()
}
