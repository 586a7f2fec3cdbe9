package ledgertest

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stellaops/stella/internal/ledger"
	"github.com/stellaops/stella/internal/xerr"
	"github.com/stellaops/stella/pkg/exportapi"
)

func (s *suite) testLease(t *testing.T) {
	l, ctx := s.open(t), ctxT(t)
	createRun(t, l, newRun("r1", "acme", t0))
	lease, err := l.TakeLease(ctx, "r1", "host-a:101")
	must(t, err, "TakeLease")
	r, _ := l.Run(ctx, "r1")
	if r.Owner != "host-a:101" {
		t.Fatalf("owner %q, want host-a:101", r.Owner)
	}
	_, err = l.TakeLease(ctx, "r1", "host-b:202")
	e := wantCode(t, err, xerr.InvalidInput, "TakeLease of a leased run")
	if !strings.Contains(e.Message, "host-a:101") {
		t.Fatalf("message %q should name the holder", e.Message)
	}
	r, _ = l.Run(ctx, "r1")
	if r.Owner != "host-a:101" {
		t.Fatalf("a refused TakeLease changed the owner to %q", r.Owner)
	}
	must(t, lease.Release(), "Release")
	must(t, lease.Release(), "Release twice")
	r, _ = l.Run(ctx, "r1")
	if r.Owner != "" {
		t.Fatalf("owner %q after Release of a pending run, want none (handed back)", r.Owner)
	}

	// Again, with the default owner, through to the end of the run.
	lease, err = l.TakeLease(ctx, "r1", "")
	must(t, err, "TakeLease after Release")
	r, _ = l.Run(ctx, "r1")
	if r.Owner == "" || !strings.Contains(r.Owner, ":") {
		t.Fatalf("default owner %q, want host:pid", r.Owner)
	}
	owner := r.Owner
	setState(t, l, "r1", exportapi.StateRunning)
	setState(t, l, "r1", exportapi.StateSucceeded)
	must(t, lease.Release(), "Release of a finished run")
	r, _ = l.Run(ctx, "r1")
	if r.Owner != owner {
		t.Fatalf("owner %q after the run finished, want %q kept as the record of who ran it", r.Owner, owner)
	}
	_, err = l.TakeLease(ctx, "r1", "")
	wantCode(t, err, xerr.InvalidInput, "TakeLease of a finished run")
}

func (s *suite) testLeaseInvalid(t *testing.T) {
	l, ctx := s.open(t), ctxT(t)
	_, err := l.TakeLease(ctx, "missing", "")
	wantCode(t, err, xerr.RunNotFound, "TakeLease of a missing run")
	_, err = l.TakeLease(ctx, "../x", "")
	wantCode(t, err, xerr.RunNotFound, "TakeLease of a malformed id")
	r := newRun("done", "acme", t0)
	r.State = exportapi.StateCancelled
	createRun(t, l, r)
	_, err = l.TakeLease(ctx, "done", "")
	wantCode(t, err, xerr.InvalidInput, "TakeLease of a cancelled run")
}

func (s *suite) testRecoverLiveHere(t *testing.T) {
	l, ctx := s.open(t), ctxT(t)
	sh := sharer(t, l)
	createRun(t, l, newRun("r1", "acme", t0))
	lease, err := l.TakeLease(ctx, "r1", "")
	must(t, err, "TakeLease")
	defer lease.Release()
	running := setState(t, l, "r1", exportapi.StateRunning)
	appendN(t, l, "r1", 0, 3)
	l2, err := sh.OpenShared(sh.ShareKey())
	must(t, err, "OpenShared")
	defer l2.Close()
	for i, lx := range []ledger.Ledger{l, l2} {
		changed, err := lx.Recover(ctx)
		must(t, err, "Recover")
		if len(changed) != 0 {
			t.Fatalf("Recover (handle %d) changed %s while its lease is held", i, jsonOf(t, changed))
		}
	}
	r, _ := l.Run(ctx, "r1")
	sameJSON(t, r, running, "leased run after Recover")
	evs, _ := l.Events(ctx, "r1", 0)
	if len(evs) != 3 {
		t.Fatalf("%d events after Recover, want 3", len(evs))
	}
}

