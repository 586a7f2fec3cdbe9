package engine

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync/atomic"

	"github.com/stellaops/stella/internal/statcache"

	"github.com/stellaops/stella/internal/ledger"
	"github.com/stellaops/stella/pkg/exportapi"
)

// Extension lets the adapter of a kind:variant take part in the stages
// around the record stream (the mirror adapter uses it for its chain:
// sequence, delta base, unchanged documents). Every field is optional.
type Extension struct {
	// Prepare runs in Submit before the run is recorded. It may set
	// run.BaseRunID and run.Extra (parameters that are then fixed for the
	// run's life), or refuse the run.
	Prepare func(ctx context.Context, pc PrepareContext) error
	// Begin runs in a run's build before any evidence is read. What it
	// returns is handed to the adapter factory as AdapterContext.State; when
	// it implements DocSkipper, the read stage asks it about every document.
	Begin func(ctx context.Context, bc BeginContext) (any, error)
	// StatCache makes runs of the kind:variant record the file status of
	// the documents they read (internal/statcache), and runs with a base
	// (run.BaseRunID) take a document whose status is unchanged since the
	// base read it as unchanged, when the Begin state (a DocSkipper) also
	// knows its digest — without reading it.
	StatCache bool
}

// PrepareContext is what Extension.Prepare gets.
type PrepareContext struct {
	Run     *exportapi.Run
	Profile exportapi.Profile
	Ledger  ledger.Ledger
	// Planning is set for `plan`, which writes nothing: checks that guard
	// what a submitted run would write (a mirror chain's one live run) are
	// passed over.
	Planning bool
}

// BeginContext is what Extension.Begin gets.
type BeginContext struct {
	Run     exportapi.Run
	Profile exportapi.Profile
	Ledger  ledger.Ledger
	TempDir string // private scratch space of the run, removed at its end
	Version string // binary version that writes the bundle
	// SortBudget is the run's in-memory sort budget (bytes).
	SortBudget int
	// Log is the engine's logger.
	Log *slog.Logger
}

// DocSkipper is implemented by an Extension.Begin state that knows some
// documents already (the base of a delta). A document it reports unchanged
// still counts towards its source's digest and towards the run's records,
// but is neither parsed nor handed to the adapter. It is called from
// several goroutines.
type DocSkipper interface {
	SkipUnchanged(doc DocRef) bool
}

// DocPrefetcher is implemented by DocSkippers whose answers are look-ups
// in memory that the keys (statcache.KeyOf) of the documents about to be
// asked about can warm, a batch at a time (a hint; it changes no answer).
type DocPrefetcher interface {
	PrefetchDocs(keys []statcache.Key)
}

// DocRef names a document for a DocSkipper.
type DocRef struct {
	Source, Path, Digest string
	Key                  statcache.Key // statcache.KeyOf(Source, Path)
	Sum                  *[32]byte     // Digest's bytes, when known (valid during the call)
}

// OriginAdapter is implemented by adapters that want to know where each
// record came from: RecordOrigin is then called instead of Record, with the
// source name, the document path and the record's sequence number within
// its document ("00000000", ...).
type OriginAdapter interface {
	RecordOrigin(stream, id, source, path, seq string, line []byte) error
}

// ManifestFiller is implemented by adapters that complete export.json
// before it is written (sequence, delta, expiry, encryption) — after every
// data file is staged. The contents list, rerun hash and export id are
// computed after it returns.
type ManifestFiller interface {
	FillManifest(m *exportapi.Manifest) error
}

// ArchiveNamer is implemented by adapters that name their bundle archive.
type ArchiveNamer interface {
	ArchiveName(m *exportapi.Manifest) string
}

var extensions = map[string]Extension{}

// RegisterExtension adds an Extension to a kind:variant.
func RegisterExtension(kindVariant string, x Extension) { extensions[kindVariant] = x }

type skipperKey struct{}

// skipperCounter counts the documents a DocSkipper reported unchanged.
type skipperCounter struct {
	s DocSkipper
	n atomic.Int64
}

func (e *Engine) begin(ctx context.Context, run exportapi.Run, prof exportapi.Profile, tmp string) (any, context.Context, *skipperCounter, error) {
	x, ok := extensions[prof.Spec.Kind+":"+prof.Spec.Variant]
	if !ok || x.Begin == nil {
		return nil, ctx, nil, nil
	}
	st, err := x.Begin(ctx, BeginContext{Run: run, Profile: prof, Ledger: e.led, TempDir: tmp, Version: e.cfg.Version,
		SortBudget: e.cfg.SortBudget, Log: e.log})
	if err != nil {
		return nil, ctx, nil, err
	}
	if s, ok := st.(DocSkipper); ok && s != nil {
		sc := &skipperCounter{s: s}
		return st, context.WithValue(ctx, skipperKey{}, sc), sc, nil
	}
	return st, ctx, nil, nil
}

// statCacheState is a run's use of the stat cache: whether it records one,
// and its base's (nil when the base has none).
type statCacheState struct {
	record bool
	base   *statcache.Cache
	// docs is the base's document list (nil when it has none): with it the
	// documents found unchanged by their status are not sorted again.
	docs *statcache.DocList
}

type statCacheKey struct{}

func statCacheFrom(ctx context.Context) *statCacheState {
	sc, _ := ctx.Value(statCacheKey{}).(*statCacheState)
	return sc
}

// statCacheName is the stat cache file in a run's directory, docListName
// its document list.
const (
	statCacheName = ".statcache"
	docListName   = ".doclist"
)

// openStatCache decides a run's stat cache use and opens its base's cache.
func (e *Engine) openStatCache(run exportapi.Run, prof exportapi.Profile) *statCacheState {
	x, ok := extensions[prof.Spec.Kind+":"+prof.Spec.Variant]
	if !ok || !x.StatCache || !statcache.Supported || e.cfg.DistrustFileStat {
		return nil
	}
	sc := &statCacheState{record: true}
	if run.BaseRunID != "" {
		c, err := statcache.Open(filepath.Join(e.RunDir(run.BaseRunID), statCacheName))
		if err != nil {
			e.log.Warn("run.statcache_unreadable", "runId", run.ID, "base", run.BaseRunID, "err", err.Error())
		} else {
			sc.base = c
		}
		if c != nil {
			d, err := statcache.OpenDocList(filepath.Join(e.RunDir(run.BaseRunID), docListName))
			if err != nil {
				e.log.Warn("run.doclist_unreadable", "runId", run.ID, "base", run.BaseRunID, "err", err.Error())
			}
			sc.docs = d
		}
	}
	return sc
}

func skipperFrom(ctx context.Context) *skipperCounter {
	sc, _ := ctx.Value(skipperKey{}).(*skipperCounter)
	return sc
}

func (sc *skipperCounter) skip(doc DocRef) bool {
	if sc == nil || !sc.s.SkipUnchanged(doc) {
		return false
	}
	sc.n.Add(1)
	return true
}

func (sc *skipperCounter) count() int64 {
	if sc == nil {
		return 0
	}
	return sc.n.Load()
}

func (e *Engine) prepareExtension(ctx context.Context, run *exportapi.Run, p exportapi.Profile) error {
	x, ok := extensions[p.Spec.Kind+":"+p.Spec.Variant]
	if !ok || x.Prepare == nil {
		return nil
	}
	_, planning := ctx.Value(planningKey{}).(bool)
	return x.Prepare(ctx, PrepareContext{Run: run, Profile: p, Ledger: e.led, Planning: planning})
}

// planningKey marks the context of Plan.
type planningKey struct{}
