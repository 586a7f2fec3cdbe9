package bolt_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/stellaops/stella/internal/ledger"
	"github.com/stellaops/stella/internal/ledger/bolt"
	"github.com/stellaops/stella/internal/xerr"
	"github.com/stellaops/stella/pkg/exportapi"
)

func openAt(t *testing.T, path string, opts bolt.Options) *bolt.Ledger {
	t.Helper()
	l, err := bolt.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func newRun(id string) exportapi.Run {
	return exportapi.Run{ID: id, Tenant: "acme", CreatedAt: t0, Profile: exportapi.ProfileRef{Name: "nightly"}}
}

func ok(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// raw runs fn in a read-only transaction on the bbolt file itself.
func raw(t *testing.T, path string, fn func(tx *bbolt.Tx) error) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	ok(t, err)
	defer db.Close()
	ok(t, db.View(fn))
}

func rawUpdate(t *testing.T, path string, fn func(tx *bbolt.Tx) error) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 5 * time.Second})
	ok(t, err)
	defer db.Close()
	ok(t, db.Update(fn))
}

func TestOpenMakesPrivateFiles(t *testing.T) {
	base := t.TempDir()
	path := filepath.Join(base, "state", "stella", "ledger.db")
	openAt(t, path, bolt.Options{})
	for p, want := range map[string]fs.FileMode{
		filepath.Join(base, "state"):          0o700,
		filepath.Dir(path):                    0o700,
		path + ".d":                           0o700,
		filepath.Join(path+".d", "events"):    0o700,
		filepath.Join(path+".d", "leases"):    0o700,
		path:                                  0o600,
		filepath.Join(path+".d", "gate.lock"): 0o600,
	} {
		st, err := os.Stat(p)
		ok(t, err)
		if st.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", p, st.Mode().Perm(), want)
		}
	}
	raw(t, path, func(tx *bbolt.Tx) error {
		for _, b := range []string{"meta", "profiles", "runs", "runs-by-time", "runs-by-tenant", "events", "artifacts"} {
			if tx.Bucket([]byte(b)) == nil {
				t.Errorf("bucket %s missing", b)
			}
		}
		if v := string(tx.Bucket([]byte("meta")).Get([]byte("schemaVersion"))); v != "1" {
			t.Errorf("schema version %q", v)
		}
		return nil
	})
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	openAt(t, path, bolt.Options{})
	rawUpdate(t, path, func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("schemaVersion"), []byte("7"))
	})
	_, err := bolt.Open(path, bolt.Options{})
	if !xerr.Is(err, xerr.InvalidInput) || !strings.Contains(err.Error(), "schema version 7") || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a schema 7 ledger: %v, want InvalidInput naming version 7 as newer", err)
	}
}

func TestOpenRefusesOtherFiles(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.db")
	ok(t, os.WriteFile(junk, bytes.Repeat([]byte("not a database "), 1000), 0o600))
	if _, err := bolt.Open(junk, bolt.Options{}); !xerr.Is(err, xerr.InvalidInput) {
		t.Fatalf("Open of a junk file: %v, want InvalidInput", err)
	}
	// A bbolt file of something else (another tool's buckets).
	other := filepath.Join(dir, "other.db")
	db, err := bbolt.Open(other, 0o600, nil)
	ok(t, err)
	ok(t, db.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucket([]byte("runs")); return err }))
	db.Close()
	if _, err := bolt.Open(other, bolt.Options{}); !xerr.Is(err, xerr.InvalidInput) {
		t.Fatalf("Open of a foreign bbolt file: %v, want InvalidInput", err)
	}
}

// TestNoLockHeldBetweenOperations: between operations, and while a lease
// is held, another opener gets the database read-write at once.
func TestNoLockHeldBetweenOperations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	l := openAt(t, path, bolt.Options{})
	ctx := context.Background()
	ok(t, l.CreateRun(ctx, newRun("r1")))
	lease, err := l.TakeLease(ctx, "r1", "")
	ok(t, err)
	defer lease.Release()
	l.AppendEvent(ctx, exportapi.Event{RunID: "r1", Type: exportapi.EventStarted})
	l.Runs(ctx, ledger.RunFilter{})
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("the ledger keeps the database locked between operations: %v", err)
	}
	db.Close()
}