// testRecoverDead: a second process takes the lease of a run, starts it and
// ends without releasing (exits, or is killed with SIGKILL). Recover fails
// the run, says why, and ends its log with run.failed.
func (s *suite) testRecoverDead(t *testing.T, kill bool) {
	l, ctx := s.open(t), ctxT(t)
	createRun(t, l, newRun("dead", "acme", t0))
	createRun(t, l, newRun("waiting", "acme", t0)) // pending, never leased
	mode := "exit"
	if kill {
		mode = "hold"
	}
	c := s.startChild(t, l, mode, "dead")
	if kill {
		must(t, c.cmd.Process.Signal(syscall.SIGKILL), "kill child")
		c.wait(t) // "signal: killed"
	} else if err := c.wait(t); err != nil {
		t.Fatalf("child: %v\n%s", err, c.out)
	}
	before, err := l.Run(ctx, "dead")
	must(t, err, "Run")
	if before.State != exportapi.StateRunning || before.Owner == "" {
		t.Fatalf("the child left the run %s owned by %q, want running with an owner", before.State, before.Owner)
	}
	evsBefore, err := l.Events(ctx, "dead", 0)
	must(t, err, "Events")
	if len(evsBefore) != 2 {
		t.Fatalf("child appended %d events, want 2", len(evsBefore))
	}

	changed, err := l.Recover(ctx)
	must(t, err, "Recover")
	if len(changed) != 1 || changed[0].ID != "dead" {
		t.Fatalf("Recover changed %s, want just run dead", jsonOf(t, changed))
	}
	r, err := l.Run(ctx, "dead")
	must(t, err, "Run")
	sameJSON(t, changed[0], r, "run Recover returned vs stored")
	if r.State != exportapi.StateFailed || r.ErrorType != string(xerr.Internal) || r.ErrorCode != "internal" || r.FinishedAt == nil {
		t.Fatalf("recovered run: state %s errorType %q errorCode %q finishedAt %v", r.State, r.ErrorType, r.ErrorCode, r.FinishedAt)
	}
	for _, want := range []string{before.Owner, "stopped before the run finished", "killed or crashed", "stella export run submit"} {
		if !strings.Contains(r.ErrorMessage, want) {
			t.Fatalf("message %q does not say %q", r.ErrorMessage, want)
		}
	}
	if r.StartedAt == nil || !r.StartedAt.Equal(*before.StartedAt) || r.Tenant != before.Tenant {
		t.Fatalf("Recover changed more than the outcome: %s", jsonOf(t, r))
	}

	evs, err := l.Events(ctx, "dead", 0)
	must(t, err, "Events")
	checkSeqs(t, evs, 1, "log of a recovered run")
	if len(evs) != 3 {
		t.Fatalf("log of a recovered run: %s", jsonOf(t, evs))
	}
	sameJSON(t, evs[:2], evsBefore, "events written by the dead process")
	last := evs[2]
	if last.Type != exportapi.EventFailed || last.ErrorCode != "internal" || last.State != exportapi.StateFailed || last.Message != r.ErrorMessage {
		t.Fatalf("last event %s, want run.failed with the run's message", jsonOf(t, last))
	}

	w, _ := l.Run(ctx, "waiting")
	if w.State != exportapi.StatePending {
		t.Fatalf("a never-leased pending run became %s", w.State)
	}
	changed, err = l.Recover(ctx)
	must(t, err, "Recover again")
	if len(changed) != 0 {
		t.Fatalf("second Recover changed %s", jsonOf(t, changed))
	}
	ev, err := l.AppendEvent(ctx, exportapi.Event{RunID: "dead", Type: "run.note", Time: t0})
	must(t, err, "AppendEvent to a recovered run")
	if ev.Seq != 4 {
		t.Fatalf("seq %d, want 4", ev.Seq)
	}
	_, err = l.TakeLease(ctx, "dead", "")
	wantCode(t, err, xerr.InvalidInput, "TakeLease of a recovered run")
}

// testRecoverLiveProcess: a lease held by a live second process is left
// alone; once that process releases it, the run is no longer leased.
func (s *suite) testRecoverLiveProcess(t *testing.T) {
	l, ctx := s.open(t), ctxT(t)
	createRun(t, l, newRun("live", "acme", t0))
	c := s.startChild(t, l, "hold", "live")
	held, _ := l.Run(ctx, "live")
	for i := 0; i < 3; i++ {
		changed, err := l.Recover(ctx)
		must(t, err, "Recover")
		if len(changed) != 0 {
			t.Fatalf("Recover changed %s while its holder is alive", jsonOf(t, changed))
		}
		time.Sleep(10 * time.Millisecond)
	}
	r, _ := l.Run(ctx, "live")
	sameJSON(t, r, held, "run held by a live process, after Recover")
	_, err := l.TakeLease(ctx, "live", "")
	wantCode(t, err, xerr.InvalidInput, "TakeLease of a run another process holds")

	c.stdin.Close() // the child releases and exits
	if err := c.wait(t); err != nil {
		t.Fatalf("child: %v\n%s", err, c.out)
	}
	r, _ = l.Run(ctx, "live")
	if r.Owner != "" || r.State != exportapi.StateRunning {
		t.Fatalf("after the holder released: state %s owner %q, want running with no owner", r.State, r.Owner)
	}
	changed, err := l.Recover(ctx)
	must(t, err, "Recover after release")
	if len(changed) != 0 {
		t.Fatalf("Recover changed a released run: %s", jsonOf(t, changed))
	}
	lease, err := l.TakeLease(ctx, "live", "")
	must(t, err, "TakeLease after the other process released")
	must(t, lease.Release(), "Release")
}

// testRecoverOthers: runs that are not leased, or finished, are never touched.
func (s *suite) testRecoverOthers(t *testing.T) {
	l, ctx := s.open(t), ctxT(t)
	createRun(t, l, newRun("pending", "acme", t0))
	createRun(t, l, newRun("running-unowned", "acme", t0))
	setState(t, l, "running-unowned", exportapi.StateRunning)
	createRun(t, l, newRun("finished", "acme", t0))
	lease, err := l.TakeLease(ctx, "finished", "")
	must(t, err, "TakeLease")
	setState(t, l, "finished", exportapi.StateRunning)
	setState(t, l, "finished", exportapi.StateSucceeded)
	must(t, lease.Release(), "Release")
	createRun(t, l, newRun("released", "acme", t0))
	lease, err = l.TakeLease(ctx, "released", "")
	must(t, err, "TakeLease")
	must(t, lease.Release(), "Release")

	before := map[string]exportapi.Run{}
	for _, id := range []string{"pending", "running-unowned", "finished", "released"} {
		before[id], _ = l.Run(ctx, id)
	}
	changed, err := l.Recover(ctx)
	must(t, err, "Recover")
	if len(changed) != 0 {
		t.Fatalf("Recover changed %s", jsonOf(t, changed))
	}
	for id, want := range before {
		got, _ := l.Run(ctx, id)
		sameJSON(t, got, want, "run "+id+" after Recover")
	}
}
