package dbbundle

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testFormat checks that metadata.json is "{}" and the DB is not "bad".
func testFormat(order *[]string) Format[string, int] {
	return Format[string, int]{
		Spec:         spec,
		DBFile:       "test.db",
		CacheSubdir:  "sub",
		VerifyPrefix: "test-verify-",
		CheckMetadata: func(b []byte) (string, error) {
			*order = append(*order, "metadata")
			if string(b) != "{}" {
				return string(b), errors.New("bad metadata")
			}
			return string(b), nil
		},
		CheckDB: func(p string) (int, error) {
			*order = append(*order, "db")
			b, _ := os.ReadFile(p)
			if string(b) == "bad" {
				return len(b), errors.New("bad db")
			}
			return len(b), nil
		},
	}
}

func TestFormatImport(t *testing.T) {
	var order []string
	f := testFormat(&order)
	good := tgz(t, reg("metadata.json", "{}"), reg("test.db", "good"))
	md, n, err := f.Verify(good, t.TempDir())
	if err != nil || md != "{}" || n != 4 || strings.Join(order, ",") != "metadata,db" {
		t.Fatalf("Verify: %q %d %v (checks %v)", md, n, err, order)
	}
	cache := t.TempDir()
	var before string
	f.BeforeInstall = func(dir string) error { before = dir; return nil }
	if err := f.Import(good, cache); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cache, "sub")
	if before != dir {
		t.Errorf("BeforeInstall ran in %q", before)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "test.db")); string(b) != "good" {
		t.Errorf("test.db = %q", b)
	}

	// A failing check, or BeforeInstall, leaves the cache as it was.
	for name, c := range map[string]struct {
		bundle string
		before error
		want   string
	}{
		"metadata": {tgz(t, reg("metadata.json", "[]"), reg("test.db", "new")), nil, "bad metadata"},
		"db":       {tgz(t, reg("metadata.json", "{}"), reg("test.db", "bad")), nil, "bad db"},
		"before":   {tgz(t, reg("metadata.json", "{}"), reg("test.db", "new")), errors.New("no"), "no"},
	} {
		f.BeforeInstall = func(string) error { return c.before }
		if err := f.Import(c.bundle, cache); err == nil || err.Error() != c.want {
			t.Errorf("%s: err = %v, want %q", name, err, c.want)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "test.db")); string(b) != "good" {
			t.Errorf("%s: test.db = %q after a failed import", name, b)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 2 {
			t.Errorf("%s: %d files in the cache (temporary files left?)", name, len(ents))
		}
	}
	// Verify reports what the checks learnt before one failed.
	md, _, err = f.Verify(tgz(t, reg("metadata.json", "[]"), reg("test.db", "x")), "")
	if err == nil || md != "[]" {
		t.Errorf("Verify of bad metadata: %q %v", md, err)
	}
}
