//go:build unix

package evidence

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestOpenRegular(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.json")
	if err := os.WriteFile(p, []byte(`{"id":"x"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := openRegular(p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(f)
	f.Close()
	if err != nil || string(b) != `{"id":"x"}` || f.size != int64(len(b)) {
		t.Fatalf("read %q (size %d), %v", b, f.size, err)
	}
	// A FIFO (a file replaced since the folder was listed) is refused at
	// once, not waited on.
	fifo := filepath.Join(dir, "b.json")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	_, err = openRegular(fifo)
	var nr notRegular
	if !errors.As(err, &nr) || fs.FileMode(nr)&fs.ModeNamedPipe == 0 {
		t.Fatalf("FIFO: got %v, want notRegular(named pipe)", err)
	}
	if _, err := openRegular(filepath.Join(dir, "missing.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: got %v", err)
	}
	if _, err := openRegular(dir); !errors.As(err, &nr) {
		t.Fatalf("directory: got %v, want notRegular", err)
	}
}
