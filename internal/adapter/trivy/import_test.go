package trivy

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	bolt "go.etcd.io/bbolt"

	"github.com/stellaops/stella/internal/record"
	"github.com/stellaops/stella/internal/xerr"
)

// tgz writes a gzip tar with the given regular files.
func tgz(t *testing.T, files map[string][]byte, order ...string) string {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, n := range order {
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg})
		tw.Write(files[n])
	}
	tw.Close()
	zw.Close()
	p := filepath.Join(t.TempDir(), "db.bundle")
	os.WriteFile(p, buf.Bytes(), 0o644)
	return p
}

func TestImport(t *testing.T) {
	advs := []*record.Advisory{{ID: "GO-2024-0001", Modified: "2024-05-01T10:00:00Z",
		Affected: []record.Affected{{Ecosystem: "Go", Package: "example.com/m", Ranges: []record.Range{rng("SEMVER", "i=0", "f=1.0.0")}}}}}
	dir, _ := build(t, advs, Options{})
	bundlePath := filepath.Join(dir, "db.bundle")

	md, info, err := VerifyBundle(bundlePath, t.TempDir())
	if err != nil || md.Version != 2 || info.Vulnerabilities != 1 || len(info.AdvisoryBuckets) != 1 {
		t.Fatalf("verify: %+v %+v %v", md, info, err)
	}
	cache := t.TempDir()
	if err := Import(bundlePath, cache); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{DBFile, MetadataFile} {
		if sha(t, filepath.Join(cache, "db", f)) != sha(t, filepath.Join(dir, f)) {
			t.Errorf("%s differs after import", f)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(cache, "db")); len(ents) != 2 {
		t.Errorf("cache/db holds %d files, want 2 (temporary files left?)", len(ents))
	}
	// Importing again replaces the DB in place.
	if err := Import(bundlePath, cache); err != nil {
		t.Fatal(err)
	}

	dbBytes, _ := os.ReadFile(filepath.Join(dir, DBFile))
	// Schema 1: refused with the versions that read it; the cache is unchanged.
	before := sha(t, filepath.Join(cache, "db", MetadataFile))
	old := tgz(t, map[string][]byte{MetadataFile: []byte(`{"Version":1,"NextUpdate":"2022-01-01T00:00:00Z"}`), DBFile: dbBytes}, MetadataFile, DBFile)
	err = Import(old, cache)
	if !xerr.Is(err, xerr.UnsupportedSchema) || !strings.Contains(err.Error(), "v0.22") {
		t.Fatalf("schema 1: %v", err)
	}
	if sha(t, filepath.Join(cache, "db", MetadataFile)) != before {
		t.Fatal("a refused import changed the cache")
	}
	if ents, _ := os.ReadDir(filepath.Join(cache, "db")); len(ents) != 2 {
		t.Errorf("refused import left %d files", len(ents))
	}
	// Not a bolt file.
	bad := tgz(t, map[string][]byte{MetadataFile: []byte(`{"Version":2}`), DBFile: []byte("not a database")}, MetadataFile, DBFile)
	if err := Import(bad, cache); !xerr.Is(err, xerr.Verify) {
		t.Fatalf("not bolt: %v", err)
	}
	// Missing trivy.db, unexpected entries, missing bundle, not gzip.
	if err := Import(tgz(t, map[string][]byte{MetadataFile: []byte(`{"Version":2}`)}, MetadataFile), cache); !xerr.Is(err, xerr.Verify) {
		t.Fatalf("no db: %v", err)
	}
	if err := Import(tgz(t, map[string][]byte{"../evil": []byte("x")}, "../evil"), cache); !xerr.Is(err, xerr.Verify) {
		t.Fatalf("evil entry: %v", err)
	}
	if err := Import(filepath.Join(t.TempDir(), "nope"), cache); !xerr.Is(err, xerr.InvalidInput) {
		t.Fatalf("missing bundle: %v", err)
	}
	if err := Import(filepath.Join(dir, DBFile), cache); !xerr.Is(err, xerr.Verify) {
		t.Fatalf("not gzip: %v", err)
	}
	// A bolt file without the buckets trivy needs.
	nob := filepath.Join(t.TempDir(), DBFile)
	db, err := bolt.Open(nob, 0o644, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("npm::x")); return err })
	db.Close()
	if _, err := CheckDB(nob); !xerr.Is(err, xerr.Verify) || !strings.Contains(err.Error(), "vulnerability") {
		t.Fatalf("no vulnerability bucket: %v", err)
	}
}
