// Package trivy builds Trivy vulnerability DBs (schema 2) from stella's
// normalised advisories, packs them as db.bundle (gzip tar of metadata.json
// + trivy.db), and installs a db.bundle into a trivy cache directory.
//
// The DB has the exact layout the upstream trivy-db writes (see
// docs/trivy.md): advisory buckets "<ecosystem>::<data source>" and
// "<os> <release>" -> package -> advisory id, the `data-source` bucket, and
// the `vulnerability` bucket. Every version constraint is checked with the
// comparer library trivy itself uses before it is written. The bbolt file
// is byte-identical for the same advisories (sorted writes, fixed page
// size, fill percent and transaction boundaries).
//
// This package depends on record, bundle, dbbundle, extsort and xerr only; the
// engine registration lives in register.go.
package trivy

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stellaops/stella/internal/adapter/dbbundle"
	"github.com/stellaops/stella/internal/bundle"
	"github.com/stellaops/stella/internal/xerr"
	"github.com/stellaops/stella/pkg/exportapi"
)

// DefaultBundlePath is where the adapter stages db.bundle in the bundle.
const DefaultBundlePath = "trivy/db.bundle"

// AdvisoryStreamPrefix is the prefix of the record streams the adapter
// reads; every other stream (raw documents, VEX, SBOMs, policy) is ignored.
const AdvisoryStreamPrefix = "normalized/advisories/"

// Adapter is the trivy:db layout: it reads the normalised advisory
// streams of a run and stages db.bundle. It has the engine's Adapter
// methods (Record, Finish).
type Adapter struct {
	ctx   context.Context
	stage *bundle.Stage
	path  string
	opts  Options
	b     *Builder
	done  bool
}

// NewAdapter starts a trivy:db layout writing into stage at bundlePath
// ("" = DefaultBundlePath). Scratch files go to opts.TmpDir (default: next
// to the stage directory).
func NewAdapter(ctx context.Context, stage *bundle.Stage, bundlePath string, opts Options) (*Adapter, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if bundlePath == "" {
		bundlePath = DefaultBundlePath
	}
	if err := bundle.CheckPath(bundlePath); err != nil {
		return nil, err
	}
	if opts.TmpDir == "" && stage != nil {
		opts.TmpDir = filepath.Dir(stage.Dir())
	}
	b, err := NewBuilderContext(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &Adapter{ctx: ctx, stage: stage, path: bundlePath, opts: opts, b: b}, nil
}

// Record takes one record line of a stream; only normalised advisories
// are used.
func (a *Adapter) Record(stream, id string, line []byte) error {
	if !strings.HasPrefix(stream, AdvisoryStreamPrefix) {
		return nil
	}
	return a.b.AddJSON(id, line)
}

// Finish builds trivy.db and metadata.json, packs them, and stages
// db.bundle. Scratch files are removed whatever happens.
func (a *Adapter) Finish() error {
	if a.done {
		return nil
	}
	a.done = true
	defer a.b.Close()
	work, err := os.MkdirTemp(a.b.dir, "out-")
	if err != nil {
		return xerr.Wrap(xerr.Internal, err, "trivy: scratch directory")
	}
	if err := a.b.Build(a.ctx, work); err != nil {
		var xe *xerr.Error
		if errors.As(err, &xe) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return xerr.Wrap(xerr.Internal, err, "trivy: build %s", DBFile)
	}
	return dbbundle.Stage(a.stage, a.path, BundleMediaType, a.b.stats.Advisories, "trivy", func(w io.Writer) error {
		return Pack(w, work, a.opts.GzipLevel)
	})
}

// Skips lists the advisories that were read but not written, with the
// reason and whether the input is malformed (Invalid).
func (a *Adapter) Skips() []Skip { return a.b.Skips() }

// Skipped lists every advisory read but not written, as export.json
// `skipped[]` entries (sorted by source, path). Withdrawn advisories are
// not listed.
func (a *Adapter) Skipped() []exportapi.Skipped { return toSkipped(a.b.Skips(), false) }

// Invalid is the part of Skipped that is malformed input (an unparsable
// range or version, an unknown ecosystem, ...): without --skip-invalid the
// engine fails the run on these; the rest of Skipped is valid OSV that
// trivy's schema cannot hold (only GIT ranges, only modular packages, ...).
func (a *Adapter) Invalid() []exportapi.Skipped { return toSkipped(a.b.Skips(), true) }

func toSkipped(s []Skip, invalidOnly bool) []exportapi.Skipped {
	out := []exportapi.Skipped{}
	for _, k := range s {
		if invalidOnly && !k.Invalid {
			continue
		}
		out = append(out, exportapi.Skipped{Source: k.Source, Path: k.Path, Digest: k.Digest, Reason: k.Reason})
	}
	return out
}

// Stats reports the build (complete after Finish).
func (a *Adapter) Stats() Stats { return a.b.Stats() }

// UpdatedAt is the metadata.json UpdatedAt the build uses (after Finish).
func (a *Adapter) UpdatedAt() time.Time { return a.b.stats.UpdatedAt }
