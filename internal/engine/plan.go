package engine

import (
	"context"

	"github.com/stellaops/stella/pkg/exportapi"
)

// Plan is what a run would include.
type Plan struct {
	Counts      map[string]int64       `json:"counts"` // kind, kind/source, ecosystem/<eco>, vex-statements, finding-lines
	Documents   int64                  `json:"documents"`
	NotSelected int64                  `json:"notSelected"`
	Profile     exportapi.ProfileRef   `json:"profile"`
	Selectors   exportapi.Selectors    `json:"selectors"`
	Skipped     []exportapi.Skipped    `json:"skipped"`
	Sources     []exportapi.SourceSpec `json:"sources"`
	Tenant      string                 `json:"tenant"`
}

// Plan reads the evidence a run would read and counts what it would
// include, writing nothing (no ledger entry, no files).
func (e *Engine) Plan(ctx context.Context, req SubmitRequest) (*Plan, error) {
	run, err := e.prepare(context.WithValue(ctx, planningKey{}, true), req)
	if err != nil {
		return nil, err
	}
	prof, err := e.ResolveProfileRevision(ctx, run)
	if err != nil {
		return nil, err
	}
	c, err := e.collect(ctx, run, prof.Spec, nil, nil)
	if err != nil {
		return nil, err
	}
	p := &Plan{Counts: c.counts, Documents: c.docs, NotSelected: c.ignored, Profile: run.Profile, Selectors: run.Selectors,
		Skipped: c.skipped, Sources: run.Sources, Tenant: run.Tenant}
	if p.Skipped == nil {
		p.Skipped = []exportapi.Skipped{}
	}
	return p, nil
}
