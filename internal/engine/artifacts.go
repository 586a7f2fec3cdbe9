package engine

import (
	"context"
	"os"
	"path/filepath"

	"github.com/stellaops/stella/internal/ledger"
	"github.com/stellaops/stella/pkg/exportapi"
)

// localLedger is the engine's view of its ledger: the runs it returns have
// their artifacts where this engine's data directory holds them. Runs record
// absolute artifact paths, so a data directory moved or copied elsewhere
// (a bigger disk, a restored backup) still names the old place; a file of
// the same name in the run's folder under this data directory is taken
// instead, and a recorded path is kept only when no such file is there.
// Nothing is written back: the ledger keeps what the run recorded.
type localLedger struct {
	ledger.Ledger
	dataDir string
}

func (l localLedger) local(r *exportapi.Run) {
	if len(r.Artifacts) == 0 || r.ID == "" {
		return
	}
	dir := filepath.Join(l.dataDir, "runs", r.ID)
	var arts []exportapi.Artifact // copied on the first change: the slice may be shared
	for i, a := range r.Artifacts {
		here := filepath.Join(dir, a.Name)
		if a.Name == "" || a.Path == here || filepath.Base(a.Name) != a.Name {
			continue
		}
		if _, err := os.Stat(here); err != nil {
			continue
		}
		if arts == nil {
			arts = append([]exportapi.Artifact(nil), r.Artifacts...)
		}
		arts[i].Path = here
	}
	if arts != nil {
		r.Artifacts = arts
	}
}

func (l localLedger) Run(ctx context.Context, id string) (exportapi.Run, error) {
	r, err := l.Ledger.Run(ctx, id)
	if err == nil {
		l.local(&r)
	}
	return r, err
}

func (l localLedger) Runs(ctx context.Context, f ledger.RunFilter) ([]exportapi.Run, string, error) {
	runs, next, err := l.Ledger.Runs(ctx, f)
	for i := range runs {
		l.local(&runs[i])
	}
	return runs, next, err
}

func (l localLedger) UpdateRun(ctx context.Context, id string, fn func(*exportapi.Run) error) (exportapi.Run, error) {
	r, err := l.Ledger.UpdateRun(ctx, id, fn)
	if err == nil {
		l.local(&r)
	}
	return r, err
}

func (l localLedger) Recover(ctx context.Context) ([]exportapi.Run, error) {
	runs, err := l.Ledger.Recover(ctx)
	for i := range runs {
		l.local(&runs[i])
	}
	return runs, err
}
