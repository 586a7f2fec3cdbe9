// Package engine plans and executes export runs: it is the one place that
// wires the stages together (plan -> evidence -> adapter -> bundle -> sign ->
// distribute -> ledger).
package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/stellaops/stella/internal/evidence"
	"github.com/stellaops/stella/internal/ledger"
	"github.com/stellaops/stella/internal/profile"
	"github.com/stellaops/stella/internal/xerr"
	"github.com/stellaops/stella/pkg/exportapi"
)

// Config is what the engine needs from the configuration.
type Config struct {
	DataDir          string            // runs/<runId>/ holds each run's artifacts
	Sources          []evidence.Source // configured evidence sources
	MaxDocumentBytes int64             // per-document size limit
	SortBudget       int               // bytes of records held in memory before spilling
	Workers          int               // parser goroutines (0 = GOMAXPROCS)
	Version          string            // binary version, written into bundles
	SourceDateEpoch  *time.Time        // SOURCE_DATE_EPOCH, when set
	Logger           *slog.Logger      // structured JSON logs
	Now              func() time.Time  // wall clock (ledger timings only; never inside a bundle)
	Hooks            Hooks             // optional stages supplied by other packages
	// EnableTrivyJavaDB is ExportCenter.Profiles.Trivy.EnableJavaDb: without
	// it, trivy:java-db runs are refused at submit.
	EnableTrivyJavaDB bool
	// DistrustFileStat turns the stat cache off (ExportCenter.Limits.
	// TrustFileStat=false): every document of a delta is read and hashed.
	DistrustFileStat bool
}

// Hooks are optional stages; nil ones are skipped.
type Hooks struct {
	// Sign signs the staged bundle (export.json, manifest.yaml, ...) before it
	// is archived, and returns the files to add: names under "signatures/"
	// or "provenance.dsse.json".
	Sign func(ctx context.Context, in SignInput) (map[string][]byte, error)
	// SignArchive signs the finished archive and returns the files it wrote
	// beside it (a signature, a sigstore bundle).
	SignArchive func(ctx context.Context, archivePath string) (paths []string, err error)
	// Pushed is told how long each distribution push took (kind "oci" or
	// "object") and its error, for exporter_distribution_push_seconds.
	Pushed func(kind string, d time.Duration, err error)
}

// Engine runs exports against a ledger.
type Engine struct {
	cfg Config
	led ledger.Ledger
	log *slog.Logger
}

// New makes an engine.
func New(cfg Config, led ledger.Ledger) *Engine {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	if cfg.DataDir != "" {
		dir, err := filepath.Abs(cfg.DataDir)
		if err != nil {
			dir = cfg.DataDir
		}
		led = localLedger{Ledger: led, dataDir: dir}
	}
	return &Engine{cfg: cfg, led: led, log: cfg.Logger}
}

// Ledger is the engine's ledger (the runs it returns name their artifacts
// under this engine's data directory: see localLedger).
func (e *Engine) Ledger() ledger.Ledger { return e.led }

// Config returns the engine's configuration.
func (e *Engine) Config() Config { return e.cfg }

// ResolveProfile finds the profile a --profile argument names: "kind:variant"
// or a built-in name, or a stored profile ("name" or "name@r2").
func (e *Engine) ResolveProfile(ctx context.Context, tenant, ref string) (exportapi.Profile, error) {
	name, rev, _ := strings.Cut(ref, "@")
	p, err := e.led.Profile(ctx, tenant, name, rev)
	if err == nil {
		if p.Archived {
			return p, xerr.New(xerr.InvalidInput, "profile %q of tenant %q is archived and cannot be used for new runs", name, tenant).
				WithHint("create a new profile, or use another one (`stella export profile list`)")
		}
		return p, nil
	}
	if !xerr.Is(err, xerr.ProfileNotFound) {
		return p, err
	}
	if b, ok := profile.BuiltIn(tenant, name); ok && (rev == "" || rev == "r1") {
		return b, nil
	}
	return p, xerr.New(xerr.ProfileNotFound, "no profile %q for tenant %q", ref, tenant).
		WithHint("`stella export profile list` shows the profiles; built-ins are json:raw, json:policy, trivy:db, trivy:java-db, mirror:full, mirror:delta")
}

