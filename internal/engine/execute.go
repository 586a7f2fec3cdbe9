package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/stellaops/stella/internal/bundle"
	"github.com/stellaops/stella/internal/canon"
	"github.com/stellaops/stella/internal/extsort"
	"github.com/stellaops/stella/internal/statcache"
	"github.com/stellaops/stella/internal/xerr"
	"github.com/stellaops/stella/pkg/exportapi"
)

// BundleMediaType is the media type of a bundle archive artifact.
const BundleMediaType = "application/vnd.stellaops.export.bundle.v1.tar+zstd"

// RunDir is where a run's artifacts live.
func (e *Engine) RunDir(id string) string { return filepath.Join(e.cfg.DataDir, "runs", id) }

// reporter emits progress events, at most a few per second, and notices
// cancellation requests from other processes.
type reporter struct {
	e       *Engine
	run     string
	mu      sync.Mutex
	phase   string // of the last event
	last    time.Time
	checked time.Time
	cancel  context.CancelCauseFunc
}

// progress records a progress event: the first of a phase, the last (done
// reaches a known total) and otherwise at most five a second. (Every event
// is a locked append to the run's event log: unthrottled, a write phase
// of 400,000 lines appended 1,600 of them from the merge's goroutine.)
func (r *reporter) progress(phase string, done, total, bytes int64) {
	r.mu.Lock()
	now := time.Now()
	end := total > 0 && done >= total
	if phase == r.phase && !end && now.Sub(r.last) < 200*time.Millisecond {
		r.mu.Unlock()
		return
	}
	r.phase, r.last = phase, now
	check := now.Sub(r.checked) > time.Second
	if check {
		r.checked = now
	}
	r.mu.Unlock()
	ctx := context.Background()
	r.e.led.AppendEvent(ctx, exportapi.Event{RunID: r.run, Type: exportapi.EventProgress, Phase: phase,
		ItemsDone: done, ItemsTotal: total, Bytes: bytes, Time: r.e.cfg.Now().UTC()})
	if check {
		if run, err := r.e.led.Run(ctx, r.run); err == nil && run.CancelRequested {
			r.cancel(errCancelled)
		}
	}
}

// Execute runs a pending run to the end in this process: it takes the run's
// lease, reads the evidence, writes the bundle atomically, and records the
// outcome. The returned run is the final ledger state; err is the run's
// failure (also recorded), or a ledger problem.
func (e *Engine) Execute(ctx context.Context, id string) (exportapi.Run, error) {
	run, err := e.led.Run(ctx, id)
	if err != nil {
		return run, err
	}
	if run.State != exportapi.StatePending {
		return run, xerr.New(xerr.InvalidInput, "run %s is %s, not pending", id, run.State)
	}
	lease, err := e.led.TakeLease(ctx, id, hostOwner())
	if err != nil {
		return run, err
	}
	defer lease.Release()
	start := e.cfg.Now().UTC()
	host, _ := os.Hostname()
	run, err = e.led.UpdateRun(ctx, id, func(r *exportapi.Run) error {
		if r.State != exportapi.StatePending {
			return xerr.New(xerr.InvalidInput, "run %s is %s, not pending", id, r.State)
		}
		if r.CancelRequested {
			return errCancelled
		}
		r.State, r.StartedAt, r.Owner, r.Host = exportapi.StateRunning, &start, hostOwner(), host
		return nil
	})
	if err != nil {
		if errors.Is(err, errCancelled) {
			return e.finishFailed(ctx, id, errCancelled)
		}
		return run, err
	}
	log := e.log.With("runId", id, "tenant", run.Tenant, "profile", run.Profile.Name)
	log.Info("run.started")
	e.led.AppendEvent(ctx, exportapi.Event{RunID: id, Type: exportapi.EventStarted, State: exportapi.StateRunning,
		Phase: "plan", Time: start})

	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	rep := &reporter{e: e, run: id, cancel: cancel}
	arts, counts, exportID, err := e.build(rctx, run, rep.progress)
	recorded := false // artifacts already on the run (distribute records them before pushing)
	if err == nil {
		recorded, err = e.distribute(rctx, run, arts, counts, exportID, rep.progress)
	}
	if err != nil {
		if c := context.Cause(rctx); c != nil && errors.Is(c, errCancelled) {
			err = errCancelled
		} else if errors.Is(ctx.Err(), context.Canceled) { // the caller stopped: an interrupt
			err = interruptedError{context.Cause(ctx)}
		}
		// A run that failed before it wrote anything leaves no empty
		// folder behind (os.Remove takes only an empty one: a bundle kept
		// after a failed push stays, with its run).
		os.Remove(e.RunDir(id))
		final, ferr := e.finishFailed(ctx, id, err)
		if ferr != nil {
			return final, ferr
		}
		code := xerr.CodeOf(err)
		if errors.Is(err, errCancelled) {
			log.Warn("run.cancelled")
		} else {
			log.Error("run.failed", "errorCode", code.Label(), "error", err.Error())
		}
		return final, err
	}
	end := e.cfg.Now().UTC()
	for i := range arts {
		if recorded {
			break
		}
		a := arts[i]
		e.led.AppendEvent(ctx, exportapi.Event{RunID: id, Type: exportapi.EventArtifact, Artifact: &a, Time: end})
	}
	final, err := e.led.UpdateRun(ctx, id, func(r *exportapi.Run) error {
		r.State, r.FinishedAt, r.Artifacts, r.Counts, r.ExportID = exportapi.StateSucceeded, &end, arts, counts, exportID
		return nil
	})
	if err != nil {
		return final, err
	}
	var total int64
	for _, a := range arts {
		total += a.Bytes
	}
	e.led.AppendEvent(ctx, exportapi.Event{RunID: id, Type: exportapi.EventCompleted, State: exportapi.StateSucceeded,
		Time: end, Bytes: total, Message: exportID})
	log.Info("run.completed", "exportId", exportID, "bytes", total, "seconds", end.Sub(start).Seconds())
	return final, nil
}

