package ledgertest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stellaops/stella/internal/ledger"
	"github.com/stellaops/stella/internal/xerr"
	"github.com/stellaops/stella/pkg/exportapi"
)

func (s *suite) testRunCreateGet(t *testing.T) {
	l, ctx := s.open(t), ctxT(t)
	started, finished := t0.Add(time.Minute), t0.Add(2*time.Minute)
	full := exportapi.Run{
		ID: "20260301T120000Z-0a1b2c3d4e", Tenant: "acme", State: exportapi.StatePending, CreatedAt: t0.Add(123456 * time.Microsecond),
		AllowEmpty: true, SkipInvalid: true, BaseRunID: "base-1", Priority: "catch-up", ExportID: "acme-nightly-0123",
		Profile:   exportapi.ProfileRef{Kind: "mirror", Variant: "delta", Name: "nightly", Revision: "r2"},
		Selectors: exportapi.Selectors{Tenant: "acme", Ecosystems: []string{"Go", "npm"}, ModifiedSince: "2026-01-01T00:00:00Z"},
		Sources:   []exportapi.SourceSpec{{Name: "osv", Path: "/srv/osv"}},
		Push:      []string{"oci://registry.local/mirror:1"},
		Counts:    map[string]int64{"advisories": 10},
		Extra:     map[string]string{"k": "v"},
		Artifacts: []exportapi.Artifact{{Name: "bundle", Path: "/data/runs/x/bundle.tar.zst", Bytes: 42, SHA256: strings.Repeat("ab", 32), MediaType: "application/zstd"}},
		StartedAt: &started, FinishedAt: &finished, Host: "builder", CancelRequested: true,
		ErrorCode: "", ErrorMessage: "", ErrorType: "",
	}
	createRun(t, l, full)
	got, err := l.Run(ctx, full.ID)
	must(t, err, "Run")
	sameJSON(t, got, full, "run read back")

	err = l.CreateRun(ctx, full)
	e := wantCode(t, err, xerr.InvalidInput, "CreateRun of an existing id")
	if !strings.Contains(e.Message, full.ID) {
		t.Fatalf("message %q should name the run", e.Message)
	}

	// Defaults: pending, normal priority, a creation time.
	bare := exportapi.Run{ID: "bare", Tenant: "acme", Profile: exportapi.ProfileRef{Name: "nightly"}}
	must(t, l.CreateRun(ctx, bare), "CreateRun with defaults")
	got, err = l.Run(ctx, "bare")
	must(t, err, "Run bare")
	if got.State != exportapi.StatePending || got.Priority != "normal" || got.CreatedAt.IsZero() {
		t.Fatalf("defaults: state %q priority %q createdAt %v, want pending, normal, set", got.State, got.Priority, got.CreatedAt)
	}

	_, err = l.Run(ctx, "missing")
	wantCode(t, err, xerr.RunNotFound, "Run of a missing id")
	_, err = l.Run(ctx, "../../etc/passwd")
	wantCode(t, err, xerr.RunNotFound, "Run of a malformed id")
}

func (s *suite) testRunCreateInvalid(t *testing.T) {
	l, ctx := s.open(t), ctxT(t)
	for _, c := range []struct {
		why string
		mod func(*exportapi.Run)
	}{
		{"no id", func(r *exportapi.Run) { r.ID = "" }},
		{"a slash in the id", func(r *exportapi.Run) { r.ID = "a/b" }},
		{"a dot-dot id", func(r *exportapi.Run) { r.ID = ".." }},
		{"a leading dash", func(r *exportapi.Run) { r.ID = "-x" }},
		{"an id too long", func(r *exportapi.Run) { r.ID = strings.Repeat("x", 129) }},
		{"no tenant", func(r *exportapi.Run) { r.Tenant = "" }},
		{"a bad tenant", func(r *exportapi.Run) { r.Tenant = "Acme Corp" }},
		{"an unknown state", func(r *exportapi.Run) { r.State = "paused" }},
		{"an unknown priority", func(r *exportapi.Run) { r.Priority = "urgent" }},
		{"two artifacts of one name", func(r *exportapi.Run) {
			r.Artifacts = []exportapi.Artifact{{Name: "a"}, {Name: "a"}}
		}},
		{"an artifact without a name", func(r *exportapi.Run) { r.Artifacts = []exportapi.Artifact{{Path: "/x"}} }},
	} {
		r := newRun("valid-run", "acme", t0)
		c.mod(&r)
		wantCode(t, l.CreateRun(ctx, r), xerr.InvalidInput, "CreateRun with "+c.why)
	}
	runs, _, err := l.Runs(ctx, ledger.RunFilter{})
	must(t, err, "Runs")
	if len(runs) != 0 {
		t.Fatalf("refused runs were stored: %s", jsonOf(t, runs))
	}
}

