package watch

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/progress"
	"github.com/charmbracelet/bubbles/spinner"
	"github.com/charmbracelet/lipgloss"

	"github.com/stellaops/stella/pkg/exportapi"
)

const (
	// RateWindow is the span of event time over which rate and ETA are
	// computed: samples older than RateWindow before the newest one are
	// dropped, but the two newest samples are always kept.
	RateWindow = 10 * time.Second

	maxSamples   = 64
	defaultWidth = 80
	maxBarWidth  = 60
	shaPrefixLen = 12
)

// sample is the counters of the run at one event's time.
type sample struct {
	t     time.Time
	items int64
	bytes int64
}

// Model is the state of a run watch view, independent of bubbletea: feed it
// events with Update and render it with View. It is not safe for concurrent
// use.
type Model struct {
	runID string
	width int

	state      exportapi.RunState
	phase      string
	message    string
	errorCode  string
	itemsDone  int64
	itemsTotal int64
	bytes      int64
	artifacts  []exportapi.Artifact

	first, last time.Time // event time of the first and newest event
	lastSeq     int64
	seen        int
	lastEv      exportapi.Event
	done        bool

	samples []sample

	hint     bool // show the "q to detach" hint while running
	detached bool // the viewer detached; the run goes on

	r     *lipgloss.Renderer
	bar   progress.Model
	spin  spinner.Model
	style styles
}

type styles struct {
	title, dim, label, ok, bad, warn, run lipgloss.Style
}

// NewModel returns the view of run runID (which may be empty: the run id of
// the first event is used then) rendered width columns wide (0: 80). Colours
// are those the default lipgloss renderer detects on stdout.
func NewModel(runID string, width int) *Model {
	return newModel(runID, width, lipgloss.DefaultRenderer())
}

func newModel(runID string, width int, r *lipgloss.Renderer) *Model {
	m := &Model{runID: runID, state: exportapi.StatePending, r: r}
	m.style = styles{
		title: r.NewStyle().Bold(true),
		dim:   r.NewStyle().Faint(true),
		label: r.NewStyle().Faint(true),
		ok:    r.NewStyle().Foreground(lipgloss.Color("2")).Bold(true),
		bad:   r.NewStyle().Foreground(lipgloss.Color("1")).Bold(true),
		warn:  r.NewStyle().Foreground(lipgloss.Color("3")).Bold(true),
		run:   r.NewStyle().Foreground(lipgloss.Color("6")),
	}
	m.bar = progress.New(progress.WithDefaultGradient(), progress.WithColorProfile(r.ColorProfile()))
	m.spin = spinner.New(spinner.WithSpinner(spinner.MiniDot), spinner.WithStyle(r.NewStyle().Foreground(lipgloss.Color("6"))))
	m.SetWidth(width)
	return m
}

// SetWidth sets the width of the view in columns (0 or less: 80).
func (m *Model) SetWidth(width int) {
	if width <= 0 {
		width = defaultWidth
	}
	m.width = width
	m.bar.Width = min(maxBarWidth, max(10, width-2))
}

// IsTerminal reports whether ev ends a run's event log.
func IsTerminal(ev exportapi.Event) bool {
	switch ev.Type {
	case exportapi.EventCompleted, exportapi.EventFailed, exportapi.EventCancelled:
		return true
	}
	return false
}

// Update applies one event. Events must arrive in Seq order; an event whose
// Seq is not above the last applied one (a duplicate from an overlapping
// poll) is ignored, as is anything after the terminal event. Seq 0 means
// "not numbered" and is always applied. Update reports whether ev was
// applied.
func (m *Model) Update(ev exportapi.Event) bool {
	if m.done {
		return false
	}
	if ev.Seq > 0 {
		if m.seen > 0 && ev.Seq <= m.lastSeq {
			return false
		}
		m.lastSeq = ev.Seq
	}
	m.seen++
	m.lastEv = ev
	if m.runID == "" {
		m.runID = ev.RunID
	}
	if !ev.Time.IsZero() {
		if m.first.IsZero() {
			m.first = ev.Time
		}
		if ev.Time.After(m.last) {
			m.last = ev.Time
		}
	}
	if ev.Phase != "" && ev.Phase != m.phase {
		m.phase = ev.Phase
		m.samples = m.samples[:0] // a new phase has its own pace
	}
	if ev.State != "" {
		m.state = ev.State
	}

	switch ev.Type {
	case exportapi.EventStarted, exportapi.EventProgress:
		if ev.State == "" {
			m.state = exportapi.StateRunning
		}
		if ev.Message != "" {
			m.message = ev.Message
		}
		m.applyCounters(ev)
		m.addSample(ev.Time)
	case exportapi.EventArtifact:
		// Event.Bytes of an artifact event is the artifact's size, not the
		// run's running total: counters are left alone.
		if ev.State == "" && !m.state.Terminal() {
			m.state = exportapi.StateRunning
		}
		m.addArtifact(ev.Artifact)
	case exportapi.EventCompleted, exportapi.EventFailed, exportapi.EventCancelled:
		m.done = true
		if ev.State == "" {
			m.state = map[string]exportapi.RunState{
				exportapi.EventCompleted: exportapi.StateSucceeded,
				exportapi.EventFailed:    exportapi.StateFailed,
				exportapi.EventCancelled: exportapi.StateCancelled,
			}[ev.Type]
		}
		m.applyCounters(ev)
		m.addArtifact(ev.Artifact)
		m.errorCode = ev.ErrorCode
		m.message = ev.Message
	default:
		// An event type this version does not know: keep its phase, state
		// and message, nothing else.
		if ev.Message != "" {
			m.message = ev.Message
		}
	}
	return true
}