// finishFailed records a failed (or cancelled) run and its event.
func (e *Engine) finishFailed(ctx context.Context, id string, cause error) (exportapi.Run, error) {
	now := e.cfg.Now().UTC()
	state, typ := exportapi.StateFailed, exportapi.EventFailed
	xe := xerr.As(cause)
	msg := xe.Message
	if xe.Hint != "" {
		msg += " (" + xe.Hint + ")"
	}
	var in interruptedError
	if errors.As(cause, &in) {
		state, typ, msg = exportapi.StateCancelled, exportapi.EventCancelled, in.Error()
	} else if errors.Is(cause, errCancelled) {
		state, typ, msg = exportapi.StateCancelled, exportapi.EventCancelled, "cancelled on request"
	}
	final, err := e.led.UpdateRun(ctx, id, func(r *exportapi.Run) error {
		r.State, r.FinishedAt = state, &now
		if state == exportapi.StateFailed {
			r.ErrorType, r.ErrorCode = string(xe.Code), xe.Code.Label()
		}
		r.ErrorMessage = msg
		return nil
	})
	if err != nil {
		return final, err
	}
	ev := exportapi.Event{RunID: id, Type: typ, State: state, Time: now, Message: msg}
	if state == exportapi.StateFailed {
		ev.ErrorCode = string(xe.Code)
	}
	e.led.AppendEvent(ctx, ev)
	return final, nil
}

