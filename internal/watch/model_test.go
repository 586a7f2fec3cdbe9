package watch

import (
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/stellaops/stella/pkg/exportapi"
)

var ansiRE = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[=>]`)

func stripANSI(s string) string { return ansiRE.ReplaceAllString(s, "") }

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

const runID = "run-01JTEST"

// seqGen numbers events like the ledger does.
type seqGen struct{ seq int64 }

func (g *seqGen) ev(typ string, at time.Duration, f func(*exportapi.Event)) exportapi.Event {
	g.seq++
	ev := exportapi.Event{RunID: runID, Seq: g.seq, Time: t0.Add(at), Type: typ}
	if f != nil {
		f(&ev)
	}
	return ev
}

func progressEv(g *seqGen, at time.Duration, phase string, done, total, bytes int64) exportapi.Event {
	return g.ev(exportapi.EventProgress, at, func(e *exportapi.Event) {
		e.Phase, e.ItemsDone, e.ItemsTotal, e.Bytes = phase, done, total, bytes
	})
}

func plainModel(width int) *Model {
	return newModel(runID, width, lipgloss.NewRenderer(io.Discard))
}

func view(m *Model) string { return stripANSI(m.View()) }

func mustContain(t *testing.T, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("view lacks %q:\n%s", w, got)
		}
	}
}

func mustNotContain(t *testing.T, got string, nots ...string) {
	t.Helper()
	for _, w := range nots {
		if strings.Contains(got, w) {
			t.Errorf("view has %q:\n%s", w, got)
		}
	}
}

func TestModelWaiting(t *testing.T) {
	m := plainModel(80)
	v := view(m)
	mustContain(t, v, "run "+runID, "pending", "waiting for events")
	if m.Done() {
		t.Fatal("done before any event")
	}
}

func TestModelRateAndETA(t *testing.T) {
	g := &seqGen{}
	m := plainModel(100)
	m.Update(g.ev(exportapi.EventStarted, 0, func(e *exportapi.Event) { e.Phase = "plan" }))
	if _, _, ok := m.Rate(); ok {
		t.Fatal("rate known after one event")
	}
	// Phase "write": 50 items/s and 1 MB/s for 20 s; total 2000.
	for s := 1; s <= 20; s++ {
		m.Update(progressEv(g, time.Duration(s)*time.Second, "write", int64(50*s), 2000, int64(1_000_000*s)))
	}
	ips, bps, ok := m.Rate()
	if !ok || ips != 50 || bps != 1e6 {
		t.Fatalf("rate = %v items/s %v B/s ok=%v; want 50, 1e6", ips, bps, ok)
	}
	// The window holds only the last 10 s of event time.
	if got := m.samples[0].t; !got.Equal(t0.Add(10 * time.Second)) {
		t.Fatalf("window starts at %v", got.Sub(t0))
	}
	eta, ok := m.ETA()
	if !ok || eta != 20*time.Second { // 1000 left at 50/s
		t.Fatalf("ETA = %v ok=%v; want 20s", eta, ok)
	}
	v := view(m)
	mustContain(t, v, "● running", "phase write", "items 1,000 / 2,000", "bytes 20.0 MB",
		"rate 50.0 items/s  1.0 MB/s", "ETA 20s", "elapsed 20s", " 50%", "█", "░")

	// Speed up to 100 items/s: after 10 s of the new pace the old samples
	// have slid out of the window entirely.
	for s := 21; s <= 25; s++ {
		m.Update(progressEv(g, time.Duration(s)*time.Second, "write", 1000+int64(100*(s-20)), 2000, 20_000_000+int64(3_000_000*(s-20))))
	}
	// Window 15..25 s: items 750 -> 1500 over 10 s.
	if ips, _, _ := m.Rate(); ips != 75 {
		t.Fatalf("mixed-window rate = %v; want 75", ips)
	}
	for s := 26; s <= 30; s++ {
		m.Update(progressEv(g, time.Duration(s)*time.Second, "write", 1000+int64(100*(s-20)), 2000, 20_000_000+int64(3_000_000*(s-20))))
	}
	ips, bps, _ = m.Rate()
	if ips != 100 || bps != 3e6 {
		t.Fatalf("rate = %v, %v; want 100, 3e6", ips, bps)
	}
	if eta, _ := m.ETA(); eta != 0 { // 2000 of 2000
		t.Fatalf("ETA at 100%% = %v", eta)
	}

	// A new phase restarts the window: rate unknown until its second event.
	m.Update(progressEv(g, 31*time.Second, "sign", 0, 3, 0))
	if _, _, ok := m.Rate(); ok {
		t.Fatal("rate known right after a phase change")
	}
	v = view(m)
	mustContain(t, v, "phase sign", "items 0 / 3", "bytes 50.0 MB", "rate —", "ETA —")
	m.Update(progressEv(g, 33*time.Second, "sign", 1, 3, 0))
	if eta, ok := m.ETA(); !ok || eta != 4*time.Second { // 2 left at 0.5/s
		t.Fatalf("sign ETA = %v ok=%v", eta, ok)
	}
}

func TestModelSparseEventsKeepTwoSamples(t *testing.T) {
	g := &seqGen{}
	m := plainModel(80)
	m.Update(progressEv(g, 0, "read", 100, 1000, 0))
	m.Update(progressEv(g, 60*time.Second, "read", 400, 1000, 0))
	ips, _, ok := m.Rate()
	if !ok || ips != 5 {
		t.Fatalf("rate over sparse events = %v ok=%v; want 5", ips, ok)
	}
	if eta, _ := m.ETA(); eta != 2*time.Minute {
		t.Fatalf("ETA = %v", eta)
	}
	mustContain(t, view(m), "ETA 2m00s", "elapsed 1m00s")
}

func TestModelSeqDuplicatesIgnored(t *testing.T) {
	g := &seqGen{}
	m := plainModel(80)
	e1 := progressEv(g, time.Second, "read", 10, 100, 0)
	e2 := progressEv(g, 2*time.Second, "read", 20, 100, 0)
	if !m.Update(e1) || !m.Update(e2) {
		t.Fatal("in-order events rejected")
	}
	// An overlapping poll hands back e1 and e2 again.
	if m.Update(e1) || m.Update(e2) {
		t.Fatal("replayed events applied")
	}
	if m.Last().Seq != 2 || m.itemsDone != 20 {
		t.Fatalf("last seq %d items %d", m.Last().Seq, m.itemsDone)
	}
	e3 := progressEv(g, 3*time.Second, "read", 30, 100, 0)
	if !m.Update(e3) || m.itemsDone != 30 {
		t.Fatal("next event not applied")
	}
}

func TestModelUnknownTotalSpinner(t *testing.T) {
	g := &seqGen{}
	m := plainModel(80)
	m.Update(g.ev(exportapi.EventStarted, 0, nil))
	m.Update(progressEv(g, time.Second, "read", 1234, 0, 2048))
	m.Update(progressEv(g, 3*time.Second, "read", 5234, 0, 4096))
	v := view(m)
	mustContain(t, v, "items 5,234", "bytes 4.1 kB", "2000.0 items/s", "ETA —")
	mustNotContain(t, v, "%", "/ ")
	spin := stripANSI(m.spin.View())
	if spin == "" || !strings.Contains(v, spin+"   items") {
		t.Fatalf("no spinner before items (%q):\n%s", spin, v)
	}
}

func TestModelCompletedWithArtifacts(t *testing.T) {
	g := &seqGen{}
	m := plainModel(100)
	m.Update(g.ev(exportapi.EventStarted, 0, func(e *exportapi.Event) { e.Phase = "plan" }))
	m.Update(progressEv(g, 5*time.Second, "write", 10, 10, 12_345_678))
	bundle := &exportapi.Artifact{Name: "bundle.tar.zst", Bytes: 12_345_678, MediaType: "application/zstd",
		Path: "/var/lib/stella/bundle.tar.zst", SHA256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
	manifest := &exportapi.Artifact{Name: "export.json", Bytes: 1234, MediaType: "application/json",
		Path: "/var/lib/stella/export.json", SHA256: "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"}
	m.Update(g.ev(exportapi.EventArtifact, 6*time.Second, func(e *exportapi.Event) { e.Artifact, e.Bytes = bundle, bundle.Bytes }))
	m.Update(g.ev(exportapi.EventArtifact, 6*time.Second, func(e *exportapi.Event) { e.Artifact = manifest }))
	if m.bytes != 12_345_678 {
		t.Fatalf("artifact event changed the byte counter: %d", m.bytes)
	}
	done := g.ev(exportapi.EventCompleted, 7*time.Second, func(e *exportapi.Event) {
		e.Phase, e.State = "distribute", exportapi.StateSucceeded
	})
	if !m.Update(done) || !m.Done() || m.State() != exportapi.StateSucceeded {
		t.Fatalf("not done: %v %v", m.Done(), m.State())
	}
	if m.Last() != done {
		t.Fatal("Last is not the terminal event")
	}
	// Nothing is applied after the terminal event.
	if m.Update(progressEv(g, 8*time.Second, "write", 1, 10, 1)) {
		t.Fatal("event after the terminal one applied")
	}
	v := view(m)
	mustContain(t, v, "✓ succeeded", "phase distribute", "100%", "items 10 / 10", "bytes 12.3 MB",
		"elapsed 7s", "artifacts", "NAME", "SIZE", "SHA256",
		"bundle.tar.zst     12.3 MB  0123456789ab",
		"export.json         1.2 kB  fedcba987654")
	mustNotContain(t, v, "ETA", "rate", "0123456789abc", "failed")
}

func TestModelFailedInRed(t *testing.T) {
	g := &seqGen{}
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.ANSI256)
	m := newModel(runID, 60, r)
	m.Update(g.ev(exportapi.EventStarted, 0, nil))
	m.Update(progressEv(g, time.Second, "sign", 3, 10, 100))
	m.Update(g.ev(exportapi.EventFailed, 2*time.Second, func(e *exportapi.Event) {
		e.ErrorCode = "signing"
		e.Message = "ERR_EXPORT_SIGNING: key kms://vault/stella is unavailable; check the KMS endpoint and retry the run with `stella export run submit`"
	}))
	if !m.Done() || m.State() != exportapi.StateFailed {
		t.Fatalf("state %v done %v", m.State(), m.Done())
	}
	raw := m.View()
	v := stripANSI(raw)
	mustContain(t, v, "✗ failed", "run failed: signing: ERR_EXPORT_SIGNING: key", "retry the run")
	for _, l := range strings.Split(v, "\n") {
		if w := lipgloss.Width(l); w > 60 {
			t.Errorf("line wider than 60 (%d): %q", w, l)
		}
	}
	// The error lines are red (SGR 31).
	found := false
	for _, l := range strings.Split(raw, "\n") {
		if strings.Contains(l, "run failed") {
			found = true
			if !strings.Contains(l, "31m") {
				t.Errorf("error line not red: %q", l)
			}
		}
	}
	if !found {
		t.Fatal("no error line")
	}
}

func TestModelCancelled(t *testing.T) {
	g := &seqGen{}
	m := plainModel(80)
	m.Update(g.ev(exportapi.EventStarted, 0, nil))
	m.Update(g.ev(exportapi.EventCancelled, time.Second, func(e *exportapi.Event) { e.Message = "cancelled by alice" }))
	mustContain(t, view(m), "■ cancelled", "run cancelled: cancelled by alice")
}

func TestModelDetachedHint(t *testing.T) {
	g := &seqGen{}
	m := plainModel(80)
	m.hint = true
	m.Update(g.ev(exportapi.EventStarted, 0, nil))
	mustContain(t, view(m), "q: detach")
	m.detached = true
	mustContain(t, view(m), "detached: the run goes on", "stella export run watch "+runID)
}

func TestModelRunIDFromEvents(t *testing.T) {
	m := newModel("", 80, lipgloss.NewRenderer(io.Discard))
	m.Update(exportapi.Event{RunID: "r-42", Seq: 1, Time: t0, Type: exportapi.EventStarted})
	mustContain(t, view(m), "run r-42")
}

func TestFormat(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 999: "999 B", 1000: "1.0 kB", 1_500: "1.5 kB",
		999_960: "1.0 MB", 12_345_678: "12.3 MB", 5e12: "5.0 TB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q; want %q", n, got, want)
		}
	}
	for f, want := range map[float64]string{0: "0 B/s", 512: "512 B/s", 1.25e6: "1.2 MB/s", 3e9: "3.0 GB/s"} {
		if got := humanRate(f); got != want {
			t.Errorf("humanRate(%v) = %q; want %q", f, got, want)
		}
	}
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -12345: "-12,345"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q; want %q", n, got, want)
		}
	}
	for d, want := range map[time.Duration]string{0: "0s", 300 * time.Millisecond: "<1s", 42 * time.Second: "42s",
		185 * time.Second: "3m05s", 3720 * time.Second: "1h02m"} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q; want %q", d, got, want)
		}
	}
	got := wrap("aaa bbb ccc dddddddddddddd", 10)
	want := []string{"aaa bbb", "ccc", "dddddddddd", "dddd"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("wrap = %q; want %q", got, want)
	}
}
