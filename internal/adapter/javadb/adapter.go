package javadb

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/stellaops/stella/internal/adapter/dbbundle"
	"github.com/stellaops/stella/internal/bundle"
	"github.com/stellaops/stella/internal/record"
	"github.com/stellaops/stella/internal/xerr"
	"github.com/stellaops/stella/pkg/exportapi"
)

// SBOMStreamPrefix is the prefix of the record streams the adapter reads
// (each record is one SBOM's raw bytes); every other stream is ignored.
const SBOMStreamPrefix = "raw/sboms/"

// Adapter is the trivy:java-db layout: it reads the SBOMs of a run and
// stages java-db.bundle. It has the engine's Adapter methods (Record,
// Finish) and OriginAdapter's RecordOrigin.
type Adapter struct {
	ctx         context.Context
	stage       *bundle.Stage
	path        string
	opts        Options
	tmpDir      string
	allowEmpty  bool
	skipInvalid bool
	b           *Builder
	done        bool
}

// NewAdapter starts a trivy:java-db layout writing into stage at
// bundlePath ("" = DefaultBundlePath). run supplies --allow-empty and
// --skip-invalid.
func NewAdapter(ctx context.Context, stage *bundle.Stage, bundlePath string, opts Options, run exportapi.Run) (*Adapter, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if bundlePath == "" {
		bundlePath = DefaultBundlePath
	}
	if err := bundle.CheckPath(bundlePath); err != nil {
		return nil, err
	}
	tmp := ""
	if stage != nil {
		tmp = filepath.Dir(stage.Dir())
	}
	return &Adapter{ctx: ctx, stage: stage, path: bundlePath, opts: opts, tmpDir: tmp,
		allowEmpty: run.AllowEmpty, skipInvalid: run.SkipInvalid, b: NewBuilder(opts)}, nil
}

// Record takes one record of a stream; only SBOMs are used.
func (a *Adapter) Record(stream, id string, line []byte) error {
	return a.RecordOrigin(stream, id, "", "", "", line)
}

// RecordOrigin is Record with the SBOM's source and path (for skipped[]).
func (a *Adapter) RecordOrigin(stream, id, source, path, seq string, line []byte) error {
	if !strings.HasPrefix(stream, SBOMStreamPrefix) {
		return nil
	}
	if err := a.b.AddSBOM(record.Document{Source: source, Path: path, Raw: line}); err != nil {
		return xerr.Wrap(xerr.InvalidInput, err, "trivy:java-db: source %q: %s", source, path)
	}
	return nil
}

// Finish builds trivy-java.db and metadata.json, packs them and stages
// java-db.bundle. Scratch files are removed whatever happens.
func (a *Adapter) Finish() error {
	if a.done {
		return nil
	}
	a.done = true
	if bad := a.Invalid(); len(bad) > 0 && !a.skipInvalid {
		first := bad[0]
		return xerr.New(xerr.InvalidInput, "%d SBOM component(s) cannot be written as trivy:java-db; first: source %q: %s: %s",
			len(bad), first.Source, first.Path, first.Reason).
			WithHint("fix the components, or rerun with --skip-invalid to list them in skipped[]")
	}
	if a.b.Pending() == 0 && !a.allowEmpty {
		st := a.b.Stats()
		return xerr.New(xerr.Empty, "the selected SBOMs list no Maven component with a SHA-1 hash (%d SBOMs, %d components read)", st.SBOMs, st.Components).
			WithHint("the Java DB maps JAR SHA-1 digests to Maven coordinates: it needs pkg:maven purls with SHA-1 hashes (CycloneDX hashes alg SHA-1, SPDX checksums SHA1); pass --allow-empty for an empty Java DB")
	}
	work, err := os.MkdirTemp(a.tmpDir, "javadb-")
	if err != nil {
		return xerr.Wrap(xerr.Internal, err, "trivy:java-db: scratch directory")
	}
	defer os.RemoveAll(work)
	if err := a.b.Build(a.ctx, work); err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return xerr.Wrap(xerr.Internal, err, "trivy:java-db: build %s", DBFile)
	}
	return dbbundle.Stage(a.stage, a.path, BundleMediaType, a.b.stats.Entries, "trivy:java-db", func(w io.Writer) error {
		return Pack(w, work, a.opts.GzipLevel)
	})
}

// Skipped lists every Maven component with a SHA-1 that was not written,
// as export.json skipped[] entries (sorted by source, path).
func (a *Adapter) Skipped() []exportapi.Skipped { return toSkipped(a.b.Skips(), false) }

// Invalid is the malformed part of Skipped (bad purl, bad SHA-1, no
// version): without --skip-invalid the run fails on these.
func (a *Adapter) Invalid() []exportapi.Skipped { return toSkipped(a.b.Skips(), true) }

func toSkipped(s []Skip, invalidOnly bool) []exportapi.Skipped {
	out := []exportapi.Skipped{}
	for _, k := range s {
		if invalidOnly && !k.Invalid {
			continue
		}
		out = append(out, exportapi.Skipped{Source: k.Source, Path: k.Path, Digest: k.Digest, Reason: "trivy:java-db: " + k.Reason})
	}
	return out
}

// Stats reports the build (complete after Finish).
func (a *Adapter) Stats() Stats { return a.b.Stats() }
