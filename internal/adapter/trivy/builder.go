package trivy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/stellaops/stella/internal/adapter/dbbundle"
	"github.com/stellaops/stella/internal/extsort"
	"github.com/stellaops/stella/internal/record"
	"github.com/stellaops/stella/internal/xerr"
)

// SchemaVersion is the Trivy DB schema this package writes (trivy-db
// db.SchemaVersion; trivy v0.23.0 and later read it, up to v0.74.0 tested).
const SchemaVersion = 2

// Bucket names trivy reads besides the advisory buckets.
const (
	BucketVulnerability = "vulnerability"
	BucketDataSource    = "data-source"
)

// File names inside db.bundle and under <cache>/db/.
const (
	DBFile       = "trivy.db"
	MetadataFile = "metadata.json"
)

// Fixed bbolt layout parameters: the file bytes must not depend on the
// machine (page size), on how full pages are left (fill percent), or on
// map iteration order (the array freelist allocates deterministically).
const (
	pageSize    = 4096
	fillPercent = 1.0
)

// DefaultNextUpdateInterval is how long after UpdatedAt metadata.json says
// the next DB is due (NextUpdate = UpdatedAt + interval).
const DefaultNextUpdateInterval = 24 * time.Hour

// Options configure a DB build. The zero value is valid.
type Options struct {
	// SchemaVersion requested by the profile; 0 means SchemaVersion.
	// Anything but 2 is ERR_EXPORT_UNSUPPORTED_SCHEMA.
	SchemaVersion int
	// UpdatedAt is metadata.json UpdatedAt (and DownloadedAt). Zero: the
	// newest `modified` of the advisories read (zero dates ignored), or
	// the Unix epoch when none has one. Never the wall clock.
	UpdatedAt time.Time
	// NextUpdateInterval: NextUpdate = UpdatedAt + this (0: 24h).
	NextUpdateInterval time.Duration
	// TmpDir holds the sort runs and the DB while it is built ("" = os.TempDir()).
	TmpDir string
	// SortBudget is the memory for buffered key/values before they are
	// spilled to sorted runs on disk (0: 16 MiB).
	SortBudget int
	// TxBytes is how many key/value bytes go into one bbolt write
	// transaction; it bounds the memory of the write (0: 4 MiB). It is part
	// of the layout: the same value gives the same bytes.
	TxBytes int
	// GzipLevel of db.bundle (0: gzip default).
	GzipLevel int
	// Workers convert advisories in parallel (0: GOMAXPROCS). The DB does
	// not depend on it.
	Workers int
}

func (o Options) withDefaults() Options {
	if o.NextUpdateInterval == 0 {
		o.NextUpdateInterval = DefaultNextUpdateInterval
	}
	if o.SortBudget <= 0 {
		o.SortBudget = 16 << 20
	}
	if o.TxBytes <= 0 {
		o.TxBytes = 4 << 20
	}
	return o
}

// CheckSchema fails with ERR_EXPORT_UNSUPPORTED_SCHEMA for any requested
// schema but 2 (0 = not set = 2).
func CheckSchema(v int) error {
	if v == 0 || v == SchemaVersion {
		return nil
	}
	return xerr.New(xerr.UnsupportedSchema, "Trivy DB schema %d was requested; stella writes schema %d only", v, SchemaVersion).
		WithHint("set the profile's spec.schemaVersion to %d (read by trivy v0.23.0 and later); schema 1 was read by trivy v0.22 and older", SchemaVersion)
}

// Skip is an advisory that was read but not written into the DB.
type Skip struct {
	Digest string
	ID     string
	// Invalid: the input is malformed (an unparsable range or version, an
	// unknown ecosystem, ...). Otherwise the advisory is valid but trivy's
	// schema cannot hold it (only GIT ranges, only modular packages, ...).
	Invalid bool
	Path    string
	Reason  string
	Source  string
}

