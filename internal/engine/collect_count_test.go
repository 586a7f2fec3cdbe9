package engine

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/stellaops/stella/internal/evidence"
	"github.com/stellaops/stella/internal/record"
)

// The progress total of a folder source is the number of documents its
// walk passes (hidden folders and files and non-candidates left out).
func TestCountCandidatesMatchesWalk(t *testing.T) {
	root := filepath.Join("..", "..", "testdata", "evidence")
	var walked atomic.Int64
	err := evidence.Walk(context.Background(), evidence.Source{Name: "s", Path: root}, evidence.Options{Readers: 4},
		func(record.Document, error) error { walked.Add(1); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if walked.Load() < 100 {
		t.Fatalf("only %d documents under %s", walked.Load(), root)
	}
	if got := countCandidates(context.Background(), root); got != walked.Load() {
		t.Fatalf("countCandidates = %d, the walk passed %d", got, walked.Load())
	}
	if got := countCandidates(context.Background(), filepath.Join(root, "no-such-folder")); got != 0 {
		t.Fatalf("missing folder counted %d", got)
	}
}
