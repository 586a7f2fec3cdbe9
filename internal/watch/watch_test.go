package watch

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stellaops/stella/pkg/exportapi"
)

// runEvents is a whole successful run: plan, a write phase with a known
// total, two artifacts, completion.
func runEvents() []exportapi.Event {
	g := &seqGen{}
	evs := []exportapi.Event{
		g.ev(exportapi.EventStarted, 0, func(e *exportapi.Event) { e.Phase, e.State = "plan", exportapi.StateRunning }),
	}
	for s := 1; s <= 5; s++ {
		evs = append(evs, progressEv(g, time.Duration(s)*time.Second, "write", int64(20*s), 100, int64(400_000*s)))
	}
	evs = append(evs,
		g.ev(exportapi.EventArtifact, 6*time.Second, func(e *exportapi.Event) {
			e.Artifact = &exportapi.Artifact{Name: "bundle.tar.zst", Bytes: 2_000_000, MediaType: "application/zstd",
				Path: "/tmp/out/bundle.tar.zst", SHA256: strings.Repeat("ab", 32)}
			e.Bytes = 2_000_000
		}),
		g.ev(exportapi.EventArtifact, 6*time.Second, func(e *exportapi.Event) {
			e.Artifact = &exportapi.Artifact{Name: "export.json", Bytes: 900, MediaType: "application/json",
				Path: "/tmp/out/export.json", SHA256: strings.Repeat("cd", 32)}
		}),
		g.ev(exportapi.EventCompleted, 7*time.Second, func(e *exportapi.Event) {
			e.Phase, e.State = "distribute", exportapi.StateSucceeded
		}),
	)
	return evs
}

func feed(evs []exportapi.Event, closeAfter bool) <-chan exportapi.Event {
	ch := make(chan exportapi.Event)
	go func() {
		for _, ev := range evs {
			ch <- ev
		}
		if closeAfter {
			close(ch)
		}
	}()
	return ch
}

func withTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// syncBuffer is a bytes.Buffer safe for the renderer goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestWatchTTYCompletes(t *testing.T) {
	evs := runEvents()
	out := &syncBuffer{}
	// The channel stays open after the terminal event: Watch must return on
	// the event itself.
	final, err := Watch(withTimeout(t), feed(evs, false), Options{RunID: runID, Out: out, TTY: true, Width: 100})
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	if final != evs[len(evs)-1] {
		t.Fatalf("final = %+v", final)
	}
	v := stripANSI(out.String())
	mustContain(t, v, "run "+runID, "✓ succeeded", "artifacts", "bundle.tar.zst", "2.0 MB", "abababababab",
		"export.json", "900 B", "cdcdcdcdcdcd", "items 100 / 100")
	mustNotContain(t, v, "q: detach") // no input, no hint
}

func TestWatchTTYFailedIsNotAnError(t *testing.T) {
	g := &seqGen{}
	evs := []exportapi.Event{
		g.ev(exportapi.EventStarted, 0, nil),
		g.ev(exportapi.EventFailed, time.Second, func(e *exportapi.Event) {
			e.ErrorCode, e.Message, e.State = "validation", "selection matched nothing", exportapi.StateFailed
		}),
	}
	out := &syncBuffer{}
	final, err := Watch(withTimeout(t), feed(evs, true), Options{Out: out, TTY: true})
	if err != nil || final.Type != exportapi.EventFailed {
		t.Fatalf("final %v err %v", final.Type, err)
	}
	mustContain(t, stripANSI(out.String()), "✗ failed", "run failed: validation: selection matched nothing")
}

func TestWatchTTYDetachWithQ(t *testing.T) {
	g := &seqGen{}
	ch := make(chan exportapi.Event, 1)
	ch <- g.ev(exportapi.EventStarted, 0, func(e *exportapi.Event) { e.Phase = "read" })
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	out := &syncBuffer{}
	done := make(chan struct{})
	var (
		final exportapi.Event
		err   error
	)
	go func() {
		defer close(done)
		final, err = Watch(withTimeout(t), ch, Options{RunID: runID, In: pr, Out: out, TTY: true})
	}()
	// Wait until the started event is on screen, then press q.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stripANSI(out.String()), "phase read") {
		if time.Now().After(deadline) {
			t.Fatalf("started event never rendered:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, werr := pw.Write([]byte("q")); werr != nil {
		t.Fatal(werr)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("q did not end the view")
	}
	if !errors.Is(err, ErrDetached) {
		t.Fatalf("err = %v; want ErrDetached", err)
	}
	if final.Type != exportapi.EventStarted {
		t.Fatalf("final = %+v", final)
	}
	mustContain(t, stripANSI(out.String()), "q: detach", "detached: the run goes on")
}

func TestWatchTTYContextAndClose(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan exportapi.Event)
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	_, err := Watch(ctx, ch, Options{Out: io.Discard, TTY: true})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v; want context.Canceled", err)
	}

	g := &seqGen{}
	started := g.ev(exportapi.EventStarted, 0, nil)
	final, err := Watch(withTimeout(t), feed([]exportapi.Event{started}, true), Options{Out: io.Discard, TTY: true})
	if !errors.Is(err, ErrIncomplete) || final != started {
		t.Fatalf("final %+v err %v; want started, ErrIncomplete", final, err)
	}
}

