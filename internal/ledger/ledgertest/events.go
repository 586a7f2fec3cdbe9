package ledgertest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stellaops/stella/internal/xerr"
	"github.com/stellaops/stella/pkg/exportapi"
)

func (s *suite) testEventsAppend(t *testing.T) {
	l, ctx := s.open(t), ctxT(t)
	createRun(t, l, newRun("r1", "acme", t0))
	createRun(t, l, newRun("r2", "acme", t0))

	evs, err := l.Events(ctx, "r1", 0)
	must(t, err, "Events of a run without events")
	if len(evs) != 0 {
		t.Fatalf("%d events before any was appended", len(evs))
	}

	art := exportapi.Artifact{Name: "bundle", Path: "/x/b.tar.zst", Bytes: 9, SHA256: "ff", MediaType: "application/zstd"}
	in := []exportapi.Event{
		{RunID: "r1", Type: exportapi.EventStarted, State: exportapi.StateRunning, Time: t0.Add(time.Second)},
		{RunID: "r1", Type: exportapi.EventProgress, Phase: "read", ItemsDone: 5, ItemsTotal: 10, Bytes: 500, Time: t0.Add(2 * time.Second)},
		{RunID: "r1", Type: exportapi.EventArtifact, Artifact: &art, Time: t0.Add(3 * time.Second)},
		{RunID: "r1", Type: "run.custom", Message: "a type this version does not know", Time: time.Time{}},
	}
	for i, ev := range in {
		ev.Seq = 99 // assigned by the ledger, not taken from the caller
		got, err := l.AppendEvent(ctx, ev)
		must(t, err, "AppendEvent")
		if got.Seq != int64(i+1) {
			t.Fatalf("event %d got seq %d, want %d", i, got.Seq, i+1)
		}
		in[i].Seq = got.Seq
		sameJSON(t, got, in[i], "returned event")
	}
	// Another run's log is separate and starts at 1.
	o, err := l.AppendEvent(ctx, exportapi.Event{RunID: "r2", Type: exportapi.EventStarted, Time: t0})
	must(t, err, "AppendEvent r2")
	if o.Seq != 1 {
		t.Fatalf("first event of r2 has seq %d", o.Seq)
	}

	evs, err = l.Events(ctx, "r1", 0)
	must(t, err, "Events")
	sameJSON(t, evs, in, "events read back (times kept as given)")
	for after := int64(0); after <= 5; after++ {
		evs, err := l.Events(ctx, "r1", after)
		must(t, err, "Events after")
		want := max(0, 4-int(after))
		if len(evs) != want || (want > 0 && evs[0].Seq != after+1) {
			t.Fatalf("Events after %d: %d events starting %v, want %d starting %d", after, len(evs), evs, want, after+1)
		}
	}
	evs, err = l.Events(ctx, "r1", -5)
	must(t, err, "Events after a negative seq")
	if len(evs) != 4 {
		t.Fatalf("Events after -5: %d events, want all 4", len(evs))
	}
}

func (s *suite) testEventsInvalid(t *testing.T) {
	l, ctx := s.open(t), ctxT(t)
	createRun(t, l, newRun("r1", "acme", t0))
	_, err := l.AppendEvent(ctx, exportapi.Event{RunID: "missing", Type: exportapi.EventProgress})
	wantCode(t, err, xerr.RunNotFound, "AppendEvent to a missing run")
	_, err = l.Events(ctx, "missing", 0)
	wantCode(t, err, xerr.RunNotFound, "Events of a missing run")
	_, err = l.AppendEvent(ctx, exportapi.Event{RunID: "r1"})
	wantCode(t, err, xerr.InvalidInput, "AppendEvent without a type")
	_, err = l.AppendEvent(ctx, exportapi.Event{RunID: "../r1", Type: exportapi.EventProgress})
	wantCode(t, err, xerr.InvalidInput, "AppendEvent with a malformed run id")
	_, err = l.Events(ctx, "../r1", 0)
	wantCode(t, err, xerr.RunNotFound, "Events with a malformed run id")
	// The run that did get created later still starts at seq 1.
	createRun(t, l, newRun("missing", "acme", t0))
	ev, err := l.AppendEvent(ctx, exportapi.Event{RunID: "missing", Type: exportapi.EventProgress})
	must(t, err, "AppendEvent")
	if ev.Seq != 1 {
		t.Fatalf("seq %d, want 1", ev.Seq)
	}
}