// SubmitRequest is what `run submit` asks for.
type SubmitRequest struct {
	Tenant      string
	Profile     string
	Selectors   []string // --selector k=v
	Sources     []exportapi.SourceSpec
	BaseRunID   string
	AllowEmpty  bool
	SkipInvalid bool
	Priority    string
	Push        []string
}

// NewRunID returns a time-ordered, unique run id.
func NewRunID(now time.Time) string {
	var b [5]byte
	rand.Read(b[:])
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// Submit validates a request and records a pending run. Run parameters never
// change after this.
func (e *Engine) Submit(ctx context.Context, req SubmitRequest) (exportapi.Run, error) {
	// Runs whose process died are failed first (and their scratch
	// removed): a nightly job may never list or show its runs, and a dead
	// mirror run would otherwise hold its chain (see the mirror adapter's
	// prepare).
	e.Recover(ctx)
	// What prepare decides from the runs it sees (a mirror run's sequence,
	// the one live run of its chain) holds until the run is created.
	release, err := e.led.LockSubmissions(ctx)
	if err != nil {
		return exportapi.Run{}, err
	}
	defer release()
	run, err := e.prepare(ctx, req)
	if err != nil {
		return run, err
	}
	if err := e.led.CreateRun(ctx, run); err != nil {
		return run, err
	}
	e.log.Info("run.submitted", "runId", run.ID, "tenant", run.Tenant, "profile", run.Profile.Name)
	return run, nil
}

// prepare validates a request and makes the run it describes.
func (e *Engine) prepare(ctx context.Context, req SubmitRequest) (exportapi.Run, error) {
	if req.Tenant == "" {
		req.Tenant = "default"
	}
	if err := profile.ValidateSelectors(exportapi.Selectors{Tenant: req.Tenant}); err != nil {
		return exportapi.Run{}, xerr.Wrap(xerr.InvalidInput, err, "--tenant")
	}
	if req.Profile == "" {
		return exportapi.Run{}, xerr.New(xerr.InvalidInput, "no profile given").WithHint("pass --profile, e.g. --profile json:raw")
	}
	p, err := e.ResolveProfile(ctx, req.Tenant, req.Profile)
	if err != nil {
		return exportapi.Run{}, err
	}
	sel, err := profile.ParseSelectors(p.Spec.Selectors, req.Selectors)
	if err != nil {
		return exportapi.Run{}, err
	}
	sel.Tenant = req.Tenant
	switch req.Priority {
	case "":
		req.Priority = "normal"
	case "normal", "catch-up":
	default:
		return exportapi.Run{}, xerr.New(xerr.InvalidInput, "--priority %q is not normal or catch-up", req.Priority)
	}
	srcs, err := e.resolveSources(req.Sources, sel)
	if err != nil {
		return exportapi.Run{}, err
	}
	if p.Spec.Kind == "trivy" && p.Spec.SchemaVersion != profile.TrivySchemaVersion && p.Spec.Variant == "db" {
		e.log.Error("adapter.trivy.unsupported_schema_version", "tenant", req.Tenant, "profile", p.Metadata.Name,
			"schemaVersion", p.Spec.SchemaVersion, "errorCode", xerr.UnsupportedSchema.Label())
		return exportapi.Run{}, xerr.New(xerr.UnsupportedSchema, "profile %q asks for Trivy DB schema %d; this stella writes schema %d",
			p.Metadata.Name, p.Spec.SchemaVersion, profile.TrivySchemaVersion).WithHint("set spec.schemaVersion to %d", profile.TrivySchemaVersion)
	}
	if p.Spec.Kind == "trivy" && p.Spec.Variant == "java-db" {
		if err := e.checkJavaDB(req.Tenant, p); err != nil {
			return exportapi.Run{}, err
		}
	}
	if err := supported(p); err != nil {
		return exportapi.Run{}, err
	}
	if err := validatePush(p, req.Push); err != nil {
		return exportapi.Run{}, err
	}
	now := e.cfg.Now().UTC()
	run := exportapi.Run{
		ID: NewRunID(now), Tenant: req.Tenant, State: exportapi.StatePending, CreatedAt: now,
		Profile:   exportapi.ProfileRef{Kind: p.Spec.Kind, Variant: p.Spec.Variant, Name: p.Metadata.Name, Revision: p.Metadata.Revision},
		Selectors: sel, Sources: srcs, BaseRunID: req.BaseRunID, AllowEmpty: req.AllowEmpty, SkipInvalid: req.SkipInvalid,
		Priority: req.Priority, Push: slices.Clone(req.Push),
	}
	if err := e.prepareExtension(ctx, &run, p); err != nil {
		return exportapi.Run{}, err
	}
	return run, nil
}

// checkJavaDB gates trivy:java-db on its config toggle (like upstream's,
// off by default) and on the one Java DB schema trivy reads (1).
func (e *Engine) checkJavaDB(tenant string, p exportapi.Profile) error {
	if !e.cfg.EnableTrivyJavaDB {
		return xerr.New(xerr.InvalidInput, "profile %q (trivy:java-db) is disabled: the Trivy Java DB is built only when ExportCenter.Profiles.Trivy.EnableJavaDb is true", p.Metadata.Name).
			WithHint("set ExportCenter.Profiles.Trivy.EnableJavaDb: true in the config file, or STELLA_EXPORTCENTER_PROFILES_TRIVY_ENABLEJAVADB=true")
	}
	if p.Spec.SchemaVersion != 1 {
		e.log.Error("adapter.trivy.unsupported_schema_version", "tenant", tenant, "profile", p.Metadata.Name,
			"schemaVersion", p.Spec.SchemaVersion, "errorCode", xerr.UnsupportedSchema.Label())
		return xerr.New(xerr.UnsupportedSchema, "profile %q asks for Trivy Java DB schema %d; this stella writes schema 1", p.Metadata.Name, p.Spec.SchemaVersion).
			WithHint("set spec.schemaVersion to 1")
	}
	return nil
}

// supported fails clearly for profile kinds this build cannot write yet.
func supported(p exportapi.Profile) error {
	if p.Spec.Kind == "json" {
		return nil
	}
	if fn, ok := adapters[p.Spec.Kind+":"+p.Spec.Variant]; ok && fn != nil {
		return nil
	}
	return xerr.New(xerr.InvalidInput, "profile %q (%s:%s) is not supported by this build yet", p.Metadata.Name, p.Spec.Kind, p.Spec.Variant).
		WithHint("use json:raw or json:policy")
}

var sourceName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// adapters maps kind:variant to the layout writer of non-JSON bundles; other
// packages of this module register theirs.
var adapters = map[string]AdapterFactory{}

// resolveSources picks the evidence sources of a run: the configured ones
// plus one-off --source ones, filtered by the sources selector. Paths are
// made absolute so the run does not depend on the working directory.
func (e *Engine) resolveSources(extra []exportapi.SourceSpec, sel exportapi.Selectors) ([]exportapi.SourceSpec, error) {
	var all []exportapi.SourceSpec
	seen := map[string]bool{}
	add := func(s exportapi.SourceSpec, origin string) error {
		if s.Name == "" || s.Path == "" {
			return xerr.New(xerr.InvalidInput, "%s: a source needs a name and a path (name=path)", origin)
		}
		if seen[s.Name] {
			return xerr.New(xerr.InvalidInput, "%s: source name %q is used twice", origin, s.Name).
				WithHint("give each source its own name")
		}
		seen[s.Name] = true
		if !sourceName.MatchString(s.Name) {
			return xerr.New(xerr.InvalidInput, "%s: source name %q may hold only letters, digits, '.', '_' and '-' (it names files in the bundle)", origin, s.Name)
		}
		abs, err := filepath.Abs(s.Path)
		if err != nil {
			return xerr.Wrap(xerr.InvalidInput, err, "%s: source %q", origin, s.Name)
		}
		if _, err := os.Stat(abs); err != nil {
			return xerr.New(xerr.InvalidInput, "%s: source %q: %s does not exist or cannot be read", origin, s.Name, abs).
				WithHint("check the path, or the ExportCenter.Sources entry of the config file")
		}
		s.Path = abs
		all = append(all, s)
		return nil
	}
	for _, s := range e.cfg.Sources {
		if err := add(exportapi.SourceSpec{Name: s.Name, Path: s.Path}, "config"); err != nil {
			return nil, err
		}
	}
	for _, s := range extra {
		if err := add(s, "--source"); err != nil {
			return nil, err
		}
	}
	if len(sel.Sources) > 0 {
		var keep []exportapi.SourceSpec
		for _, s := range all {
			if slices.Contains(sel.Sources, s.Name) {
				keep = append(keep, s)
			}
		}
		for _, want := range sel.Sources {
			if !seen[want] {
				return nil, xerr.New(xerr.InvalidInput, "selector source=%s names no source; sources are: %s", want, names(all)).
					WithHint("configure the source (ExportCenter.Sources) or pass --source %s=<path>", want)
			}
		}
		all = keep
	}
	if len(all) == 0 {
		return nil, xerr.New(xerr.InvalidInput, "no evidence sources").
			WithHint("pass --source name=path, or list sources under ExportCenter.Sources in the config file")
	}
	slices.SortFunc(all, func(a, b exportapi.SourceSpec) int { return strings.Compare(a.Name, b.Name) })
	return all, nil
}

func names(s []exportapi.SourceSpec) string {
	var n []string
	for _, x := range s {
		n = append(n, x.Name)
	}
	if len(n) == 0 {
		return "(none)"
	}
	return strings.Join(n, ", ")
}

// Recover marks the runs whose process is gone (killed, crashed) failed,
// as the ledger's Recover does, and removes what each left in its folder:
// its scratch (the sort's run files and staged bundle files, hundreds of
// megabytes for a large run), a partly written bundle or side file, and
// the folder itself once it is empty. Nothing a finished run wrote is
// touched: those files have their final names.
func (e *Engine) Recover(ctx context.Context) ([]exportapi.Run, error) {
	runs, err := e.led.Recover(ctx)
	for _, r := range runs {
		e.removeLeftovers(r.ID)
	}
	return runs, err
}

// removeLeftovers removes the unfinished files of a run that died.
func (e *Engine) removeLeftovers(id string) {
	dir := e.RunDir(id)
	os.RemoveAll(filepath.Join(dir, ".work"))
	os.RemoveAll(filepath.Join(dir, ".distribute"))
	partial, _ := filepath.Glob(filepath.Join(dir, "*.partial"))
	for _, p := range partial {
		os.Remove(p)
	}
	os.Remove(dir) // only when empty
}

// Cancel asks a run to stop. A pending run, or one whose process is gone, is
// cancelled at once; a running one stops at its next progress step.
func (e *Engine) Cancel(ctx context.Context, id string) (exportapi.Run, error) {
	if _, err := e.Recover(ctx); err != nil {
		return exportapi.Run{}, err
	}
	var immediate bool
	r, err := e.led.UpdateRun(ctx, id, func(r *exportapi.Run) error {
		if r.State.Terminal() {
			return xerr.New(xerr.InvalidInput, "run %s is already %s", id, r.State)
		}
		r.CancelRequested = true
		if r.State == exportapi.StatePending && r.Owner == "" {
			immediate = true
			now := e.cfg.Now().UTC()
			r.State, r.FinishedAt = exportapi.StateCancelled, &now
			r.ErrorMessage = "cancelled before it started"
		}
		return nil
	})
	if err == nil && immediate {
		e.led.AppendEvent(ctx, exportapi.Event{RunID: id, Type: exportapi.EventCancelled, State: exportapi.StateCancelled,
			Time: e.cfg.Now().UTC(), Message: "cancelled before it started"})
	}
	return r, err
}

// errCancelled is returned inside a run when a cancel was requested.
var errCancelled = errors.New("run cancelled")

// interruptedError ends a run whose caller stopped it (an interrupt signal
// ended the command's context): the run is cancelled, not failed, and
// nothing it wrote is kept.
type interruptedError struct{ cause error }

func (e interruptedError) Error() string {
	if e.cause == nil || e.cause == context.Canceled {
		return "interrupted"
	}
	return "interrupted: " + e.cause.Error()
}

func (e interruptedError) Is(target error) bool { return target == errCancelled }

func hostOwner() string {
	h, _ := os.Hostname()
	return fmt.Sprintf("%s:%d", h, os.Getpid())
}

func builtInFor(run exportapi.Run) (exportapi.Profile, bool) {
	if run.Profile.Revision != "r1" {
		return exportapi.Profile{}, false
	}
	return profile.BuiltIn(run.Tenant, run.Profile.Name)
}
