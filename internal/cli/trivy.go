package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/stellaops/stella/internal/adapter/javadb" // also registers trivy:java-db
	"github.com/stellaops/stella/internal/adapter/trivy"
	"github.com/stellaops/stella/internal/bundle"
	"github.com/stellaops/stella/internal/xerr"
)

func init() {
	extraCommands = append(extraCommands, NewTrivyCmd)
	verifyHooks = append(verifyHooks, verifyTrivy)
}

// dbBundleEntry is where a trivy:db bundle carries the Trivy DB.
const dbBundleEntry = "trivy/db.bundle"

// javaDBBundleEntry is where a trivy:java-db bundle carries the Java DB.
const javaDBBundleEntry = javadb.DefaultBundlePath

// NewTrivyCmd builds `stella export trivy`.
func NewTrivyCmd(f *Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "trivy", Short: "Work with Trivy DB bundles"}
	var cacheDir string
	imp := &cobra.Command{
		Use:   "import <db.bundle|java-db.bundle|trivy bundle|runId> --cache-dir <dir>",
		Short: "Install a Trivy DB (<dir>/db/) or Java DB (<dir>/java-db/) where trivy looks, after checking it",
		Long: `Checks the DB's schema version and that trivy.db opens read-only as a bolt file with the buckets
trivy needs, then installs it atomically into <cache-dir>/db/. Afterwards:

  trivy fs --cache-dir <dir> --skip-db-update --skip-java-db-update --offline-scan <project>

The argument is a db.bundle, a stella trivy:db bundle (.tar.zst, its trivy/db.bundle is used),
or the id of a trivy:db run. A java-db.bundle (or a trivy:java-db bundle or run) is checked the
same way (metadata Version 1, trivy-java.db opens read-only as SQLite with the tables
artifacts and indices) and installed into <cache-dir>/java-db/.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, a []string) error { return trivyImport(c.Context(), f, a[0], cacheDir) },
	}
	imp.Flags().StringVar(&cacheDir, "cache-dir", "", "trivy's --cache-dir")
	imp.MarkFlagRequired("cache-dir")
	cmd.AddCommand(imp)
	return cmd
}

func trivyImport(ctx context.Context, f *Factory, target, cacheDir string) error {
	p, err := resolveBundle(ctx, f, target)
	if err != nil {
		return err
	}
	db := p
	if st, _ := os.Stat(p); st.IsDir() || isStellaBundle(p) {
		tmp, err := os.MkdirTemp("", "stella-trivy-")
		if err != nil {
			return xerr.Wrap(xerr.Internal, err, "temporary directory")
		}
		defer os.RemoveAll(tmp)
		db, err = bundle.ExtractEntry(p, dbBundleEntry, tmp)
		if err == nil && db == "" {
			db, err = bundle.ExtractEntry(p, javaDBBundleEntry, tmp)
		}
		if err != nil {
			return xerr.Wrap(xerr.InvalidInput, err, "read %s", p)
		}
		if db == "" {
			return xerr.New(xerr.InvalidInput, "%s has no %s or %s: it is not a trivy:db or trivy:java-db bundle", p, dbBundleEntry, javaDBBundleEntry).
				WithHint("pass the bundle of a --profile trivy:db or trivy:java-db run")
		}
	}
	if javadb.IsBundle(db) {
		return javaDBImport(f, db, cacheDir)
	}
	if err := trivy.Import(db, cacheDir); err != nil {
		return err
	}
	out := map[string]string{"db": filepath.Join(cacheDir, "db", "trivy.db"), "metadata": filepath.Join(cacheDir, "db", "metadata.json")}
	return f.emit(out, func(w io.Writer) error {
		fmt.Fprintf(w, "Trivy DB installed in %s\nScan offline with: trivy fs --cache-dir %s --skip-db-update --skip-java-db-update --offline-scan <dir>\n",
			filepath.Join(cacheDir, "db"), cacheDir)
		return nil
	})
}

// javaDBImport installs a java-db.bundle into <cacheDir>/java-db/.
func javaDBImport(f *Factory, bundlePath, cacheDir string) error {
	if err := javadb.Import(bundlePath, cacheDir); err != nil {
		return err
	}
	dir := filepath.Join(cacheDir, javadb.CacheSubdir)
	out := map[string]string{"javaDb": filepath.Join(dir, javadb.DBFile), "metadata": filepath.Join(dir, javadb.MetadataFile)}
	return f.emit(out, func(w io.Writer) error {
		fmt.Fprintf(w, "Trivy Java DB installed in %s\nScan offline with: trivy fs --cache-dir %s --skip-db-update --skip-java-db-update --offline-scan <dir>\n",
			dir, cacheDir)
		return nil
	})
}

// isStellaBundle reports whether p is a stella bundle archive (a zstd
// stream) rather than a gzip db.bundle.
func isStellaBundle(p string) bool {
	fh, err := os.Open(p)
	if err != nil {
		return false
	}
	defer fh.Close()
	var magic [4]byte
	if _, err := io.ReadFull(fh, magic[:]); err != nil {
		return false
	}
	return magic == [4]byte{0x28, 0xb5, 0x2f, 0xfd}
}

// verifyTrivy is `verify --trivy`: the bundle's Trivy DB must open with
// the schema and buckets trivy expects.
func verifyTrivy(ctx context.Context, f *Factory, o *VerifyOptions, rep *bundle.Report) error {
	if !o.Trivy {
		return nil
	}
	tmp, err := os.MkdirTemp("", "stella-verify-trivy-")
	if err != nil {
		return xerr.Wrap(xerr.Internal, err, "temporary directory")
	}
	defer os.RemoveAll(tmp)
	db, err := bundle.ExtractEntry(rep.Bundle, dbBundleEntry, tmp)
	if err == nil && db == "" {
		if jdb, jerr := bundle.ExtractEntry(rep.Bundle, javaDBBundleEntry, tmp); jerr == nil && jdb != "" {
			md, info, err := javadb.VerifyBundle(jdb, tmp)
			if err != nil {
				rep.Add(bundle.Check{Name: "trivy-java-db", OK: false, Detail: xerr.As(err).Message})
				return nil
			}
			rep.Add(bundle.Check{Name: "trivy-java-db", OK: true, Detail: fmt.Sprintf("schema %d, %d artifacts, %d SHA-1 entries", md.Version, info.Artifacts, info.Entries)})
			return nil
		}
	}
	if err != nil || db == "" {
		detail := "the bundle has no " + dbBundleEntry
		if err != nil {
			detail = err.Error()
		}
		rep.Add(bundle.Check{Name: "trivy-db", OK: false, Detail: detail})
		return nil
	}
	md, info, err := trivy.VerifyBundle(db, tmp)
	if err != nil {
		rep.Add(bundle.Check{Name: "trivy-db", OK: false, Detail: xerr.As(err).Message})
		return nil
	}
	rep.Add(bundle.Check{Name: "trivy-db", OK: true, Detail: fmt.Sprintf("schema %d, %d advisory buckets, %d vulnerabilities, %d data sources",
		md.Version, len(info.AdvisoryBuckets), info.Vulnerabilities, info.DataSources)})
	return nil
}
