//go:build linux

package evidence

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// The folder listing (getdents64 parsed by hand on Linux) gives the same
// entries, names, types and order as os.ReadDir, also for a folder whose
// entries take several reads, and names that need care.
func TestReadDirentsMatchesReadDir(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat("n", 200)
	for i := 0; i < 1500; i++ { // about 330 KB of entries: many getdents reads
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%04d.json", long, i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"a.json", ".hidden", "ü-é.json", "sp ace.json", "z"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a.json", filepath.Join(dir, "link.json")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.json"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := readDirents(dir)
	if err != nil {
		t.Fatal(err)
	}
	want, err := readDirentsOS(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || len(got) != 1508 {
		t.Fatalf("%d entries, os.ReadDir %d (want 1508)", len(got), len(want))
	}
	types := map[fs.FileMode]int{}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("entry %d: %+v, os.ReadDir %+v", i, got[i], want[i])
		}
		types[got[i].typ]++
	}
	if types[fs.ModeDir] != 1 || types[fs.ModeSymlink] != 1 || types[fs.ModeNamedPipe] != 1 || types[0] != 1505 {
		t.Fatalf("types %v", types)
	}
	if _, err := readDirents(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing folder: %v", err)
	}
	if _, err := readDirents(filepath.Join(dir, "a.json")); err == nil {
		t.Fatal("a file was listed as a folder")
	}
}
