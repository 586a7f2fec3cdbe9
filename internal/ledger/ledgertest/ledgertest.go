// Package ledgertest is the conformance suite every ledger.Ledger backend
// passes (restic-style: one suite, several backends). A backend's test calls
//
//	func TestConformance(t *testing.T) {
//		ledgertest.Run(t, func(t *testing.T) ledger.Ledger { ... a new, empty ledger ... })
//	}
//
// open must return a new, empty ledger private to t, and close it in a
// t.Cleanup. The ledger must also implement Sharer: the lease and recovery
// tests open the same ledger from a second process (a re-exec of the test
// binary that runs the same test function; Run notices and plays the child
// instead of running the suite). That child may be killed with SIGKILL, so
// it must not own anything the parent needs cleaned up; its TMPDIR points
// inside the parent's t.TempDir.
package ledgertest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stellaops/stella/internal/ledger"
	"github.com/stellaops/stella/internal/xerr"
	"github.com/stellaops/stella/pkg/exportapi"
)

// Sharer is implemented by ledgers that several processes (or several
// handles of one process) use at once.
type Sharer interface {
	// ShareKey returns what OpenShared needs to open this same ledger
	// again (bolt: its path; PostgreSQL: a DSN and schema).
	ShareKey() string
	// OpenShared opens the ledger a ShareKey named; it is called on any
	// ledger of the same backend, possibly in another process.
	OpenShared(key string) (ledger.Ledger, error)
}

type suite struct {
	open func(t *testing.T) ledger.Ledger
	root string // name of the test that called Run, to re-exec it
}

// Run runs the conformance suite against the ledgers open returns.
func Run(t *testing.T, open func(t *testing.T) ledger.Ledger) {
	if mode := os.Getenv(envChild); mode != "" {
		childMain(t, open, mode)
		return
	}
	s := &suite{open: open, root: t.Name()}
	for _, c := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"Profiles/Revisions", s.testProfileRevisions},
		{"Profiles/Canonical", s.testProfileCanonical},
		{"Profiles/NotFound", s.testProfileNotFound},
		{"Profiles/List", s.testProfileList},
		{"Profiles/Archive", s.testProfileArchive},
		{"Profiles/Invalid", s.testProfileInvalid},
		{"Runs/CreateGet", s.testRunCreateGet},
		{"Runs/CreateInvalid", s.testRunCreateInvalid},
		{"Runs/Update", s.testRunUpdate},
		{"Runs/UpdateRefused", s.testRunUpdateRefused},
		{"Runs/TerminalStates", s.testRunTerminal},
		{"Runs/ConcurrentUpdate", s.testRunConcurrentUpdate},
		{"Runs/ListOrderAndFilters", s.testRunList},
		{"Runs/ListPaging", s.testRunPaging},
		{"Runs/ListDefaultLimit", s.testRunDefaultLimit},
		{"Runs/ListInvalid", s.testRunListInvalid},
		{"Events/Append", s.testEventsAppend},
		{"Events/Invalid", s.testEventsInvalid},
		{"Events/Concurrent", s.testEventsConcurrent},
		{"Events/Fold", s.testEventsFold},
		{"Events/FoldWhileReading", s.testEventsFoldRace},
		{"Events/SecondHandle", s.testEventsSecondHandle},
		{"Leases/TakeRelease", s.testLease},
		{"Leases/Invalid", s.testLeaseInvalid},
		{"Recover/LiveLeaseHere", s.testRecoverLiveHere},
		{"Recover/DeadHolderExited", func(t *testing.T) { s.testRecoverDead(t, false) }},
		{"Recover/DeadHolderKilled", func(t *testing.T) { s.testRecoverDead(t, true) }},
		{"Recover/LiveHolderProcess", s.testRecoverLiveProcess},
		{"Recover/LeavesOthersAlone", s.testRecoverOthers},
	} {
		t.Run(c.name, c.fn)
	}
}

