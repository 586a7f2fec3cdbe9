package engine_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stellaops/stella/internal/bundle"
	"github.com/stellaops/stella/internal/engine"
	"github.com/stellaops/stella/internal/ledger/bolt"
	"github.com/stellaops/stella/internal/xerr"
	"github.com/stellaops/stella/pkg/exportapi"
)

// evidence returns a path under the repository's testdata/evidence.
func evidence(t *testing.T, rel string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "testdata", "evidence", rel))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("fixture %s: %v", rel, err)
	}
	return p
}

func newEngine(t *testing.T, mod func(*engine.Config)) *engine.Engine {
	t.Helper()
	dir := t.TempDir()
	led, err := bolt.Open(filepath.Join(dir, "ledger.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close() })
	cfg := engine.Config{DataDir: dir, Version: "test"}
	if mod != nil {
		mod(&cfg)
	}
	return engine.New(cfg, led)
}

// runOK submits and executes a run and returns it; it fails the test unless it succeeds.
func runOK(t *testing.T, e *engine.Engine, req engine.SubmitRequest) exportapi.Run {
	t.Helper()
	run, err := runErr(t, e, req)
	if err != nil {
		t.Fatalf("run failed: %v", err)
	}
	return run
}

func runErr(t *testing.T, e *engine.Engine, req engine.SubmitRequest) (exportapi.Run, error) {
	t.Helper()
	ctx := context.Background()
	run, err := e.Submit(ctx, req)
	if err != nil {
		return run, err
	}
	return e.Execute(ctx, run.ID)
}

func bundleOf(t *testing.T, r exportapi.Run) exportapi.Artifact {
	t.Helper()
	for _, a := range r.Artifacts {
		if a.MediaType == engine.BundleMediaType {
			return a
		}
	}
	t.Fatalf("run %s has no bundle artifact: %+v", r.ID, r.Artifacts)
	return exportapi.Artifact{}
}

func src(name, path string) []exportapi.SourceSpec {
	return []exportapi.SourceSpec{{Name: name, Path: path}}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if info.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSameEvidenceSameBytes(t *testing.T) {
	// Several kinds and formats: Go (zero dates), PyPI YAML, RustSec, AlmaLinux, VEX, SBOMs.
	req := func(s []exportapi.SourceSpec) engine.SubmitRequest {
		return engine.SubmitRequest{Profile: "json:raw", Sources: s, SkipInvalid: true}
	}
	sources := []exportapi.SourceSpec{
		{Name: "govulndb", Path: evidence(t, "osv/golang-vulndb/t0")},
		{Name: "pypa", Path: evidence(t, "osv/pypa-advisory-database/t0")},
		{Name: "alma", Path: evidence(t, "osv/almalinux-osv-database/t0")},
		{Name: "vex", Path: evidence(t, "vex")},
		{Name: "sbom", Path: evidence(t, "sbom")},
	}
	e := newEngine(t, nil)
	first := bundleOf(t, runOK(t, e, req(sources)))
	second := bundleOf(t, runOK(t, e, req(sources)))
	if first.SHA256 != second.SHA256 {
		t.Fatalf("two runs differ: %s vs %s", first.SHA256, second.SHA256)
	}

	// The same evidence at another path, with one worker and GOMAXPROCS=1, on another ledger.
	moved := t.TempDir()
	var movedSources []exportapi.SourceSpec
	for _, s := range sources {
		dst := filepath.Join(moved, "x", s.Name)
		copyDir(t, s.Path, dst)
		movedSources = append(movedSources, exportapi.SourceSpec{Name: s.Name, Path: dst})
	}
	old := runtime.GOMAXPROCS(1)
	e1 := newEngine(t, func(c *engine.Config) { c.Workers = 1; c.SortBudget = 1 << 16 }) // also forces spills
	third := bundleOf(t, runOK(t, e1, req(movedSources)))
	runtime.GOMAXPROCS(old)
	if third.SHA256 != first.SHA256 {
		t.Fatalf("moved sources / GOMAXPROCS=1 / spilling sorter give other bytes: %s vs %s", third.SHA256, first.SHA256)
	}
	rep := bundle.Verify(first.Path, bundle.VerifyOptions{})
	if !rep.OK {
		t.Fatalf("bundle does not verify: %+v", rep.Failed())
	}
	m := rep.Manifest
	if len(m.Skipped) == 0 {
		t.Error("the vex/sbom folders hold non-evidence JSON; expected skipped[] entries")
	}
	if m.GeneratedAt == "1970-01-01T00:00:00Z" {
		t.Error("generatedAt should come from the newest modified date in the evidence")
	}
}

func TestSourceDateEpoch(t *testing.T) {
	sde := mustTime(t, "2026-02-03T04:05:06Z")
	e := newEngine(t, func(c *engine.Config) { c.SourceDateEpoch = &sde })
	r := runOK(t, e, engine.SubmitRequest{Profile: "json:raw", Sources: src("go", evidence(t, "osv/golang-vulndb/t0"))})
	a := bundleOf(t, r)
	if !strings.Contains(a.Name, "20260203") {
		t.Errorf("bundle name %s does not carry the SOURCE_DATE_EPOCH date", a.Name)
	}
	rep := bundle.Verify(a.Path, bundle.VerifyOptions{})
	if rep.Manifest.GeneratedAt != "2026-02-03T04:05:06Z" {
		t.Errorf("generatedAt = %s", rep.Manifest.GeneratedAt)
	}
}

func TestInvalidDocumentFailsOrIsSkipped(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, evidence(t, "osv/osv-schema-testdata/tools/osv-linter/testdata"), dir)
	os.WriteFile(filepath.Join(dir, "truncated.json"), []byte(`{"id": "X-1", "modified": "2024-01-01T00:00:00Z", "affec`), 0o644)
	os.WriteFile(filepath.Join(dir, "latin1.json"), []byte("{\"id\": \"X-2\", \"summary\": \"caf\xe9\"}"), 0o644)
	e := newEngine(t, nil)
	run, err := runErr(t, e, engine.SubmitRequest{Profile: "json:raw", Sources: src("lint", dir)})
	if !xerr.Is(err, xerr.InvalidInput) {
		t.Fatalf("got %v, want ERR_EXPORT_INVALID_INPUT", err)
	}
	if run.State != exportapi.StateFailed || run.ErrorCode != "validation" || !strings.Contains(run.ErrorMessage, ".json") {
		t.Fatalf("ledger: state %s code %s message %q", run.State, run.ErrorCode, run.ErrorMessage)
	}
	if _, err := os.Stat(e.RunDir(run.ID)); !os.IsNotExist(err) {
		left, _ := filepath.Glob(filepath.Join(e.RunDir(run.ID), "*"))
		t.Fatalf("a failed run left its folder (%v): %v", err, left)
	}
	ok := runOK(t, e, engine.SubmitRequest{Profile: "json:raw", Sources: src("lint", dir), SkipInvalid: true})
	m := bundle.Verify(bundleOf(t, ok).Path, bundle.VerifyOptions{}).Manifest
	reasons := map[string]string{}
	for _, s := range m.Skipped {
		reasons[s.Path] = s.Reason
	}
	for _, want := range []string{"truncated.json", "latin1.json", "nointroduced-CVE-2023-41045.json"} {
		if reasons[want] == "" {
			t.Errorf("%s not in skipped[]: %v", want, reasons)
		}
	}
}

func TestDuplicateIDs(t *testing.T) {
	dir := t.TempDir()
	b, _ := os.ReadFile(filepath.Join(evidence(t, "osv/osv-schema-testdata/tools/osv-linter/testdata"), "GO-2020-0001.json"))
	os.WriteFile(filepath.Join(dir, "a.json"), b, 0o644)
	os.WriteFile(filepath.Join(dir, "b.json"), b, 0o644)
	e := newEngine(t, nil)
	_, err := runErr(t, e, engine.SubmitRequest{Profile: "json:raw", Sources: src("d", dir)})
	if !xerr.Is(err, xerr.InvalidInput) || !strings.Contains(err.Error(), "duplicate") || !strings.Contains(err.Error(), "a.json") {
		t.Fatalf("got %v, want a duplicate-id error naming both files", err)
	}
	r := runOK(t, e, engine.SubmitRequest{Profile: "json:raw", Sources: src("d", dir), SkipInvalid: true})
	m := bundle.Verify(bundleOf(t, r).Path, bundle.VerifyOptions{}).Manifest
	if len(m.Skipped) != 1 || m.Skipped[0].Path != "b.json" {
		t.Fatalf("skipped = %+v, want b.json (the later one)", m.Skipped)
	}
	if r.Counts["records"] != 1 {
		t.Fatalf("records = %d, want 1", r.Counts["records"])
	}
}

func TestEmptySelection(t *testing.T) {
	e := newEngine(t, nil)
	req := engine.SubmitRequest{Profile: "json:raw", Sources: src("go", evidence(t, "osv/golang-vulndb/t0")), Selectors: []string{"ecosystem=npm"}}
	_, err := runErr(t, e, req)
	if !xerr.Is(err, xerr.Empty) {
		t.Fatalf("got %v, want ERR_EXPORT_EMPTY", err)
	}
	req.AllowEmpty = true
	r := runOK(t, e, req)
	rep := bundle.Verify(bundleOf(t, r).Path, bundle.VerifyOptions{})
	if !rep.OK || len(rep.Manifest.Contents) != 0 {
		t.Fatalf("empty bundle: ok=%v contents=%d", rep.OK, len(rep.Manifest.Contents))
	}
}

func TestSelectors(t *testing.T) {
	e := newEngine(t, nil)
	sources := []exportapi.SourceSpec{
		{Name: "govulndb", Path: evidence(t, "osv/golang-vulndb/t0")},
		{Name: "pypa", Path: evidence(t, "osv/pypa-advisory-database/t0")},
	}
	plan, err := e.Plan(context.Background(), engine.SubmitRequest{Profile: "json:raw", Sources: sources, Selectors: []string{"ecosystem=PyPI"}})
	if err != nil {
		t.Fatal(err)
	}
	if plan.Counts["advisory/govulndb"] != 0 || plan.Counts["advisory/pypa"] == 0 {
		t.Fatalf("ecosystem=PyPI plan counts %v", plan.Counts)
	}
	r := runOK(t, e, engine.SubmitRequest{Profile: "json:raw", Sources: sources, Selectors: []string{"source=pypa", "since=2023-01-01T00:00:00Z"}})
	m := bundle.Verify(bundleOf(t, r).Path, bundle.VerifyOptions{}).Manifest
	if len(m.Sources) != 1 || m.Sources[0].Name != "pypa" {
		t.Fatalf("sources %+v", m.Sources)
	}
	if r.Counts["records"] == 0 || r.Counts["records"] >= plan.Counts["advisory/pypa"] {
		t.Fatalf("since= selected %d of %d", r.Counts["records"], plan.Counts["advisory/pypa"])
	}
	if runs, _, _ := e.Ledger().Runs(context.Background(), ledgerFilter()); len(runs) != 1 {
		t.Fatalf("plan wrote to the ledger: %d runs", len(runs))
	}
	if _, err := e.Submit(context.Background(), engine.SubmitRequest{Profile: "json:raw", Sources: sources, Selectors: []string{"source=nope"}}); !xerr.Is(err, xerr.InvalidInput) {
		t.Fatalf("unknown source selector: %v", err)
	}
	if _, err := e.Submit(context.Background(), engine.SubmitRequest{Profile: "json:raw", Sources: sources, Selectors: []string{"colour=red"}}); !xerr.Is(err, xerr.InvalidInput) {
		t.Fatalf("unknown selector key: %v", err)
	}
	if _, err := e.Submit(context.Background(), engine.SubmitRequest{Profile: "nope", Sources: sources}); !xerr.Is(err, xerr.ProfileNotFound) {
		t.Fatalf("unknown profile: %v", err)
	}
}

func TestPolicyOverlay(t *testing.T) {
	e := newEngine(t, nil)
	sources := []exportapi.SourceSpec{
		{Name: "pypa", Path: evidence(t, "osv/pypa-advisory-database/t0")},
		{Name: "policy", Path: evidence(t, "policy")},
	}
	raw := runOK(t, e, engine.SubmitRequest{Profile: "json:raw", Sources: sources})
	pol := runOK(t, e, engine.SubmitRequest{Profile: "json:policy", Sources: sources})
	paths := func(r exportapi.Run) string {
		var p []string
		for _, c := range bundle.Verify(bundleOf(t, r).Path, bundle.VerifyOptions{}).Manifest.Contents {
			p = append(p, c.Path)
		}
		return strings.Join(p, " ")
	}
	if strings.Contains(paths(raw), "policy") {
		t.Errorf("json:raw carries policy data: %s", paths(raw))
	}
	if !strings.Contains(paths(pol), "data/policy/snapshot.json") || !strings.Contains(paths(pol), "data/policy/evaluations.jsonl.zst") {
		t.Errorf("json:policy lacks the policy part: %s", paths(pol))
	}
	_, err := runErr(t, e, engine.SubmitRequest{Profile: "json:policy", Sources: sources[:1]})
	if !xerr.Is(err, xerr.InvalidInput) || !strings.Contains(err.Error(), "policy snapshot") {
		t.Fatalf("json:policy without a snapshot: %v", err)
	}
}

func TestCancelPending(t *testing.T) {
	e := newEngine(t, nil)
	ctx := context.Background()
	run, err := e.Submit(ctx, engine.SubmitRequest{Profile: "json:raw", Sources: src("go", evidence(t, "osv/golang-vulndb/t0"))})
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.Cancel(ctx, run.ID)
	if err != nil || c.State != exportapi.StateCancelled {
		t.Fatalf("cancel: %v %s", err, c.State)
	}
	if _, err := e.Execute(ctx, run.ID); err == nil {
		t.Fatal("a cancelled run executed")
	}
}

// A run whose caller stops it mid-way (the CLI's context ended by an
// interrupt signal) is cancelled, not failed as "a bug", says why, and
// keeps no bundle.
func TestInterruptCancelsRun(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	e := newEngine(t, func(c *engine.Config) {
		c.Hooks.Sign = func(sctx context.Context, in engine.SignInput) (map[string][]byte, error) {
			cancel(errors.New("interrupt signal received"))
			return nil, context.Cause(sctx)
		}
	})
	run, err := e.Submit(context.Background(), engine.SubmitRequest{Profile: "json:raw", Sources: src("go", evidence(t, "osv/golang-vulndb/t0"))})
	if err != nil {
		t.Fatal(err)
	}
	final, err := e.Execute(ctx, run.ID)
	if err == nil {
		t.Fatal("an interrupted run succeeded")
	}
	if final.State != exportapi.StateCancelled || final.ErrorMessage != "interrupted: interrupt signal received" {
		t.Fatalf("state %s, message %q", final.State, final.ErrorMessage)
	}
	if len(final.Artifacts) != 0 {
		t.Errorf("artifacts of an interrupted run: %+v", final.Artifacts)
	}
	ents, _ := os.ReadDir(e.RunDir(run.ID))
	for _, en := range ents {
		t.Errorf("left in the run folder: %s", en.Name())
	}
}