// testEventsConcurrent: goroutines append to one log at once; seqs are
// unique and contiguous, and the log is in seq order.
func (s *suite) testEventsConcurrent(t *testing.T) {
	l, ctx := s.open(t), ctxT(t)
	createRun(t, l, newRun("r1", "acme", t0))
	const workers, each = 4, 25
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[int64]bool{}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				ev, err := l.AppendEvent(ctx, progress("r1", w*each+i))
				if err != nil {
					t.Errorf("AppendEvent: %v", err)
					return
				}
				mu.Lock()
				if seen[ev.Seq] {
					t.Errorf("seq %d handed out twice", ev.Seq)
				}
				seen[ev.Seq] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	evs, err := l.Events(ctx, "r1", 0)
	must(t, err, "Events")
	if len(evs) != workers*each {
		t.Fatalf("%d events, want %d", len(evs), workers*each)
	}
	checkSeqs(t, evs, 1, "concurrent appends")
}

// testEventsFold: a run reaching a terminal state keeps the same log, and
// events appended after that continue its seqs.
func (s *suite) testEventsFold(t *testing.T) {
	l, ctx := s.open(t), ctxT(t)
	for _, st := range []exportapi.RunState{exportapi.StateSucceeded, exportapi.StateFailed, exportapi.StateCancelled} {
		id := "run-" + string(st)
		createRun(t, l, newRun(id, "acme", t0))
		setState(t, l, id, exportapi.StateRunning)
		appendN(t, l, id, 0, 10)
		before, err := l.Events(ctx, id, 0)
		must(t, err, "Events before the end")
		tail, err := l.Events(ctx, id, 7)
		must(t, err, "Events after 7 before the end")

		setState(t, l, id, st)
		after, err := l.Events(ctx, id, 0)
		must(t, err, "Events after the end")
		sameJSON(t, after, before, "events of a "+string(st)+" run, before and after it ended")
		tail2, err := l.Events(ctx, id, 7)
		must(t, err, "Events after 7 after the end")
		sameJSON(t, tail2, tail, "events after seq 7, before and after the run ended")

		typ := map[exportapi.RunState]string{exportapi.StateSucceeded: exportapi.EventCompleted,
			exportapi.StateFailed: exportapi.EventFailed, exportapi.StateCancelled: exportapi.EventCancelled}[st]
		last, err := l.AppendEvent(ctx, exportapi.Event{RunID: id, Type: typ, State: st, Time: t0.Add(time.Hour)})
		must(t, err, "AppendEvent after the end")
		if last.Seq != 11 {
			t.Fatalf("event appended after the end has seq %d, want 11", last.Seq)
		}
		all, err := l.Events(ctx, id, 0)
		must(t, err, "Events")
		if len(all) != 11 || all[10].Type != typ {
			t.Fatalf("log after the end: %s", jsonOf(t, all))
		}
		checkSeqs(t, all, 1, "log of a "+string(st)+" run")
		got, err := l.Events(ctx, id, 10)
		must(t, err, "Events after 10")
		if len(got) != 1 || got[0].Seq != 11 {
			t.Fatalf("Events after 10 = %s", jsonOf(t, got))
		}
		// Expiry keeps the log.
		_, err = l.UpdateRun(ctx, id, func(r *exportapi.Run) error { r.State = exportapi.StateExpired; return nil })
		must(t, err, "expire")
		exp, err := l.Events(ctx, id, 0)
		must(t, err, "Events of an expired run")
		sameJSON(t, exp, all, "log of an expired run")
	}
	// A run created already finished (an import) has an empty log that grows from 1.
	r := newRun("imported", "acme", t0)
	r.State = exportapi.StateSucceeded
	createRun(t, l, r)
	ev, err := l.AppendEvent(ctx, exportapi.Event{RunID: "imported", Type: exportapi.EventCompleted})
	must(t, err, "AppendEvent to an imported run")
	if ev.Seq != 1 {
		t.Fatalf("seq %d, want 1", ev.Seq)
	}
}

