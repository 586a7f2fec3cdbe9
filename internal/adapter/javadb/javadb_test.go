package javadb

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stellaops/stella/internal/evidence"
	"github.com/stellaops/stella/internal/record"
	"github.com/stellaops/stella/internal/xerr"
)

func TestParseMavenPurl(t *testing.T) {
	cases := []struct {
		purl, g, a, v, typ string
		bad                bool
	}{
		{purl: "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1", g: "org.apache.logging.log4j", a: "log4j-core", v: "2.14.1", typ: "jar"},
		{purl: "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1?type=jar", g: "org.apache.logging.log4j", a: "log4j-core", v: "2.14.1", typ: "jar"},
		{purl: "pkg:Maven/com.google.android/material@1.0.0?type=aar&classifier=x#sub/path", g: "com.google.android", a: "material", v: "1.0.0", typ: "aar"},
		{purl: "pkg:maven/g%2Dx/a%40b@1.0%2B2", g: "g-x", a: "a@b", v: "1.0+2", typ: "jar"},
		{purl: "pkg:maven/org.example/parent@3?type=pom", g: "org.example", a: "parent", v: "3", typ: "pom"},
		{purl: "pkg:maven/onlyname@1.0", bad: true},
		{purl: "pkg:maven/a/b/c@1.0", bad: true},
		{purl: "pkg:maven/g/a@1.0?type=%zz", bad: true},
	}
	for _, c := range cases {
		g, a, v, typ, err := parseMavenPurl(c.purl)
		if c.bad {
			if err == nil {
				t.Errorf("%s: parsed as %s:%s:%s", c.purl, g, a, v)
			}
			continue
		}
		if err != nil || g != c.g || a != c.a || v != c.v || typ != c.typ {
			t.Errorf("%s: got %q %q %q %q %v", c.purl, g, a, v, typ, err)
		}
	}
}

func TestFromComponent(t *testing.T) {
	sha := strings.Repeat("ab", 20)
	for _, c := range []struct {
		c       record.Component
		ok, bad bool
	}{
		{c: record.Component{Purl: "pkg:maven/g/a@1", SHA1: sha}, ok: true},
		{c: record.Component{Purl: "pkg:maven/g/a", Version: "2", SHA1: sha}, ok: true},
		{c: record.Component{Purl: "pkg:maven/g/a@1"}},                                       // no hash: not for the Java DB
		{c: record.Component{Purl: "pkg:npm/lodash@4.17.20", SHA1: sha}},                     // not Maven
		{c: record.Component{Purl: "pkg:maven/g/a@1?type=pom", SHA1: sha}},                   // a POM is no archive
		{c: record.Component{Purl: "pkg:maven/g/a@1", SHA1: "abc"}, bad: true},               // short hash
		{c: record.Component{Purl: "pkg:maven/g/a", SHA1: sha}, bad: true},                   // no version
		{c: record.Component{Purl: "pkg:maven/a@1", SHA1: sha}, bad: true},                   // no groupId
		{c: record.Component{Purl: "pkg:maven/g/a@1", SHA1: strings.ToUpper(sha)}, ok: true}, // case
	} {
		e, ok, err := FromComponent(c.c)
		if ok != c.ok || (err != nil) != c.bad {
			t.Errorf("%+v: ok %v err %v", c.c, ok, err)
		}
		if ok && hex.EncodeToString(e.SHA1[:]) != sha {
			t.Errorf("%+v: sha %x", c.c, e.SHA1)
		}
	}
}

// cdx makes a CycloneDX SBOM listing the given components (purl, sha1).
func cdx(ts string, comps ...[2]string) []byte {
	type hash struct {
		Alg     string `json:"alg"`
		Content string `json:"content"`
	}
	type comp struct {
		Type    string `json:"type"`
		Name    string `json:"name"`
		Purl    string `json:"purl"`
		Version string `json:"version,omitempty"`
		Hashes  []hash `json:"hashes,omitempty"`
	}
	var cs []comp
	for i, c := range comps {
		x := comp{Type: "library", Name: fmt.Sprintf("c%d", i), Purl: c[0]}
		if c[1] != "" {
			x.Hashes = []hash{{"SHA-1", c[1]}}
		}
		cs = append(cs, x)
	}
	b, _ := json.Marshal(map[string]any{"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
		"metadata":   map[string]any{"timestamp": ts, "component": map[string]string{"type": "application", "name": "app"}},
		"components": cs})
	return b
}

