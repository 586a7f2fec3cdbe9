package trivy

import (
	"fmt"
	"path/filepath"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/stellaops/stella/internal/adapter/dbbundle"
	"github.com/stellaops/stella/internal/xerr"
)

// maxMetadata bounds metadata.json (a few hundred bytes in practice).
const maxMetadata = 1 << 20

// DBInfo is what CheckDB learnt about a trivy.db.
type DBInfo struct {
	AdvisoryBuckets []string // sorted
	DataSources     int      // entries in `data-source`
	Vulnerabilities int      // entries in `vulnerability`
	PageSize        int
}

// SchemaMessage says which trivy versions read a DB schema.
func SchemaMessage(v int) string {
	switch v {
	case 2:
		return "schema 2 is read by trivy v0.23.0 and later (checked with v0.74.0)"
	case 1:
		return "schema 1 was read by trivy v0.22 and older only; trivy v0.23.0 and later refuse it"
	}
	return fmt.Sprintf("no released trivy reads schema %d (trivy v0.23.0 and later read schema 2, older ones schema 1)", v)
}

// CheckMetadata parses metadata.json and requires Version 2, the only
// schema trivy v0.23.0+ accepts with --skip-db-update.
func CheckMetadata(b []byte) (Metadata, error) {
	m, err := dbbundle.ParseMetadata(b, "trivy DB")
	if err != nil {
		return Metadata{}, err
	}
	md := Metadata{Version: m.Version, NextUpdate: m.NextUpdate, UpdatedAt: m.UpdatedAt, DownloadedAt: m.DownloadedAt}
	if md.Version != SchemaVersion {
		return md, xerr.New(xerr.UnsupportedSchema, "the Trivy DB is schema %d: %s", md.Version, SchemaMessage(md.Version)).
			WithHint("trivy v0.23.0 and later need schema %d: rebuild the bundle with a trivy:db profile whose spec.schemaVersion is %d", SchemaVersion, SchemaVersion)
	}
	return md, nil
}

// CheckDB opens a trivy.db read-only as trivy does (bbolt, 5 s lock
// timeout) and checks the buckets trivy needs: `vulnerability` (trivy
// panics without it) and `data-source`, and that every advisory bucket is
// a bucket of package buckets.
func CheckDB(dbPath string) (DBInfo, error) {
	var info DBInfo
	db, err := bolt.Open(dbPath, 0o444, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return info, xerr.Wrap(xerr.Verify, err, "%s does not open as a bolt database", filepath.Base(dbPath))
	}
	defer db.Close()
	info.PageSize = db.Info().PageSize
	err = db.View(func(tx *bolt.Tx) error {
		vb := tx.Bucket([]byte(BucketVulnerability))
		if vb == nil {
			return fmt.Errorf("no %q bucket (trivy needs it)", BucketVulnerability)
		}
		info.Vulnerabilities = vb.Stats().KeyN
		ds := tx.Bucket([]byte(BucketDataSource))
		if ds == nil {
			return fmt.Errorf("no %q bucket", BucketDataSource)
		}
		info.DataSources = ds.Stats().KeyN
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			n := string(name)
			if n == BucketVulnerability || n == BucketDataSource {
				return nil
			}
			info.AdvisoryBuckets = append(info.AdvisoryBuckets, n)
			return b.ForEach(func(k, v []byte) error {
				if v != nil {
					return fmt.Errorf("advisory bucket %q holds a value at %q; trivy expects package buckets", n, k)
				}
				return nil
			})
		})
	})
	if err != nil {
		return info, xerr.Wrap(xerr.Verify, err, "%s is not a trivy DB", filepath.Base(dbPath))
	}
	sort.Strings(info.AdvisoryBuckets)
	return info, nil
}

// bundleFormat is a db.bundle: metadata.json and trivy.db, checked with
// CheckMetadata and CheckDB.
var bundleFormat = dbbundle.Format[Metadata, DBInfo]{
	Spec: dbbundle.Spec{
		Label:  "db.bundle",
		Files:  []string{MetadataFile, DBFile},
		Limits: map[string]dbbundle.Limit{MetadataFile: {Max: maxMetadata, Note: "trivy metadata is a few hundred"}},
		NotFound: func(bundlePath string) error {
			return xerr.New(xerr.InvalidInput, "no Trivy DB bundle at %s", bundlePath).
				WithHint("pass the db.bundle of a trivy:db export (inside the bundle at %s)", DefaultBundlePath)
		},
	},
	DBFile:        DBFile,
	CacheSubdir:   "db",
	VerifyPrefix:  "trivy-verify-",
	CheckMetadata: CheckMetadata,
	CheckDB:       CheckDB,
}

// VerifyBundle checks a db.bundle the way Import does (schema version,
// bolt file opening read-only, the buckets trivy needs) without installing
// it; the files are extracted under tmpDir ("" = os.TempDir()) and removed.
// It is the check of `stella export verify --trivy`.
func VerifyBundle(bundlePath, tmpDir string) (Metadata, DBInfo, error) {
	return bundleFormat.Verify(bundlePath, tmpDir)
}

// Import installs a db.bundle into a trivy cache: it reads metadata.json
// and trivy.db from the bundle into temporary files in <cacheDir>/db,
// checks the schema version and that the DB opens read-only with the
// buckets trivy needs, then renames both into place (trivy.db first, then
// metadata.json). The cache is unchanged when any check fails. After it,
// `trivy --cache-dir <cacheDir> --skip-db-update ...` scans with the DB.
func Import(bundlePath, cacheDir string) error {
	return bundleFormat.Import(bundlePath, cacheDir)
}