// build does the work of a run and returns its artifacts.
func (e *Engine) build(ctx context.Context, run exportapi.Run, progress progressFn) ([]exportapi.Artifact, map[string]int64, string, error) {
	prof, err := e.ResolveProfileRevision(ctx, run)
	if err != nil {
		return nil, nil, "", err
	}
	dir := e.RunDir(run.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, "", xerr.Wrap(xerr.Internal, err, "create %s", dir)
	}
	tmp := filepath.Join(dir, ".work")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, nil, "", xerr.Wrap(xerr.Internal, err, "create %s", tmp)
	}
	defer os.RemoveAll(tmp)
	sorter := extsort.New(tmp, e.cfg.SortBudget)
	defer sorter.Close()
	// The base's stat cache and document list are opened (read, checked
	// and indexed: 15-20 ms at 200,000 documents) while the adapter's
	// Begin loads its own base (a mirror delta: its record state and the
	// base bundle's digest, 50-60 ms); neither needs the other.
	scc := make(chan *statCacheState, 1)
	go func() { scc <- e.openStatCache(run, prof) }()
	state, cctx, skipped, err := e.begin(ctx, run, prof, tmp)
	sc := <-scc
	if sc != nil {
		defer sc.base.Close()
		defer sc.docs.Close()
		cctx = context.WithValue(cctx, statCacheKey{}, sc)
	}
	if err != nil {
		return nil, nil, "", err
	}
	if cl, ok := state.(AdapterCloser); ok {
		defer cl.Close() // what Begin opened (a delta's base state), however the run ends
	}
	side := newSideFiles(dir)
	defer side.cleanup()
	var statOut *statcache.Writer
	var docsOut *statcache.DocListWriter
	statDone, docsDone := func() {}, func() {}
	if sc != nil {
		// Caches for the next run of the chain: one that cannot be written
		// costs that run its speed-up, not this run its bundle.
		var p string
		p, statDone = side.file(statCacheName)
		if statOut, err = statcache.Create(p); err != nil {
			e.log.Warn("run.statcache_unwritten", "runId", run.ID, "err", err.Error())
		} else {
			defer statOut.Close()
		}
		p, docsDone = side.file(docListName)
		if docsOut, err = statcache.CreateDocList(p); err != nil {
			e.log.Warn("run.doclist_unwritten", "runId", run.ID, "err", err.Error())
		} else {
			defer docsOut.Close()
		}
	}
	c, err := e.collect(cctx, run, prof.Spec, sorter, progress)
	if err != nil {
		return nil, nil, "", err
	}
	c.statOut, c.docsOut = statOut, docsOut
	stage, err := bundle.NewStage(tmp)
	if err != nil {
		return nil, nil, "", xerr.Wrap(xerr.Internal, err, "stage")
	}
	defer stage.Remove()
	codec := bundle.Codec(prof.Spec.Compression.Codec)
	ac := AdapterContext{Ctx: ctx, Stage: stage, Run: run, Profile: prof, Codec: codec, Level: prof.Spec.Compression.Level, SourceDateEpoch: e.cfg.SourceDateEpoch, State: state,
		Now: e.cfg.Now, SideFile: side.file}
	factory := NewJSONLayout
	if f, ok := adapters[prof.Spec.Kind+":"+prof.Spec.Variant]; ok {
		factory = f
	}
	ad, err := factory(ac)
	if err != nil {
		return nil, nil, "", err
	}
	if cl, ok := ad.(AdapterCloser); ok {
		defer cl.Close()
	}
	progress("write", 0, 0, 0)
	res, err := e.merge(ctx, run, prof.Spec, c, ad, progress)
	if err != nil {
		return nil, nil, "", err
	}
	res.records += skipped.count() // unchanged documents of a delta's base are records too
	if res.records == 0 && !run.AllowEmpty {
		return nil, nil, "", xerr.New(xerr.Empty, "the selection matched no records (%d documents read from %d sources, %d not selected, %d skipped)",
			c.docs, len(run.Sources), c.ignored, len(res.skipped)).
			WithHint("check --selector values with `stella export plan`, or pass --allow-empty for an empty, valid bundle")
	}
	generated := time.Unix(0, 0).UTC()
	switch {
	case e.cfg.SourceDateEpoch != nil:
		generated = e.cfg.SourceDateEpoch.UTC()
	case !c.newest.IsZero():
		generated = c.newest
	}
	m := &exportapi.Manifest{
		Schema: exportapi.ManifestSchema, Version: e.cfg.Version, Tenant: run.Tenant,
		Profile:     exportapi.ManifestProfile{Kind: prof.Spec.Kind, Variant: prof.Spec.Variant, Name: prof.Metadata.Name, Revision: prof.Metadata.Revision},
		Selectors:   run.Selectors,
		GeneratedAt: generated.Format(time.RFC3339),
		Sources:     res.sources, Skipped: res.skipped,
	}
	if m.Skipped == nil {
		m.Skipped = []exportapi.Skipped{}
	}
	if m.Sources == nil {
		m.Sources = []exportapi.ManifestSource{}
	}
	progress("finalize", 0, 0, 0)
	root := prof.Spec.Kind
	if mf, ok := ad.(ManifestFiller); ok {
		if err := mf.FillManifest(m); err != nil {
			return nil, nil, "", err
		}
	}
	if err := e.finalize(ctx, stage, m, run, prof); err != nil {
		return nil, nil, "", err
	}
	name := fmt.Sprintf("%s-%s-%s-%s.tar.zst", prof.Spec.Kind, run.Tenant, prof.Spec.Variant, generated.Format("20060102"))
	if an, ok := ad.(ArchiveNamer); ok {
		name = an.ArchiveName(m)
	}
	dst := filepath.Join(dir, name)
	sum, size, err := stage.WriteArchiveFile(dst, bundle.ArchiveOptions{Root: root, Codec: bundle.Zstd, Level: 1})
	if err != nil {
		return nil, nil, "", xerr.Wrap(xerr.Internal, err, "write %s", dst)
	}
	arts := []exportapi.Artifact{{Name: name, Path: dst, Bytes: size, SHA256: sum, MediaType: BundleMediaType}}
	if e.cfg.Hooks.SignArchive != nil {
		paths, err := e.cfg.Hooks.SignArchive(ctx, dst)
		if err != nil {
			os.Remove(dst)
			return nil, nil, "", err
		}
		for _, sp := range paths {
			ssum, ssize, err := bundle.FileSHA256(sp)
			if err != nil {
				os.Remove(dst)
				return nil, nil, "", xerr.Wrap(xerr.Internal, err, "signature %s", sp)
			}
			mt := "application/vnd.dev.cosign.signature.v1+base64"
			if strings.HasSuffix(sp, ".json") {
				mt = "application/vnd.dev.sigstore.bundle.v0.3+json"
			}
			arts = append(arts, exportapi.Artifact{Name: filepath.Base(sp), Path: sp, Bytes: ssize, SHA256: ssum, MediaType: mt})
		}
	}
	counts := map[string]int64{"documents": c.docs, "records": res.records, "skipped": int64(len(res.skipped))}
	if n := c.unread.Load(); n > 0 {
		counts["documentsUnread"] = n // unchanged since the base by their file status (stat cache)
	}
	for _, ce := range m.Contents {
		if k := countName(ce.Path); k != "" {
			counts[k] += ce.Records
		}
	}
	// The stat cache and document list for the next run of the chain: not
	// part of the bundle; a run without them reads every document.
	if statOut != nil {
		if err := statOut.Close(); err == nil {
			statDone()
		} else {
			e.log.Warn("run.statcache_unwritten", "runId", run.ID, "err", err.Error())
		}
	}
	if docsOut != nil {
		if err := docsOut.Close(); err == nil {
			docsDone()
		} else {
			e.log.Warn("run.doclist_unwritten", "runId", run.ID, "err", err.Error())
		}
	}
	side.commit(e.log, run.ID)
	progress("done", 1, 1, size)
	return arts, counts, m.ExportID, nil
}

