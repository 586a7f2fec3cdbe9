package trivy

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/stellaops/stella/internal/engine"
	"github.com/stellaops/stella/internal/ledger/bolt"
	"github.com/stellaops/stella/pkg/exportapi"
)

// TestEngineTrivyDB runs the trivy:db profile through the engine (the
// registration in register.go), takes db.bundle out of the run's archive,
// imports it, and — when the trivy oracle is present — scans with it.
func TestEngineTrivyDB(t *testing.T) {
	dir := t.TempDir()
	led, err := bolt.Open(filepath.Join(dir, "ledger.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer led.Close()
	e := engine.New(engine.Config{DataDir: dir, Version: "test"}, led)
	ctx := context.Background()
	run, err := e.Submit(ctx, engine.SubmitRequest{Profile: "trivy:db", SkipInvalid: true,
		Sources: []exportapi.SourceSpec{{Name: "go", Path: evidenceDir(t, "golang-vulndb/t1")}, {Name: "alma", Path: evidenceDir(t, "almalinux-osv-database/t1")}}})
	if err != nil {
		t.Fatal(err)
	}
	run, err = e.Execute(ctx, run.ID)
	if err != nil {
		t.Fatalf("trivy:db run: %v", err)
	}
	var archive string
	for _, a := range run.Artifacts {
		if a.MediaType == engine.BundleMediaType {
			archive = a.Path
		}
	}
	if archive == "" {
		t.Fatalf("no bundle artifact: %+v", run.Artifacts)
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
	tr := tar.NewReader(zr)
	bundlePath := filepath.Join(t.TempDir(), "db.bundle")
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if strings.HasSuffix(h.Name, "/"+DefaultBundlePath) || h.Name == DefaultBundlePath {
			out, _ := os.Create(bundlePath)
			io.Copy(out, tr)
			out.Close()
		}
	}
	t.Logf("archive %s: %v", filepath.Base(archive), names)
	cache := t.TempDir()
	if err := Import(bundlePath, cache); err != nil {
		t.Fatalf("import the run's db.bundle: %v (archive entries %v)", err, names)
	}
	info, err := CheckDB(filepath.Join(cache, "db", DBFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("db: %+v", info)

	if os.Getenv("STELLA_TRIVY") == "" {
		if _, err := os.Stat(filepath.Join(moduleRoot(t), "bin", "trivy")); err != nil && os.Getenv("STELLA_REQUIRE_ORACLES") == "" {
			return
		}
	}
	bin := trivyBin(t)
	proj := t.TempDir()
	writeProject(t, filepath.Join(proj, "p"), "Go", "github.com/gin-gonic/gin", "1.5.0")
	found := runTrivy(t, bin, cache, "fs", proj)
	var ok bool
	for _, v := range found["p/go.mod"] {
		ok = ok || v.VulnerabilityID == "GO-2020-0001"
	}
	if !ok {
		t.Fatalf("trivy with the engine's DB did not report GO-2020-0001: %v", ids(found["p/go.mod"]))
	}
}
