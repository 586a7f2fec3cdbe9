package watch

import (
	"context"
	"fmt"

	"github.com/charmbracelet/bubbles/spinner"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/stellaops/stella/pkg/exportapi"
)

// Messages of the bubbletea program.
type (
	eventMsg   struct{ ev exportapi.Event }
	closedMsg  struct{}
	ctxDoneMsg struct{ err error }
	detachMsg  struct{}
	endReason  int
	teaAdapter struct {
		ctx    context.Context
		events <-chan exportapi.Event
		m      *Model
		reason endReason
		ctxErr error
	}
)

const (
	endUnknown endReason = iota // quit from outside (SIGTERM)
	endTerminal
	endDetached
	endClosed
	endContext
)

// watchTUI runs the bubbletea program until the terminal event, a detach,
// the end of the channel or of ctx. It renders inline (no alt screen) so
// that the final view stays in the scrollback.
func watchTUI(ctx context.Context, events <-chan exportapi.Event, opts Options) (exportapi.Event, error) {
	// The reader goroutine must not outlive Watch, or it would swallow an
	// event meant for the caller's next reader.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	m := newModel(opts.RunID, opts.Width, lipgloss.NewRenderer(opts.Out))
	m.hint = opts.In != nil
	a := &teaAdapter{ctx: ctx, events: events, m: m}

	popts := []tea.ProgramOption{
		tea.WithOutput(opts.Out),
		tea.WithInput(opts.In),
		// SIGINT without a raw-mode terminal arrives as InterruptMsg, which
		// bubbletea would turn into a kill without a final render: make it
		// a detach like ctrl-c.
		tea.WithFilter(func(_ tea.Model, msg tea.Msg) tea.Msg {
			if _, ok := msg.(tea.InterruptMsg); ok {
				return detachMsg{}
			}
			return msg
		}),
	}
	if opts.In == nil {
		popts = append(popts, tea.WithoutBracketedPaste())
	}
	if _, err := tea.NewProgram(a, popts...).Run(); err != nil {
		return m.Last(), fmt.Errorf("watch: terminal UI: %w", err)
	}

	switch {
	case m.Done():
		return m.Last(), nil
	case a.reason == endContext:
		return m.Last(), a.ctxErr
	case a.reason == endClosed:
		return m.Last(), ErrIncomplete
	default:
		return m.Last(), ErrDetached
	}
}

// next reads the next event (or the end of the stream or of ctx).
func (a *teaAdapter) next() tea.Msg {
	select {
	case <-a.ctx.Done():
		return ctxDoneMsg{a.ctx.Err()}
	case ev, ok := <-a.events:
		if !ok {
			return closedMsg{}
		}
		return eventMsg{ev}
	}
}

func (a *teaAdapter) Init() tea.Cmd {
	return tea.Batch(a.next, a.m.spin.Tick)
}

func (a *teaAdapter) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case eventMsg:
		a.m.Update(msg.ev)
		if a.m.Done() {
			a.reason = endTerminal
			return a, tea.Quit
		}
		return a, a.next
	case closedMsg:
		a.reason = endClosed
		return a, tea.Quit
	case ctxDoneMsg:
		a.reason, a.ctxErr = endContext, msg.err
		return a, tea.Quit
	case detachMsg:
		return a.detach()
	case tea.KeyMsg:
		switch msg.String() {
		case "q", "ctrl+c", "esc":
			return a.detach()
		}
	case tea.WindowSizeMsg:
		a.m.SetWidth(msg.Width)
	case spinner.TickMsg:
		if a.m.Done() || a.reason != endUnknown {
			return a, nil
		}
		var cmd tea.Cmd
		a.m.spin, cmd = a.m.spin.Update(msg)
		return a, cmd
	}
	return a, nil
}

func (a *teaAdapter) detach() (tea.Model, tea.Cmd) {
	if a.reason == endUnknown {
		a.reason = endDetached
		a.m.detached = true
	}
	return a, tea.Quit
}

func (a *teaAdapter) View() string { return a.m.View() }
