package javadb

import (
	"archive/tar"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/stellaops/stella/internal/adapter/dbbundle"
	"github.com/stellaops/stella/internal/xerr"
)

// maxMetadata bounds metadata.json (a few hundred bytes in practice).
const maxMetadata = 1 << 20

// DBInfo is what CheckDB learnt about a trivy-java.db.
type DBInfo struct {
	Artifacts int64 // rows in `artifacts`
	Entries   int64 // rows in `indices`
}

// SchemaMessage says which trivy versions read a Java DB schema.
func SchemaMessage(v int) string {
	if v == SchemaVersion {
		return "schema 1 is the Java DB schema every trivy with Java DB support reads (checked with v0.74.0)"
	}
	return fmt.Sprintf("no released trivy reads Java DB schema %d (trivy reads schema 1: trivy-java-db:1)", v)
}

// CheckMetadata parses metadata.json and requires Version 1.
func CheckMetadata(b []byte) (Metadata, error) {
	m, err := dbbundle.ParseMetadata(b, "Trivy Java DB")
	if err != nil {
		return Metadata{}, err
	}
	md := Metadata{Version: m.Version, NextUpdate: m.NextUpdate, UpdatedAt: m.UpdatedAt, DownloadedAt: m.DownloadedAt}
	if md.Version != SchemaVersion {
		return md, xerr.New(xerr.UnsupportedSchema, "the Trivy Java DB is schema %d: %s", md.Version, SchemaMessage(md.Version)).
			WithHint("rebuild the bundle with a trivy:java-db profile (spec.schemaVersion %d)", SchemaVersion)
	}
	return md, nil
}

// columns are the columns trivy's queries use, per table.
var columns = map[string][]string{
	"artifacts": {"id", "group_id", "artifact_id"},
	"indices":   {"artifact_id", "version", "sha1", "archive_type"},
}

// uriPath makes a SQLite URI filename of a path.
func uriPath(p string) string {
	abs, err := filepath.Abs(p)
	if err == nil {
		p = abs
	}
	r := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")
	return "file:" + r.Replace(filepath.ToSlash(p))
}

// CheckDB opens a trivy-java.db read-only and checks it is a sound SQLite
// file (quick_check) with the tables and columns trivy queries, and that
// trivy's SHA-1 lookup query runs on it.
func CheckDB(dbPath string) (DBInfo, error) {
	var info DBInfo
	name := filepath.Base(dbPath)
	fail := func(err error, format string, a ...any) (DBInfo, error) {
		return info, xerr.Wrap(xerr.Verify, err, "%s: "+format, append([]any{name}, a...)...)
	}
	st, err := os.Stat(dbPath)
	if err != nil {
		return fail(err, "stat")
	}
	if st.Size() < 100 {
		return info, xerr.New(xerr.Verify, "%s is %d bytes: not a SQLite database", name, st.Size())
	}
	f, err := os.Open(dbPath)
	if err != nil {
		return fail(err, "open")
	}
	var magic [16]byte
	_, err = io.ReadFull(f, magic[:])
	f.Close()
	if err != nil || string(magic[:]) != "SQLite format 3\x00" {
		return info, xerr.New(xerr.Verify, "%s is not a SQLite database (no SQLite header)", name)
	}
	db, err := sql.Open("sqlite", uriPath(dbPath)+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return fail(err, "open")
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var qc string
	if err := db.QueryRowContext(ctx, "PRAGMA quick_check").Scan(&qc); err != nil {
		return fail(err, "quick_check")
	}
	if qc != "ok" {
		return info, xerr.New(xerr.Verify, "%s is damaged: quick_check says %q", name, qc)
	}
	for _, table := range []string{"artifacts", "indices"} {
		rows, err := db.QueryContext(ctx, "SELECT name FROM pragma_table_info(?)", table)
		if err != nil {
			return fail(err, "table %s", table)
		}
		var have []string
		for rows.Next() {
			var c string
			if err := rows.Scan(&c); err != nil {
				rows.Close()
				return fail(err, "table %s", table)
			}
			have = append(have, c)
		}
		rows.Close()
		if len(have) == 0 {
			return info, xerr.New(xerr.Verify, "%s has no %q table (trivy queries it): not a Trivy Java DB", name, table)
		}
		for _, c := range columns[table] {
			if !slices.Contains(have, c) {
				return info, xerr.New(xerr.Verify, "%s: table %q has no column %q (trivy queries it)", name, table, c)
			}
		}
	}
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM artifacts").Scan(&info.Artifacts); err != nil {
		return fail(err, "count artifacts")
	}
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM indices").Scan(&info.Entries); err != nil {
		return fail(err, "count indices")
	}
	// The SHA-1 lookup trivy makes (same join), on one row of the DB.
	var g, a, v, typ sql.NullString
	var sha []byte
	err = db.QueryRowContext(ctx, `SELECT a.group_id, a.artifact_id, i.version, i.sha1, i.archive_type
		FROM indices i JOIN artifacts a ON a.id = i.artifact_id
		WHERE i.sha1 = (SELECT sha1 FROM indices LIMIT 1)`).Scan(&g, &a, &v, &sha, &typ)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fail(err, "SHA-1 lookup")
	}
	if info.Entries > 0 && (errors.Is(err, sql.ErrNoRows) || len(sha) != 20 || !g.Valid || !a.Valid) {
		return info, xerr.New(xerr.Verify, "%s: an `indices` row does not join to an artifact with a 20-byte SHA-1", name)
	}
	return info, nil
}

