package evidence

import (
	"os"
	"path/filepath"
	"testing"
)

// A file's status is the same whether it is looked up relative to its
// folder, by path, or taken from the open file: the stat cache compares
// status recorded one way with status taken another way.
func TestStatAtMatchesStatByPath(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.json")
	if err := os.WriteFile(p, []byte(`{"id":"X"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	dfd := openDirFD(dir)
	defer closeDirFD(dfd)
	byPath, okPath := lstatRegular(p)
	at, okAt := lstatRegularAt(dfd, "a.json", p)
	noDir, okNoDir := lstatRegularAt(-1, "a.json", p)
	if okPath != okAt || okPath != okNoDir || byPath != at || byPath != noDir {
		t.Fatalf("status by path %+v (%v), at folder %+v (%v), without folder %+v (%v)", byPath, okPath, at, okAt, noDir, okNoDir)
	}
	f, err := openRegularAt(dfd, "a.json", p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if st, ok := f.stat(); ok != okPath || (ok && st != byPath) {
		t.Fatalf("status of the open file %+v (%v), by path %+v", st, ok, byPath)
	}
	if okPath && byPath.Size != 10 {
		t.Fatalf("size %d", byPath.Size)
	}
	// Not regular files: refused both ways.
	if _, ok := lstatRegularAt(dfd, ".", dir); ok {
		t.Fatal("a folder was taken as a regular file")
	}
	if _, err := openRegularAt(dfd, "missing.json", filepath.Join(dir, "missing.json")); err == nil {
		t.Fatal("a missing file opened")
	}
}