func countName(p string) string {
	parts := strings.Split(p, "/")
	if len(parts) >= 3 && parts[0] == "data" {
		return parts[1] + "." + parts[2]
	}
	return ""
}

// ResolveProfileRevision loads the exact profile revision a run recorded.
func (e *Engine) ResolveProfileRevision(ctx context.Context, run exportapi.Run) (exportapi.Profile, error) {
	p, err := e.led.Profile(ctx, run.Tenant, run.Profile.Name, run.Profile.Revision)
	if err == nil {
		return p, nil
	}
	if b, ok := builtInFor(run); ok {
		return b, nil
	}
	return p, err
}

// finalize writes export.json, manifest.yaml, provenance and signatures
// into the stage.
func (e *Engine) finalize(ctx context.Context, stage *bundle.Stage, m *exportapi.Manifest, run exportapi.Run, prof exportapi.Profile) error {
	m.Contents = stage.Entries()
	m.RerunHash = bundle.RerunHash(m.Contents)
	m.ExportID = bundle.ExportID(m.Tenant, m.Profile.Name, m.RerunHash)
	exportJSON, err := canon.Marshal(m)
	if err != nil {
		return xerr.Wrap(xerr.Internal, err, "export.json")
	}
	if err := stage.Put("export.json", "application/json", exportJSON, 0); err != nil {
		return xerr.Wrap(xerr.Internal, err, "export.json")
	}
	summary, err := bundle.RenderSummary(exportJSON, m)
	if err != nil {
		return xerr.Wrap(xerr.Internal, err, "manifest.yaml")
	}
	if err := stage.Put("manifest.yaml", "application/yaml", summary, 0); err != nil {
		return xerr.Wrap(xerr.Internal, err, "manifest.yaml")
	}
	var recipients []string
	if m.Encryption != nil {
		recipients = m.Encryption.Recipients
	}
	prov, err := buildProvenance(m, exportJSON, e.cfg.Version, recipients)
	if err != nil {
		return err
	}
	if err := stage.Put("provenance.json", "application/vnd.in-toto+json", prov, 0); err != nil {
		return xerr.Wrap(xerr.Internal, err, "provenance.json")
	}
	if e.cfg.Hooks.Sign != nil {
		sigs, err := e.cfg.Hooks.Sign(ctx, SignInput{Stage: stage, Manifest: m, Provenance: prov})
		if err != nil {
			return err
		}
		for _, n := range slices.Sorted(maps.Keys(sigs)) {
			ct := "application/vnd.dev.cosign.signature.v1+base64"
			if strings.HasSuffix(n, ".json") {
				ct = "application/json"
			}
			if !strings.HasPrefix(n, "signatures/") && n != "provenance.dsse.json" {
				return xerr.New(xerr.Internal, "signing hook returned %q, outside signatures/", n)
			}
			if err := stage.Put(n, ct, sigs[n], 0); err != nil {
				return xerr.Wrap(xerr.Internal, err, "%s", n)
			}
		}
	}
	return nil
}

// SignInput is what the signing hook gets.
type SignInput struct {
	Stage      *bundle.Stage
	Manifest   *exportapi.Manifest
	Provenance []byte // provenance.json, to wrap in a DSSE envelope
}
