package evidence

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/stellaops/stella/internal/record"
)

// TestParallelReadersSameDocuments: Readers > 1 passes exactly the documents
// and errors that one reader passes, only in another order.
func TestParallelReadersSameDocuments(t *testing.T) {
	dir := t.TempDir()
	src, _ := filepath.Abs("../../testdata/evidence/osv/golang-vulndb/t0")
	ents, err := os.ReadDir(filepath.Join(src, "data", "osv"))
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range ents {
		if i >= 300 {
			break
		}
		b, _ := os.ReadFile(filepath.Join(src, "data", "osv", e.Name()))
		sub := filepath.Join(dir, string(rune('a'+i%5)))
		os.MkdirAll(sub, 0o755)
		os.WriteFile(filepath.Join(sub, e.Name()), b, 0o644)
	}
	os.WriteFile(filepath.Join(dir, "bad.json"), []byte("caf\xe9"), 0o644)
	os.Symlink("/etc/passwd", filepath.Join(dir, "link.json"))
	collect := func(readers int) []string {
		var mu sync.Mutex
		var got []string
		err := Walk(context.Background(), Source{Name: "s", Path: dir}, Options{Readers: readers}, func(d record.Document, err error) error {
			mu.Lock()
			defer mu.Unlock()
			s := d.Path + " " + d.Digest
			if err != nil {
				s += " ERR " + err.Error()
			}
			got = append(got, s)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(got)
		return got
	}
	one, four := collect(1), collect(4)
	if len(one) != 302 {
		t.Fatalf("%d documents, want 302", len(one))
	}
	for i := range one {
		if one[i] != four[i] {
			t.Fatalf("readers=4 differs at %d:\n%s\n%s", i, one[i], four[i])
		}
	}
	// A failing fn stops the walk with its error.
	stop := os.ErrDeadlineExceeded
	err = Walk(context.Background(), Source{Name: "s", Path: dir}, Options{Readers: 4}, func(record.Document, error) error { return stop })
	if err != stop {
		t.Fatalf("walk with a failing fn returned %v", err)
	}
}
