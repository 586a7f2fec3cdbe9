package javadb

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite": the SQLite trivy links

	"github.com/stellaops/stella/internal/adapter/dbbundle"
	"github.com/stellaops/stella/internal/evidence"
	"github.com/stellaops/stella/internal/record"
)

// Options tune a build.
type Options struct {
	// UpdatedAt is metadata.json UpdatedAt (and DownloadedAt). Zero: the
	// newest SBOM timestamp read (CycloneDX metadata.timestamp, SPDX
	// creationInfo.created), or the Unix epoch when none has one.
	UpdatedAt time.Time
	// NextUpdateInterval: NextUpdate = UpdatedAt + this (0: 3 days, upstream's).
	NextUpdateInterval time.Duration
	// GzipLevel of java-db.bundle (0: default).
	GzipLevel int
}

// Origin is where an entry was read: the SBOM document.
type Origin struct {
	Source, Path, Digest string
}

// Skip is a Maven component with a SHA-1 that was not written.
type Skip struct {
	Origin
	Reason string
	// Invalid: the component is malformed (bad purl, bad SHA-1, no
	// version); without --skip-invalid the run fails. Otherwise it is valid
	// input the Java DB cannot hold (another SBOM claims the same SHA-1 for
	// other coordinates).
	Invalid bool
}

// Stats describe a build.
type Stats struct {
	SBOMs      int64 // SBOM documents read
	Components int64 // components in them
	Maven      int64 // Maven components with a SHA-1 (each SBOM's)
	Entries    int64 // rows in `indices` (distinct SHA-1s)
	Artifacts  int64 // rows in `artifacts` (distinct groupId:artifactId)
	Duplicates int64 // the same SHA-1 and coordinates listed again
	Conflicts  int64 // the same SHA-1 claimed for other coordinates (skipped)
	UpdatedAt  time.Time
}

type claim struct {
	e Entry
	o Origin
}

// Builder collects entries and writes trivy-java.db and metadata.json.
// Entries are held in memory (about 150 bytes each).
type Builder struct {
	opts   Options
	claims map[[20]byte][]claim
	skips  []Skip
	newest time.Time
	stats  Stats
	built  bool
}

// NewBuilder starts a build.
func NewBuilder(opts Options) *Builder {
	if opts.NextUpdateInterval == 0 {
		opts.NextUpdateInterval = DefaultNextUpdateInterval
	}
	return &Builder{opts: opts, claims: map[[20]byte][]claim{}}
}

// AddSBOM reads one SBOM document (CycloneDX or SPDX JSON, as the evidence
// parser reads it) and adds its Maven components with SHA-1 hashes. A
// document that is not an SBOM is an error.
func (b *Builder) AddSBOM(doc record.Document) error {
	if doc.Digest == "" {
		doc.Digest = record.Digest(doc.Raw)
	}
	p, err := evidence.Parse(doc)
	if err != nil {
		return err
	}
	if p.Kind != record.KindSBOM {
		return fmt.Errorf("%s: %s is a %s document, not an SBOM", doc.Source, doc.Path, p.Kind)
	}
	b.stats.SBOMs++
	if p.Modified.After(b.newest) {
		b.newest = p.Modified
	}
	o := Origin{Source: doc.Source, Path: doc.Path, Digest: doc.Digest}
	for _, c := range p.Components {
		b.stats.Components++
		e, ok, err := FromComponent(c)
		if err != nil {
			b.skips = append(b.skips, Skip{Origin: o, Reason: err.Error(), Invalid: true})
			continue
		}
		if ok {
			b.Add(e, o)
		}
	}
	return nil
}

// Add adds one entry read at o.
func (b *Builder) Add(e Entry, o Origin) {
	if e.ArchiveType == "" {
		e.ArchiveType = "jar"
	}
	b.stats.Maven++
	b.claims[e.SHA1] = append(b.claims[e.SHA1], claim{e, o})
}

// resolve picks one entry per SHA-1: every claim with the same coordinates
// is one entry; when SBOMs disagree, the smallest coordinates are kept (an
// order-independent rule) and each other claim is listed as skipped.
func (b *Builder) resolve() []Entry {
	out := make([]Entry, 0, len(b.claims))
	for _, cs := range b.claims {
		slices.SortFunc(cs, func(x, y claim) int {
			if c := x.e.compare(y.e); c != 0 {
				return c
			}
			return strings.Compare(x.o.Source+"\x00"+x.o.Path, y.o.Source+"\x00"+y.o.Path)
		})
		win := cs[0]
		out = append(out, win.e)
		for _, c := range cs[1:] {
			if c.e == win.e {
				b.stats.Duplicates++
				continue
			}
			b.stats.Conflicts++
			b.skips = append(b.skips, Skip{Origin: c.o, Reason: fmt.Sprintf("SHA-1 %s is listed as %s here but as %s in source %q at %s (kept); one archive cannot be both",
				hex.EncodeToString(c.e.SHA1[:]), c.e.Coordinates(), win.e.Coordinates(), win.o.Source, win.o.Path)})
		}
	}
	slices.SortFunc(out, Entry.compare)
	return out
}

