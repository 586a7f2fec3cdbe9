package trivy

import (
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/stellaops/stella/internal/evidence"
	"github.com/stellaops/stella/internal/record"
)

// moduleRoot is the repository root (where go.mod is).
func moduleRoot(t testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Dir(file)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found")
		}
		dir = parent
	}
}

// evidenceDir is testdata/evidence/osv/<sub> of the repository.
func evidenceDir(t testing.TB, sub string) string {
	d := filepath.Join(moduleRoot(t), "testdata", "evidence", "osv", sub)
	if _, err := os.Stat(d); err != nil {
		t.Fatalf("evidence fixtures missing: %v", err)
	}
	return d
}

// loadAdvisories parses every OSV document below dir (relative paths from
// dir) with the real evidence parser, as the engine would, with source name
// src. Documents the parser refuses are returned by name in bad.
func loadAdvisories(t testing.TB, src, dir string) (advs []*record.Advisory, bad map[string]string) {
	t.Helper()
	bad = map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ext := strings.ToLower(filepath.Ext(p))
		if ext != ".json" && ext != ".yaml" && ext != ".yml" {
			return nil
		}
		base := filepath.Base(p)
		if base == "snapshots.json" || base == "manifest.json" {
			return nil
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		doc := record.Document{Source: src, Path: filepath.ToSlash(rel), Raw: raw, Digest: record.Digest(raw)}
		parsed, err := evidence.Parse(doc)
		if err != nil {
			bad[doc.Path] = err.Error()
			return nil
		}
		if parsed.Advisory != nil {
			advs = append(advs, parsed.Advisory)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(advs, func(i, j int) bool { return advs[i].ID < advs[j].ID })
	return advs, bad
}
