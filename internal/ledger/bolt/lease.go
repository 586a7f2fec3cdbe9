package bolt

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"

	"go.etcd.io/bbolt"

	"github.com/stellaops/stella/internal/ledger"
	"github.com/stellaops/stella/internal/xerr"
	"github.com/stellaops/stella/pkg/exportapi"
)

// Leases.
//
// A lease is an exclusive flock on <dir>/leases/<runId>.lock, held on an
// open file for as long as the lease lasts: the kernel drops it when the
// process dies, however it dies. The run records the holder in Owner.
// Recover tries the flock of every leased live run: getting it proves the
// holder is gone.

// Lease is held while a process executes a run.
type Lease struct {
	l     *Ledger
	runID string
	owner string
	mu    sync.Mutex
	f     *os.File // nil once released
}

// Owner is the owner recorded on the run (host:pid by default).
func (le *Lease) Owner() string { return le.owner }

// TakeLease marks the calling process as the one executing a run. owner ""
// means host:pid of this process. A lease another process (or another
// TakeLease of this one) holds is xerr.InvalidInput.
func (l *Ledger) TakeLease(ctx context.Context, runID, owner string) (ledger.Lease, error) {
	if err := l.check(); err != nil {
		return nil, err
	}
	if owner == "" {
		owner = ledger.DefaultOwner()
	}
	r, err := l.Run(ctx, runID)
	if err != nil {
		return nil, err
	}
	if r.State.Terminal() {
		return nil, finished(r)
	}
	path := l.leasePath(runID)
	f, err := lockFile(ctx, path, l.deadline(ctx), false)
	if errors.Is(err, errBusy) {
		return nil, ledger.LeaseBusy(runID, r.Owner)
	}
	if err != nil {
		return nil, internal(err, "lease run %s", runID)
	}
	// Who holds it, for a human looking at the directory.
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(owner+"\n"), 0)
	_, err = l.UpdateRun(ctx, runID, func(r *exportapi.Run) error {
		if r.State.Terminal() {
			return finished(*r)
		}
		r.Owner = owner
		return nil
	})
	if err != nil {
		os.Remove(path)
		f.Close()
		return nil, err
	}
	return &Lease{l: l, runID: runID, owner: owner, f: f}, nil
}

func finished(r exportapi.Run) error {
	return xerr.New(xerr.InvalidInput, "run %s is already %s and cannot be executed again", r.ID, r.State).
		WithHint("replay it with `stella export run submit` using the same parameters")
}

// Release ends the lease. On a run that is still pending or running it
// clears Owner (the run is handed back; Recover leaves it alone); on a
// finished run Owner stays as the record of who ran it. Releasing twice is
// a no-op.
func (le *Lease) Release() error {
	le.mu.Lock()
	defer le.mu.Unlock()
	if le.f == nil {
		return nil
	}
	l := le.l
	ctx, cancel := context.WithTimeout(context.Background(), l.opts.LockWait)
	defer cancel()
	var err error
	if !l.closed.Load() {
		_, err = l.UpdateRun(ctx, le.runID, func(r *exportapi.Run) error {
			if !r.State.Terminal() && r.Owner == le.owner {
				r.Owner = ""
			}
			return nil
		})
		if xerr.Is(err, xerr.RunNotFound) {
			err = nil
		}
	}
	os.Remove(l.leasePath(le.runID)) // while we hold the lock: see lockFile
	le.f.Close()
	le.f = nil
	return err
}

// Recover fails the live runs whose lease holder is gone.
func (l *Ledger) Recover(ctx context.Context) ([]exportapi.Run, error) {
	var ids []string
	err := l.view(ctx, func(tx *bbolt.Tx) error {
		c := tx.Bucket(bByTime).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			st, _, _ := bytes.Cut(v, []byte{0})
			state := exportapi.RunState(st)
			if state != exportapi.StatePending && state != exportapi.StateRunning {
				continue
			}
			r, err := getRun(tx, string(k[12:]))
			if err != nil {
				return err
			}
			if r.Owner != "" {
				ids = append(ids, r.ID)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := []exportapi.Run{}
	var errs []error
	for _, id := range ids {
		r, ok, err := l.recoverRun(ctx, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			out = append(out, r)
		}
	}
	return out, errors.Join(errs...)
}

// recoverRun fails one run if its lease holder is gone.
func (l *Ledger) recoverRun(ctx context.Context, id string) (exportapi.Run, bool, error) {
	path := l.leasePath(id)
	lf, err := lockFile(ctx, path, l.deadline(ctx), false)
	if errors.Is(err, errBusy) {
		return exportapi.Run{}, false, nil // the holder is alive
	}
	if err != nil {
		return exportapi.Run{}, false, internal(err, "check the lease of run %s", id)
	}
	defer lf.Close()
	// We hold the lease lock: nobody executes the run. Remove the file when
	// done (still holding the lock), whatever the outcome below.
	defer os.Remove(path)

	defer l.lockRun(id)()
	f, err := lockFile(ctx, l.eventsPath(id), l.deadline(ctx), true)
	if err != nil {
		return exportapi.Run{}, false, l.lockErr(ctx, err, "the event log of run "+id)
	}
	defer f.Close()
	var out exportapi.Run
	var failed, finished bool
	err = l.update(ctx, func(tx *bbolt.Tx) error {
		old, err := getRun(tx, id)
		if err != nil {
			return err
		}
		finished = old.State.Terminal()
		if old.State.Terminal() || old.Owner == "" {
			return errUnchanged // finished or released meanwhile
		}
		r := old
		ev := ledger.FailDeadRun(&r, l.now())
		if _, err := ledger.CheckUpdate(old, r); err != nil {
			return err
		}
		if err := putRun(tx, &old, r); err != nil {
			return err
		}
		out, failed = r, true
		return foldLog(tx, id, f, &ev)
	})
	if errors.Is(err, errUnchanged) {
		err = nil
	}
	if err != nil {
		failed = false
	}
	l.tidyLog(id, failed, finished)
	return out, failed, internal(err, "recover run %s", id)
}

// LockSubmissions takes <ledger>.d/submit.lock, waiting for another holder
// up to the ledger's lock wait.
func (l *Ledger) LockSubmissions(ctx context.Context) (func(), error) {
	f, err := lockFile(ctx, filepath.Join(l.dir, "submit.lock"), l.deadline(ctx), true)
	if err != nil {
		return nil, l.lockErr(ctx, err, "submissions")
	}
	return func() { f.Close() }, nil
}
