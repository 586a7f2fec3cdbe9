// Package bolt is the embedded ledger: one bbolt file plus a directory of
// per-run event logs and lease files beside it (see docs/ledger.md).
//
// Several processes use the same ledger at once (the CLI process executing a
// run, `run watch`, `run list`, `run cancel`). bbolt allows one read-write
// opener at a time, so the database is never kept open between operations:
// each operation opens it, runs one short transaction and closes it again,
// read-only operations with a shared lock, writes with an exclusive one.
package bolt

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/stellaops/stella/internal/ledger"
	"github.com/stellaops/stella/internal/xerr"
)

// SchemaVersion is the layout version this code writes into the meta bucket.
// A ledger with a newer version is refused; older ones are migrated on Open.
const SchemaVersion = 1

// Bucket names.
var (
	bMeta     = []byte("meta")
	bProfiles = []byte("profiles")
	bRuns     = []byte("runs")
	bByTime   = []byte("runs-by-time")
	bByTenant = []byte("runs-by-tenant")
	bEvents   = []byte("events")
	bArtifact = []byte("artifacts")

	allBuckets = [][]byte{bMeta, bProfiles, bRuns, bByTime, bByTenant, bEvents, bArtifact}

	kSchema = []byte("schemaVersion")
)

// Options tune a Ledger. The zero value is the production setting.
type Options struct {
	// LockWait is how long one operation may wait for the ledger's locks
	// while other processes use it, before it fails. Default 30 s. A
	// context deadline, when earlier, wins.
	LockWait time.Duration
	// LockTimeout is bbolt's Timeout for one attempt at the database file
	// lock; failed attempts are retried with backoff until LockWait.
	// Default 10 ms (bbolt then makes exactly one non-blocking attempt).
	LockTimeout time.Duration
	// NoSync skips fsync of the database and of event logs. Only for tests:
	// a machine crash can then lose or corrupt the ledger.
	NoSync bool
	// Now is the clock for the times the ledger sets itself (CreatedAt
	// when missing, FinishedAt of recovered runs). Default time.Now.
	Now func() time.Time
}

// Ledger is a ledger.Ledger over a bbolt file. It is safe for concurrent use
// by several goroutines and by several processes.
type Ledger struct {
	path string // the bbolt file
	dir  string // path + ".d": events/, leases/, gate.lock
	opts Options

	// In-process ordering, so that goroutines of one process queue on
	// mutexes instead of polling each other's file locks.
	rw     sync.RWMutex   // bbolt writers vs readers
	gateMu sync.Mutex     // readers pass the gate one at a time
	runMu  [64]sync.Mutex // per run (striped): event log and run updates
	cache  sync.Map       // run id -> logState of an event log this process appended to
	closed atomic.Bool
}

var _ ledger.Ledger = (*Ledger)(nil)

// Open opens (creating if needed) the ledger at path: the bbolt file path
// and the directory path+".d" beside it. New directories are made 0700, the
// database file 0600. A ledger written by a newer stella (higher schema
// version) is refused with xerr.InvalidInput.
func Open(path string, opts Options) (*Ledger, error) {
	if path == "" {
		return nil, xerr.New(xerr.InvalidInput, "no ledger path given")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, xerr.Wrap(xerr.InvalidInput, err, "ledger path %q", path)
	}
	if opts.LockWait <= 0 {
		opts.LockWait = 30 * time.Second
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 10 * time.Millisecond
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	l := &Ledger{path: abs, dir: abs + ".d", opts: opts}
	for _, d := range []string{filepath.Dir(abs), filepath.Join(l.dir, "events"), filepath.Join(l.dir, "leases")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, xerr.Wrap(xerr.Internal, err, "ledger: create %s", d).
				WithHint("check that the ledger directory (ExportCenter ledger path) is writable")
		}
	}
	if err := l.init(context.Background()); err != nil {
		return nil, err
	}
	return l, nil
}