func (s *suite) testRunUpdate(t *testing.T) {
	l, ctx := s.open(t), ctxT(t)
	createRun(t, l, newRun("r1", "acme", t0))
	started := t0.Add(time.Minute)
	got, err := l.UpdateRun(ctx, "r1", func(r *exportapi.Run) error {
		r.State, r.StartedAt, r.Host = exportapi.StateRunning, &started, "builder"
		r.Counts = map[string]int64{"advisories": 3}
		r.Artifacts = []exportapi.Artifact{{Name: "a", Path: "/a", Bytes: 1, SHA256: "00", MediaType: "x"}, {Name: "b", Path: "/b"}}
		return nil
	})
	must(t, err, "UpdateRun")
	stored, err := l.Run(ctx, "r1")
	must(t, err, "Run")
	sameJSON(t, stored, got, "UpdateRun result vs stored run")
	if stored.State != exportapi.StateRunning || stored.Counts["advisories"] != 3 || len(stored.Artifacts) != 2 {
		t.Fatalf("update not stored: %s", jsonOf(t, stored))
	}
	// Artifacts replaced as a whole.
	_, err = l.UpdateRun(ctx, "r1", func(r *exportapi.Run) error {
		r.Artifacts = []exportapi.Artifact{{Name: "c", Path: "/c"}}
		return nil
	})
	must(t, err, "UpdateRun artifacts")
	stored, _ = l.Run(ctx, "r1")
	if len(stored.Artifacts) != 1 || stored.Artifacts[0].Name != "c" {
		t.Fatalf("artifacts = %s, want just c", jsonOf(t, stored.Artifacts))
	}

	// An error from fn is returned as is and nothing is written.
	boom := errors.New("boom")
	_, err = l.UpdateRun(ctx, "r1", func(r *exportapi.Run) error {
		r.State = exportapi.StateFailed
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("UpdateRun returned %v, want fn's error", err)
	}
	after, _ := l.Run(ctx, "r1")
	sameJSON(t, after, stored, "run after a failed UpdateRun")

	_, err = l.UpdateRun(ctx, "missing", func(*exportapi.Run) error { return nil })
	wantCode(t, err, xerr.RunNotFound, "UpdateRun of a missing run")
}

func (s *suite) testRunUpdateRefused(t *testing.T) {
	l, ctx := s.open(t), ctxT(t)
	createRun(t, l, newRun("r1", "acme", t0))
	createRun(t, l, newRun("r2", "acme", t0))
	for _, c := range []struct {
		why string
		mod func(*exportapi.Run)
	}{
		{"a new id", func(r *exportapi.Run) { r.ID = "r2" }},
		{"another new id", func(r *exportapi.Run) { r.ID = "r3" }},
		{"a new tenant", func(r *exportapi.Run) { r.Tenant = "globex" }},
		{"a new creation time", func(r *exportapi.Run) { r.CreatedAt = r.CreatedAt.Add(time.Second) }},
		{"an unknown state", func(r *exportapi.Run) { r.State = "paused" }},
	} {
		_, err := l.UpdateRun(ctx, "r1", func(r *exportapi.Run) error { c.mod(r); return nil })
		wantCode(t, err, xerr.InvalidInput, "UpdateRun with "+c.why)
	}
	if _, err := l.Run(ctx, "r3"); !xerr.Is(err, xerr.RunNotFound) {
		t.Fatalf("a refused id change created run r3 (%v)", err)
	}
	got, _ := l.Run(ctx, "r1")
	sameJSON(t, got, newRun("r1", "acme", t0), "r1 after refused updates")
	got, _ = l.Run(ctx, "r2")
	sameJSON(t, got, newRun("r2", "acme", t0), "r2 after refused updates")
}

func (s *suite) testRunTerminal(t *testing.T) {
	l, ctx := s.open(t), ctxT(t)
	// Live states move freely.
	createRun(t, l, newRun("live", "acme", t0))
	setState(t, l, "live", exportapi.StateRunning)
	setState(t, l, "live", exportapi.StatePending)
	setState(t, l, "live", exportapi.StateRunning)

	for _, st := range []exportapi.RunState{exportapi.StateSucceeded, exportapi.StateFailed, exportapi.StateCancelled} {
		id := "run-" + string(st)
		createRun(t, l, newRun(id, "acme", t0))
		setState(t, l, id, exportapi.StateRunning)
		done := setState(t, l, id, st)
		for _, c := range []struct {
			why string
			mod func(*exportapi.Run)
		}{
			{"back to running", func(r *exportapi.Run) { r.State = exportapi.StateRunning }},
			{"back to pending", func(r *exportapi.Run) { r.State = exportapi.StatePending }},
			{"to another end state", func(r *exportapi.Run) {
				r.State = map[exportapi.RunState]exportapi.RunState{
					exportapi.StateSucceeded: exportapi.StateFailed, exportapi.StateFailed: exportapi.StateSucceeded,
					exportapi.StateCancelled: exportapi.StateSucceeded}[st]
			}},
			{"a counter", func(r *exportapi.Run) { r.Counts = map[string]int64{"x": 1} }},
			{"a message", func(r *exportapi.Run) { r.ErrorMessage = "changed" }},
		} {
			_, err := l.UpdateRun(ctx, id, func(r *exportapi.Run) error { c.mod(r); return nil })
			wantCode(t, err, xerr.InvalidInput, fmt.Sprintf("changing a %s run: %s", st, c.why))
		}
		// A function that changes nothing is fine.
		same, err := l.UpdateRun(ctx, id, func(*exportapi.Run) error { return nil })
		must(t, err, "no-op UpdateRun of a "+string(st)+" run")
		sameJSON(t, same, done, "no-op update")
		// Retention may expire it, and may drop its artifacts as it does.
		exp, err := l.UpdateRun(ctx, id, func(r *exportapi.Run) error {
			r.State, r.Artifacts = exportapi.StateExpired, nil
			return nil
		})
		must(t, err, "expiring a "+string(st)+" run")
		if exp.State != exportapi.StateExpired {
			t.Fatalf("state %q, want expired", exp.State)
		}
		// Expired is final.
		for _, to := range []exportapi.RunState{st, exportapi.StateRunning, exportapi.StatePending} {
			_, err := l.UpdateRun(ctx, id, func(r *exportapi.Run) error { r.State = to; return nil })
			wantCode(t, err, xerr.InvalidInput, "moving an expired run to "+string(to))
		}
		_, err = l.UpdateRun(ctx, id, func(r *exportapi.Run) error { r.Extra = map[string]string{"a": "b"}; return nil })
		wantCode(t, err, xerr.InvalidInput, "changing an expired run")
	}
	// A pending run can end directly (cancel before start) or expire.
	createRun(t, l, newRun("pending-cancel", "acme", t0))
	setState(t, l, "pending-cancel", exportapi.StateCancelled)
}

// testRunConcurrentUpdate: 8 goroutines increment one counter 200 times in
// all; no update may be lost.
func (s *suite) testRunConcurrentUpdate(t *testing.T) {
	l, ctx := s.open(t), ctxT(t)
	createRun(t, l, newRun("counter", "acme", t0))
	const workers, total = 8, 200
	var wg sync.WaitGroup
	errs := make(chan error, total)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < total; i += workers {
				_, err := l.UpdateRun(ctx, "counter", func(r *exportapi.Run) error {
					if r.Counts == nil {
						r.Counts = map[string]int64{}
					}
					r.Counts["ticks"]++
					return nil
				})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent UpdateRun: %v", err)
	}
	r, err := l.Run(ctx, "counter")
	must(t, err, "Run")
	if r.Counts["ticks"] != total {
		t.Fatalf("counter = %d after %d concurrent increments: updates were lost", r.Counts["ticks"], total)
	}
}

func ids(runs []exportapi.Run) string {
	var s []string
	for _, r := range runs {
		s = append(s, r.ID)
	}
	return strings.Join(s, ",")
}

// listFixture creates runs over two tenants, three states and two profiles.
// Newest first they are: a6, a5b, a5a (same time: id descending), b4, a3,
// a2, b1, a0.
func listFixture(t *testing.T, l ledger.Ledger) {
	mk := func(id, tenant string, minute int, st exportapi.RunState, profile string) {
		r := newRun(id, tenant, t0.Add(time.Duration(minute)*time.Minute))
		r.Profile.Name = profile
		createRun(t, l, r)
		if st != exportapi.StatePending {
			setState(t, l, id, exportapi.StateRunning)
			if st != exportapi.StateRunning {
				setState(t, l, id, st)
			}
		}
	}
	// Created out of time order on purpose.
	mk("a3", "acme", 3, exportapi.StateSucceeded, "nightly")
	mk("a0", "acme", 0, exportapi.StateFailed, "nightly")
	mk("b1", "globex", 1, exportapi.StateSucceeded, "nightly")
	mk("a6", "acme", 6, exportapi.StatePending, "weekly")
	mk("a2", "acme", 2, exportapi.StateRunning, "weekly")
	mk("b4", "globex", 4, exportapi.StatePending, "weekly")
	mk("a5a", "acme", 5, exportapi.StateSucceeded, "nightly")
	mk("a5b", "acme", 5, exportapi.StateSucceeded, "weekly")
}

func (s *suite) testRunList(t *testing.T) {
	l, ctx := s.open(t), ctxT(t)
	runs, next, err := l.Runs(ctx, ledger.RunFilter{})
	must(t, err, "Runs of an empty ledger")
	if len(runs) != 0 || next != "" {
		t.Fatalf("empty ledger: %d runs, cursor %q", len(runs), next)
	}
	listFixture(t, l)
	S := func(s ...exportapi.RunState) []exportapi.RunState { return s }
	for _, c := range []struct {
		name string
		f    ledger.RunFilter
		want string
	}{
		{"all", ledger.RunFilter{}, "a6,a5b,a5a,b4,a3,a2,b1,a0"},
		{"tenant", ledger.RunFilter{Tenant: "acme"}, "a6,a5b,a5a,a3,a2,a0"},
		{"other tenant", ledger.RunFilter{Tenant: "globex"}, "b4,b1"},
		{"unknown tenant", ledger.RunFilter{Tenant: "initech"}, ""},
		{"one state", ledger.RunFilter{States: S(exportapi.StateSucceeded)}, "a5b,a5a,a3,b1"},
		{"two states", ledger.RunFilter{States: S(exportapi.StatePending, exportapi.StateRunning)}, "a6,b4,a2"},
		{"profile", ledger.RunFilter{Profile: "weekly"}, "a6,a5b,b4,a2"},
		{"tenant+state+profile", ledger.RunFilter{Tenant: "acme", States: S(exportapi.StateSucceeded), Profile: "nightly"}, "a5a,a3"},
		{"no match", ledger.RunFilter{Tenant: "globex", States: S(exportapi.StateFailed)}, ""},
	} {
		runs, next, err := l.Runs(ctx, c.f)
		must(t, err, "Runs "+c.name)
		if got := ids(runs); got != c.want {
			t.Errorf("Runs %s = %s, want %s", c.name, got, c.want)
		}
		if next != "" {
			t.Errorf("Runs %s: cursor %q on the only page", c.name, next)
		}
	}
	// Listing reflects updates (the filter sees the new state).
	setState(t, l, "a6", exportapi.StateRunning)
	runs, _, err = l.Runs(ctx, ledger.RunFilter{States: S(exportapi.StatePending)})
	must(t, err, "Runs pending")
	if ids(runs) != "b4" {
		t.Fatalf("pending after update = %s, want b4", ids(runs))
	}
	if runs[0].Tenant != "globex" || runs[0].Selectors.Ecosystems[0] != "Go" {
		t.Fatalf("listed run is not the whole run: %s", jsonOf(t, runs[0]))
	}
}

// page walks a filter with a page size and returns the ids of every page.
func page(t *testing.T, l ledger.Ledger, f ledger.RunFilter, between func(n int)) []string {
	t.Helper()
	var pages []string
	for n := 0; n < 100; n++ {
		runs, next, err := l.Runs(ctxT(t), f)
		must(t, err, "Runs page")
		if len(runs) > f.Limit {
			t.Fatalf("page of %d runs, limit %d", len(runs), f.Limit)
		}
		pages = append(pages, ids(runs))
		if next == "" {
			return pages
		}
		if len(runs) == 0 {
			t.Fatal("an empty page with a cursor")
		}
		f.Cursor = next
		if between != nil {
			between(n)
		}
	}
	t.Fatal("paging does not end")
	return nil
}

func (s *suite) testRunPaging(t *testing.T) {
	l := s.open(t)
	listFixture(t, l)
	for _, c := range []struct {
		f    ledger.RunFilter
		want string
	}{
		{ledger.RunFilter{Limit: 3}, "a6,a5b,a5a|b4,a3,a2|b1,a0"},
		{ledger.RunFilter{Limit: 2}, "a6,a5b|a5a,b4|a3,a2|b1,a0"}, // ends exactly on a page: no empty last page
		{ledger.RunFilter{Limit: 1, Tenant: "globex"}, "b4|b1"},
		{ledger.RunFilter{Limit: 2, States: []exportapi.RunState{exportapi.StateSucceeded}}, "a5b,a5a|a3,b1"},
		{ledger.RunFilter{Limit: 1, Tenant: "acme", Profile: "weekly"}, "a6|a5b|a2"},
		{ledger.RunFilter{Limit: 8}, "a6,a5b,a5a,b4,a3,a2,b1,a0"},
		{ledger.RunFilter{Limit: 50}, "a6,a5b,a5a,b4,a3,a2,b1,a0"},
	} {
		if got := strings.Join(page(t, l, c.f, nil), "|"); got != c.want {
			t.Errorf("pages of %+v = %s, want %s", c.f, got, c.want)
		}
	}

	// New runs added while paging (newer ones, as new submissions are) do
	// not shift the pages still to come, nor repeat runs.
	n := 0
	got := page(t, l, ledger.RunFilter{Limit: 3}, func(int) {
		n++
		createRun(t, l, newRun(fmt.Sprintf("new%d", n), "acme", t0.Add(time.Hour+time.Duration(n)*time.Minute)))
	})
	if strings.Join(got, "|") != "a6,a5b,a5a|b4,a3,a2|b1,a0" {
		t.Fatalf("pages while adding runs = %s", strings.Join(got, "|"))
	}
	// The same with a tenant filter and a state filter.
	got = page(t, l, ledger.RunFilter{Limit: 2, Tenant: "acme", States: []exportapi.RunState{exportapi.StateSucceeded, exportapi.StateFailed}}, func(int) {
		n++
		id := fmt.Sprintf("new%d", n)
		createRun(t, l, newRun(id, "acme", t0.Add(time.Hour+time.Duration(n)*time.Minute)))
		setState(t, l, id, exportapi.StateSucceeded)
	})
	if strings.Join(got, "|") != "a5b,a5a|a3,a0" {
		t.Fatalf("filtered pages while adding runs = %s", strings.Join(got, "|"))
	}
}

func (s *suite) testRunDefaultLimit(t *testing.T) {
	l, ctx := s.open(t), ctxT(t)
	for i := 0; i < 105; i++ {
		createRun(t, l, newRun(fmt.Sprintf("run-%03d", i), "acme", t0.Add(time.Duration(i)*time.Second)))
	}
	runs, next, err := l.Runs(ctx, ledger.RunFilter{})
	must(t, err, "Runs")
	if len(runs) != 100 || next == "" || runs[0].ID != "run-104" || runs[99].ID != "run-005" {
		t.Fatalf("default page: %d runs (%s..), cursor %q; want 100 runs from run-104 and a cursor", len(runs), runs[0].ID, next)
	}
	runs, next, err = l.Runs(ctx, ledger.RunFilter{Cursor: next})
	must(t, err, "Runs page 2")
	if ids(runs) != "run-004,run-003,run-002,run-001,run-000" || next != "" {
		t.Fatalf("second page = %s cursor %q", ids(runs), next)
	}
}

func (s *suite) testRunListInvalid(t *testing.T) {
	l, ctx := s.open(t), ctxT(t)
	listFixture(t, l)
	for _, c := range []struct {
		why string
		f   ledger.RunFilter
	}{
		{"a negative limit", ledger.RunFilter{Limit: -1}},
		{"an unknown state", ledger.RunFilter{States: []exportapi.RunState{"paused"}}},
		{"a bad tenant", ledger.RunFilter{Tenant: "Acme Corp"}},
		{"a made-up cursor", ledger.RunFilter{Cursor: "not-a-cursor"}},
		{"a cursor of garbage bytes", ledger.RunFilter{Cursor: "AAAA"}},
	} {
		_, _, err := l.Runs(ctx, c.f)
		wantCode(t, err, xerr.InvalidInput, "Runs with "+c.why)
	}
}