// TestBusyDatabase: while another process holds the database (here a raw
// bbolt handle), operations wait for it up to LockWait, then fail clearly.
func TestBusyDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	l := openAt(t, path, bolt.Options{})
	impatient := openAt(t, path, bolt.Options{LockWait: 200 * time.Millisecond})
	ctx := context.Background()
	ok(t, l.CreateRun(ctx, newRun("r1")))

	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	ok(t, err)
	go func() {
		time.Sleep(300 * time.Millisecond)
		db.Close()
	}()
	// Waits, then succeeds.
	if _, err := l.UpdateRun(ctx, "r1", func(r *exportapi.Run) error { r.Host = "h"; return nil }); err != nil {
		t.Fatalf("UpdateRun while the database was busy for 300ms: %v", err)
	}

	// Held for longer than LockWait: a clear error, not a hang.
	db, err = bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	ok(t, err)
	defer db.Close()
	_, err = impatient.Run(ctx, "r1")
	if !xerr.Is(err, xerr.Internal) || !strings.Contains(err.Error(), "busy") {
		t.Fatalf("Run on a database locked for longer than LockWait: %v, want an Internal 'busy' error", err)
	}
	// A context deadline ends the wait too.
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := l.Run(cctx, "r1"); err == nil {
		t.Fatal("Run with a 50ms context succeeded on a locked database")
	}
}

func artifactsInBucket(t *testing.T, path, id string) map[string]exportapi.Artifact {
	t.Helper()
	out := map[string]exportapi.Artifact{}
	raw(t, path, func(tx *bbolt.Tx) error {
		prefix := append([]byte(id), 0)
		c := tx.Bucket([]byte("artifacts")).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var a exportapi.Artifact
			if err := json.Unmarshal(v, &a); err != nil {
				return err
			}
			out[string(k[len(prefix):])] = a
		}
		return nil
	})
	return out
}

// TestArtifactsBucketFollowsRun: the artifacts bucket holds exactly
// Run.Artifacts, after every create and update.
func TestArtifactsBucketFollowsRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	l := openAt(t, path, bolt.Options{})
	ctx := context.Background()
	a := exportapi.Artifact{Name: "bundle", Path: "/d/b.tar.zst", Bytes: 10, SHA256: "aa", MediaType: "application/zstd"}
	b := exportapi.Artifact{Name: "bundle.sig", Path: "/d/b.sig", Bytes: 2, SHA256: "bb", MediaType: "text/plain"}
	r := newRun("r1")
	r.Artifacts = []exportapi.Artifact{a}
	ok(t, l.CreateRun(ctx, r))
	ok(t, l.CreateRun(ctx, newRun("r10"))) // an id that r1's prefix must not catch
	_, err := l.UpdateRun(ctx, "r10", func(r *exportapi.Run) error { r.Artifacts = []exportapi.Artifact{b}; return nil })
	ok(t, err)
	check := func(id string, want ...exportapi.Artifact) {
		t.Helper()
		got := artifactsInBucket(t, path, id)
		run, err := l.Run(ctx, id)
		ok(t, err)
		if len(got) != len(want) || len(run.Artifacts) != len(want) {
			t.Fatalf("run %s: bucket %v, run %v, want %v", id, got, run.Artifacts, want)
		}
		for _, w := range want {
			if got[w.Name] != w {
				t.Fatalf("run %s: bucket has %v for %s, want %v", id, got[w.Name], w.Name, w)
			}
		}
	}
	check("r1", a)
	_, err = l.UpdateRun(ctx, "r1", func(r *exportapi.Run) error { r.Artifacts = append(r.Artifacts, b); return nil })
	ok(t, err)
	check("r1", a, b)
	a2 := a
	a2.Bytes, a2.SHA256 = 11, "cc"
	_, err = l.UpdateRun(ctx, "r1", func(r *exportapi.Run) error { r.Artifacts = []exportapi.Artifact{a2}; return nil })
	ok(t, err)
	check("r1", a2)
	// Retention expires the run and drops its artifacts.
	_, err = l.UpdateRun(ctx, "r1", func(r *exportapi.Run) error { r.State = exportapi.StateSucceeded; return nil })
	ok(t, err)
	_, err = l.UpdateRun(ctx, "r1", func(r *exportapi.Run) error { r.State, r.Artifacts = exportapi.StateExpired, nil; return nil })
	ok(t, err)
	check("r1")
	check("r10", b)
}

