package engine_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stellaops/stella/internal/bundle"
	"github.com/stellaops/stella/internal/engine"
	"github.com/stellaops/stella/internal/record"
)

// linesGolden holds, for each record.LinesVersion ever released, the
// sha256 of the record lines a json:raw export of each fixture folder
// writes with it: "<version> <folder> <sha256>".
const linesGolden = "testdata/lines.golden"

// TestLinesVersion keeps record.LinesVersion honest: mirror deltas skip
// unchanged documents across stella versions that share it, which is
// right only if their record lines are the same. When parsing,
// normalising or writing lines changes the lines of a fixture folder,
// this test fails until record.LinesVersion is given a new value and the
// folders' lines for it are added to testdata/lines.golden (old lines
// stay: a version is never reused). A new fixture folder only needs its
// line added under the current version.
func TestLinesVersion(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join(evidence(t, "."), "*", "*"))
	if err != nil || len(dirs) < 10 {
		t.Fatalf("fixture folders: %v %v", dirs, err)
	}
	golden, err := os.ReadFile(filepath.FromSlash(linesGolden))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{} // folder -> sha256, of the current version
	for _, l := range strings.Split(string(golden), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 || strings.HasPrefix(l, "#") {
			continue
		}
		if f[0] == record.LinesVersion {
			if _, dup := want[f[1]]; dup {
				t.Fatalf("%s: %s %s is listed twice", linesGolden, f[0], f[1])
			}
			want[f[1]] = f[2]
		}
	}
	e := newEngine(t, nil)
	var add []string
	for _, dir := range dirs {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			continue
		}
		rel, _ := filepath.Rel(evidence(t, "."), dir)
		rel = filepath.ToSlash(rel)
		sum := linesOf(t, e, dir)
		w, ok := want[rel]
		switch {
		case !ok:
			add = append(add, record.LinesVersion+" "+rel+" "+sum)
		case w != sum:
			t.Errorf("the record lines of %s changed (sha256 %s, %s says %s for %s): give record.LinesVersion a new value "+
				"and add the lines of every folder for it to %s, so that mirror deltas across the change parse every document again",
				rel, sum, linesGolden, w, record.LinesVersion, linesGolden)
		}
	}
	if len(add) > 0 {
		t.Errorf("%s has no line for these fixture folders; add:\n%s", linesGolden, strings.Join(add, "\n"))
	}
}

// linesOf is the sha256 of the data files (decompressed, by name) of a
// json:raw export of dir.
func linesOf(t *testing.T, e *engine.Engine, dir string) string {
	t.Helper()
	run := runOK(t, e, engine.SubmitRequest{Profile: "json:raw", Sources: src("f", dir), SkipInvalid: true, AllowEmpty: true})
	h := sha256.New()
	files := map[string][]byte{}
	var names []string
	err := bundle.Walk(bundleOf(t, run).Path, bundle.ReadLimits{}, func(rel string, size int64, r io.Reader) error {
		if !strings.HasPrefix(rel, "data/") {
			return nil
		}
		dec, err := bundle.Decompressor(r, bundle.CodecOf(rel))
		if err != nil {
			return err
		}
		defer dec.Close()
		b, err := io.ReadAll(dec)
		if err != nil {
			return err
		}
		names = append(names, rel)
		files[rel] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(h, "%s %d\n", n, len(files[n]))
		h.Write(files[n])
	}
	return hex.EncodeToString(h.Sum(nil))
}
