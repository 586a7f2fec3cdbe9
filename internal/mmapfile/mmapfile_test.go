package mmapfile

import (
	"bytes"
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
