package engine_test

import (
	"os"
	"testing"

	"github.com/stellaops/stella/internal/engine"
)

// BenchmarkJSONRaw runs json:raw over the corpus at $STELLA_BENCH_CORPUS
// (make one with `go run ./tools/gencorpus`).
func BenchmarkJSONRaw(b *testing.B) {
	dir := os.Getenv("STELLA_BENCH_CORPUS")
	if dir == "" {
		b.Skip("set STELLA_BENCH_CORPUS to a corpus folder (go run ./tools/gencorpus)")
	}
	t := &testing.T{}
	e := newEngine(t, nil)
	for i := 0; i < b.N; i++ {
		r, err := runErr(t, e, engine.SubmitRequest{Profile: "json:raw", Sources: src("bench", dir)})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(r.Counts["records"]), "records")
	}
}