// TestEventLogFiles: a live run's log is an NDJSON file beside the
// database, one event per line; it goes once the run ends.
func TestEventLogFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	l := openAt(t, path, bolt.Options{})
	ctx := context.Background()
	ok(t, l.CreateRun(ctx, newRun("r1")))
	for i := 0; i < 3; i++ {
		_, err := l.AppendEvent(ctx, exportapi.Event{RunID: "r1", Type: exportapi.EventProgress, ItemsDone: int64(i)})
		ok(t, err)
	}
	file := filepath.Join(path+".d", "events", "r1.ndjson")
	data, err := os.ReadFile(file)
	ok(t, err)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 3 || !strings.HasSuffix(string(data), "\n") {
		t.Fatalf("log file:\n%s", data)
	}
	for i, line := range lines {
		var ev exportapi.Event
		ok(t, json.Unmarshal([]byte(line), &ev))
		if ev.Seq != int64(i+1) || ev.RunID != "r1" {
			t.Fatalf("line %d: %s", i, line)
		}
	}
	raw(t, path, func(tx *bbolt.Tx) error {
		if tx.Bucket([]byte("events")).Bucket([]byte("r1")) != nil {
			t.Error("a live run's events are in the database")
		}
		return nil
	})
	_, err = l.UpdateRun(ctx, "r1", func(r *exportapi.Run) error { r.State = exportapi.StateFailed; return nil })
	ok(t, err)
	if _, err := os.Stat(file); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("log file still there after the run ended: %v", err)
	}
	raw(t, path, func(tx *bbolt.Tx) error {
		if n := tx.Bucket([]byte("events")).Bucket([]byte("r1")).Stats().KeyN; n != 3 {
			t.Errorf("%d events folded, want 3", n)
		}
		return nil
	})
	// Operations on finished runs leave no stray files.
	l.AppendEvent(ctx, exportapi.Event{RunID: "r1", Type: exportapi.EventFailed})
	l.UpdateRun(ctx, "r1", func(r *exportapi.Run) error { r.State = exportapi.StateExpired; return nil })
	l.UpdateRun(ctx, "missing", func(r *exportapi.Run) error { return nil })
	l.AppendEvent(ctx, exportapi.Event{RunID: "missing", Type: exportapi.EventFailed})
	left, _ := os.ReadDir(filepath.Join(path+".d", "events"))
	if len(left) != 0 {
		t.Fatalf("stray files in events/: %v", left)
	}
}