// init makes the buckets and the schema version of a new ledger, and checks
// the version of an existing one. A current ledger is only read (shared lock).
func (l *Ledger) init(ctx context.Context) error {
	if st, err := os.Stat(l.path); err == nil && st.Size() > 0 {
		ok := false
		err := l.viewRaw(ctx, func(tx *bbolt.Tx) error {
			v, err := schemaOf(l.path, tx)
			if err != nil {
				return err
			}
			ok = v == SchemaVersion
			for _, b := range allBuckets {
				ok = ok && tx.Bucket(b) != nil
			}
			return nil
		})
		if err != nil || ok {
			return err
		}
	}
	return l.updateRaw(ctx, func(tx *bbolt.Tx) error {
		v, err := schemaOf(l.path, tx)
		if err != nil {
			return err
		}
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		// Migrations from older versions go here (none yet: 0 is a new file).
		if v != SchemaVersion {
			return tx.Bucket(bMeta).Put(kSchema, []byte(strconv.Itoa(SchemaVersion)))
		}
		return nil
	})
}

// schemaOf reads the schema version (0 for a new ledger) and refuses newer ones.
func schemaOf(path string, tx *bbolt.Tx) (int, error) {
	m := tx.Bucket(bMeta)
	if m == nil {
		if tx.Bucket(bRuns) != nil {
			return 0, xerr.New(xerr.InvalidInput, "%s is a bbolt file but not a stella ledger (no meta bucket)", path)
		}
		return 0, nil
	}
	raw := m.Get(kSchema)
	v, err := strconv.Atoi(string(raw))
	if err != nil {
		return 0, xerr.New(xerr.InvalidInput, "ledger %s has an unreadable schema version %q", path, raw)
	}
	if v > SchemaVersion {
		return v, xerr.New(xerr.InvalidInput, "ledger %s has schema version %d, newer than the version %d this stella understands", path, v, SchemaVersion).
			WithHint("use the stella release that wrote it (or a newer one), or point stella at another ledger")
	}
	return v, nil
}

// Path is the bbolt file of the ledger.
func (l *Ledger) Path() string { return l.path }

// ShareKey identifies this ledger to OpenShared in another process (the
// conformance suite's multi-process tests use it).
func (l *Ledger) ShareKey() string { return l.path }

// OpenShared opens the ledger that ShareKey returned, with the same options.
func (l *Ledger) OpenShared(key string) (ledger.Ledger, error) { return Open(key, l.opts) }

// Close ends the use of the ledger. The database is not kept open between
// operations, so there is nothing to flush; leases stay held until released.
func (l *Ledger) Close() error {
	l.closed.Store(true)
	return nil
}

func (l *Ledger) check() error {
	if l.closed.Load() {
		return xerr.New(xerr.Internal, "ledger %s is closed", l.path)
	}
	return nil
}

func (l *Ledger) now() time.Time { return l.opts.Now().UTC() }

// deadline is when an operation started now stops waiting for locks.
func (l *Ledger) deadline(ctx context.Context) time.Time {
	d := time.Now().Add(l.opts.LockWait)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		return cd
	}
	return d
}

// lockErr turns a failure to get a lock into a contract error.
func (l *Ledger) lockErr(ctx context.Context, err error, what string) error {
	switch {
	case errors.Is(err, errBusy):
		return xerr.New(xerr.Internal, "ledger %s is busy: could not lock %s within %s", l.path, what, l.opts.LockWait).
			WithHint("another stella process kept the ledger locked; retry, and if it persists look for a hung process (`lsof %s`)", l.path)
	case ctx.Err() != nil:
		return xerr.Wrap(xerr.Internal, ctx.Err(), "ledger %s", l.path)
	}
	return xerr.Wrap(xerr.Internal, err, "ledger %s: lock %s", l.path, what)
}

// openDB opens the bbolt file, retrying while other processes hold a
// conflicting lock, until the deadline.
func (l *Ledger) openDB(ctx context.Context, deadline time.Time, readOnly bool) (*bbolt.DB, error) {
	var bo backoff
	for {
		db, err := bbolt.Open(l.path, 0o600, &bbolt.Options{
			ReadOnly: readOnly, Timeout: l.opts.LockTimeout, NoSync: l.opts.NoSync,
		})
		if err == nil {
			return db, nil
		}
		if !errors.Is(err, bolterrors.ErrTimeout) {
			if errors.Is(err, bolterrors.ErrInvalid) || errors.Is(err, bolterrors.ErrVersionMismatch) || errors.Is(err, bolterrors.ErrChecksum) {
				return nil, xerr.Wrap(xerr.InvalidInput, err, "%s is not a stella ledger (bbolt database)", l.path)
			}
			return nil, xerr.Wrap(xerr.Internal, err, "ledger: open %s", l.path)
		}
		if err := bo.wait(ctx, deadline); err != nil {
			return nil, l.lockErr(ctx, err, "the database file")
		}
	}
}