// Stats describe a build.
type Stats struct {
	Advisories   int64 // advisories written
	Entries      int64 // (bucket, package, advisory) values written
	Withdrawn    int64 // withdrawn advisories left out
	Skipped      int64 // advisories not written (see Skips)
	Omitted      int64 // affected packages left out of written advisories (e.g. modular builds)
	Buckets      int   // advisory buckets
	DBBytes      int64 // trivy.db size
	FreePages    int   // free pages in trivy.db
	Transactions int   // bbolt write transactions
	UpdatedAt    time.Time
}

// Metadata is metadata.json (trivy-db metadata.Metadata), keys sorted.
type Metadata struct {
	DownloadedAt time.Time `json:"DownloadedAt"`
	NextUpdate   time.Time `json:"NextUpdate"`
	UpdatedAt    time.Time `json:"UpdatedAt"`
	Version      int       `json:"Version"`
}

// Builder turns normalised advisories into a trivy.db. Add every advisory,
// then call Build once; Close removes the scratch files.
type Builder struct {
	ctx     context.Context
	opts    Options
	dir     string
	sorter  *extsort.Sorter
	sources map[string]DataSource // advisory bucket -> data source
	ids     map[string]struct{}   // ids queued (read by the caller's goroutine only)
	jobs    chan job
	wg      sync.WaitGroup
	mu      sync.Mutex // guards what follows
	err     error
	skips   []Skip
	stats   Stats
	newest  time.Time
	built   bool
}

// keySep separates the bucket path in sort keys; bucket names, package
// names and ids never contain it, and it sorts below every other byte, so
// the sort order of keys is bbolt's order of each bucket's keys.
const keySep = 0

// NewBuilder starts a build.
func NewBuilder(opts Options) (*Builder, error) {
	return NewBuilderContext(context.Background(), opts)
}

