package mirror_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/stellaops/stella/internal/mirror"
)

func TestZZApplyProf(t *testing.T) {
	if os.Getenv("ZZFULL") == "" {
		t.Skip()
	}
	tgt := filepath.Join(t.TempDir(), "t")
	n := func() time.Time { return time.Now().Add(time.Hour) }
	if _, err := mirror.Apply(context.Background(), mirror.ApplyOptions{Target: tgt, Bundles: []string{os.Getenv("ZZFULL")}, Now: n}); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Create("/tmp/mb/apply.prof")
	pprof.StartCPUProfile(f)
	st := time.Now()
	if _, err := mirror.Apply(context.Background(), mirror.ApplyOptions{Target: tgt, Bundles: []string{os.Getenv("ZZDELTA")}, Now: n}); err != nil {
		t.Fatal(err)
	}
	pprof.StopCPUProfile()
	t.Logf("delta apply %v", time.Since(st))
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("total alloc %d MB, sys %d MB", ms.TotalAlloc>>20, ms.Sys>>20)
}
