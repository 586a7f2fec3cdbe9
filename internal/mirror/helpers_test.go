package mirror_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	_ "github.com/stellaops/stella/internal/adapter/mirror"
	"github.com/stellaops/stella/internal/bundle"
	"github.com/stellaops/stella/internal/engine"
	"github.com/stellaops/stella/internal/ledger/bolt"
	"github.com/stellaops/stella/internal/mirror"
	"github.com/stellaops/stella/pkg/exportapi"
)

// sourceNames are the folders of testdata/mirror/t0 and t1 (one source each).
var sourceNames = []string{"alma", "ctrliq", "drupal", "pypa", "policy", "sbom", "vexhub"}

// now is the wall clock of apply in these tests: after the fixtures'
// generatedAt (2026-05-29), before their expiry (30 days later).
var now = func() time.Time { return time.Date(2026, 6, 2, 0, 0, 0, 0, time.UTC) }

// fixtureDate is the newest modified date of testdata/mirror (t1), given to
// the builds as SOURCE_DATE_EPOCH: dated by their evidence alone, bundles
// built today from these months-old snapshots would be expired before they
// are built, which a build without SOURCE_DATE_EPOCH refuses
// (TestBornExpired).
var fixtureDate = time.Date(2026, 5, 29, 12, 0, 0, 0, time.UTC)

func repoPath(rel string) string {
	p, err := filepath.Abs(filepath.Join("..", "..", rel))
	if err != nil {
		panic(err)
	}
	return p
}

func sources(dir string, names ...string) []exportapi.SourceSpec {
	if len(names) == 0 {
		names = sourceNames
	}
	var out []exportapi.SourceSpec
	for _, n := range names {
		out = append(out, exportapi.SourceSpec{Name: n, Path: filepath.Join(dir, n)})
	}
	return out
}

func newEngine(dir string) (*engine.Engine, error) { return newEngineWith(dir, nil) }

func newEngineWith(dir string, edit func(*engine.Config)) (*engine.Engine, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	led, err := bolt.Open(filepath.Join(dir, "ledger.db"), bolt.Options{})
	if err != nil {
		return nil, err
	}
	cfg := engine.Config{DataDir: dir, Version: "test", SortBudget: 256 << 10, // small: the sorts spill
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), SourceDateEpoch: &fixtureDate}
	if edit != nil {
		edit(&cfg)
	}
	return engine.New(cfg, led), nil
}

func runEngine(e *engine.Engine, req engine.SubmitRequest) (exportapi.Run, error) {
	ctx := context.Background()
	if req.Tenant == "" {
		req.Tenant = "acme"
	}
	run, err := e.Submit(ctx, req)
	if err != nil {
		return run, err
	}
	return e.Execute(ctx, run.ID)
}

func archiveOf(r exportapi.Run) string {
	for _, a := range r.Artifacts {
		if a.MediaType == engine.BundleMediaType {
			return a.Path
		}
	}
	return ""
}

// fixture holds the bundles most tests share, built once.
type fixture struct {
	dir                    string
	t0, t1, t2             string // evidence snapshots
	full0, delta01, full1  string // archives
	delta12, full2         string
	run0, run01            exportapi.Run
	eng                    *engine.Engine
	deltaAgain             string // delta01 built a second time with --base run0
	runDelta12             exportapi.Run
	build                  error
	chainBFull, chainBDelt string // another chain: full(t1) -> delta(t1->t2), for "wrong base"
}

var (
	fixOnce sync.Once
	fix     fixture
	tmpRoot string
)

func TestMain(m *testing.M) {
	if os.Getenv("STELLA_MIRROR_TEST_APPLY") != "" {
		os.Exit(applyChild())
	}
	var err error
	tmpRoot, err = os.MkdirTemp("", "mirror-test-")
	if err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(tmpRoot)
	os.Exit(code)
}

func getFixture(t *testing.T) *fixture {
	t.Helper()
	fixOnce.Do(func() { fix.build = buildFixture(&fix) })
	if fix.build != nil {
		t.Fatalf("fixture: %v", fix.build)
	}
	return &fix
}

