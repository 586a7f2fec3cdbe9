package bolt_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stellaops/stella/internal/ledger"
	"github.com/stellaops/stella/internal/ledger/bolt"
	"github.com/stellaops/stella/pkg/exportapi"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	hammerWorkers = 4
	hammerRounds  = 40 // per worker; each round is 6 operations
)

// hammerResult is what one process did.
type hammerResult struct {
	increments, appends int
	errs                []error
	slowest             time.Duration
	slowestOp           int
	ops                 int
}

// hammer runs workers that mix every kind of read and write on the shared
// run "shared" and on runs of their own, as `run watch`, `run list`,
// `run cancel` and an executing run do at once. Every error is kept.
func hammer(l ledger.Ledger, who string) hammerResult {
	ctx := context.Background()
	var mu sync.Mutex
	var res hammerResult
	fail := func(format string, a ...any) {
		mu.Lock()
		res.errs = append(res.errs, fmt.Errorf(who+": "+format, a...))
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for w := 0; w < hammerWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var inc, app, ops int
			var slowest time.Duration
			slowestOp := 0
			for i := 0; i < hammerRounds; i++ {
				for op := 0; op < 6; op++ {
					start := time.Now()
					switch op {
					case 0: // an executing run's counter
						_, err := l.UpdateRun(ctx, "shared", func(r *exportapi.Run) error {
							if r.Counts == nil {
								r.Counts = map[string]int64{}
							}
							r.Counts[who]++
							return nil
						})
						if err != nil {
							fail("UpdateRun: %v", err)
						} else {
							inc++
						}
					case 1: // run list
						if _, _, err := l.Runs(ctx, ledger.RunFilter{Tenant: "acme", Limit: 20}); err != nil {
							fail("Runs: %v", err)
						}
					case 2: // progress ticks
						if _, err := l.AppendEvent(ctx, exportapi.Event{RunID: "shared", Type: exportapi.EventProgress,
							Message: who, ItemsDone: int64(i), Time: t0}); err != nil {
							fail("AppendEvent: %v", err)
						} else {
							app++
						}
					case 3: // run watch
						evs, err := l.Events(ctx, "shared", 0)
						if err != nil {
							fail("Events: %v", err)
						}
						for k, ev := range evs {
							if ev.Seq != int64(k+1) {
								fail("Events: seq %d at position %d", ev.Seq, k)
								break
							}
						}
					case 4: // a short run of our own, start to end (the end folds its log)
						id := fmt.Sprintf("%s-%d-%d", who, w, i)
						r := exportapi.Run{ID: id, Tenant: "acme", CreatedAt: t0.Add(time.Duration(i) * time.Second),
							Profile: exportapi.ProfileRef{Name: "nightly"}}
						if err := l.CreateRun(ctx, r); err != nil {
							fail("CreateRun: %v", err)
							continue
						}
						if _, err := l.AppendEvent(ctx, exportapi.Event{RunID: id, Type: exportapi.EventStarted, Time: t0}); err != nil {
							fail("AppendEvent own: %v", err)
						}
						if _, err := l.UpdateRun(ctx, id, func(r *exportapi.Run) error {
							r.State = exportapi.StateSucceeded
							return nil
						}); err != nil {
							fail("UpdateRun own: %v", err)
						}
						if evs, err := l.Events(ctx, id, 0); err != nil || len(evs) != 1 {
							fail("Events own: %d events, %v", len(evs), err)
						}
					case 5: // run show, profile show, a cancel request
						if _, err := l.Run(ctx, "shared"); err != nil {
							fail("Run: %v", err)
						}
						if _, err := l.Profile(ctx, "acme", "nightly", ""); err != nil {
							fail("Profile: %v", err)
						}
						if _, err := l.Recover(ctx); err != nil {
							fail("Recover: %v", err)
						}
					}
					ops++
					if d := time.Since(start); d > slowest {
						slowest, slowestOp = d, op
					}
				}
			}
			mu.Lock()
			res.increments += inc
			res.appends += app
			res.ops += ops
			if slowest > res.slowest {
				res.slowest, res.slowestOp = slowest, slowestOp
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return res
}

// TestMultiProcessHammer: goroutines of this process and of a second
// process read and write one ledger at once. No operation may fail (lock
// waits are retried, never reported), no increment may be lost, and the
// shared event log stays gap-free.
func TestMultiProcessHammer(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process hammer")
	}
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	if err := l.CreateRun(ctx, exportapi.Run{ID: "shared", Tenant: "acme", State: exportapi.StateRunning,
		CreatedAt: t0, Profile: exportapi.ProfileRef{Name: "nightly"}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.SaveProfile(ctx, exportapi.Profile{Metadata: exportapi.ProfileMetadata{Tenant: "acme", Name: "nightly"},
		Spec: exportapi.ProfileSpec{Kind: "json", Variant: "raw"}}); err != nil {
		t.Fatal(err)
	}

	h := startHelper(t, "hammer", "STELLA_BOLT_PATH="+path)
	h.waitLine(t, "ready")
	start := time.Now()
	if _, err := h.stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	mine := hammer(l, "parent")
	line := h.waitLine(t, "result ")
	if err := h.wait(t); err != nil {
		t.Fatalf("helper process failed: %v\n%s", err, h.output())
	}
	elapsed := time.Since(start)
	var theirInc, theirApp, theirOps int
	var theirSlowest time.Duration
	if _, err := fmt.Sscanf(line, "result %d %d %d %d", &theirInc, &theirApp, &theirOps, &theirSlowest); err != nil {
		t.Fatalf("helper result %q: %v", line, err)
	}
	for _, err := range mine.errs {
		t.Error(err)
	}
	r, err := l.Run(ctx, "shared")
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Counts["parent"]; got != int64(mine.increments) || mine.increments != hammerWorkers*hammerRounds {
		t.Errorf("parent counter %d, made %d increments of %d", got, mine.increments, hammerWorkers*hammerRounds)
	}
	if got := r.Counts["child"]; got != int64(theirInc) || theirInc != hammerWorkers*hammerRounds {
		t.Errorf("child counter %d, it made %d increments of %d", got, theirInc, hammerWorkers*hammerRounds)
	}
	evs, err := l.Events(ctx, "shared", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != mine.appends+theirApp {
		t.Errorf("shared log has %d events, the processes appended %d", len(evs), mine.appends+theirApp)
	}
	for k, ev := range evs {
		if ev.Seq != int64(k+1) {
			t.Fatalf("shared log: seq %d at position %d", ev.Seq, k)
		}
	}
	all, _, err := l.Runs(ctx, ledger.RunFilter{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	if want := 1 + 2*hammerWorkers*hammerRounds; len(all) != want {
		t.Errorf("%d runs, want %d", len(all), want)
	}
	t.Logf("%d + %d operations from 2 processes x %d goroutines in %s; slowest operation %s (this process, op %d), %s (the other)",
		mine.ops, theirOps, hammerWorkers, elapsed.Round(time.Millisecond), mine.slowest.Round(time.Millisecond), mine.slowestOp, theirSlowest.Round(time.Millisecond))
}

func helperHammer(t *testing.T) {
	l, err := bolt.Open(os.Getenv("STELLA_BOLT_PATH"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("ready")
	buf := make([]byte, 3)
	if _, err := os.Stdin.Read(buf); err != nil {
		t.Fatal(err)
	}
	res := hammer(l, "child")
	for _, err := range res.errs {
		t.Error(err)
	}
	fmt.Println("result", res.increments, res.appends, res.ops, strconv.FormatInt(int64(res.slowest), 10))
}
