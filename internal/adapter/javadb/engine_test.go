package javadb

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/stellaops/stella/internal/engine"
	"github.com/stellaops/stella/internal/ledger/bolt"
	"github.com/stellaops/stella/internal/xerr"
	"github.com/stellaops/stella/pkg/exportapi"
)

func newEngine(t *testing.T, cfg engine.Config) *engine.Engine {
	t.Helper()
	cfg.DataDir = t.TempDir()
	cfg.Version = "test"
	led, err := bolt.Open(filepath.Join(cfg.DataDir, "ledger.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close() })
	return engine.New(cfg, led)
}

// runJavaDB submits and executes a trivy:java-db run and returns the
// files of its bundle archive by path (without the archive root).
func runJavaDB(t *testing.T, e *engine.Engine, req engine.SubmitRequest) (map[string][]byte, error) {
	t.Helper()
	req.Profile = "trivy:java-db"
	ctx := context.Background()
	run, err := e.Submit(ctx, req)
	if err != nil {
		return nil, err
	}
	run, err = e.Execute(ctx, run.ID)
	if err != nil {
		return nil, err
	}
	var archive string
	for _, a := range run.Artifacts {
		if a.MediaType == engine.BundleMediaType {
			archive = a.Path
		}
	}
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
	files := map[string][]byte{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, _ := io.ReadAll(tr)
		_, rel, _ := strings.Cut(h.Name, "/")
		files[rel] = b
	}
	return files, nil
}

func writeSource(t *testing.T, docs map[string][]byte) string {
	dir := t.TempDir()
	for n, b := range docs {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestEngineJavaDB(t *testing.T) {
	docs := sampleDocs()
	src := writeSource(t, map[string][]byte{"a.cdx.json": docs[0].Raw, "b.cdx.json": docs[1].Raw,
		"bad.cdx.json": cdx("2024-01-01T00:00:00Z", [2]string{"pkg:maven/g/a@1", "12345"})})
	req := engine.SubmitRequest{Sources: []exportapi.SourceSpec{{Name: "sboms", Path: src}}}

	// Off (the default): refused at submit, saying how to turn it on.
	_, err := runJavaDB(t, newEngine(t, engine.Config{}), req)
	if !xerr.Is(err, xerr.InvalidInput) || !strings.Contains(err.Error(), "EnableJavaDb") {
		t.Fatalf("disabled trivy:java-db: %v", err)
	}

	e := newEngine(t, engine.Config{EnableTrivyJavaDB: true})
	// A malformed SHA-1 fails the run unless --skip-invalid.
	if _, err := runJavaDB(t, e, req); !xerr.Is(err, xerr.InvalidInput) || !strings.Contains(err.Error(), "bad.cdx.json") {
		t.Fatalf("malformed component: %v", err)
	}
	req.SkipInvalid = true
	f1, err := runJavaDB(t, e, req)
	if err != nil {
		t.Fatal(err)
	}
	var m exportapi.Manifest
	if err := json.Unmarshal(f1["export.json"], &m); err != nil {
		t.Fatal(err)
	}
	var entry *exportapi.ContentEntry
	for i := range m.Contents {
		if m.Contents[i].Path == DefaultBundlePath {
			entry = &m.Contents[i]
		}
	}
	if entry == nil || entry.Records != 300 || entry.ContentType != BundleMediaType {
		t.Fatalf("export.json contents %+v", m.Contents)
	}
	if len(m.Skipped) != 1 || m.Skipped[0].Path != "bad.cdx.json" || !strings.Contains(m.Skipped[0].Reason, "SHA-1") {
		t.Errorf("skipped %+v", m.Skipped)
	}
	// The bundle installs and holds the entries.
	bp := filepath.Join(t.TempDir(), "java-db.bundle")
	os.WriteFile(bp, f1[DefaultBundlePath], 0o644)
	md, info, err := VerifyBundle(bp, "")
	if err != nil || info.Entries != 300 || md.UpdatedAt != time.Date(2024, 5, 2, 11, 30, 0, 0, time.UTC) {
		t.Fatalf("bundle: %+v %+v %v", md, info, err)
	}

	// Same evidence, another run (another engine): byte-identical bundle.
	f2, err := runJavaDB(t, newEngine(t, engine.Config{EnableTrivyJavaDB: true}), req)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f1[DefaultBundlePath], f2[DefaultBundlePath]) {
		t.Error("java-db.bundle differs between two runs over the same evidence")
	}
	var m2 exportapi.Manifest
	json.Unmarshal(f2["export.json"], &m2)
	if m.RerunHash != m2.RerunHash || m.ExportID != m2.ExportID {
		t.Errorf("rerunHash %s vs %s", m.RerunHash, m2.RerunHash)
	}

	// SOURCE_DATE_EPOCH sets metadata.json's dates; the DB is unchanged.
	sde := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f3, err := runJavaDB(t, newEngine(t, engine.Config{EnableTrivyJavaDB: true, SourceDateEpoch: &sde}), req)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(bp, f3[DefaultBundlePath], 0o644)
	if md, _, err := VerifyBundle(bp, ""); err != nil || !md.UpdatedAt.Equal(sde) || !md.NextUpdate.Equal(sde.Add(72*time.Hour)) {
		t.Errorf("with SOURCE_DATE_EPOCH: %+v %v", md, err)
	}
}

func TestEngineJavaDBEmpty(t *testing.T) {
	src := writeSource(t, map[string][]byte{"npm.cdx.json": cdx("2024-01-01T00:00:00Z", [2]string{"pkg:npm/lodash@4.17.21", sha1Of("l")})})
	e := newEngine(t, engine.Config{EnableTrivyJavaDB: true})
	req := engine.SubmitRequest{Sources: []exportapi.SourceSpec{{Name: "sboms", Path: src}}}
	if _, err := runJavaDB(t, e, req); !xerr.Is(err, xerr.Empty) {
		t.Fatalf("no Maven component with a SHA-1: %v", err)
	}
	req.AllowEmpty = true
	files, err := runJavaDB(t, e, req)
	if err != nil {
		t.Fatal(err)
	}
	bp := filepath.Join(t.TempDir(), "java-db.bundle")
	os.WriteFile(bp, files[DefaultBundlePath], 0o644)
	if _, info, err := VerifyBundle(bp, ""); err != nil || info.Entries != 0 {
		t.Fatalf("empty Java DB: %+v %v", info, err)
	}
}
