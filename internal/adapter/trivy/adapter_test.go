package trivy

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stellaops/stella/internal/bundle"
	"github.com/stellaops/stella/internal/record"
	"github.com/stellaops/stella/internal/xerr"
)

// TestAdapterSkipsBadInput: an advisory with an unknown ecosystem or an
// unparsable range is listed in Skipped() (for export.json skipped[]) and
// not written; a good one next to it is written; other streams are ignored.
func TestAdapterSkipsBadInput(t *testing.T) {
	stage, err := bundle.NewStage(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ad, err := NewAdapter(context.Background(), stage, "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	advs := []*record.Advisory{
		{ID: "OSV-1", Source: "s", Path: "a/OSV-1.json", Digest: "sha256:1",
			Affected: []record.Affected{{Ecosystem: "Hackage", Package: "x", Ranges: []record.Range{rng("ECOSYSTEM", "i=0", "f=1.0")}}}},
		{ID: "PYSEC-2", Source: "s", Path: "a/PYSEC-2.json", Digest: "sha256:2",
			Affected: []record.Affected{{Ecosystem: "PyPI", Package: "y", Ranges: []record.Range{rng("ECOSYSTEM", "i=0", "f=not-a-version!")}}}},
		{ID: "PYSEC-3", Source: "s", Path: "a/PYSEC-3.json", Digest: "sha256:3",
			Affected: []record.Affected{{Ecosystem: "PyPI", Package: "z", Ranges: []record.Range{rng("ECOSYSTEM", "i=0", "f=1.0")}}}},
	}
	for _, a := range advs {
		line, _ := json.Marshal(a)
		if err := ad.Record(AdvisoryStreamPrefix+"s", a.ID, line); err != nil {
			t.Fatal(err)
		}
	}
	if err := ad.Record("normalized/vex/s", "v", []byte(`{"not":"an advisory"}`)); err != nil {
		t.Fatal(err)
	}
	if err := ad.Finish(); err != nil {
		t.Fatal(err)
	}
	sk := ad.Skipped()
	if len(sk) != 2 || sk[0].Path != "a/OSV-1.json" || !strings.Contains(sk[0].Reason, "Hackage") ||
		sk[1].Path != "a/PYSEC-2.json" || !strings.Contains(sk[1].Reason, "not-a-version!") || sk[1].Digest != "sha256:2" || sk[1].Source != "s" {
		t.Fatalf("skipped %+v", sk)
	}
	if len(ad.Invalid()) != 2 {
		t.Fatalf("invalid %+v", ad.Invalid())
	}
	for _, s := range ad.Skips() {
		if !s.Invalid {
			t.Errorf("%s should be invalid input", s.ID)
		}
	}
	if st := ad.Stats(); st.Advisories != 1 || st.Skipped != 2 {
		t.Fatalf("stats %+v", st)
	}
	// Only the good advisory is in the DB.
	p := filepath.Join(t.TempDir(), "db.bundle")
	f, _ := os.Create(p)
	stage.CopyTo(f, DefaultBundlePath)
	f.Close()
	cache := t.TempDir()
	if err := Import(p, cache); err != nil {
		t.Fatal(err)
	}
	dump := string(dumpDB(t, filepath.Join(cache, "db", DBFile)))
	if !strings.Contains(dump, "pip::Python Packaging Advisory Database/z/PYSEC-3=") || strings.Contains(dump, "PYSEC-2") || strings.Contains(dump, "OSV-1") {
		t.Fatalf("db:\n%s", dump)
	}
	if _, err := NewAdapter(context.Background(), stage, "", Options{SchemaVersion: 1}); !xerr.Is(err, xerr.UnsupportedSchema) {
		t.Fatalf("schema 1: %v", err)
	}
}

// TestAdapterCancel: a cancelled run stops the conversion workers and
// Finish reports the cancellation.
func TestAdapterCancel(t *testing.T) {
	stage, _ := bundle.NewStage(t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	ad, err := NewAdapter(ctx, stage, "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	line, _ := json.Marshal(&record.Advisory{ID: "PYSEC-1", Affected: []record.Affected{{Ecosystem: "PyPI", Package: "z", Ranges: []record.Range{rng("ECOSYSTEM", "i=0", "f=1.0")}}}})
	ad.Record(AdvisoryStreamPrefix+"s", "PYSEC-1", line)
	cancel()
	for i := 0; i < 1000; i++ {
		if err := ad.Record(AdvisoryStreamPrefix+"s", fmt.Sprintf("PYSEC-%d", i+2), line); err != nil {
			break
		}
	}
	if err := ad.Finish(); err == nil {
		t.Fatal("Finish after cancel succeeded")
	}
	if _, ok := stage.Entry(DefaultBundlePath); ok {
		t.Fatal("a cancelled build staged db.bundle")
	}
}
