package bolt

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"time"

	"go.etcd.io/bbolt"

	"github.com/stellaops/stella/internal/ledger"
	"github.com/stellaops/stella/internal/xerr"
	"github.com/stellaops/stella/pkg/exportapi"
)

// Run keys and indexes:
//
//	runs            id                                  -> Run JSON
//	runs-by-time    timeKey(createdAt) id               -> state NUL profile
//	runs-by-tenant  tenant NUL timeKey(createdAt) id    -> state NUL profile
//	artifacts       id NUL artifact name                -> Artifact JSON
//
// timeKey orders by time, so the indexes list runs oldest first and Runs
// walks them backwards. The index values let Runs filter by state and
// profile without decoding runs. Tenants are slugs and run ids have no NUL.

// timeKey is 12 bytes that sort like t: seconds (sign bit flipped, big
// endian) then nanoseconds.
func timeKey(t time.Time) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint64(b, uint64(t.Unix())^(1<<63))
	binary.BigEndian.PutUint32(b[8:], uint32(t.Nanosecond()))
	return b
}

func posKey(r exportapi.Run) []byte { return append(timeKey(r.CreatedAt), r.ID...) }

func tenantKey(tenant string, pos []byte) []byte {
	k := make([]byte, 0, len(tenant)+1+len(pos))
	return append(append(append(k, tenant...), 0), pos...)
}

func indexValue(r exportapi.Run) []byte {
	return []byte(string(r.State) + "\x00" + r.Profile.Name)
}

func artifactPrefix(id string) []byte { return append([]byte(id), 0) }

func getRun(tx *bbolt.Tx, id string) (exportapi.Run, error) {
	v := tx.Bucket(bRuns).Get([]byte(id))
	if v == nil {
		return exportapi.Run{}, ledger.RunNotFound(id)
	}
	var r exportapi.Run
	if err := json.Unmarshal(v, &r); err != nil {
		return r, xerr.Wrap(xerr.Internal, err, "ledger: run %s is damaged", id)
	}
	return r, nil
}

// putRun writes r with its index entries and artifacts; old is the stored
// version (nil for a new run).
func putRun(tx *bbolt.Tx, old *exportapi.Run, r exportapi.Run) error {
	raw, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bRuns).Put([]byte(r.ID), raw); err != nil {
		return err
	}
	pos, val := posKey(r), indexValue(r)
	if old != nil {
		if op := posKey(*old); !bytes.Equal(op, pos) || old.Tenant != r.Tenant {
			tx.Bucket(bByTime).Delete(op)
			tx.Bucket(bByTenant).Delete(tenantKey(old.Tenant, op))
		}
	}
	if err := tx.Bucket(bByTime).Put(pos, val); err != nil {
		return err
	}
	if err := tx.Bucket(bByTenant).Put(tenantKey(r.Tenant, pos), val); err != nil {
		return err
	}
	if old != nil && slices.Equal(old.Artifacts, r.Artifacts) {
		return nil
	}
	return putArtifacts(tx, r.ID, r.Artifacts)
}