// ---- helpers ----------------------------------------------------------

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func wantCode(t *testing.T, err error, code xerr.Code, what string) *xerr.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want %s", what, code)
	}
	if !xerr.Is(err, code) {
		t.Fatalf("%s: error %v (code %s), want %s", what, err, xerr.CodeOf(err), code)
	}
	return xerr.As(err)
}

func must(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	must(t, err, "marshal")
	return string(b)
}

func sameJSON(t *testing.T, got, want any, what string) {
	t.Helper()
	if g, w := jsonOf(t, got), jsonOf(t, want); g != w {
		t.Fatalf("%s:\n got %s\nwant %s", what, g, w)
	}
}

func newProfile(tenant, name string) exportapi.Profile {
	return exportapi.Profile{
		APIVersion: exportapi.ProfileAPIVersion, Kind: exportapi.ProfileKind,
		Metadata: exportapi.ProfileMetadata{Tenant: tenant, Name: name, Labels: map[string]string{"team": "vuln"}},
		Spec: exportapi.ProfileSpec{
			Kind: "json", Variant: "raw", Include: []string{"advisories", "vex"},
			PolicySnapshotMode: "none", Compression: exportapi.Compression{Codec: "zstd", Level: 3},
		},
	}
}

func newRun(id, tenant string, at time.Time) exportapi.Run {
	return exportapi.Run{
		ID: id, Tenant: tenant, State: exportapi.StatePending, CreatedAt: at, Priority: "normal",
		Profile:   exportapi.ProfileRef{Kind: "json", Variant: "raw", Name: "nightly", Revision: "r1"},
		Selectors: exportapi.Selectors{Tenant: tenant, Ecosystems: []string{"Go"}},
		Sources:   []exportapi.SourceSpec{{Name: "osv", Path: "/srv/osv"}},
	}
}

func createRun(t *testing.T, l ledger.Ledger, r exportapi.Run) exportapi.Run {
	t.Helper()
	must(t, l.CreateRun(ctxT(t), r), "CreateRun "+r.ID)
	return r
}

func progress(id string, i int) exportapi.Event {
	return exportapi.Event{RunID: id, Type: exportapi.EventProgress, Phase: "read",
		ItemsDone: int64(i), ItemsTotal: 1000, Bytes: int64(i) * 100, Time: t0.Add(time.Duration(i) * time.Millisecond)}
}

func appendN(t *testing.T, l ledger.Ledger, id string, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if _, err := l.AppendEvent(ctxT(t), progress(id, i)); err != nil {
			t.Fatalf("AppendEvent %d: %v", i, err)
		}
	}
}

// checkSeqs fails unless evs have seqs first, first+1, ...
func checkSeqs(t *testing.T, evs []exportapi.Event, first int64, what string) {
	t.Helper()
	for i, ev := range evs {
		if ev.Seq != first+int64(i) {
			t.Fatalf("%s: event %d has seq %d, want %d (seqs must be contiguous)", what, i, ev.Seq, first+int64(i))
		}
	}
}

func setState(t *testing.T, l ledger.Ledger, id string, s exportapi.RunState) exportapi.Run {
	t.Helper()
	r, err := l.UpdateRun(ctxT(t), id, func(r *exportapi.Run) error {
		r.State = s
		if s.Terminal() && r.FinishedAt == nil {
			f := t0.Add(time.Hour)
			r.FinishedAt = &f
		}
		return nil
	})
	must(t, err, "UpdateRun to "+string(s))
	return r
}

func sharer(t *testing.T, l ledger.Ledger) Sharer {
	t.Helper()
	sh, ok := l.(Sharer)
	if !ok {
		t.Fatalf("%T does not implement ledgertest.Sharer: every ledger backend is used by several processes at once, "+
			"and the lease and recovery tests need to open it from a second process", l)
	}
	return sh
}

// ---- the child process --------------------------------------------------

