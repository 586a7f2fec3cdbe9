// Package ledger records profiles (with revisions), runs, their event logs
// and artifacts. Ledger is implemented by bolt (embedded, default) and later
// postgres (service replicas); both must pass the conformance suite in
// ledgertest.
package ledger

import (
	"context"

	"github.com/stellaops/stella/pkg/exportapi"
)

// Ledger is the store of record for profiles and runs.
//
// Errors carry xerr codes: a missing profile is xerr.ProfileNotFound, a
// missing run xerr.RunNotFound, bad arguments xerr.InvalidInput.
type Ledger interface {
	// SaveProfile stores p as the next revision (r1, r2, ...) of
	// (p.Metadata.Tenant, p.Metadata.Name) when its labels or spec differ from
	// the latest revision; otherwise it stores nothing. It returns the latest
	// revision after the call and whether a new one was written. Saving an
	// archived profile's name again un-archives nothing: archived profiles
	// stay archived (xerr.InvalidInput).
	SaveProfile(ctx context.Context, p exportapi.Profile) (exportapi.Profile, bool, error)
	// Profile returns one revision ("" = latest) of a profile.
	Profile(ctx context.Context, tenant, name, revision string) (exportapi.Profile, error)
	// Profiles returns the latest revision of every profile of a tenant,
	// archived ones included (Archived set), sorted by name.
	Profiles(ctx context.Context, tenant string) ([]exportapi.Profile, error)
	// ProfileRevisions returns every revision of a profile, oldest first.
	ProfileRevisions(ctx context.Context, tenant, name string) ([]exportapi.Profile, error)
	// ArchiveProfile marks a profile archived: it can no longer be used for new runs.
	ArchiveProfile(ctx context.Context, tenant, name string) error

	// CreateRun stores a new run (normally pending). A run id that exists is xerr.InvalidInput.
	CreateRun(ctx context.Context, r exportapi.Run) error
	// Run returns one run.
	Run(ctx context.Context, id string) (exportapi.Run, error)
	// UpdateRun reads, changes (fn) and writes a run atomically. fn must not
	// change the run id, and the ledger refuses to move a run out of a
	// terminal state except to expired (xerr.InvalidInput).
	UpdateRun(ctx context.Context, id string, fn func(*exportapi.Run) error) (exportapi.Run, error)
	// Runs lists runs newest first (by CreatedAt, then id), filtered, at most
	// f.Limit (0 = 100) per page; the returned cursor fetches the next page
	// ("" when there is none).
	Runs(ctx context.Context, f RunFilter) ([]exportapi.Run, string, error)

	// AppendEvent adds ev to the run's ordered event log, assigning ev.Seq
	// (1, 2, 3, ... per run); ev.Time is kept as given. It is cheap enough to
	// call for every progress tick.
	AppendEvent(ctx context.Context, ev exportapi.Event) (exportapi.Event, error)
	// Events returns the events of a run with Seq > afterSeq, in order. It
	// works from another process while the run is still being written.
	Events(ctx context.Context, runID string, afterSeq int64) ([]exportapi.Event, error)

	// TakeLease marks the calling process as the one executing a run. The
	// lease lasts until Release or until the process dies.
	TakeLease(ctx context.Context, runID, owner string) (Lease, error)
	// Recover finds runs that are pending or running whose lease holder is
	// gone (killed, crashed) and marks them failed (errorCode "internal",
	// ErrorType ERR_EXPORT_INTERNAL) with a message that says so, appending a
	// run.failed event. It returns the runs it changed. Runs never leased
	// (pending, waiting for a worker) are left alone.
	Recover(ctx context.Context) ([]exportapi.Run, error)
	// LockSubmissions serialises submissions across every process sharing
	// the ledger: what a submission decides from the runs it sees (a mirror
	// run's sequence, the one live run of a chain) holds until it has
	// created its run and calls release. It waits for another holder.
	LockSubmissions(ctx context.Context) (release func(), err error)

	Close() error
}

// Lease is held while a process executes a run.
type Lease interface {
	Release() error
}

// RunFilter selects runs for Runs.
type RunFilter struct {
	Tenant  string               // "" = all tenants
	States  []exportapi.RunState // empty = all states
	Profile string               // profile name; "" = all
	Limit   int
	Cursor  string
}
