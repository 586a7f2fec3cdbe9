package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"math"
	"os"
	"slices"

	"go.etcd.io/bbolt"

	"github.com/stellaops/stella/internal/ledger"
	"github.com/stellaops/stella/internal/xerr"
	"github.com/stellaops/stella/pkg/exportapi"
)

// Event logs.
//
// While a run is live (pending or running) its events go to
// <dir>/events/<runId>.ndjson: one JSON object per line, appended under an
// exclusive flock on the file itself, so that progress ticks never touch the
// database. When the run reaches a terminal state, the write transaction
// that makes it terminal also copies ("folds") the log into the events
// bucket (events/<runId>/<seq> -> Event JSON); the file is removed after the
// commit. So: terminal run => the bucket is the log; live run => the file is.
//
// A crash can leave a torn last line (no newline). Readers ignore an
// incomplete final line; the next appender ends it with a newline (it then
// reads as a damaged line, which readers skip) before writing its own, and
// reuses the seq of a torn event that never became visible.

// logState is what this process knows about an event log it appended to:
// the file's identity and size after our last append, and the last seq.
// When the file still has that identity and size, nobody else appended,
// and the log was not folded (a fold removes the file).
type logState struct {
	id  fileID
	seq int64
}

func seqKey(seq int64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, uint64(seq))
	return b
}

// parseLog returns the events of an NDJSON log with Seq > after, oldest
// first, at most limit of the newest (0 = all). Only complete lines count;
// damaged lines are skipped, and so is any line whose seq is not below that
// of the event after it (seqs only grow down the file). It reads from the
// end and stops at the first seq <= after, so a watcher polling for new
// events parses only those.
func parseLog(data []byte, after int64, limit int) []exportapi.Event {
	end := bytes.LastIndexByte(data, '\n')
	if end < 0 {
		return nil // no complete line yet
	}
	data = data[:end] // an incomplete final line (torn write) is not an event yet
	var rev []exportapi.Event
	next := int64(math.MaxInt64)
	for done := false; !done; {
		i := bytes.LastIndexByte(data, '\n')
		line := data[i+1:]
		if i < 0 {
			done = true
		} else {
			data = data[:i]
		}
		var ev exportapi.Event
		if len(line) == 0 || json.Unmarshal(line, &ev) != nil || ev.Seq >= next || ev.Seq <= 0 {
			continue
		}
		if ev.Seq <= after {
			break
		}
		rev = append(rev, ev)
		next = ev.Seq
		if limit > 0 && len(rev) == limit {
			break
		}
	}
	slices.Reverse(rev)
	return rev
}

func readAll(f *os.File) ([]byte, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return io.ReadAll(f)
}

// AppendEvent appends ev to the run's event log and returns it with its seq.
func (l *Ledger) AppendEvent(ctx context.Context, ev exportapi.Event) (exportapi.Event, error) {
	if err := l.check(); err != nil {
		return ev, err
	}
	if err := ledger.CheckEvent(ev); err != nil {
		return ev, err
	}
	id := ev.RunID
	defer l.lockRun(id)()
	path := l.eventsPath(id)
	f, err := lockFile(ctx, path, l.deadline(ctx), true)
	if err != nil {
		return ev, l.lockErr(ctx, err, "the event log of run "+id)
	}
	defer f.Close()
	st, err := statFile(f)
	if err != nil {
		return ev, internal(err, "event log of run %s", id)
	}
	var last int64
	torn := false
	if c, ok := l.cache.Load(id); ok && st.size > 0 && c.(logState).id == st {
		last = c.(logState).seq
	} else {
		l.cache.Delete(id)
		// Unknown file: ask the database whether the run exists and whether
		// its log was folded already.
		r, err := l.Run(ctx, id)
		if err != nil {
			if xerr.Is(err, xerr.RunNotFound) {
				os.Remove(path) // a run that does not exist has no log
			}
			return ev, err
		}
		if r.State.Terminal() {
			// Folded: the bucket is the log. The file is an empty one our
			// lock made, or a stale copy left by a crash after a fold.
			os.Remove(path)
			return l.appendFolded(ctx, ev)
		}
		data, err := readAll(f)
		if err != nil {
			return ev, internal(err, "read event log of run %s", id)
		}
		if evs := parseLog(data, 0, 1); len(evs) > 0 {
			last = evs[len(evs)-1].Seq
		}
		if n := len(data); n > 0 && data[n-1] != '\n' {
			torn = true
			// A torn line that is a whole event but for its newline becomes
			// visible once ended; continue after it.
			var tail exportapi.Event
			if json.Unmarshal(data[bytes.LastIndexByte(data, '\n')+1:], &tail) == nil && tail.Seq == last+1 {
				last = tail.Seq
			}
		}
		st.size = int64(len(data))
	}
	ev.Seq = last + 1
	line, err := json.Marshal(ev)
	if err != nil {
		return ev, xerr.Wrap(xerr.InvalidInput, err, "run %s: event", id)
	}
	line = append(line, '\n')
	if torn {
		line = append([]byte{'\n'}, line...)
	}
	if _, err := f.WriteAt(line, st.size); err != nil {
		l.cache.Delete(id)
		return ev, internal(err, "append to the event log of run %s", id)
	}
	if ledger.TerminalEvent(ev.Type) && !l.opts.NoSync {
		if err := f.Sync(); err != nil {
			l.cache.Delete(id)
			return ev, internal(err, "sync the event log of run %s", id)
		}
	}
	st.size += int64(len(line))
	l.cache.Store(id, logState{id: st, seq: ev.Seq})
	return ev, nil
}