// NewBuilderContext starts a build whose conversion workers stop when ctx
// ends.
func NewBuilderContext(ctx context.Context, opts Options) (*Builder, error) {
	if err := CheckSchema(opts.SchemaVersion); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	tmp := opts.TmpDir
	if tmp == "" {
		tmp = os.TempDir()
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(tmp, "trivy-db-")
	if err != nil {
		return nil, err
	}
	return &Builder{ctx: ctx, opts: opts, dir: dir, sorter: extsort.New(dir, opts.SortBudget),
		sources: map[string]DataSource{}, ids: map[string]struct{}{}}, nil
}

// Close stops the workers and removes the scratch directory.
func (b *Builder) Close() error {
	b.wait()
	if b.sorter != nil {
		b.sorter.Close()
	}
	return os.RemoveAll(b.dir)
}

// Add queues one advisory. Advisories are converted by a pool of workers
// (Options.Workers); the DB does not depend on the order in which they are
// converted, since every key/value goes through the sorter. Of two
// advisories with the same id, the first added is kept.
func (b *Builder) Add(a *record.Advisory) error {
	return b.enqueue(a.ID, job{a: a})
}

// AddJSON queues one advisory given as its normalised JSON line (the
// engine's record line); the line is copied.
func (b *Builder) AddJSON(id string, line []byte) error {
	return b.enqueue(id, job{line: bytes.Clone(line), id: id})
}

type job struct {
	a    *record.Advisory
	line []byte
	id   string // the id the caller gave with the line
}

func (b *Builder) enqueue(id string, j job) error {
	if b.built {
		return errors.New("trivy: Add after Build")
	}
	if err := b.failed(); err != nil {
		return err
	}
	if _, dup := b.ids[id]; dup && id != "" {
		a := j.a
		if a == nil {
			a = &record.Advisory{}
			json.Unmarshal(j.line, a)
		}
		b.mu.Lock()
		b.skip(a, &skipError{Invalid: true, Reason: fmt.Sprintf("trivy: duplicate advisory id %q (the first one read is kept)", id)})
		b.mu.Unlock()
		return nil
	}
	b.ids[id] = struct{}{}
	if b.jobs == nil {
		n := b.opts.Workers
		if n <= 0 {
			n = runtime.GOMAXPROCS(0)
		}
		b.jobs = make(chan job, 64*n)
		for i := 0; i < n; i++ {
			b.wg.Add(1)
			go b.worker()
		}
	}
	select {
	case b.jobs <- j:
		return nil
	case <-b.ctx.Done():
		return b.ctx.Err()
	}
}

// worker converts queued advisories until the queue is closed, or the
// build's context ends (a run that fails before Build does not leave
// workers behind).
func (b *Builder) worker() {
	defer b.wg.Done()
	for {
		var j job
		var ok bool
		select {
		case j, ok = <-b.jobs:
		case <-b.ctx.Done():
			return
		}
		if !ok {
			return
		}
		if err := b.process(j); err != nil {
			b.mu.Lock()
			if b.err == nil {
				b.err = err
			}
			b.mu.Unlock()
		}
	}
}

func (b *Builder) failed() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// wait stops the workers.
func (b *Builder) wait() error {
	if b.jobs != nil {
		close(b.jobs)
		b.wg.Wait()
		b.jobs = nil
	}
	return b.failed()
}

func (b *Builder) process(j job) error {
	a := j.a
	if a == nil {
		a = &record.Advisory{}
		if err := json.Unmarshal(j.line, a); err != nil {
			return fmt.Errorf("trivy: normalised advisory %q: %w", j.id, err)
		}
		if a.ID != j.id {
			b.mu.Lock()
			b.skip(a, &skipError{Invalid: true, Reason: fmt.Sprintf("trivy: record %q holds advisory id %q", j.id, a.ID)})
			b.mu.Unlock()
			return nil
		}
	}
	modified, _ := time.Parse(time.RFC3339Nano, a.Modified)
	c, err := convert(a)
	var se *skipError
	b.mu.Lock()
	if modified.Year() > 1 && modified.After(b.newest) {
		b.newest = modified
	}
	switch {
	case errors.Is(err, errWithdrawn):
		b.stats.Withdrawn++
	case errors.As(err, &se):
		b.skip(a, se)
	case err == nil:
		b.stats.Advisories++
		b.stats.Omitted += int64(len(c.omitted))
		b.stats.Entries += int64(len(c.entries))
		for _, e := range c.entries {
			if _, ok := b.sources[e.bucket]; !ok {
				b.sources[e.bucket] = e.ds
			}
		}
	}
	b.mu.Unlock()
	if err != nil {
		if errors.Is(err, errWithdrawn) || se != nil {
			return nil
		}
		return err
	}
	for _, e := range c.entries {
		v, err := json.Marshal(e.value)
		if err != nil {
			return err
		}
		if err := b.sorter.Add(makeKey(e.bucket, e.pkg, c.id), v); err != nil {
			return err
		}
	}
	return b.sorter.Add(makeKey(BucketVulnerability, c.id), c.vuln)
}

// skip records a skipped advisory; b.mu is held.
func (b *Builder) skip(a *record.Advisory, se *skipError) {
	b.stats.Skipped++
	b.skips = append(b.skips, Skip{Source: a.Source, Path: a.Path, Digest: a.Digest, ID: a.ID,
		Reason: se.Reason, Invalid: se.Invalid})
}

func makeKey(parts ...string) []byte {
	n := len(parts)
	for _, p := range parts {
		n += len(p)
	}
	k := make([]byte, 0, n)
	for i, p := range parts {
		if i > 0 {
			k = append(k, keySep)
		}
		k = append(k, p...)
	}
	return k
}

// Skips lists the advisories not written, sorted by source, path and id.
func (b *Builder) Skips() []Skip {
	out := slices.Clone(b.skips)
	slices.SortStableFunc(out, func(x, y Skip) int {
		return strings.Compare(x.Source+"\x00"+x.Path+"\x00"+x.ID, y.Source+"\x00"+y.Path+"\x00"+y.ID)
	})
	return out
}

// Stats reports the build (complete after Build).
func (b *Builder) Stats() Stats { return b.stats }

// metadata is metadata.json for this build.
func (b *Builder) metadata() Metadata {
	u := dbbundle.UpdatedAt(b.opts.UpdatedAt, b.newest)
	return Metadata{Version: SchemaVersion, UpdatedAt: u, DownloadedAt: u, NextUpdate: u.Add(b.opts.NextUpdateInterval)}
}

// Build writes trivy.db and metadata.json into dir (which must exist).
func (b *Builder) Build(ctx context.Context, dir string) error {
	if b.built {
		return errors.New("trivy: Build called twice")
	}
	b.built = true
	if err := b.wait(); err != nil {
		return err
	}
	if err := b.ctx.Err(); err != nil {
		return err // some advisories may not have been converted
	}
	for bucket, ds := range b.sources {
		v, err := json.Marshal(ds)
		if err != nil {
			return err
		}
		if err := b.sorter.Add(makeKey(BucketDataSource, bucket), v); err != nil {
			return err
		}
	}
	b.stats.Buckets = len(b.sources)
	dbPath := filepath.Join(dir, DBFile)
	if err := b.writeDB(ctx, dbPath); err != nil {
		os.Remove(dbPath)
		return err
	}
	md := b.metadata()
	b.stats.UpdatedAt = md.UpdatedAt
	mb, err := json.Marshal(md)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, MetadataFile), mb, 0o644)
}