// testEventsFoldRace: readers poll Events while the run is written and
// ends; every answer is a gap-free prefix of the final log, and no reader
// ever sees fewer events than it saw before.
func (s *suite) testEventsFoldRace(t *testing.T) {
	l, ctx := s.open(t), ctxT(t)
	for round := 0; round < 3; round++ {
		id := fmt.Sprintf("race-%d", round)
		createRun(t, l, newRun(id, "acme", t0))
		setState(t, l, id, exportapi.StateRunning)
		appendN(t, l, id, 0, 20)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := 0; w < 3; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				seen := 0
				for done := false; !done; {
					select {
					case <-stop:
						done = true // one last read after the end
					default:
					}
					evs, err := l.Events(ctx, id, 0)
					if err != nil {
						t.Errorf("Events while the run ends: %v", err)
						return
					}
					for i, ev := range evs {
						if ev.Seq != int64(i+1) {
							t.Errorf("reader saw seq %d at position %d", ev.Seq, i)
							return
						}
					}
					if len(evs) < seen {
						t.Errorf("reader saw %d events, then %d", seen, len(evs))
						return
					}
					seen = len(evs)
					// And a reader that resumes after what it has seen.
					if seen > 5 {
						tail, err := l.Events(ctx, id, int64(seen-5))
						if err != nil || len(tail) < 5 || tail[0].Seq != int64(seen-4) {
							t.Errorf("Events after %d: %d events, err %v", seen-5, len(tail), err)
							return
						}
					}
				}
				if seen != 31 {
					t.Errorf("reader's last read saw %d events, want 31", seen)
				}
			}()
		}
		appendN(t, l, id, 20, 10)
		setState(t, l, id, exportapi.StateSucceeded)
		_, err := l.AppendEvent(ctx, exportapi.Event{RunID: id, Type: exportapi.EventCompleted, State: exportapi.StateSucceeded, Time: t0})
		must(t, err, "AppendEvent completed")
		close(stop)
		wg.Wait()
	}
}

// testEventsSecondHandle: a second handle on the same ledger (as a restarted
// process has) continues the seqs, also when the two alternate.
func (s *suite) testEventsSecondHandle(t *testing.T) {
	l, ctx := s.open(t), ctxT(t)
	sh := sharer(t, l)
	createRun(t, l, newRun("r1", "acme", t0))
	appendN(t, l, "r1", 0, 5)
	l2, err := sh.OpenShared(sh.ShareKey())
	must(t, err, "OpenShared")
	defer l2.Close()
	for i := 0; i < 6; i++ {
		lx := l
		if i%2 == 0 {
			lx = l2
		}
		ev, err := lx.AppendEvent(ctx, progress("r1", 5+i))
		must(t, err, "AppendEvent alternating")
		if ev.Seq != int64(6+i) {
			t.Fatalf("alternating append %d got seq %d, want %d", i, ev.Seq, 6+i)
		}
	}
	evs, err := l2.Events(ctx, "r1", 0)
	must(t, err, "Events")
	if len(evs) != 11 {
		t.Fatalf("%d events, want 11", len(evs))
	}
	checkSeqs(t, evs, 1, "log written by two handles")
	// The run ends through one handle; the other appends after it.
	setState(t, l2, "r1", exportapi.StateFailed)
	ev, err := l.AppendEvent(ctx, exportapi.Event{RunID: "r1", Type: exportapi.EventFailed, Time: t0})
	must(t, err, "AppendEvent after the other handle ended the run")
	if ev.Seq != 12 {
		t.Fatalf("seq %d, want 12", ev.Seq)
	}
	evs, err = l.Events(ctx, "r1", 0)
	must(t, err, "Events")
	checkSeqs(t, evs, 1, "final log")
	if len(evs) != 12 {
		t.Fatalf("%d events, want 12", len(evs))
	}
}