// gate is the turnstile every opener passes: <dir>/gate.lock, taken
// exclusively. A writer holds it for its whole transaction; a reader only
// while it opens the database (then readers share the database lock). So a
// waiting writer stops new readers from coming in and only waits for the
// readers already inside, and a steady stream of readers from other
// processes cannot starve it (bbolt's non-blocking flock has no queue).
func (l *Ledger) gate(ctx context.Context, deadline time.Time) (*os.File, error) {
	f, err := lockFile(ctx, filepath.Join(l.dir, "gate.lock"), deadline, true)
	if err != nil {
		return nil, l.lockErr(ctx, err, "gate.lock")
	}
	return f, nil
}

// viewRaw runs fn in a read-only transaction of a freshly opened database.
func (l *Ledger) viewRaw(ctx context.Context, fn func(*bbolt.Tx) error) error {
	l.rw.RLock()
	defer l.rw.RUnlock()
	deadline := l.deadline(ctx)
	l.gateMu.Lock()
	g, err := l.gate(ctx, deadline)
	if err != nil {
		l.gateMu.Unlock()
		return err
	}
	db, err := l.openDB(ctx, deadline, true)
	g.Close()
	l.gateMu.Unlock()
	if err != nil {
		return err
	}
	err = db.View(fn)
	if cerr := db.Close(); err == nil && cerr != nil {
		err = xerr.Wrap(xerr.Internal, cerr, "ledger: close %s", l.path)
	}
	return err
}

// updateRaw runs fn in a read-write transaction of a freshly opened database.
func (l *Ledger) updateRaw(ctx context.Context, fn func(*bbolt.Tx) error) error {
	l.rw.Lock()
	defer l.rw.Unlock()
	deadline := l.deadline(ctx)
	g, err := l.gate(ctx, deadline)
	if err != nil {
		return err
	}
	defer g.Close()
	db, err := l.openDB(ctx, deadline, false)
	if err != nil {
		return err
	}
	err = db.Update(fn)
	if cerr := db.Close(); err == nil && cerr != nil {
		err = xerr.Wrap(xerr.Internal, cerr, "ledger: close %s", l.path)
	}
	return err
}

func (l *Ledger) view(ctx context.Context, fn func(*bbolt.Tx) error) error {
	if err := l.check(); err != nil {
		return err
	}
	return l.viewRaw(ctx, func(tx *bbolt.Tx) error {
		if err := l.hasBuckets(tx); err != nil {
			return err
		}
		return fn(tx)
	})
}

func (l *Ledger) update(ctx context.Context, fn func(*bbolt.Tx) error) error {
	if err := l.check(); err != nil {
		return err
	}
	return l.updateRaw(ctx, func(tx *bbolt.Tx) error {
		if err := l.hasBuckets(tx); err != nil {
			return err
		}
		return fn(tx)
	})
}

func (l *Ledger) hasBuckets(tx *bbolt.Tx) error {
	for _, b := range allBuckets {
		if tx.Bucket(b) == nil {
			return xerr.New(xerr.Internal, "ledger %s is damaged or was replaced: bucket %q is missing", l.path, b).
				WithHint("restore the ledger file from a backup, or move it away to start a new ledger")
		}
	}
	return nil
}

// lockRun serialises, within this process, the operations on one run's
// event log and record (striped: runs may share a mutex, never deadlock,
// because no operation holds two).
func (l *Ledger) lockRun(id string) func() {
	h := fnv.New32a()
	h.Write([]byte(id))
	m := &l.runMu[h.Sum32()%uint32(len(l.runMu))]
	m.Lock()
	return m.Unlock
}

func (l *Ledger) eventsPath(id string) string {
	return filepath.Join(l.dir, "events", id+".ndjson")
}

func (l *Ledger) leasePath(id string) string {
	return filepath.Join(l.dir, "leases", id+".lock")
}

func internal(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	var xe *xerr.Error
	if errors.As(err, &xe) {
		return err
	}
	return xerr.Wrap(xerr.Internal, err, "ledger: %s", fmt.Sprintf(format, args...))
}
