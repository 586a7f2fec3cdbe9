package mirror_test

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/stellaops/stella/internal/engine"
	"github.com/stellaops/stella/internal/evidence"
	"github.com/stellaops/stella/internal/mirror"
	"github.com/stellaops/stella/internal/record"
	"github.com/stellaops/stella/internal/xerr"
)

func walkAll(t *testing.T, p string) (docs []record.Document, errs []error, err error) {
	t.Helper()
	err = evidence.Walk(context.Background(), evidence.Source{Name: "mirror", Path: p}, evidence.Options{}, func(d record.Document, e error) error {
		if e != nil {
			errs = append(errs, e)
			return nil
		}
		docs = append(docs, d)
		return nil
	})
	return
}

// The documents read back from a target are the original ones: same
// source, path, bytes and digest as the evidence folders hold.
func TestTargetYieldsOriginalDocuments(t *testing.T) {
	f := getFixture(t)
	target := filepath.Join(t.TempDir(), "m")
	applyOK(t, target, mirror.ApplyOptions{}, f.full0, f.delta01)
	docs, errs, err := walkAll(t, target)
	if err != nil || len(errs) > 0 {
		t.Fatalf("walk: %v %v", err, errs)
	}
	if len(docs) < 500 {
		t.Fatalf("%d documents", len(docs))
	}
	for _, d := range docs {
		raw, err := os.ReadFile(filepath.Join(f.t1, d.Source, filepath.FromSlash(d.Path)))
		if err != nil {
			t.Fatalf("%s/%s is not in t1: %v", d.Source, d.Path, err)
		}
		if !bytes.Equal(raw, d.Raw) || record.Digest(raw) != d.Digest {
			t.Fatalf("%s/%s: bytes differ from the original", d.Source, d.Path)
		}
	}
	// A single raw-lines file is a source too.
	root, _ := mirror.CurrentRoot(target)
	one, errs, err := walkAll(t, filepath.Join(root, "data", "raw", "advisories", "drupal.jsonl.zst"))
	if err != nil || len(errs) > 0 || len(one) == 0 {
		t.Fatalf("raw file: %d docs, %v %v", len(one), err, errs)
	}
	for _, d := range one {
		if d.Source != "drupal" {
			t.Fatalf("source %q", d.Source)
		}
	}
}

// A damaged target line is a document error, not a silent change.
func TestTargetDamagedLine(t *testing.T) {
	f := getFixture(t)
	root := extract(t, f.full0)
	p := filepath.Join(root, "data", "raw", "advisories", "drupal.jsonl.zst")
	raw := lines(t, p, "zstd")
	bad := strings.Replace(raw, "Drupal", "Drupa1", 1)
	var buf bytes.Buffer
	zw, _ := zstd.NewWriter(&buf)
	zw.Write([]byte(bad))
	zw.Close()
	os.WriteFile(p, buf.Bytes(), 0o644)
	_, errs, err := walkAll(t, root)
	if err != nil || len(errs) != 1 || !strings.Contains(errs[0].Error(), "damaged mirror") {
		t.Fatalf("want one damaged-mirror document error, got %v %v", err, errs)
	}
	// An unsafe source name in a line is refused.
	sc := bufio.NewScanner(strings.NewReader(raw))
	sc.Buffer(nil, 1<<24)
	sc.Scan()
	evil := strings.Replace(sc.Text(), `"source":"drupal"`, `"source":"../x"`, 1) + "\n"
	buf.Reset()
	zw, _ = zstd.NewWriter(&buf)
	zw.Write([]byte(evil))
	zw.Close()
	os.WriteFile(p, buf.Bytes(), 0o644)
	_, errs, _ = walkAll(t, p)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "invalid source name") {
		t.Fatalf("unsafe source: %v", errs)
	}
}

// An encrypted bundle is not an evidence source.
func TestEncryptedBundleIsNotASource(t *testing.T) {
	f := getFixture(t)
	id, _ := newIdentity(t)
	full, _ := encryptedChain(t, f, "age", id.Recipient().String())
	_, _, err := walkAll(t, extract(t, full))
	if !xerr.Is(err, xerr.InvalidInput) || !strings.Contains(err.Error(), "encrypted") {
		t.Fatalf("got %v", err)
	}
}