// boltOptions are the options of the write: fixed page size, the array
// freelist, no fsync per commit (the file is synced once at the end) and
// no pre-allocation (the file ends at its last page).
func boltOptions() *bolt.Options {
	return &bolt.Options{PageSize: pageSize, FreelistType: bolt.FreelistArrayType, NoSync: true,
		NoGrowSync: true, Timeout: 5 * time.Second}
}

// dbWriter writes sorted key/values into bbolt, a bounded number of bytes
// per transaction. Because every key arrives in bbolt's own order, each
// transaction only appends, and with a fill percent of 1 the pages are
// packed full; the transaction boundaries depend only on the data, so
// the file is a pure function of the key/values.
type dbWriter struct {
	db       *bolt.DB
	tx       *bolt.Tx
	limit    int
	n        int
	arena    []byte
	top, sub []byte
	topB     *bolt.Bucket
	subB     *bolt.Bucket
	prev     []byte
	subSize  int // bytes in the current package bucket (for inlining)
	txs      int
}

func (w *dbWriter) begin() error {
	tx, err := w.db.Begin(true)
	if err != nil {
		return err
	}
	w.tx, w.n, w.topB, w.subB = tx, 0, nil, nil
	w.arena = w.arena[:0] // the previous transaction is committed: its values are no longer referenced
	if w.top != nil {
		if err := w.openTop(w.top); err != nil {
			return err
		}
		if w.sub != nil {
			return w.openSub(w.sub)
		}
	}
	return nil
}

func (w *dbWriter) commit() error {
	if w.tx == nil {
		return nil
	}
	w.txs++
	err := w.tx.Commit()
	w.tx = nil
	return err
}

func (w *dbWriter) openTop(name []byte) error {
	b, err := w.tx.CreateBucketIfNotExists(name)
	if err != nil {
		return fmt.Errorf("bucket %q: %w", name, err)
	}
	b.FillPercent = fillPercent
	w.topB, w.subB = b, nil
	return nil
}

func (w *dbWriter) openSub(name []byte) error {
	b, err := w.topB.CreateBucketIfNotExists(name)
	if err != nil {
		return fmt.Errorf("bucket %q/%q: %w", w.top, name, err)
	}
	b.FillPercent = fillPercent
	w.subB = b
	return nil
}

func (w *dbWriter) keep(p []byte) []byte {
	off := len(w.arena)
	w.arena = append(w.arena, p...)
	return w.arena[off:len(w.arena):len(w.arena)]
}