// TestTornLastLine: a crash in the middle of an append leaves a line
// without its newline. Readers ignore it; the next append ends it and
// continues the seqs; a torn line that is a whole event but for the
// newline counts once ended.
func TestTornLastLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	l := openAt(t, path, bolt.Options{})
	ctx := context.Background()
	ok(t, l.CreateRun(ctx, newRun("r1")))
	for i := 0; i < 3; i++ {
		_, err := l.AppendEvent(ctx, exportapi.Event{RunID: "r1", Type: exportapi.EventProgress})
		ok(t, err)
	}
	file := filepath.Join(path+".d", "events", "r1.ndjson")
	tear := func(s string) {
		f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND, 0)
		ok(t, err)
		f.WriteString(s)
		f.Close()
	}
	seqs := func() []int64 {
		evs, err := l.Events(ctx, "r1", 0)
		ok(t, err)
		var s []int64
		for _, e := range evs {
			s = append(s, e.Seq)
		}
		return s
	}
	tear(`{"runId":"r1","seq":4,"type":"run.pro`)
	if got := seqs(); len(got) != 3 {
		t.Fatalf("events with a torn last line: %v", got)
	}
	// A fresh handle (as after the crash) appends: seq 4 again, since the
	// torn one never became visible.
	l2 := openAt(t, path, bolt.Options{})
	ev, err := l2.AppendEvent(ctx, exportapi.Event{RunID: "r1", Type: exportapi.EventProgress})
	ok(t, err)
	if ev.Seq != 4 {
		t.Fatalf("append after a torn line got seq %d, want 4", ev.Seq)
	}
	if got := seqs(); len(got) != 4 || got[3] != 4 {
		t.Fatalf("events after repair: %v", got)
	}
	// Torn just before the newline: a whole event. It becomes seq 5.
	tear(`{"runId":"r1","seq":5,"type":"run.progress","time":"0001-01-01T00:00:00Z"}`)
	if got := seqs(); len(got) != 4 {
		t.Fatalf("a line without newline was read: %v", got)
	}
	ev, err = openAt(t, path, bolt.Options{}).AppendEvent(ctx, exportapi.Event{RunID: "r1", Type: exportapi.EventProgress})
	ok(t, err)
	if got := seqs(); ev.Seq != 6 || len(got) != 6 {
		t.Fatalf("append after a whole torn event: seq %d, events %v", ev.Seq, got)
	}
	// The fold keeps exactly what readers saw.
	before, _ := l.Events(ctx, "r1", 0)
	tear(`{"runId":"r1","seq":7,`)
	_, err = l.UpdateRun(ctx, "r1", func(r *exportapi.Run) error { r.State = exportapi.StateSucceeded; return nil })
	ok(t, err)
	after, _ := l.Events(ctx, "r1", 0)
	if jsonString(after) != jsonString(before) {
		t.Fatalf("fold changed the log:\n%s\n%s", jsonString(before), jsonString(after))
	}
}

// TestStaleLogAfterFoldCrash: a crash between the fold's commit and the
// removal of the file leaves a stale copy. The database wins; the next
// append goes to the folded log and removes the copy.
func TestStaleLogAfterFoldCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	l := openAt(t, path, bolt.Options{})
	ctx := context.Background()
	ok(t, l.CreateRun(ctx, newRun("r1")))
	for i := 0; i < 3; i++ {
		_, err := l.AppendEvent(ctx, exportapi.Event{RunID: "r1", Type: exportapi.EventProgress})
		ok(t, err)
	}
	file := filepath.Join(path+".d", "events", "r1.ndjson")
	copyOf, err := os.ReadFile(file)
	ok(t, err)
	_, err = l.UpdateRun(ctx, "r1", func(r *exportapi.Run) error { r.State = exportapi.StateSucceeded; return nil })
	ok(t, err)
	ok(t, os.WriteFile(file, copyOf, 0o600))

	l2 := openAt(t, path, bolt.Options{})
	evs, err := l2.Events(ctx, "r1", 0)
	ok(t, err)
	if len(evs) != 3 {
		t.Fatalf("%d events, want 3", len(evs))
	}
	ev, err := l2.AppendEvent(ctx, exportapi.Event{RunID: "r1", Type: exportapi.EventCompleted})
	ok(t, err)
	if ev.Seq != 4 {
		t.Fatalf("seq %d, want 4", ev.Seq)
	}
	if _, err := os.Stat(file); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stale log still there: %v", err)
	}
	evs, _ = l.Events(ctx, "r1", 0)
	checkContiguous(t, evs, "log")
	if len(evs) != 4 {
		t.Fatalf("%d events, want 4", len(evs))
	}
	// An update of the finished run removes a stale copy too.
	ok(t, os.WriteFile(file, copyOf, 0o600))
	_, err = l2.UpdateRun(ctx, "r1", func(r *exportapi.Run) error { r.State = exportapi.StateExpired; return nil })
	ok(t, err)
	if _, err := os.Stat(file); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stale log still there after an update: %v", err)
	}
}