func buildFixture(f *fixture) error {
	f.dir = filepath.Join(tmpRoot, "fixture")
	f.t0, f.t1 = repoPath("testdata/mirror/t0"), repoPath("testdata/mirror/t1")
	f.t2 = filepath.Join(f.dir, "t2")
	if err := makeT2(f.t1, f.t2); err != nil {
		return fmt.Errorf("t2: %w", err)
	}
	e, err := newEngine(filepath.Join(f.dir, "chain"))
	if err != nil {
		return err
	}
	f.eng = e
	req := func(p, snap string) engine.SubmitRequest {
		return engine.SubmitRequest{Profile: p, Sources: sources(snap), SkipInvalid: true}
	}
	if f.run0, err = runEngine(e, req("mirror:full", f.t0)); err != nil {
		return fmt.Errorf("full t0: %w", err)
	}
	if f.run01, err = runEngine(e, req("mirror:delta", f.t1)); err != nil {
		return fmt.Errorf("delta t0->t1: %w", err)
	}
	again := req("mirror:delta", f.t1)
	again.BaseRunID = f.run0.ID
	ra, err := runEngine(e, again)
	if err != nil {
		return fmt.Errorf("delta t0->t1 again: %w", err)
	}
	if f.runDelta12, err = runEngine(e, func() engine.SubmitRequest {
		r := req("mirror:delta", f.t2)
		r.BaseRunID = f.run01.ID
		return r
	}()); err != nil {
		return fmt.Errorf("delta t1->t2: %w", err)
	}
	f.full0, f.delta01, f.deltaAgain, f.delta12 = archiveOf(f.run0), archiveOf(f.run01), archiveOf(ra), archiveOf(f.runDelta12)
	// Full bundles of t1 and t2 in ledgers of their own (sequence 1).
	for _, x := range []struct {
		snap string
		out  *string
	}{{f.t1, &f.full1}, {f.t2, &f.full2}} {
		e2, err := newEngine(filepath.Join(f.dir, "full-"+filepath.Base(x.snap)))
		if err != nil {
			return err
		}
		r, err := runEngine(e2, req("mirror:full", x.snap))
		if err != nil {
			return fmt.Errorf("full %s: %w", x.snap, err)
		}
		*x.out = archiveOf(r)
		if x.snap == f.t1 {
			// Another chain: full(t1) -> delta(t1->t2), sequence 2 on another base.
			d, err := runEngine(e2, req("mirror:delta", f.t2))
			if err != nil {
				return fmt.Errorf("chain B delta: %w", err)
			}
			f.chainBFull, f.chainBDelt = archiveOf(r), archiveOf(d)
		}
	}
	return nil
}

// makeT2 copies t1 and edits it: an advisory changed, one removed, one
// added, one withdrawn (YAML), a VEX document removed, an SBOM changed and
// one removed, a finding changed and one removed.
func makeT2(t1, t2 string) error {
	if err := copyDir(t1, t2); err != nil {
		return err
	}
	edit := func(rel string, fn func([]byte) []byte) error {
		p := filepath.Join(t2, rel)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(p, fn(b), 0o644)
	}
	first := func(dir, ext string) (string, error) {
		var out []string
		err := filepath.WalkDir(filepath.Join(t2, dir), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ext) {
				rel, _ := filepath.Rel(t2, p)
				out = append(out, rel)
			}
			return err
		})
		sort.Strings(out)
		if len(out) < 3 {
			return "", fmt.Errorf("%s: too few files", dir)
		}
		return out[0] + "\x00" + out[1] + "\x00" + out[2], err
	}
	dr, err := first("drupal", ".json")
	if err != nil {
		return err
	}
	d := strings.Split(dr, "\x00")
	if err := edit(d[0], func(b []byte) []byte {
		return bytes.Replace(b, []byte(`"summary": "`), []byte(`"summary": "(t2) `), 1)
	}); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(t2, d[1])); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(t2, d[2]))
	if err != nil {
		return err
	}
	re := regexp.MustCompile(`"id": "(DRUPAL-[A-Z]+-[0-9]+-[0-9]+)"`)
	nb := re.ReplaceAll(b, []byte(`"id": "${1}-T2"`))
	if err := os.WriteFile(filepath.Join(t2, "drupal", "advisories", "t2-new.json"), nb, 0o644); err != nil {
		return err
	}
	py, err := first("pypa", ".yaml")
	if err != nil {
		return err
	}
	if err := edit(strings.Split(py, "\x00")[0], func(b []byte) []byte {
		return append([]byte("withdrawn: 2026-06-01T00:00:00Z\n"), b...)
	}); err != nil {
		return err
	}
	cq, err := first("ctrliq", ".json")
	if err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(t2, strings.Split(cq, "\x00")[0])); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(t2, "sbom", "cyclonedx", "kawipiko-sbom-cdx.json")); err != nil {
		return err
	}
	if err := edit("sbom/spdx/example7-bin.spdx.json", func(b []byte) []byte { return append(b, '\n') }); err != nil {
		return err
	}
	return edit("policy/findings.jsonl", func(b []byte) []byte {
		lines := strings.SplitAfter(string(b), "\n")
		lines[0] = strings.Replace(lines[0], `"verdict":"fail"`, `"verdict":"warn"`, 1)
		return []byte(strings.Join(append(lines[:1], lines[2:]...), ""))
	})
}

func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(out, b, 0o644)
	})
}

