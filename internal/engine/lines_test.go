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
	"github.com/stellaops/stella/pkg/exportapi"
)

// linesGolden holds one line per record.LinesVersion ever released: the
// version and the sha256 of the record lines a json:raw export of every
// fixture writes with it.
const linesGolden = "testdata/lines.golden"

// TestLinesVersion keeps record.LinesVersion honest: mirror deltas skip
// unchanged documents across stella versions that share it, which is
// right only if the record lines are the same. When parsing, normalising
// or writing lines changes their bytes, this test fails until
// record.LinesVersion is given a new value and a line for it is added to
// testdata/lines.golden (the old lines stay: a version is never reused).
func TestLinesVersion(t *testing.T) {
	e := newEngine(t, nil)
	var srcs []exportapi.SourceSpec
	for _, kind := range []string{"osv", "vex", "sbom", "csaf"} {
		srcs = append(srcs, exportapi.SourceSpec{Name: kind, Path: evidence(t, kind)})
	}
	run := runOK(t, e, engine.SubmitRequest{Profile: "json:raw", Sources: srcs, SkipInvalid: true})
	h := sha256.New()
	var names []string
	lines := map[string][]byte{}
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
		lines[rel] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 3 {
		t.Fatalf("only %d data files: %v", len(names), names)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(h, "%s %d\n", n, len(lines[n]))
		h.Write(lines[n])
	}
	sum := hex.EncodeToString(h.Sum(nil))
	golden, err := os.ReadFile(filepath.FromSlash(linesGolden))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(golden)), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 || strings.HasPrefix(l, "#") {
			continue
		}
		if _, dup := seen[f[0]]; dup {
			t.Fatalf("%s: %s is listed twice; a lines version is never reused", linesGolden, f[0])
		}
		seen[f[0]] = f[1]
		if f[1] == sum && f[0] != record.LinesVersion {
			t.Fatalf("the record lines are those of %s, but record.LinesVersion is %s", f[0], record.LinesVersion)
		}
	}
	want, ok := seen[record.LinesVersion]
	switch {
	case !ok:
		t.Fatalf("%s has no line for %s: add %q", linesGolden, record.LinesVersion, record.LinesVersion+" "+sum)
	case want != sum:
		t.Fatalf("the record lines changed (sha256 %s, %s says %s for %s): give record.LinesVersion a new value "+
			"and add a line for it to %s, so that mirror deltas across the change parse every document again",
			sum, linesGolden, want, record.LinesVersion, linesGolden)
	}
}