// TestLeaseFile: a lease is a lock file beside the database while held.
func TestLeaseFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	l := openAt(t, path, bolt.Options{})
	ctx := context.Background()
	ok(t, l.CreateRun(ctx, newRun("r1")))
	lease, err := l.TakeLease(ctx, "r1", "host:42")
	ok(t, err)
	file := filepath.Join(path+".d", "leases", "r1.lock")
	data, err := os.ReadFile(file)
	ok(t, err)
	if string(data) != "host:42\n" {
		t.Fatalf("lease file says %q", data)
	}
	if lease.(*bolt.Lease).Owner() != "host:42" {
		t.Fatal("Owner")
	}
	ok(t, lease.Release())
	if _, err := os.Stat(file); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("lease file still there after Release: %v", err)
	}
}

// TestTenantListingUsesIndex: listing one tenant's runs reads only that
// tenant's runs (a damaged run of another tenant does not matter), which
// shows it goes through the runs-by-tenant index.
func TestTenantListingUsesIndex(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	l := openAt(t, path, bolt.Options{})
	ctx := context.Background()
	ok(t, l.CreateRun(ctx, newRun("a1")))
	g := newRun("g1")
	g.Tenant = "globex"
	ok(t, l.CreateRun(ctx, g))
	rawUpdate(t, path, func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte("runs")).Put([]byte("g1"), []byte("{damaged"))
	})
	runs, _, err := l.Runs(ctx, ledger.RunFilter{Tenant: "acme"})
	if err != nil || len(runs) != 1 || runs[0].ID != "a1" {
		t.Fatalf("Runs(acme) = %v, %v", runIDs(runs), err)
	}
	// Filters on state and profile are answered from the index too.
	runs, _, err = l.Runs(ctx, ledger.RunFilter{Profile: "other"})
	if err != nil || len(runs) != 0 {
		t.Fatalf("Runs(profile=other) = %v, %v", runIDs(runs), err)
	}
	if _, _, err := l.Runs(ctx, ledger.RunFilter{}); !xerr.Is(err, xerr.Internal) {
		t.Fatalf("Runs over a damaged run: %v, want Internal", err)
	}
}

// TestClosed: a closed ledger refuses work.
func TestClosed(t *testing.T) {
	l := openAt(t, filepath.Join(t.TempDir(), "ledger.db"), bolt.Options{})
	ok(t, l.Close())
	if err := l.CreateRun(context.Background(), newRun("r1")); err == nil {
		t.Fatal("CreateRun on a closed ledger succeeded")
	}
}

// Submissions are serialised across ledger handles (processes): a second
// LockSubmissions waits for the first to be released, and one that cannot
// wait long enough fails as busy.
func TestLockSubmissions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	a := openAt(t, path, bolt.Options{})
	b := openAt(t, path, bolt.Options{})
	impatient := openAt(t, path, bolt.Options{LockWait: 50 * time.Millisecond})
	ctx := context.Background()
	release, err := a.LockSubmissions(ctx)
	ok(t, err)
	if _, err := impatient.LockSubmissions(ctx); !xerr.Is(err, xerr.Internal) || !strings.Contains(err.Error(), "busy") {
		t.Fatalf("a second holder that cannot wait: %v", err)
	}
	var held atomic.Bool
	held.Store(true)
	got := make(chan bool, 1)
	go func() {
		r, err := b.LockSubmissions(ctx)
		if err != nil {
			t.Error(err)
			got <- false
			return
		}
		got <- held.Load() // false: it got the lock only after the release
		r()
	}()
	time.Sleep(100 * time.Millisecond) // time for b to take the lock if it could
	held.Store(false)
	release()
	if early := <-got; early {
		t.Fatal("a second LockSubmissions got the lock while the first was held")
	}
}