// Skips lists the components not written, sorted by source, path, reason.
func (b *Builder) Skips() []Skip {
	out := slices.Clone(b.skips)
	slices.SortStableFunc(out, func(x, y Skip) int {
		return strings.Compare(x.Source+"\x00"+x.Path+"\x00"+x.Reason, y.Source+"\x00"+y.Path+"\x00"+y.Reason)
	})
	return out
}

// Stats reports the build (complete after Build).
func (b *Builder) Stats() Stats { return b.stats }

// Pending is the number of distinct SHA-1s collected so far.
func (b *Builder) Pending() int { return len(b.claims) }

// metadata is metadata.json for this build.
func (b *Builder) metadata() Metadata {
	u := dbbundle.UpdatedAt(b.opts.UpdatedAt, b.newest)
	return Metadata{Version: SchemaVersion, UpdatedAt: u, DownloadedAt: u, NextUpdate: u.Add(b.opts.NextUpdateInterval)}
}

// Build writes trivy-java.db and metadata.json into dir (which must exist).
func (b *Builder) Build(ctx context.Context, dir string) error {
	if b.built {
		return errors.New("javadb: Build called twice")
	}
	b.built = true
	entries := b.resolve()
	dbPath := filepath.Join(dir, DBFile)
	n, err := WriteDB(ctx, dbPath, entries)
	if err != nil {
		os.Remove(dbPath)
		return err
	}
	b.stats.Entries, b.stats.Artifacts = int64(len(entries)), int64(n)
	md := b.metadata()
	b.stats.UpdatedAt = md.UpdatedAt
	mb, err := json.Marshal(md)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, MetadataFile), mb, 0o644)
}

// WriteDB writes entries (sorted, one per SHA-1) as a new SQLite file at
// path with the upstream schema, and returns the number of artifacts.
// The bytes depend on the entries only: the artifacts get the ids 1..n in
// (groupId, artifactId) order, the indices are inserted in entry order,
// the page size is fixed, and VACUUM rewrites the file compactly at the end
// (SQLite stores no timestamps; its header holds the library version, so
// the bytes are stable for one build of stella).
func WriteDB(ctx context.Context, path string, entries []Entry) (int, error) {
	if _, err := os.Stat(path); err == nil {
		return 0, fmt.Errorf("%s exists", path)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, s := range []string{
		"PRAGMA page_size=4096",
		"PRAGMA journal_mode=MEMORY",
		"PRAGMA synchronous=OFF",
		"PRAGMA foreign_keys=true",
	} {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return 0, fmt.Errorf("%s: %w", s, err)
		}
	}
	for _, s := range schemaSQL {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return 0, fmt.Errorf("schema: %w", err)
		}
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	insA, err := tx.PrepareContext(ctx, "INSERT INTO artifacts(id, group_id, artifact_id) VALUES (?, ?, ?)")
	if err != nil {
		return 0, err
	}
	defer insA.Close()
	insI, err := tx.PrepareContext(ctx, "INSERT INTO indices(artifact_id, version, sha1, archive_type) VALUES (?, ?, ?, ?)")
	if err != nil {
		return 0, err
	}
	defer insI.Close()
	// Entries are sorted by (group, artifact, ...): artifacts come in runs.
	var id int64
	var lastG, lastA string
	for i, e := range entries {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
		if id == 0 || e.GroupID != lastG || e.ArtifactID != lastA {
			id++
			lastG, lastA = e.GroupID, e.ArtifactID
			if _, err := insA.ExecContext(ctx, id, e.GroupID, e.ArtifactID); err != nil {
				return 0, fmt.Errorf("artifacts: %s:%s: %w", e.GroupID, e.ArtifactID, err)
			}
		}
		if _, err := insI.ExecContext(ctx, id, e.Version, e.SHA1[:], e.ArchiveType); err != nil {
			return 0, fmt.Errorf("indices: %s: %w", e.Coordinates(), err)
		}
	}
	insA.Close()
	insI.Close()
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	if _, err := db.ExecContext(ctx, "VACUUM"); err != nil {
		return 0, fmt.Errorf("vacuum: %w", err)
	}
	return int(id), db.Close()
}