// putArtifacts makes the artifacts bucket hold exactly arts for run id.
func putArtifacts(tx *bbolt.Tx, id string, arts []exportapi.Artifact) error {
	b := tx.Bucket(bArtifact)
	prefix := artifactPrefix(id)
	var stale [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		stale = append(stale, slices.Clone(k))
	}
	for _, k := range stale {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	for _, a := range arts {
		raw, err := json.Marshal(a)
		if err != nil {
			return err
		}
		if err := b.Put(append(slices.Clone(prefix), a.Name...), raw); err != nil {
			return err
		}
	}
	return nil
}

// CreateRun stores a new run. A missing state is pending, a missing
// priority normal, a missing CreatedAt now.
func (l *Ledger) CreateRun(ctx context.Context, r exportapi.Run) error {
	if err := ledger.PrepareRun(&r, l.now()); err != nil {
		return err
	}
	return l.update(ctx, func(tx *bbolt.Tx) error {
		if tx.Bucket(bRuns).Get([]byte(r.ID)) != nil {
			return xerr.New(xerr.InvalidInput, "run %s already exists", r.ID)
		}
		return putRun(tx, nil, r)
	})
}

// Run returns one run.
func (l *Ledger) Run(ctx context.Context, id string) (exportapi.Run, error) {
	if ledger.CheckRunID(id) != nil {
		return exportapi.Run{}, ledger.RunNotFound(id)
	}
	var r exportapi.Run
	err := l.view(ctx, func(tx *bbolt.Tx) (err error) {
		r, err = getRun(tx, id)
		return err
	})
	return r, err
}

// UpdateRun reads, changes and writes a run in one write transaction. When
// the run reaches a terminal state its event log is folded into the events
// bucket in the same transaction.
func (l *Ledger) UpdateRun(ctx context.Context, id string, fn func(*exportapi.Run) error) (exportapi.Run, error) {
	if err := l.check(); err != nil {
		return exportapi.Run{}, err
	}
	if ledger.CheckRunID(id) != nil {
		return exportapi.Run{}, ledger.RunNotFound(id)
	}
	defer l.lockRun(id)()
	// The event log's lock comes before the database's, as in AppendEvent:
	// a fold must not race an append.
	f, err := lockFile(ctx, l.eventsPath(id), l.deadline(ctx), true)
	if err != nil {
		return exportapi.Run{}, l.lockErr(ctx, err, "the event log of run "+id)
	}
	defer f.Close()
	var out exportapi.Run
	var missing, folded bool
	err = l.update(ctx, func(tx *bbolt.Tx) error {
		old, err := getRun(tx, id)
		if err != nil {
			missing = xerr.Is(err, xerr.RunNotFound)
			return err
		}
		upd, _ := getRun(tx, id) // a private copy for fn
		if err := fn(&upd); err != nil {
			return err
		}
		changed, err := ledger.CheckUpdate(old, upd)
		if err != nil {
			return err
		}
		out = old
		if !changed {
			return errUnchanged // roll back: nothing to write
		}
		if err := putRun(tx, &old, upd); err != nil {
			return err
		}
		out = upd
		if !old.State.Terminal() && upd.State.Terminal() {
			folded = true
			return foldLog(tx, id, f, nil)
		}
		return nil
	})
	if errors.Is(err, errUnchanged) {
		err = nil
	}
	if err != nil {
		folded = false
	}
	l.tidyLog(id, folded, missing || out.State.Terminal())
	if err != nil {
		return exportapi.Run{}, internal(err, "update run %s", id)
	}
	return out, nil
}

// errUnchanged rolls back a write transaction that has nothing to write.
var errUnchanged = errors.New("unchanged")

// tidyLog removes a run's event log file (we hold its lock) once it was
// folded, and whenever the run has no live log (it is missing or finished):
// then the file is an empty one our lock made, or a stale copy left by a
// crash between a fold's commit and the removal.
func (l *Ledger) tidyLog(id string, folded, noLiveLog bool) {
	if folded || noLiveLog {
		l.cache.Delete(id)
		os.Remove(l.eventsPath(id))
	}
}

// cursor: base64url of a version byte and the position (timeKey + id) of
// the last run of the page.
const cursorVersion = 1

func encodeCursor(pos []byte) string {
	return base64.RawURLEncoding.EncodeToString(append([]byte{cursorVersion}, pos...))
}

func decodeCursor(c string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) < 14 || b[0] != cursorVersion || ledger.CheckRunID(string(b[13:])) != nil {
		return nil, ledger.BadCursor(c)
	}
	return b[1:], nil
}

// Runs lists runs newest first (CreatedAt, then id, both descending). The
// cursor is the position of the last run returned, so a page boundary does
// not move when new runs are added.
func (l *Ledger) Runs(ctx context.Context, f ledger.RunFilter) ([]exportapi.Run, string, error) {
	limit, err := ledger.CheckFilter(f)
	if err != nil {
		return nil, "", err
	}
	var after []byte
	if f.Cursor != "" {
		if after, err = decodeCursor(f.Cursor); err != nil {
			return nil, "", err
		}
	}
	states := map[string]bool{}
	for _, s := range f.States {
		states[string(s)] = true
	}
	out := []exportapi.Run{}
	next := ""
	err = l.view(ctx, func(tx *bbolt.Tx) error {
		idx, prefix := tx.Bucket(bByTime), []byte(nil)
		if f.Tenant != "" {
			idx, prefix = tx.Bucket(bByTenant), append([]byte(f.Tenant), 0)
		}
		c := idx.Cursor()
		var k, v []byte
		if after != nil {
			target := append(slices.Clone(prefix), after...)
			k, _ = c.Seek(target)
			if k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
		} else if prefix != nil {
			end := append([]byte(f.Tenant), 1)
			if k, _ = c.Seek(end); k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
		} else {
			k, v = c.Last()
		}
		runs := tx.Bucket(bRuns)
		var lastPos []byte
		for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Prev() {
			state, profile, _ := bytes.Cut(v, []byte{0})
			if len(states) > 0 && !states[string(state)] {
				continue
			}
			if f.Profile != "" && string(profile) != f.Profile {
				continue
			}
			if len(out) == limit {
				next = encodeCursor(lastPos)
				break
			}
			pos := k[len(prefix):]
			id := pos[12:]
			var r exportapi.Run
			raw := runs.Get(id)
			if raw == nil {
				return xerr.New(xerr.Internal, "ledger %s: index names run %s that does not exist", l.path, id)
			}
			if err := json.Unmarshal(raw, &r); err != nil {
				return xerr.Wrap(xerr.Internal, err, "ledger: run %s is damaged", id)
			}
			out = append(out, r)
			lastPos = slices.Clone(pos)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}