// appendFolded appends an event to the folded log of a finished run.
func (l *Ledger) appendFolded(ctx context.Context, ev exportapi.Event) (exportapi.Event, error) {
	err := l.update(ctx, func(tx *bbolt.Tx) error {
		if _, err := getRun(tx, ev.RunID); err != nil {
			return err
		}
		b, err := tx.Bucket(bEvents).CreateBucketIfNotExists([]byte(ev.RunID))
		if err != nil {
			return err
		}
		ev.Seq = 1
		if k, _ := b.Cursor().Last(); k != nil {
			ev.Seq = int64(binary.BigEndian.Uint64(k)) + 1
		}
		raw, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		return b.Put(seqKey(ev.Seq), raw)
	})
	return ev, internal(err, "append event to run %s", ev.RunID)
}

// foldLog copies the event log file f (locked by the caller) into the events
// bucket, then appends extra (assigning seqs). The caller removes the file
// after the commit.
func foldLog(tx *bbolt.Tx, id string, f *os.File, extra *exportapi.Event) error {
	data, err := readAll(f)
	if err != nil {
		return err
	}
	b, err := tx.Bucket(bEvents).CreateBucketIfNotExists([]byte(id))
	if err != nil {
		return err
	}
	var last int64
	if k, _ := b.Cursor().Last(); k != nil {
		last = int64(binary.BigEndian.Uint64(k))
	}
	put := func(ev exportapi.Event) error {
		raw, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		last = max(last, ev.Seq)
		return b.Put(seqKey(ev.Seq), raw)
	}
	for _, ev := range parseLog(data, 0, 0) {
		if err := put(ev); err != nil {
			return err
		}
	}
	if extra != nil {
		extra.Seq = last + 1
		return put(*extra)
	}
	return nil
}

// foldedEvents returns whether the run is terminal and, if so, its events
// after afterSeq from the bucket.
func foldedEvents(tx *bbolt.Tx, id string, afterSeq int64) (bool, []exportapi.Event, error) {
	r, err := getRun(tx, id)
	if err != nil || !r.State.Terminal() {
		return false, nil, err
	}
	out := []exportapi.Event{}
	b := tx.Bucket(bEvents).Bucket([]byte(id))
	if b == nil {
		return true, out, nil
	}
	c := b.Cursor()
	for k, v := c.Seek(seqKey(max(afterSeq, 0) + 1)); k != nil; k, v = c.Next() {
		var ev exportapi.Event
		if err := json.Unmarshal(v, &ev); err != nil {
			return true, nil, xerr.Wrap(xerr.Internal, err, "ledger: event %d of run %s is damaged", binary.BigEndian.Uint64(k), id)
		}
		out = append(out, ev)
	}
	return true, out, nil
}

// Events returns the events of a run with Seq > afterSeq. It reads the
// database first: a finished run's log is in the bucket. Otherwise it reads
// the file; if the file is gone or empty the run may have been folded in
// between, so it asks the database again. A file read just before its
// removal holds exactly what was folded, so either way the answer is the
// same.
func (l *Ledger) Events(ctx context.Context, runID string, afterSeq int64) ([]exportapi.Event, error) {
	if ledger.CheckRunID(runID) != nil {
		return nil, ledger.RunNotFound(runID)
	}
	var out []exportapi.Event
	var terminal bool
	load := func() error {
		return l.view(ctx, func(tx *bbolt.Tx) (err error) {
			terminal, out, err = foldedEvents(tx, runID, afterSeq)
			return err
		})
	}
	if err := load(); err != nil {
		return nil, err
	}
	if terminal {
		return out, nil
	}
	data, err := os.ReadFile(l.eventsPath(runID))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, internal(err, "read the event log of run %s", runID)
	}
	if len(data) == 0 {
		if err := load(); err != nil {
			return nil, err
		}
		if terminal {
			return out, nil
		}
		return []exportapi.Event{}, nil
	}
	if out = parseLog(data, afterSeq, 0); out == nil {
		out = []exportapi.Event{}
	}
	return out, nil
}