// IsBundle reports whether p is a java-db.bundle: a gzip tar whose entries
// include trivy-java.db.
func IsBundle(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return false
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err != nil {
			return false
		}
		if path.Clean(strings.TrimPrefix(h.Name, "./")) == DBFile {
			return true
		}
	}
}

// bundleFormat is a java-db.bundle: metadata.json and trivy-java.db,
// checked with CheckMetadata and CheckDB.
var bundleFormat = dbbundle.Format[Metadata, DBInfo]{
	Spec: dbbundle.Spec{
		Label:  "java-db.bundle",
		Files:  []string{MetadataFile, DBFile},
		Limits: map[string]dbbundle.Limit{MetadataFile: {Max: maxMetadata, Note: "Java DB metadata is a few hundred"}},
		NotFound: func(bundlePath string) error {
			return xerr.New(xerr.InvalidInput, "no Trivy Java DB bundle at %s", bundlePath).
				WithHint("pass the java-db.bundle of a trivy:java-db export (inside the bundle at %s)", DefaultBundlePath)
		},
	},
	DBFile:        DBFile,
	CacheSubdir:   CacheSubdir,
	VerifyPrefix:  "javadb-verify-",
	CheckMetadata: CheckMetadata,
	CheckDB:       CheckDB,
	BeforeInstall: removeJournal,
}

// removeJournal removes a hot journal left beside an older DB: it would be
// rolled back into the new one.
func removeJournal(dbDir string) error {
	if err := os.Remove(filepath.Join(dbDir, DBFile+"-journal")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return xerr.Wrap(xerr.Internal, err, "remove the old journal in %s", dbDir)
	}
	return nil
}

// VerifyBundle checks a java-db.bundle the way Import does without
// installing it; the files are extracted under tmpDir ("" = os.TempDir())
// and removed.
func VerifyBundle(bundlePath, tmpDir string) (Metadata, DBInfo, error) {
	return bundleFormat.Verify(bundlePath, tmpDir)
}

// Import installs a java-db.bundle into a trivy cache: it reads
// metadata.json and trivy-java.db into temporary files in
// <cacheDir>/java-db, checks the schema version and that the DB opens
// read-only with the tables trivy queries, then renames both into place
// (trivy-java.db first, then metadata.json). The cache is unchanged when any
// check fails. Afterwards `trivy --cache-dir <cacheDir> --skip-java-db-update
// ...` identifies JARs with it.
func Import(bundlePath, cacheDir string) error {
	return bundleFormat.Import(bundlePath, cacheDir)
}
