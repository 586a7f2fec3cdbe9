package bolt_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/stellaops/stella/internal/ledger"
	"github.com/stellaops/stella/internal/ledger/bolt"
	"github.com/stellaops/stella/internal/xerr"
	"github.com/stellaops/stella/pkg/exportapi"
)

// TestCrashRecovery: a second process creates a run, takes its lease and
// appends events (and updates the run) in a loop until it is killed with
// SIGKILL in the middle of that. Then a fresh handle runs Recover: the run
// is failed with the message that says what happened, its event log is
// intact (gap-free, ending with run.failed), the other runs and profiles
// are untouched, and the database passes bbolt's consistency check.
// Three rounds, killed at different points.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "ledger.db")
	l, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()

	// Bystanders: profiles, a finished run, a pending one, and a run this
	// process is executing (its lease is live and must be left alone).
	p := exportapi.Profile{Metadata: exportapi.ProfileMetadata{Tenant: "acme", Name: "nightly"},
		Spec: exportapi.ProfileSpec{Kind: "json", Variant: "raw", Include: []string{"advisories"}}}
	mustDo(t, l.SaveProfile, p)
	p.Spec.Include = append(p.Spec.Include, "vex")
	mustDo(t, l.SaveProfile, p)
	mk := func(id string) {
		if err := l.CreateRun(ctx, exportapi.Run{ID: id, Tenant: "acme", CreatedAt: t0, Profile: exportapi.ProfileRef{Name: "nightly"}}); err != nil {
			t.Fatal(err)
		}
	}
	mk("done")
	for i := 0; i < 5; i++ {
		l.AppendEvent(ctx, exportapi.Event{RunID: "done", Type: exportapi.EventProgress, ItemsDone: int64(i), Time: t0})
	}
	l.UpdateRun(ctx, "done", func(r *exportapi.Run) error { r.State = exportapi.StateSucceeded; return nil })
	mk("waiting")
	mk("mine")
	lease, err := l.TakeLease(ctx, "mine", "")
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Release()
	l.UpdateRun(ctx, "mine", func(r *exportapi.Run) error { r.State = exportapi.StateRunning; return nil })
	l.AppendEvent(ctx, exportapi.Event{RunID: "mine", Type: exportapi.EventStarted, Time: t0})
	bystanders := snapshot(t, l, "done", "waiting", "mine")

	for round, atLeast := range []int{1, 60, 250} {
		id := fmt.Sprintf("victim-%d", round)
		h := startHelper(t, "crash", "STELLA_BOLT_PATH="+path, "STELLA_BOLT_RUN="+id)
		h.waitLine(t, "ready")
		// Let it write for a while, then kill it mid-loop.
		for {
			evs, err := l.Events(ctx, id, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) >= atLeast {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		if err := h.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		h.wait(t)
		pid := h.cmd.Process.Pid

		// SIGKILL seldom lands inside write(2), so also leave what a torn
		// write leaves: a last line without its newline.
		logPath := filepath.Join(path+".d", "events", id+".ndjson")
		f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(`{"runId":"` + id + `","seq":999999,"type":"run.progr`)
		f.Close()

		before, err := l.Events(ctx, id, 0)
		if err != nil {
			t.Fatal(err)
		}
		checkContiguous(t, before, "log of the killed process")

		// A new process (handle) recovers.
		l2, err := bolt.Open(path, bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		changed, err := l2.Recover(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(changed) != 1 || changed[0].ID != id {
			t.Fatalf("round %d: Recover changed %v, want just %s", round, runIDs(changed), id)
		}
		r, err := l2.Run(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		owner := fmt.Sprintf(":%d", pid)
		if r.State != exportapi.StateFailed || r.ErrorType != string(xerr.Internal) || r.ErrorCode != "internal" || r.FinishedAt == nil ||
			!strings.HasSuffix(r.Owner, owner) {
			t.Fatalf("round %d: recovered run %s", round, jsonString(r))
		}
		if want := ledger.DeadHolderMessage(r.Owner); r.ErrorMessage != want {
			t.Fatalf("message %q, want %q", r.ErrorMessage, want)
		}
		if !strings.Contains(r.ErrorMessage, "replay it with \"stella export run submit\"") {
			t.Fatalf("message %q does not say how to replay", r.ErrorMessage)
		}
		after, err := l2.Events(ctx, id, 0)
		if err != nil {
			t.Fatal(err)
		}
		checkContiguous(t, after, "log after Recover")
		if len(after) != len(before)+1 || after[len(after)-1].Type != exportapi.EventFailed {
			t.Fatalf("round %d: %d events before Recover, %d after, last %s", round, len(before), len(after), jsonString(after[len(after)-1]))
		}
		if jsonString(after[:len(before)]) != jsonString(before) {
			t.Fatalf("round %d: Recover changed the events the process wrote", round)
		}
		for _, gone := range []string{logPath, filepath.Join(path+".d", "leases", id+".lock")} {
			if _, err := os.Stat(gone); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("round %d: %s still exists after Recover (%v)", round, gone, err)
			}
		}
		if got := snapshot(t, l2, "done", "waiting", "mine"); got != bystanders {
			t.Fatalf("round %d: other runs or profiles changed:\n got %s\nwant %s", round, got, bystanders)
		}
		if again, err := l2.Recover(ctx); err != nil || len(again) != 0 {
			t.Fatalf("second Recover: %v %v", runIDs(again), err)
		}
		l2.Close()
		checkDB(t, path)
		t.Logf("round %d: killed after %d events; recovered", round, len(before))
	}
}

func helperCrash(t *testing.T) {
	l, err := bolt.Open(os.Getenv("STELLA_BOLT_PATH"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id := os.Getenv("STELLA_BOLT_RUN")
	if err := l.CreateRun(ctx, exportapi.Run{ID: id, Tenant: "acme", CreatedAt: t0.Add(time.Hour), Profile: exportapi.ProfileRef{Name: "nightly", Revision: "r2"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.TakeLease(ctx, id, ""); err != nil {
		t.Fatal(err)
	}
	started := time.Now().UTC()
	if _, err := l.UpdateRun(ctx, id, func(r *exportapi.Run) error {
		r.State, r.StartedAt = exportapi.StateRunning, &started
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.AppendEvent(ctx, exportapi.Event{RunID: id, Type: exportapi.EventStarted, Time: started}); err != nil {
		t.Fatal(err)
	}
	fmt.Println("ready")
	for i := 0; ; i++ {
		if _, err := l.AppendEvent(ctx, exportapi.Event{RunID: id, Type: exportapi.EventProgress, Phase: "read",
			ItemsDone: int64(i), ItemsTotal: 1 << 20, Bytes: int64(i) << 10, Message: strings.Repeat("x", i%300), Time: time.Now().UTC()}); err != nil {
			t.Fatal(err)
		}
		if i%7 == 0 {
			if _, err := l.UpdateRun(ctx, id, func(r *exportapi.Run) error {
				r.Counts = map[string]int64{"items": int64(i)}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		if i%13 == 0 {
			if _, _, err := l.Runs(ctx, ledger.RunFilter{Tenant: "acme"}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func mustDo(t *testing.T, save func(context.Context, exportapi.Profile) (exportapi.Profile, bool, error), p exportapi.Profile) {
	t.Helper()
	if _, _, err := save(context.Background(), p); err != nil {
		t.Fatal(err)
	}
}

// snapshot is the JSON of some runs with their event logs, and of the profiles.
func snapshot(t *testing.T, l ledger.Ledger, ids ...string) string {
	t.Helper()
	ctx := context.Background()
	var out []any
	for _, id := range ids {
		r, err := l.Run(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		evs, err := l.Events(ctx, id, 0)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r, evs)
	}
	revs, err := l.ProfileRevisions(ctx, "acme", "nightly")
	if err != nil {
		t.Fatal(err)
	}
	return jsonString(append(out, revs))
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func runIDs(rs []exportapi.Run) []string {
	var s []string
	for _, r := range rs {
		s = append(s, r.ID)
	}
	return s
}

func checkContiguous(t *testing.T, evs []exportapi.Event, what string) {
	t.Helper()
	for i, ev := range evs {
		if ev.Seq != int64(i+1) {
			t.Fatalf("%s: seq %d at position %d", what, ev.Seq, i)
		}
	}
}

// checkDB runs bbolt's consistency check over the whole file.
func checkDB(t *testing.T, path string) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bbolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
	if err != nil {
		t.Fatalf("bbolt check of %s: %v", path, err)
	}
}