// applyCounters takes the counters an event reports. The JSON form omits
// zero counters, so a zero means "not reported" except that a reported
// total makes a zero itemsDone meaningful. Counters going backwards (a new
// count in a new phase) restart the rate window.
func (m *Model) applyCounters(ev exportapi.Event) {
	if ev.ItemsTotal > 0 {
		if ev.ItemsTotal != m.itemsTotal {
			m.samples = m.samples[:0]
		}
		m.itemsTotal = ev.ItemsTotal
	}
	if ev.ItemsDone > 0 || ev.ItemsTotal > 0 {
		if ev.ItemsDone < m.itemsDone {
			m.samples = m.samples[:0]
		}
		m.itemsDone = ev.ItemsDone
	}
	if ev.Bytes > 0 {
		if ev.Bytes < m.bytes {
			m.samples = m.samples[:0]
		}
		m.bytes = ev.Bytes
	}
}

func (m *Model) addArtifact(a *exportapi.Artifact) {
	if a == nil {
		return
	}
	for i := range m.artifacts {
		if m.artifacts[i].Name == a.Name && m.artifacts[i].Path == a.Path {
			m.artifacts[i] = *a
			return
		}
	}
	m.artifacts = append(m.artifacts, *a)
}

// addSample records the current counters at event time t in the sliding
// window.
func (m *Model) addSample(t time.Time) {
	if t.IsZero() {
		return
	}
	s := sample{t: t, items: m.itemsDone, bytes: m.bytes}
	if n := len(m.samples); n > 0 {
		switch last := m.samples[n-1]; {
		case t.Before(last.t): // clock went back: start over
			m.samples = m.samples[:0]
		case t.Equal(last.t): // same instant: keep the newest counters
			m.samples[n-1] = s
			return
		}
	}
	m.samples = append(m.samples, s)
	cutoff := t.Add(-RateWindow)
	drop := 0
	for len(m.samples)-drop > 2 && m.samples[drop].t.Before(cutoff) {
		drop++
	}
	if over := len(m.samples) - drop - maxSamples; over > 0 {
		drop += over
	}
	if drop > 0 {
		m.samples = append(m.samples[:0], m.samples[drop:]...)
	}
}

// Rate returns items/s and bytes/s over the sliding window of recent
// progress events, measured with the events' Time fields. ok is false
// until two samples of the current phase span a positive time.
func (m *Model) Rate() (itemsPerSec, bytesPerSec float64, ok bool) {
	if len(m.samples) < 2 {
		return 0, 0, false
	}
	a, b := m.samples[0], m.samples[len(m.samples)-1]
	dt := b.t.Sub(a.t).Seconds()
	if dt <= 0 {
		return 0, 0, false
	}
	return float64(b.items-a.items) / dt, float64(b.bytes-a.bytes) / dt, true
}

// ETA returns the time left at the current item rate; ok is false when the
// total is unknown, the rate is unknown or zero, or the run is over.
func (m *Model) ETA() (time.Duration, bool) {
	if m.done || m.itemsTotal <= 0 {
		return 0, false
	}
	ips, _, ok := m.Rate()
	if !ok || ips <= 0 {
		return 0, false
	}
	left := m.itemsTotal - m.itemsDone
	if left <= 0 {
		return 0, true
	}
	return time.Duration(float64(left) / ips * float64(time.Second)), true
}

// Done reports whether the terminal event has been applied.
func (m *Model) Done() bool { return m.done }

// Last returns the newest applied event (the terminal one once Done).
func (m *Model) Last() exportapi.Event { return m.lastEv }