func TestWatchNDJSON(t *testing.T) {
	evs := runEvents()
	// An overlapping poll repeats two events; they are not printed twice.
	in := append([]exportapi.Event{}, evs[:3]...)
	in = append(in, evs[1], evs[2])
	in = append(in, evs[3:]...)
	var out bytes.Buffer
	final, err := Watch(withTimeout(t), feed(in, false), Options{Out: &out})
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	if final != evs[len(evs)-1] {
		t.Fatalf("final = %+v", final)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != len(evs) {
		t.Fatalf("%d lines for %d events:\n%s", len(lines), len(evs), out.String())
	}
	for i, l := range lines {
		want, _ := json.Marshal(evs[i])
		if l != string(want) {
			t.Errorf("line %d = %s\nwant %s", i, l, want)
		}
		var back exportapi.Event
		if err := json.Unmarshal([]byte(l), &back); err != nil || back.Seq != evs[i].Seq {
			t.Errorf("line %d does not round-trip: %v", i, err)
		}
	}
	// Keys in canonical (sorted) order.
	if !strings.HasPrefix(lines[1], `{"bytes":400000,"itemsDone":20,"itemsTotal":100,"phase":"write","runId":"`+runID+`","seq":2,"time":"2025-03-01T12:00:01Z","type":"run.progress"}`) {
		t.Errorf("line 1 not canonical: %s", lines[1])
	}
}

// flushRecorder checks that each line is flushed on its own.
type flushRecorder struct {
	w       *bufio.Writer
	buf     bytes.Buffer
	flushed []string
}

func (f *flushRecorder) Write(p []byte) (int, error) { return f.w.Write(p) }
func (f *flushRecorder) Flush() error {
	err := f.w.Flush()
	f.flushed = append(f.flushed, f.buf.String())
	return err
}

func TestWatchNDJSONFlushPerLine(t *testing.T) {
	f := &flushRecorder{}
	f.w = bufio.NewWriterSize(&f.buf, 1<<16)
	evs := runEvents()
	if _, err := Watch(withTimeout(t), feed(evs, false), Options{Out: f}); err != nil {
		t.Fatal(err)
	}
	if len(f.flushed) != len(evs) {
		t.Fatalf("%d flushes for %d events", len(f.flushed), len(evs))
	}
	for i, s := range f.flushed {
		if n := strings.Count(s, "\n"); n != i+1 || !strings.HasSuffix(s, "\n") {
			t.Fatalf("flush %d holds %d complete lines", i, n)
		}
	}
}

func TestWatchNDJSONEnds(t *testing.T) {
	g := &seqGen{}
	started := g.ev(exportapi.EventStarted, 0, nil)
	var out bytes.Buffer
	final, err := Watch(withTimeout(t), feed([]exportapi.Event{started}, true), Options{Out: &out})
	if !errors.Is(err, ErrIncomplete) || final != started || strings.Count(out.String(), "\n") != 1 {
		t.Fatalf("closed: final %+v err %v out %q", final, err, out.String())
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out.Reset()
	ch := make(chan exportapi.Event, 1)
	ch <- started
	if _, err := Watch(ctx, ch, Options{Out: &out}); !errors.Is(err, context.Canceled) || out.Len() != 0 {
		t.Fatalf("cancelled: err %v out %q", err, out.String())
	}

	wantErr := errors.New("disk full")
	_, err = Watch(withTimeout(t), feed([]exportapi.Event{started}, true), Options{Out: errWriter{wantErr}})
	if !errors.Is(err, wantErr) {
		t.Fatalf("write error: %v", err)
	}
}

type errWriter struct{ err error }

func (e errWriter) Write([]byte) (int, error) { return 0, e.err }
