package bolt_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stellaops/stella/internal/ledger"
	"github.com/stellaops/stella/internal/ledger/bolt"
	"github.com/stellaops/stella/pkg/exportapi"
)

func benchLedger(b *testing.B, runs int) *bolt.Ledger {
	l, err := bolt.Open(filepath.Join(b.TempDir(), "ledger.db"), bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	ctx := context.Background()
	for i := 0; i < runs; i++ {
		r := newRun(fmt.Sprintf("run-%05d", i))
		if i%2 == 1 {
			r.Tenant = "globex"
		}
		if err := l.CreateRun(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
	return l
}

// BenchmarkAppendEvent is one progress tick of an executing run.
func BenchmarkAppendEvent(b *testing.B) {
	l := benchLedger(b, 1)
	ctx := context.Background()
	for b.Loop() {
		if _, err := l.AppendEvent(ctx, exportapi.Event{RunID: "run-00000", Type: exportapi.EventProgress, ItemsDone: 1}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEvents is one poll of `run watch` on a live run with 1000 events.
func BenchmarkEvents(b *testing.B) {
	l := benchLedger(b, 1)
	ctx := context.Background()
	for i := 0; i < 1000; i++ {
		l.AppendEvent(ctx, exportapi.Event{RunID: "run-00000", Type: exportapi.EventProgress, ItemsDone: int64(i)})
	}
	for b.Loop() {
		if _, err := l.Events(ctx, "run-00000", 990); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRun is one read (open read-only, one transaction, close).
func BenchmarkRun(b *testing.B) {
	l := benchLedger(b, 1)
	ctx := context.Background()
	for b.Loop() {
		if _, err := l.Run(ctx, "run-00000"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpdateRun is one write (open, one transaction with fsync, close).
func BenchmarkUpdateRun(b *testing.B) {
	l := benchLedger(b, 1)
	ctx := context.Background()
	for b.Loop() {
		if _, err := l.UpdateRun(ctx, "run-00000", func(r *exportapi.Run) error { r.Counts = map[string]int64{"n": 1 + r.Counts["n"]}; return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRunsTenantPage lists one page of one tenant out of 2000 runs.
func BenchmarkRunsTenantPage(b *testing.B) {
	l := benchLedger(b, 2000)
	ctx := context.Background()
	for b.Loop() {
		if _, _, err := l.Runs(ctx, ledger.RunFilter{Tenant: "acme", Limit: 50}); err != nil {
			b.Fatal(err)
		}
	}
}