const (
	envChild = "STELLA_LEDGERTEST_CHILD" // "exit" | "hold"
	envKey   = "STELLA_LEDGERTEST_KEY"
	envRun   = "STELLA_LEDGERTEST_RUN"

	msgLeased = "LEDGERTEST-LEASED"
)

// childMain is the second process: it takes the lease of a run, starts it
// and appends an event, says so on stdout, then exits at once without
// releasing ("exit"), or waits for stdin to close and releases ("hold"; the
// parent may kill it instead).
func childMain(t *testing.T, open func(*testing.T) ledger.Ledger, mode string) {
	fail := func(format string, a ...any) {
		fmt.Printf("LEDGERTEST-ERROR "+format+"\n", a...)
		os.Exit(2)
	}
	l0 := open(t)
	sh, ok := l0.(Sharer)
	if !ok {
		fail("%T does not implement ledgertest.Sharer", l0)
	}
	l, err := sh.OpenShared(os.Getenv(envKey))
	if err != nil {
		fail("OpenShared: %v", err)
	}
	ctx := context.Background()
	id := os.Getenv(envRun)
	lease, err := l.TakeLease(ctx, id, "")
	if err != nil {
		fail("TakeLease: %v", err)
	}
	started := t0.Add(time.Minute)
	if _, err := l.UpdateRun(ctx, id, func(r *exportapi.Run) error {
		r.State, r.StartedAt = exportapi.StateRunning, &started
		return nil
	}); err != nil {
		fail("UpdateRun: %v", err)
	}
	if _, err := l.AppendEvent(ctx, exportapi.Event{RunID: id, Type: exportapi.EventStarted, State: exportapi.StateRunning, Time: started}); err != nil {
		fail("AppendEvent: %v", err)
	}
	if _, err := l.AppendEvent(ctx, progress(id, 1)); err != nil {
		fail("AppendEvent: %v", err)
	}
	fmt.Println(msgLeased)
	switch mode {
	case "exit":
		os.Exit(0) // no Release, no Close: the process just ends
	case "hold":
		io.Copy(io.Discard, os.Stdin)
		if err := lease.Release(); err != nil {
			fail("Release: %v", err)
		}
		l.Close()
	default:
		fail("unknown mode %q", mode)
	}
}

type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *syncBuf
	done  chan error
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runPattern is the -test.run pattern that selects exactly the named test.
func runPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}

// startChild re-executes the test binary as a second process that leases
// run id of l, and waits until it holds the lease.
func (s *suite) startChild(t *testing.T, l ledger.Ledger, mode, id string) *child {
	t.Helper()
	sh := sharer(t, l)
	cmd := exec.Command(os.Args[0], "-test.run="+runPattern(s.root), "-test.count=1", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), envChild+"="+mode, envKey+"="+sh.ShareKey(), envRun+"="+id, "TMPDIR="+t.TempDir())
	stdin, err := cmd.StdinPipe()
	must(t, err, "stdin pipe")
	stdout, err := cmd.StdoutPipe()
	must(t, err, "stdout pipe")
	c := &child{cmd: cmd, stdin: stdin, out: &syncBuf{}, done: make(chan error, 1)}
	cmd.Stderr = c.out
	must(t, cmd.Start(), "start child")
	leased := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		ok := false
		for sc.Scan() {
			fmt.Fprintln(c.out, sc.Text())
			if sc.Text() == msgLeased && !ok {
				ok = true
				leased <- true
			}
		}
		if !ok {
			leased <- false
		}
		c.done <- cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() }) // harmless once it has ended
	select {
	case ok := <-leased:
		if !ok {
			t.Fatalf("child process ended before it held the lease:\n%s", c.out)
		}
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("child process did not take the lease within 2m:\n%s", c.out)
	}
	return c
}

// wait waits for the child to end and returns its error (nil for exit 0).
func (c *child) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-c.done:
		return err
	case <-time.After(2 * time.Minute):
		c.cmd.Process.Kill()
		t.Fatalf("child process did not end:\n%s", c.out)
	}
	return nil
}
