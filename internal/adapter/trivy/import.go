package trivy

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	bolt "go.etcd.io/bbolt"

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
	var m struct {
		Version      *int
		NextUpdate   time.Time
		UpdatedAt    time.Time
		DownloadedAt time.Time
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return Metadata{}, xerr.Wrap(xerr.Verify, err, "%s is not trivy DB metadata", MetadataFile)
	}
	if m.Version == nil {
		return Metadata{}, xerr.New(xerr.Verify, "%s has no Version", MetadataFile)
	}
	md := Metadata{Version: *m.Version, NextUpdate: m.NextUpdate, UpdatedAt: m.UpdatedAt, DownloadedAt: m.DownloadedAt}
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

// extract reads metadata.json and trivy.db of a db.bundle into temporary
// files in dir and checks them: schema version 2, a bolt file that opens
// read-only with the buckets trivy needs. On success it returns the temp
// paths by file name; the caller removes or renames them.
func extract(bundlePath, dir string) (tmps map[string]string, md Metadata, info DBInfo, err error) {
	tmps = map[string]string{}
	defer func() {
		if err != nil {
			for _, p := range tmps {
				os.Remove(p)
			}
			tmps = nil
		}
	}()
	f, err := os.Open(bundlePath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return tmps, md, info, xerr.New(xerr.InvalidInput, "no Trivy DB bundle at %s", bundlePath).
				WithHint("pass the db.bundle of a trivy:db export (inside the bundle at %s)", DefaultBundlePath)
		}
		return tmps, md, info, xerr.Wrap(xerr.InvalidInput, err, "open %s", bundlePath)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return tmps, md, info, xerr.Wrap(xerr.Verify, err, "%s is not a gzip tar (db.bundle)", bundlePath)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return tmps, md, info, xerr.Wrap(xerr.Verify, err, "%s: tar", bundlePath)
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if h.Typeflag == tar.TypeDir && name == "." {
			continue
		}
		if name != DBFile && name != MetadataFile {
			return tmps, md, info, xerr.New(xerr.Verify, "%s: unexpected entry %q (a db.bundle holds %s and %s only)", bundlePath, h.Name, MetadataFile, DBFile)
		}
		if h.Typeflag != tar.TypeReg {
			return tmps, md, info, xerr.New(xerr.Verify, "%s: %s is not a regular file", bundlePath, h.Name)
		}
		if _, dup := tmps[name]; dup {
			return tmps, md, info, xerr.New(xerr.Verify, "%s: %s appears twice", bundlePath, name)
		}
		if name == MetadataFile && h.Size > maxMetadata {
			return tmps, md, info, xerr.New(xerr.Verify, "%s: %s is %d bytes; trivy metadata is a few hundred", bundlePath, name, h.Size)
		}
		tf, err := os.CreateTemp(dir, "."+name+".import-*")
		if err != nil {
			return tmps, md, info, xerr.Wrap(xerr.InvalidInput, err, "write into %s", dir)
		}
		tmps[name] = tf.Name()
		n, err := io.Copy(tf, tr)
		if err == nil && n != h.Size {
			err = io.ErrUnexpectedEOF
		}
		if err == nil {
			err = tf.Sync()
		}
		if cerr := tf.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return tmps, md, info, xerr.Wrap(xerr.Verify, err, "%s: extract %s", bundlePath, name)
		}
	}
	for _, n := range []string{MetadataFile, DBFile} {
		if _, ok := tmps[n]; !ok {
			return tmps, md, info, xerr.New(xerr.Verify, "%s has no %s (a db.bundle holds %s and %s)", bundlePath, n, MetadataFile, DBFile)
		}
	}
	mb, err := os.ReadFile(tmps[MetadataFile])
	if err != nil {
		return tmps, md, info, xerr.Wrap(xerr.Internal, err, "read %s", MetadataFile)
	}
	if md, err = CheckMetadata(mb); err != nil {
		return tmps, md, info, err
	}
	if info, err = CheckDB(tmps[DBFile]); err != nil {
		return tmps, md, info, err
	}
	return tmps, md, info, nil
}

// VerifyBundle checks a db.bundle the way Import does (schema version,
// bolt file opening read-only, the buckets trivy needs) without installing
// it; the files are extracted under tmpDir ("" = os.TempDir()) and removed.
// It is the check of `stella export verify --trivy`.
func VerifyBundle(bundlePath, tmpDir string) (Metadata, DBInfo, error) {
	dir, err := os.MkdirTemp(tmpDir, "trivy-verify-")
	if err != nil {
		return Metadata{}, DBInfo{}, xerr.Wrap(xerr.Internal, err, "temporary directory")
	}
	defer os.RemoveAll(dir)
	_, md, info, err := extract(bundlePath, dir)
	return md, info, err
}

// Import installs a db.bundle into a trivy cache: it reads metadata.json
// and trivy.db from the bundle into temporary files in <cacheDir>/db,
// checks the schema version and that the DB opens read-only with the
// buckets trivy needs, then renames both into place (trivy.db first, then
// metadata.json). The cache is unchanged when any check fails. After it,
// `trivy --cache-dir <cacheDir> --skip-db-update ...` scans with the DB.
func Import(bundlePath, cacheDir string) error {
	if cacheDir == "" {
		return xerr.New(xerr.InvalidInput, "no cache directory given").WithHint("pass --cache-dir, the directory trivy is run with (--cache-dir)")
	}
	if _, err := os.Stat(bundlePath); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return xerr.New(xerr.InvalidInput, "no Trivy DB bundle at %s", bundlePath).
				WithHint("pass the db.bundle of a trivy:db export (inside the bundle at %s)", DefaultBundlePath)
		}
		return xerr.Wrap(xerr.InvalidInput, err, "open %s", bundlePath)
	}
	dbDir := filepath.Join(cacheDir, "db")
	if err := os.MkdirAll(dbDir, 0o755); err != nil {
		return xerr.Wrap(xerr.InvalidInput, err, "create %s", dbDir)
	}
	tmps, _, _, err := extract(bundlePath, dbDir)
	if err != nil {
		return err
	}
	defer func() {
		for _, p := range tmps {
			os.Remove(p)
		}
	}()
	for _, n := range []string{DBFile, MetadataFile} {
		if err := os.Chmod(tmps[n], 0o644); err != nil {
			return xerr.Wrap(xerr.Internal, err, "install %s", n)
		}
		if err := os.Rename(tmps[n], filepath.Join(dbDir, n)); err != nil {
			return xerr.Wrap(xerr.Internal, err, "install %s", filepath.Join(dbDir, n))
		}
		delete(tmps, n)
	}
	if d, err := os.Open(dbDir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