// State returns the run state the events report (pending before any).
func (m *Model) State() exportapi.RunState { return m.state }

// Elapsed is the event time between the first and the newest event.
func (m *Model) Elapsed() time.Duration {
	if m.first.IsZero() {
		return 0
	}
	return m.last.Sub(m.first)
}

// View renders the model.
func (m *Model) View() string {
	var b strings.Builder
	st := m.style
	line := func(parts ...string) {
		b.WriteString(strings.Join(nonEmpty(parts), "   "))
		b.WriteByte('\n')
	}
	kv := func(k, v string) string { return st.label.Render(k) + " " + v }

	id := m.runID
	if id == "" {
		id = "…"
	}
	phase := ""
	if m.phase != "" {
		phase = kv("phase", m.phase)
	}
	line(st.title.Render("run "+id), m.stateView(), phase)

	if m.seen == 0 {
		line(m.spin.View() + " waiting for events…")
		return b.String()
	}

	// Progress: a bar when the total is known, a spinner while running
	// otherwise.
	items := thousands(m.itemsDone)
	if m.itemsTotal > 0 {
		items += " / " + thousands(m.itemsTotal)
		pct := float64(m.itemsDone) / float64(m.itemsTotal)
		line(m.bar.ViewAs(max(0, min(1, pct))))
	}
	lead := ""
	if m.itemsTotal <= 0 && !m.done {
		lead = m.spin.View()
	}
	line(lead, kv("items", items), kv("bytes", humanBytes(m.bytes)))

	if !m.done {
		rate, eta := "—", "—"
		if ips, bps, ok := m.Rate(); ok {
			rate = fmt.Sprintf("%.1f items/s  %s", ips, humanRate(bps))
		}
		if d, ok := m.ETA(); ok {
			eta = shortDuration(d)
		}
		line(kv("rate", rate), kv("ETA", eta), kv("elapsed", shortDuration(m.Elapsed())))
		if m.message != "" {
			line(st.dim.Render(m.message))
		}
	} else {
		line(kv("elapsed", shortDuration(m.Elapsed())))
	}

	if len(m.artifacts) > 0 {
		b.WriteString(m.artifactsView())
	}

	if m.done {
		switch m.state {
		case exportapi.StateFailed:
			msg := "run failed"
			if m.errorCode != "" {
				msg += ": " + m.errorCode
			}
			if m.message != "" {
				msg += ": " + m.message
			}
			for _, l := range wrap(msg, m.width) {
				line(st.bad.Render(l))
			}
		case exportapi.StateCancelled:
			msg := "run cancelled"
			if m.message != "" {
				msg += ": " + m.message
			}
			for _, l := range wrap(msg, m.width) {
				line(st.warn.Render(l))
			}
		}
	}
	if m.detached && !m.done {
		line(st.dim.Render("detached: the run goes on; watch it again with `stella export run watch " + id + "`"))
	} else if m.hint && !m.done {
		line(st.dim.Render("q: detach (the run goes on)"))
	}
	return b.String()
}

func (m *Model) stateView() string {
	s := string(m.state)
	switch m.state {
	case exportapi.StateSucceeded:
		return m.style.ok.Render("✓ " + s)
	case exportapi.StateFailed:
		return m.style.bad.Render("✗ " + s)
	case exportapi.StateCancelled, exportapi.StateExpired:
		return m.style.warn.Render("■ " + s)
	case exportapi.StateRunning:
		return m.style.run.Render("● " + s)
	}
	return m.style.dim.Render("○ " + s)
}

func (m *Model) artifactsView() string {
	var b strings.Builder
	nameW := len("NAME")
	for _, a := range m.artifacts {
		nameW = max(nameW, lipgloss.Width(a.Name))
	}
	b.WriteString(m.style.title.Render("artifacts") + "\n")
	header := fmt.Sprintf("  %s  %10s  %s", pad("NAME", nameW), "SIZE", "SHA256")
	b.WriteString(m.style.label.Render(header) + "\n")
	for _, a := range m.artifacts {
		sha := a.SHA256
		if len(sha) > shaPrefixLen {
			sha = sha[:shaPrefixLen]
		}
		if sha == "" {
			sha = "-"
		}
		fmt.Fprintf(&b, "  %s  %10s  %s\n", pad(a.Name, nameW), humanBytes(a.Bytes), sha)
	}
	return b.String()
}

func pad(s string, w int) string {
	if n := w - lipgloss.Width(s); n > 0 {
		return s + strings.Repeat(" ", n)
	}
	return s
}

func nonEmpty(parts []string) []string {
	out := parts[:0:0]
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}
