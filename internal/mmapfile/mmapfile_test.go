package mmapfile

import (
	"bytes"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
)

func TestMap(t *testing.T) {
	dir := t.TempDir()
	want := bytes.Repeat([]byte("stella "), 10000)
	for name, content := range map[string][]byte{"full": want, "empty": nil} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		data, release, err := Map(f)
		f.Close() // the mapping outlives the file
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(data, content) {
			t.Fatalf("%s: mapped %d bytes, want %d", name, len(data), len(content))
		}
		if err := release(); err != nil {
			t.Fatalf("%s: release: %v", name, err)
		}
		if err := release(); err != nil { // a second release (Close twice) does nothing
			t.Fatalf("%s: second release: %v", name, err)
		}
	}
}

// MapPathSum maps what MapPath maps and sums what the caches checksum: all
// but the last four bytes, across read-buffer boundaries.
func TestMapPathSum(t *testing.T) {
	dir := t.TempDir()
	big := make([]byte, 3<<20+12345)
	for i := range big {
		big[i] = byte(i * 7 % 251)
	}
	for name, content := range map[string][]byte{"big": big, "small": []byte("abcdefg"), "four": []byte("abcd"), "three": []byte("abc"), "empty": nil} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
		data, release, sum, err := MapPathSum(p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(data, content) {
			t.Errorf("%s: mapped %d bytes, want %d", name, len(data), len(content))
		}
		var want uint32
		if len(content) > 4 {
			want = crc32.Checksum(content[:len(content)-4], crc32.MakeTable(crc32.Castagnoli))
		}
		if sum != want {
			t.Errorf("%s: sum %08x, want %08x", name, sum, want)
		}
		if err := release(); err != nil {
			t.Fatal(err)
		}
	}
	if data, release, sum, err := MapPathSum(filepath.Join(dir, "none")); data != nil || release != nil || sum != 0 || err != nil {
		t.Errorf("a missing file: %v %v %v %v, want nothing", data, release != nil, sum, err)
	}
}