// A delta made by another stella version that writes the same record
// lines (record.LinesVersion) takes unchanged documents as unchanged, as a
// same-version delta does: the same lists. A base whose record state is
// gone is rebuilt from the bundles, which do not say which lines wrote
// them: that delta parses everything and re-sends every record it
// exports. Both apply to the later snapshot.
func TestDeltaAcrossVersions(t *testing.T) {
	f := getFixture(t)
	ref, _ := manifestOf(t, f.delta01)
	for _, stateGone := range []bool{false, true} {
		dir := filepath.Join(t.TempDir(), "v")
		e1, err := newEngine(dir)
		if err != nil {
			t.Fatal(err)
		}
		full, err := runEngine(e1, engine.SubmitRequest{Profile: "mirror:full", Sources: sources(f.t0), SkipInvalid: true})
		if err != nil {
			t.Fatal(err)
		}
		if stateGone {
			if err := os.Remove(filepath.Join(dir, "runs", full.ID, mirror.RecordStateFile)); err != nil {
				t.Fatal(err)
			}
		}
		e2 := engine.New(engine.Config{DataDir: dir, Version: "test-2", SortBudget: 256 << 10, SourceDateEpoch: &fixtureDate}, e1.Ledger())
		d, err := runEngine(e2, engine.SubmitRequest{Profile: "mirror:delta", Sources: sources(f.t1), SkipInvalid: true})
		if err != nil {
			t.Fatal(err)
		}
		m, _ := manifestOf(t, archiveOf(d))
		same := slices.Equal(m.Delta.Added, ref.Delta.Added) && slices.Equal(m.Delta.Changed, ref.Delta.Changed) &&
			slices.Equal(m.Delta.Removed, ref.Delta.Removed)
		resent := len(m.Delta.Changed) > len(ref.Delta.Changed) && len(m.Delta.Removed) == len(ref.Delta.Removed) &&
			len(m.Delta.Added) == len(ref.Delta.Added)
		if (!stateGone && !same) || (stateGone && !resent) {
			t.Fatalf("state gone %v: cross-version delta +%d ~%d -%d; same-version +%d ~%d -%d", stateGone,
				len(m.Delta.Added), len(m.Delta.Changed), len(m.Delta.Removed), len(ref.Delta.Added), len(ref.Delta.Changed), len(ref.Delta.Removed))
		}
		target := filepath.Join(t.TempDir(), "m")
		applyOK(t, target, mirror.ApplyOptions{}, archiveOf(full), archiveOf(d))
		sameAsFull(t, target, f.full1)
		// Either way the chain is of this binary's lines again: the next
		// delta skips unchanged documents.
		st, err := mirror.OpenRecordState(filepath.Join(dir, "runs", d.ID, mirror.RecordStateFile))
		if err != nil || st == nil {
			t.Fatalf("the delta's record state: %v", err)
		}
		if v := st.Header().ChainVersion; v != record.LinesVersion {
			t.Errorf("state gone %v: the delta's state says lines %q, want %q", stateGone, v, record.LinesVersion)
		}
		st.Close()
	}
}

// A delta must select what its chain selects.
func TestDeltaSelectionMustMatch(t *testing.T) {
	f := getFixture(t)
	e, err := newEngine(filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runEngine(e, engine.SubmitRequest{Profile: "mirror:full", Sources: sources(f.t0, "drupal", "pypa")}); err != nil {
		t.Fatal(err)
	}
	_, err = runEngine(e, engine.SubmitRequest{Profile: "mirror:delta", Sources: sources(f.t1, "drupal", "pypa"), Selectors: []string{"ecosystem=PyPI"}})
	if !xerr.Is(err, xerr.InvalidInput) || !strings.Contains(err.Error(), "selectors") {
		t.Fatalf("got %v", err)
	}
}
