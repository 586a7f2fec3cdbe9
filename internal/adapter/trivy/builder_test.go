package trivy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/stellaops/stella/internal/record"
	"github.com/stellaops/stella/internal/xerr"
)

// corpus is every real advisory of the fixtures (t1 snapshots), each id
// once (as the engine hands them over: it drops duplicate ids).
func corpus(t testing.TB) []*record.Advisory {
	var all []*record.Advisory
	seen := map[string]bool{}
	for _, src := range []string{"golang-vulndb/t1", "pypa-advisory-database/t1", "rustsec-advisory-db-osv/t1",
		"almalinux-osv-database/t1", "drupal-advisory-database/t1", "osv-schema-testdata"} {
		advs, _ := loadAdvisories(t, src, evidenceDir(t, src))
		for _, a := range advs {
			if !seen[a.ID] {
				seen[a.ID] = true
				all = append(all, a)
			}
		}
	}
	return all
}

func sha(t testing.TB, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// build writes trivy.db, metadata.json and db.bundle into a new dir.
func build(t testing.TB, advs []*record.Advisory, opts Options) (string, *Builder) {
	t.Helper()
	dir := t.TempDir()
	opts.TmpDir = t.TempDir()
	b, err := NewBuilder(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	for _, a := range advs {
		if err := b.Add(a); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Build(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "db.bundle"))
	if err != nil {
		t.Fatal(err)
	}
	if err := Pack(f, dir, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return dir, b
}

// TestDeterministicDB proves that trivy.db (and db.bundle) are a pure
// function of the advisories: two builds over the same corpus, with the
// advisories added in different orders, under different GOMAXPROCS, with
// the sorter spilling differently, give byte-identical files.
func TestDeterministicDB(t *testing.T) {
	advs := corpus(t)
	if len(advs) < 1000 {
		t.Fatalf("corpus too small: %d", len(advs))
	}
	opts := Options{TxBytes: 64 << 10} // many transactions, so boundaries matter

	prev := runtime.GOMAXPROCS(1)
	dir1, b1 := build(t, advs, Options{TxBytes: opts.TxBytes, SortBudget: 64 << 20})
	runtime.GOMAXPROCS(prev)

	shuffled := append([]*record.Advisory(nil), advs...)
	rand.New(rand.NewSource(42)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	runtime.GOMAXPROCS(max(2, prev))
	dir2, b2 := build(t, shuffled, Options{TxBytes: opts.TxBytes, SortBudget: 256 << 10}) // spills many runs
	runtime.GOMAXPROCS(prev)

	for _, f := range []string{DBFile, MetadataFile, "db.bundle"} {
		h1, h2 := sha(t, filepath.Join(dir1, f)), sha(t, filepath.Join(dir2, f))
		if h1 != h2 {
			t.Errorf("%s differs between builds: %s vs %s", f, h1, h2)
		}
		t.Logf("%s sha256 %s", f, h1)
	}
	s1, s2 := b1.Stats(), b2.Stats()
	t.Logf("stats: %+v", s1)
	if s1.Transactions < 5 {
		t.Errorf("only %d transactions; the test should cross transaction boundaries", s1.Transactions)
	}
	if s1 != s2 {
		t.Errorf("stats differ: %+v vs %+v", s1, s2)
	}
	info, err := CheckDB(filepath.Join(dir1, DBFile))
	if err != nil {
		t.Fatal(err)
	}
	if info.PageSize != pageSize || int64(info.Vulnerabilities) != s1.Advisories || info.DataSources != len(info.AdvisoryBuckets) {
		t.Errorf("db info %+v vs stats %+v", info, s1)
	}
	t.Logf("buckets: %q", info.AdvisoryBuckets)

	// A different transaction size is a different (still valid) layout;
	// every key/value must read back the same.
	dir3, _ := build(t, advs, Options{})
	if d1, d3 := dumpDB(t, filepath.Join(dir1, DBFile)), dumpDB(t, filepath.Join(dir3, DBFile)); !bytes.Equal(d1, d3) {
		t.Error("contents differ with another transaction size")
	}
}

// dumpDB lists every bucket path, key and value of a bolt file.
func dumpDB(t testing.TB, p string) []byte {
	db, err := bolt.Open(p, 0o444, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var buf bytes.Buffer
	var walk func(prefix string, b *bolt.Bucket) error
	walk = func(prefix string, b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				return walk(prefix+string(k)+"/", b.Bucket(k))
			}
			buf.WriteString(prefix + string(k) + "=" + string(v) + "\n")
			return nil
		})
	}
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error { return walk(string(name)+"/", b) })
	})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestMetadataAndSchema(t *testing.T) {
	if err := CheckSchema(1); !xerr.Is(err, xerr.UnsupportedSchema) {
		t.Fatalf("schema 1: %v", err)
	}
	if _, err := NewBuilder(Options{SchemaVersion: 3}); !xerr.Is(err, xerr.UnsupportedSchema) {
		t.Fatalf("schema 3: %v", err)
	}
	advs := []*record.Advisory{
		{ID: "GO-2024-0001", Modified: "2024-05-01T10:00:00.5Z", Affected: []record.Affected{{Ecosystem: "Go", Package: "example.com/m", Ranges: []record.Range{rng("SEMVER", "i=0", "f=1.0.0")}}}},
		{ID: "GO-2024-0002", Modified: "2025-01-02T03:04:05Z", Withdrawn: "2025-01-02T03:04:05Z", Affected: []record.Affected{{Ecosystem: "Go", Package: "example.com/n", Ranges: []record.Range{rng("SEMVER", "i=0")}}}},
	}
	dir, b := build(t, advs, Options{})
	mb, _ := os.ReadFile(filepath.Join(dir, MetadataFile))
	want := `{"DownloadedAt":"2025-01-02T03:04:05Z","NextUpdate":"2025-01-03T03:04:05Z","UpdatedAt":"2025-01-02T03:04:05Z","Version":2}`
	if string(mb) != want {
		t.Fatalf("metadata %s, want %s", mb, want)
	}
	if st := b.Stats(); st.Advisories != 1 || st.Withdrawn != 1 {
		t.Fatalf("stats %+v", st)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	dir, _ = build(t, advs, Options{UpdatedAt: at, NextUpdateInterval: 6 * time.Hour})
	mb, _ = os.ReadFile(filepath.Join(dir, MetadataFile))
	var md Metadata
	json.Unmarshal(mb, &md)
	if !md.UpdatedAt.Equal(at) || !md.NextUpdate.Equal(at.Add(6*time.Hour)) {
		t.Fatalf("metadata %s", mb)
	}
	// No advisory at all: still a valid DB with both buckets.
	dir, _ = build(t, nil, Options{})
	if _, err := CheckDB(filepath.Join(dir, DBFile)); err != nil {
		t.Fatal(err)
	}
	mb, _ = os.ReadFile(filepath.Join(dir, MetadataFile))
	if string(mb) != `{"DownloadedAt":"1970-01-01T00:00:00Z","NextUpdate":"1970-01-02T00:00:00Z","UpdatedAt":"1970-01-01T00:00:00Z","Version":2}` {
		t.Fatalf("empty metadata %s", mb)
	}
}