func sha1Of(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:20])
}

func build(t *testing.T, opts Options, docs ...record.Document) (dir string, b *Builder) {
	t.Helper()
	b = NewBuilder(opts)
	for _, d := range docs {
		if err := b.AddSBOM(d); err != nil {
			t.Fatal(err)
		}
	}
	dir = t.TempDir()
	if err := b.Build(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	return dir, b
}

func fileSHA(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func sampleDocs() []record.Document {
	var comps [][2]string
	for i := range 300 {
		comps = append(comps, [2]string{fmt.Sprintf("pkg:maven/org.example.g%d/artifact-%d@1.%d.0", i%7, i%31, i), sha1Of(fmt.Sprint(i))})
	}
	return []record.Document{
		{Source: "s", Path: "a.cdx.json", Raw: cdx("2024-03-01T10:00:00Z", comps[:150]...)},
		{Source: "s", Path: "b.cdx.json", Raw: cdx("2024-05-02T11:30:00Z", comps[100:]...)},
	}
}

// TestBuildIsReproducible: the same entries give byte-identical
// trivy-java.db, metadata.json and java-db.bundle, whatever order the SBOMs
// come in.
func TestBuildIsReproducible(t *testing.T) {
	docs := sampleDocs()
	d1, b1 := build(t, Options{}, docs...)
	d2, _ := build(t, Options{}, docs[1], docs[0])
	for _, n := range []string{DBFile, MetadataFile} {
		if a, b := fileSHA(t, filepath.Join(d1, n)), fileSHA(t, filepath.Join(d2, n)); a != b {
			t.Errorf("%s differs between two builds: %s %s", n, a, b)
		}
	}
	var p1, p2 bytes.Buffer
	if err := Pack(&p1, d1, 0); err != nil {
		t.Fatal(err)
	}
	Pack(&p2, d2, 0)
	if !bytes.Equal(p1.Bytes(), p2.Bytes()) {
		t.Error("java-db.bundle differs between two builds")
	}
	st := b1.Stats()
	if st.Entries != 300 || st.Duplicates != 50 || st.Conflicts != 0 || st.SBOMs != 2 {
		t.Errorf("stats %+v", st)
	}
	md, _ := os.ReadFile(filepath.Join(d1, MetadataFile))
	want := `{"Version":1,"NextUpdate":"2024-05-05T11:30:00Z","UpdatedAt":"2024-05-02T11:30:00Z","DownloadedAt":"2024-05-02T11:30:00Z"}`
	if string(md) != want {
		t.Errorf("metadata.json %s, want %s", md, want)
	}
	// SOURCE_DATE_EPOCH wins over the SBOM timestamps.
	d3, _ := build(t, Options{UpdatedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}, docs...)
	md, _ = os.ReadFile(filepath.Join(d3, MetadataFile))
	if !strings.Contains(string(md), `"UpdatedAt":"2025-01-02T03:04:05Z"`) {
		t.Errorf("metadata.json with UpdatedAt set: %s", md)
	}
	if fileSHA(t, filepath.Join(d1, DBFile)) != fileSHA(t, filepath.Join(d3, DBFile)) {
		t.Error("trivy-java.db depends on the time")
	}
}

// TestDBAnswersTrivysQueries runs the queries trivy v0.74.0 makes
// (trivy-java-db pkg/db) on a built DB, and checks the schema text.
func TestDBAnswersTrivysQueries(t *testing.T) {
	dir, _ := build(t, Options{}, sampleDocs()...)
	if _, err := CheckDB(filepath.Join(dir, DBFile)); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, DBFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("PRAGMA foreign_keys=true"); err != nil {
		t.Fatal(err)
	}
	// SelectIndexBySha1: hex-decoded SHA-1 as a BLOB.
	want, _ := hex.DecodeString(sha1Of("42"))
	var g, a, v, typ string
	var sha []byte
	err = db.QueryRow(`
		SELECT a.group_id, a.artifact_id, i.version, i.sha1, i.archive_type 
		FROM indices i
		JOIN artifacts a ON a.id = i.artifact_id
        WHERE i.sha1 = ?`, want).Scan(&g, &a, &v, &sha, &typ)
	if err != nil || g != "org.example.g0" || a != "artifact-11" || v != "1.42.0" || typ != "jar" || !bytes.Equal(sha, want) {
		t.Fatalf("by SHA-1: %q %q %q %x %q %v", g, a, v, sha, typ, err)
	}
	// SelectIndexesByArtifactIDAndFileType (trivy's file-name heuristic).
	var n int
	err = db.QueryRow(`SELECT count(*) FROM indices i
		JOIN (SELECT a.id, a.group_id, a.artifact_id
      	      FROM indices i
        	  JOIN artifacts a on a.id = i.artifact_id
      	      WHERE a.artifact_id = ? AND i.version = ? AND i.archive_type = ?) f_id ON f_id.id = i.artifact_id`,
		"artifact-11", "1.42.0", "jar").Scan(&n)
	if err != nil || n == 0 {
		t.Fatalf("by artifact id: %d %v", n, err)
	}
	rows, err := db.Query("SELECT type, name, sql FROM sqlite_master ORDER BY rowid")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var ty, name, s string
		rows.Scan(&ty, &name, &s)
		got = append(got, s)
	}
	rows.Close()
	if strings.Join(got, "\n") != strings.Join(schemaSQL, "\n") {
		t.Errorf("schema:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(schemaSQL, "\n"))
	}
	var fk int
	rows, _ = db.Query("PRAGMA foreign_key_check")
	for rows.Next() {
		fk++
	}
	rows.Close()
	if fk != 0 {
		t.Errorf("%d foreign key violations", fk)
	}
}

func TestConflictsAndInvalid(t *testing.T) {
	sha := sha1Of("x")
	docs := []record.Document{
		{Source: "b", Path: "one.json", Raw: cdx("2024-01-01T00:00:00Z", [2]string{"pkg:maven/org.z/zz@1.0", sha}, [2]string{"pkg:maven/g/a@1", "nothex"})},
		{Source: "a", Path: "two.json", Raw: cdx("2024-01-01T00:00:00Z", [2]string{"pkg:maven/org.a/aa@1.0", sha})},
		{Source: "c", Path: "three.json", Raw: cdx("2024-01-01T00:00:00Z", [2]string{"pkg:maven/org.a/aa@1.0", sha})},
	}
	_, b := build(t, Options{}, docs...)
	st := b.Stats()
	if st.Entries != 1 || st.Conflicts != 1 || st.Duplicates != 1 {
		t.Errorf("stats %+v", st)
	}
	sk := b.Skips()
	if len(sk) != 2 || sk[0].Source != "b" || sk[1].Source != "b" {
		t.Fatalf("skips %+v", sk)
	}
	var inv, conf int
	for _, s := range sk {
		if s.Invalid {
			inv++
		} else if strings.Contains(s.Reason, "org.z:zz:1.0") && strings.Contains(s.Reason, "org.a:aa:1.0") {
			conf++
		}
	}
	if inv != 1 || conf != 1 {
		t.Errorf("skips %+v", sk)
	}
}

func TestCheckDBRejects(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.db")
	os.WriteFile(junk, bytes.Repeat([]byte("x"), 4096), 0o644)
	if _, err := CheckDB(junk); !xerr.Is(err, xerr.Verify) {
		t.Errorf("junk: %v", err)
	}
	other := filepath.Join(dir, "other.db")
	db, _ := sql.Open("sqlite", other)
	db.Exec("CREATE TABLE artifacts(id INTEGER PRIMARY KEY, group_id TEXT, artifact_id TEXT)")
	db.Close()
	if _, err := CheckDB(other); err == nil || !strings.Contains(err.Error(), "indices") {
		t.Errorf("no indices table: %v", err)
	}
	if _, err := CheckMetadata([]byte(`{"Version":2}`)); !xerr.Is(err, xerr.UnsupportedSchema) {
		t.Errorf("Version 2: %v", err)
	}
}

func TestImport(t *testing.T) {
	dir, _ := build(t, Options{}, sampleDocs()...)
	bundlePath := filepath.Join(t.TempDir(), "java-db.bundle")
	f, _ := os.Create(bundlePath)
	if err := Pack(f, dir, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if !IsBundle(bundlePath) {
		t.Fatal("IsBundle = false for a java-db.bundle")
	}
	cache := t.TempDir()
	if err := Import(bundlePath, cache); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{DBFile, MetadataFile} {
		if fileSHA(t, filepath.Join(cache, CacheSubdir, n)) != fileSHA(t, filepath.Join(dir, n)) {
			t.Errorf("%s installed differs", n)
		}
	}
	info, err := CheckDB(filepath.Join(cache, CacheSubdir, DBFile))
	if err != nil || info.Entries != 300 {
		t.Errorf("installed: %+v %v", info, err)
	}
	// A broken bundle leaves the installed DB as it was.
	before := fileSHA(t, filepath.Join(cache, CacheSubdir, DBFile))
	bad := filepath.Join(t.TempDir(), "bad.bundle")
	os.WriteFile(filepath.Join(dir, MetadataFile), []byte(`{"Version":7}`), 0o644)
	f, _ = os.Create(bad)
	Pack(f, dir, 0)
	f.Close()
	if err := Import(bad, cache); !xerr.Is(err, xerr.UnsupportedSchema) {
		t.Fatalf("Version 7 imported: %v", err)
	}
	if fileSHA(t, filepath.Join(cache, CacheSubdir, DBFile)) != before {
		t.Error("a refused import changed the cache")
	}
	ents, _ := os.ReadDir(filepath.Join(cache, CacheSubdir))
	if len(ents) != 2 {
		t.Errorf("cache holds %d files after a refused import", len(ents))
	}
}

// TestRealSBOMs reads the SBOM samples of testdata/evidence (CycloneDX and
// SPDX, some with Maven components and SHA-1 hashes).
func TestRealSBOMs(t *testing.T) {
	root := filepath.Join("..", "..", "..", "testdata", "evidence", "sbom")
	b := NewBuilder(Options{})
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".json") {
			return err
		}
		raw, _ := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		doc := record.Document{Source: "sbom", Path: filepath.ToSlash(rel), Raw: raw}
		if p, err := evidenceKind(doc); err != nil || p != record.KindSBOM {
			return nil
		}
		return b.AddSBOM(doc)
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := b.Build(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	st := b.Stats()
	t.Logf("stats %+v, skips %d", st, len(b.Skips()))
	for _, s := range b.Skips() {
		t.Logf("skip %s %s: %s", s.Source, s.Path, s.Reason)
	}
	if st.Entries == 0 {
		t.Fatal("no Maven component with a SHA-1 in the sample SBOMs")
	}
}

func evidenceKind(doc record.Document) (record.Kind, error) {
	p, err := evidence.Parse(doc)
	if err != nil {
		return "", err
	}
	return p.Kind, nil
}

// BenchmarkWriteDB writes a Java DB of 100k entries (10k artifacts) and
// packs it: go test -run '^$' -bench WriteDB -benchtime 1x ./internal/adapter/javadb/
func BenchmarkWriteDB(b *testing.B) {
	const n = 100_000
	entries := make([]Entry, n)
	for i := range entries {
		e := Entry{GroupID: fmt.Sprintf("org.example.group%04d", i/10/100), ArtifactID: fmt.Sprintf("artifact-%05d", i/10),
			Version: fmt.Sprintf("1.%d.0", i%10), ArchiveType: "jar"}
		s := sha256.Sum256([]byte(fmt.Sprint(i)))
		copy(e.SHA1[:], s[:20])
		entries[i] = e
	}
	b.ResetTimer()
	for range b.N {
		dir := b.TempDir()
		slices.SortFunc(entries, Entry.compare)
		if _, err := WriteDB(context.Background(), filepath.Join(dir, DBFile), entries); err != nil {
			b.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, MetadataFile), []byte(`{"Version":1}`), 0o644)
		var buf bytes.Buffer
		if err := Pack(&buf, dir, 0); err != nil {
			b.Fatal(err)
		}
		st, _ := os.Stat(filepath.Join(dir, DBFile))
		b.ReportMetric(float64(st.Size())/(1<<20), "db-MiB")
		b.ReportMetric(float64(buf.Len())/(1<<20), "bundle-MiB")
		b.ReportMetric(float64(n)/b.Elapsed().Seconds()*float64(b.N), "entries/s")
	}
}