// inlineSafe bounds the size of a package bucket that bbolt surely
// stores inline in its parent (bbolt inlines a bucket whose single leaf is
// at most a quarter page; this stays well below).
const inlineSafe = pageSize / 8

// put writes one key/value. bbolt spills the child buckets of a bucket in
// Go map order when a transaction commits, so two child buckets that need
// their own pages in one transaction would get their pages in a random
// order. The writer therefore commits before it opens another top-level
// bucket, and before it opens another package bucket once the current one
// may be too large to be inlined: every transaction then has at most one
// non-inline child per bucket, and the layout is deterministic.
func (w *dbWriter) put(k, v []byte) error {
	if bytes.Equal(k, w.prev) {
		return fmt.Errorf("trivy: internal: key %q written twice", k)
	}
	w.prev = append(w.prev[:0], k...)
	parts := bytes.Split(k, []byte{keySep})
	if len(parts) < 2 || len(parts) > 3 {
		return fmt.Errorf("trivy: internal: bad key %q", k)
	}
	if !bytes.Equal(parts[0], w.top) || w.topB == nil {
		if w.n > 0 {
			w.top, w.sub = nil, nil
			if err := w.restart(); err != nil {
				return err
			}
		}
		w.top, w.sub, w.subSize = bytes.Clone(parts[0]), nil, 0
		if err := w.openTop(w.top); err != nil {
			return err
		}
	}
	dst, key := w.topB, parts[1]
	if len(parts) == 3 {
		if !bytes.Equal(parts[1], w.sub) || w.subB == nil {
			if w.subSize > inlineSafe && w.n > 0 {
				w.sub = nil
				if err := w.restart(); err != nil {
					return err
				}
			}
			w.sub, w.subSize = bytes.Clone(parts[1]), 0
			if err := w.openSub(w.sub); err != nil {
				return err
			}
		}
		dst, key = w.subB, parts[2]
		w.subSize += 16 + len(key) + len(v)
	} else {
		w.sub, w.subB = nil, nil
	}
	if err := dst.Put(w.keep(key), w.keep(v)); err != nil {
		return fmt.Errorf("put %q: %w", k, err)
	}
	w.n += len(k) + len(v)
	if w.n >= w.limit {
		return w.restart()
	}
	return nil
}

// restart commits the transaction and begins the next one, reopening the
// current buckets.
func (w *dbWriter) restart() error {
	if err := w.commit(); err != nil {
		return err
	}
	return w.begin()
}

func (b *Builder) writeDB(ctx context.Context, path string) error {
	os.Remove(path)
	db, err := bolt.Open(path, 0o644, boltOptions())
	if err != nil {
		return fmt.Errorf("trivy: create %s: %w", DBFile, err)
	}
	w := &dbWriter{db: db, limit: b.opts.TxBytes}
	fail := func(err error) error {
		if w.tx != nil {
			w.tx.Rollback()
		}
		db.Close()
		return err
	}
	if err := w.begin(); err != nil {
		return fail(err)
	}
	// trivy needs `vulnerability` (it panics without it) and reads
	// `data-source`; both exist even when empty.
	for _, name := range []string{BucketDataSource, BucketVulnerability} {
		if _, err := w.tx.CreateBucketIfNotExists([]byte(name)); err != nil {
			return fail(err)
		}
	}
	var puts int
	err = b.sorter.Merge(func(k, v []byte) error {
		puts++
		if puts%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		return w.put(k, v)
	})
	if err != nil {
		return fail(err)
	}
	if err := w.commit(); err != nil {
		return fail(err)
	}
	b.stats.Transactions = w.txs
	if err := db.Sync(); err != nil {
		return fail(err)
	}
	st := db.Stats()
	b.stats.FreePages = st.FreePageN + st.PendingPageN
	if err := db.Close(); err != nil {
		return err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	b.stats.DBBytes = fi.Size()
	return nil
}
