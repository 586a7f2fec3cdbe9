// Package watch renders the live view of one export run (`stella export run
// watch <id>` and `run submit --watch`, SPEC §7): a terminal UI on a TTY,
// NDJSON events otherwise.
//
// The events come from a channel fed by whoever polls the ledger (or the
// service); this package only consumes them. Watch returns on the run's
// terminal event (run.completed, run.failed, run.cancelled), when the channel
// closes, when the context ends, or when the user detaches from the TUI.
//
// Decisions where SPEC §7 is silent:
//   - Rate and ETA use the events' Time fields, never the wall clock, over a
//     sliding window of RateWindow of event time (at least the two newest
//     progress samples). A phase change, a new itemsTotal or counters going
//     backwards restart the window. ETA = (itemsTotal-itemsDone) / items/s.
//   - Sizes use decimal units (1 MB = 10^6 bytes), as in "MB/s".
//   - Event.Bytes of run.started/run.progress is the run's running total of
//     bytes written; on run.artifact it is the artifact's size and does not
//     change the total. Zero counters are "not reported" (omitempty).
//   - Both modes drop events whose Seq is not above the previous one
//     (duplicates from overlapping polls); Seq 0 is never dropped.
//   - The TUI renders inline, not on the alt screen, so its final frame (with
//     the artifact list or the error) stays in the scrollback. q, esc,
//     ctrl-c and SIGINT detach (ErrDetached); the run is not cancelled.
package watch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/stellaops/stella/pkg/exportapi"
)

// ErrDetached is returned when the user left the view (q, ctrl-c) before
// the run ended. The run itself is not cancelled. Like context.Canceled it
// is a sentinel: compare with errors.Is.
var ErrDetached = errors.New("watch: detached from the run (the run goes on)")

// ErrIncomplete is returned when the event channel closed before a terminal
// event arrived.
var ErrIncomplete = errors.New("watch: event stream ended before the run finished")

// Options configure Watch.
type Options struct {
	// RunID is the run shown in the TUI header; empty: the first event's.
	RunID string
	// In is the keyboard input of the TUI (q / ctrl-c detach). nil: no
	// input; only SIGINT detaches then.
	In io.Reader
	// Out receives the TUI or the NDJSON lines.
	Out io.Writer
	// TTY selects the terminal UI; otherwise NDJSON is written.
	TTY bool
	// Width is the initial width of the TUI in columns (0: 80); the TUI
	// follows the terminal's size when Out is a terminal.
	Width int
}

// Watch consumes events until the terminal one, which it returns with a nil
// error whatever the run's outcome (the caller maps run.failed to its exit
// code). Otherwise it returns the newest event it saw (zero if none) and
// ErrDetached, ErrIncomplete, the context's error, or an output error.
//
// Events must arrive in Seq order; events whose Seq is not above the
// previous one (duplicates from overlapping polls) are dropped in both
// modes.
func Watch(ctx context.Context, events <-chan exportapi.Event, opts Options) (final exportapi.Event, err error) {
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	if opts.TTY {
		return watchTUI(ctx, events, opts)
	}
	return watchNDJSON(ctx, events, opts.Out)
}

// flusher is a writer that buffers (bufio.Writer and the like).
type flusher interface{ Flush() error }

// watchNDJSON writes one canonical JSON line per event, in one Write call
// each, and flushes Out after every line when it can be flushed.
func watchNDJSON(ctx context.Context, events <-chan exportapi.Event, out io.Writer) (exportapi.Event, error) {
	var (
		last    exportapi.Event
		lastSeq int64
		seen    bool
	)
	for {
		// A cancelled context wins over events that are ready.
		if err := ctx.Err(); err != nil {
			return last, err
		}
		var ev exportapi.Event
		var ok bool
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case ev, ok = <-events:
		}
		if !ok {
			return last, ErrIncomplete
		}
		if ev.Seq > 0 {
			if seen && ev.Seq <= lastSeq {
				continue
			}
			lastSeq = ev.Seq
		}
		seen = true
		last = ev
		line, err := json.Marshal(ev)
		if err != nil {
			return last, fmt.Errorf("watch: encode event %d: %w", ev.Seq, err)
		}
		line = append(line, '\n')
		if _, err := out.Write(line); err != nil {
			return last, fmt.Errorf("watch: write event: %w", err)
		}
		if f, ok := out.(flusher); ok {
			if err := f.Flush(); err != nil {
				return last, fmt.Errorf("watch: write event: %w", err)
			}
		}
		if IsTerminal(ev) {
			return ev, nil
		}
	}
}