// extract unpacks a bundle into a new folder and returns its root.
func extract(t *testing.T, archive string) string {
	t.Helper()
	dir := t.TempDir()
	err := bundle.Walk(archive, bundle.ReadLimits{}, func(rel string, size int64, r io.Reader) error {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		os.MkdirAll(filepath.Dir(p), 0o755)
		b, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		return os.WriteFile(p, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func manifestOf(t *testing.T, archive string) (*exportapi.Manifest, string) {
	t.Helper()
	var raw []byte
	err := bundle.Walk(archive, bundle.ReadLimits{}, func(rel string, size int64, r io.Reader) error {
		if rel == "export.json" {
			b, err := io.ReadAll(r)
			raw = b
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := bundle.ParseManifest(raw)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(raw)
	return m, "sha256:" + hex.EncodeToString(s[:])
}

// treeDigests maps every file below dir (but the lock) to its sha256.
func treeDigests(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == ".lock" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		s := sha256.Sum256(b)
		out[filepath.ToSlash(rel)] = hex.EncodeToString(s[:])
		return nil
	})
	return out
}

func sameTree(t *testing.T, before, after map[string]string) {
	t.Helper()
	if len(before) != len(after) {
		t.Fatalf("target changed: %d files before, %d after", len(before), len(after))
	}
	for k, v := range before {
		if after[k] != v {
			t.Fatalf("target changed: %s", k)
		}
	}
}

// applyOK applies bundles and fails the test on error.
func applyOK(t *testing.T, target string, opt mirror.ApplyOptions, bundles ...string) *mirror.ApplyResult {
	t.Helper()
	opt.Target, opt.Bundles = target, bundles
	if opt.Now == nil {
		opt.Now = now
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	res, err := mirror.Apply(context.Background(), opt)
	if err != nil {
		t.Fatalf("apply %v: %v", bundles, err)
	}
	return res
}

// applyLog applies and returns the error and the JSON log.
func applyLog(t *testing.T, target string, opt mirror.ApplyOptions, bundles ...string) (string, error) {
	t.Helper()
	var log bytes.Buffer
	opt.Target, opt.Bundles = target, bundles
	if opt.Now == nil {
		opt.Now = now
	}
	opt.Logger = slog.New(slog.NewJSONHandler(&log, nil))
	_, err := mirror.Apply(context.Background(), opt)
	return log.String(), err
}

// sameAsFull checks that the target holds exactly the records of a full
// bundle: every data and index file with the digest the full bundle's
// export.json gives, no other file, and index entries equal record by record.
func sameAsFull(t *testing.T, target, full string) {
	t.Helper()
	root, err := mirror.CurrentRoot(target)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := manifestOf(t, full)
	want := map[string]string{}
	for _, c := range m.Contents {
		if strings.HasPrefix(c.Path, "data/") || (strings.HasPrefix(c.Path, "indexes/") && c.Path != mirror.TombstonesPath) {
			d := c.Digest
			if c.PlainDigest != "" {
				d = c.PlainDigest
			}
			want[c.Path] = strings.TrimPrefix(d, "sha256:")
		}
	}
	have := map[string]string{}
	for rel, d := range treeDigests(t, root) {
		if strings.HasPrefix(rel, "data/") || strings.HasPrefix(rel, "indexes/") {
			have[rel] = d
		}
	}
	for p, d := range want {
		if have[p] != d {
			t.Errorf("%s: target %q, full bundle %q", p, have[p], d)
		}
	}
	for p := range have {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: in the target, not in the full bundle", p)
		}
	}
	// Record by record: the index entries (id, kind, digest, origin) of both.
	fullRoot := extract(t, full)
	a, b := entries(t, root), entries(t, fullRoot)
	if len(a) != len(b) {
		t.Fatalf("records: target %d, full %d", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("record %d: target %+v, full %+v", i, a[i], b[i])
		}
	}
	// And the raw lines themselves.
	for p := range want {
		if s, codec, ok := mirror.StreamOf(p); ok && strings.HasPrefix(s, "raw/") {
			if x, y := lines(t, filepath.Join(root, p), codec), lines(t, filepath.Join(fullRoot, p), codec); x != y {
				t.Errorf("%s: raw lines differ", p)
			}
		}
	}
}

func entries(t *testing.T, root string) []mirror.Entry {
	t.Helper()
	it := mirror.OpenIndexes(root)
	defer it.Close()
	var out []mirror.Entry
	for {
		e, ok, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return out
		}
		out = append(out, e)
	}
}

func lines(t *testing.T, p string, codec bundle.Codec) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := bundle.Decompressor(f, codec)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(bufio.NewReader(r))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// tarEntry is one entry of a hand-made archive.
type tarEntry struct {
	hdr  tar.Header
	body []byte
	big  int64 // a body of this many zero bytes, streamed
}

// readEntries reads every entry of a bundle archive.
func readEntries(t *testing.T, archive string) []tarEntry {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := zstd.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	var out []tarEntry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out = append(out, tarEntry{hdr: *h, body: b})
	}
}

// writeEntries writes entries as a .tar.zst archive.
func writeEntries(t *testing.T, path string, ents []tarEntry) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw, _ := zstd.NewWriter(f)
	tw := tar.NewWriter(zw)
	zero := make([]byte, 1<<20)
	for _, e := range ents {
		h := e.hdr
		if e.big > 0 {
			h.Size = e.big
		} else if h.Typeflag == tar.TypeReg || h.Typeflag == 0 {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if e.big > 0 {
			for n := e.big; n > 0; n -= int64(len(zero)) {
				tw.Write(zero[:min(n, int64(len(zero)))])
			}
		} else {
			tw.Write(e.body)
		}
	}
	tw.Close()
	zw.Close()
}
