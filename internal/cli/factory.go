// Package cli holds the cobra commands of `stella export`. Each command only
// parses flags into an options struct and calls a run function that works
// against injected IO streams and a Factory; the work itself is in the engine
// and the packages it wires.
package cli

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/stellaops/stella/internal/config"
	"github.com/stellaops/stella/internal/engine"
	"github.com/stellaops/stella/internal/evidence"
	"github.com/stellaops/stella/internal/ledger"
	"github.com/stellaops/stella/internal/ledger/bolt"
	"github.com/stellaops/stella/internal/metrics"
	"github.com/stellaops/stella/internal/xerr"
)

// Version is the binary version, set by the linker (-X).
var Version = "dev"

// IOStreams are the standard streams of a command.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
	// TTY reports whether Out is a terminal (tables and the live view) or
	// not (JSON and NDJSON).
	TTY bool
}

// System returns the process's streams.
func System() *IOStreams {
	return &IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr, TTY: term.IsTerminal(int(os.Stdout.Fd()))}
}

// Globals are the global flags.
type Globals struct {
	Server     string
	Tenant     string
	Token      string
	ConfigFile string
	Format     string
	Trace      bool
	Ledger     string
	DataDir    string
	// MetricsFile is a Prometheus textfile this invocation adds its metrics to.
	MetricsFile string
}

// Factory builds what commands need, lazily and once.
type Factory struct {
	IO *IOStreams
	G  Globals

	once   sync.Once
	cfg    *config.Config
	cfgErr error
	led    ledger.Ledger
	eng    *engine.Engine
	met    *metrics.Set
	// Hooks, when set, configure the engine's optional stages (signing, provenance).
	Hooks func(f *Factory, cfg *config.Config) (engine.Hooks, error)
}

// Config loads the configuration once; flags override it.
func (f *Factory) Config() (*config.Config, error) {
	f.once.Do(func() {
		f.cfg, f.cfgErr = config.Load(f.G.ConfigFile)
		if f.cfgErr != nil {
			return
		}
		ec := &f.cfg.ExportCenter
		if f.G.DataDir != "" {
			ec.DataDir = f.G.DataDir
			if f.G.Ledger == "" && os.Getenv("STELLA_EXPORTCENTER_LEDGER_PATH") == "" {
				ec.Ledger.Path = filepath.Join(ec.DataDir, "ledger.db")
			}
		}
		if f.G.Ledger != "" {
			ec.Ledger.Path = f.G.Ledger
		}
		if f.G.Tenant != "" {
			ec.Tenant = f.G.Tenant
		}
		// Artifacts are recorded by path: keep them absolute.
		if abs, err := filepath.Abs(ec.DataDir); err == nil {
			ec.DataDir = abs
		}
		if abs, err := filepath.Abs(ec.Ledger.Path); err == nil {
			ec.Ledger.Path = abs
		}
	})
	return f.cfg, f.cfgErr
}

// Tenant is the tenant commands act for.
func (f *Factory) Tenant() string {
	cfg, err := f.Config()
	if err != nil || cfg.ExportCenter.Tenant == "" {
		return "default"
	}
	return cfg.ExportCenter.Tenant
}

// Logger writes structured JSON logs to stderr (debug with --trace).
func (f *Factory) Logger() *slog.Logger {
	lvl := slog.LevelWarn
	if f.G.Trace {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewJSONHandler(f.IO.ErrOut, &slog.HandlerOptions{Level: lvl}))
}

// Engine opens the ledger and makes the embedded engine.
func (f *Factory) Engine(ctx context.Context) (*engine.Engine, error) {
	if f.eng != nil {
		return f.eng, nil
	}
	if f.G.Server != "" {
		return nil, xerr.New(xerr.InvalidInput, "--server %s: this build runs the embedded engine only", f.G.Server).
			WithHint("unset STELLA_SERVER / --server to run locally")
	}
	cfg, err := f.Config()
	if err != nil {
		return nil, err
	}
	ec := cfg.ExportCenter
	if ec.Ledger.Driver != "" && ec.Ledger.Driver != "bolt" {
		return nil, xerr.New(xerr.InvalidInput, "ExportCenter.Ledger.Driver %q is not available in this build (bolt is)", ec.Ledger.Driver)
	}
	led, err := bolt.Open(ec.Ledger.Path, bolt.Options{})
	if err != nil {
		return nil, err
	}
	sde, err := config.SourceDateEpoch()
	if err != nil {
		led.Close()
		return nil, err
	}
	var srcs []evidence.Source
	for _, s := range ec.Sources {
		srcs = append(srcs, evidence.Source{Name: s.Name, Path: s.Path, Exclude: s.Exclude})
	}
	ecfg := engine.Config{
		DataDir: ec.DataDir, Sources: srcs, MaxDocumentBytes: ec.Limits.MaxDocumentBytes,
		SortBudget: ec.Limits.SortBufferBytes, Workers: ec.Limits.Workers, Version: Version,
		DistrustFileStat: !ec.Limits.TrustFileStat,
		SourceDateEpoch:  sde, Logger: f.Logger(),
		EnableTrivyJavaDB: ec.Profiles.Trivy.EnableJavaDb,
	}
	if f.Hooks != nil {
		h, err := f.Hooks(f, cfg)
		if err != nil {
			led.Close()
			return nil, err
		}
		ecfg.Hooks = h
	}
	ecfg.Hooks.Pushed = func(kind string, d time.Duration, _ error) {
		f.Metrics().DistributionPush.WithLabelValues(kind).Observe(d.Seconds())
	}
	f.led = led
	f.eng = engine.New(ecfg, led)
	return f.eng, nil
}

// Metrics is this invocation's metric set.
func (f *Factory) Metrics() *metrics.Set {
	if f.met == nil {
		f.met = metrics.New()
	}
	return f.met
}

// FlushMetrics adds this invocation's metrics to the textfile
// (--metrics-textfile or ExportCenter.Metrics.Textfile), when one is set.
func (f *Factory) FlushMetrics() error {
	if f.met == nil {
		return nil
	}
	path := f.G.MetricsFile
	if path == "" {
		if cfg, err := f.Config(); err == nil {
			path = cfg.ExportCenter.Metrics.Textfile
		}
	}
	if path == "" {
		return nil
	}
	if err := f.met.WriteTextfile(path); err != nil {
		return xerr.Wrap(xerr.Internal, err, "metrics textfile %s", path)
	}
	return nil
}

// Close releases the ledger.
func (f *Factory) Close() {
	if f.led != nil {
		f.led.Close()
	}
}
