package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stellaops/stella/internal/bundle"
	"github.com/stellaops/stella/internal/distribute"
	"github.com/stellaops/stella/internal/xerr"
	"github.com/stellaops/stella/pkg/exportapi"
)

// ExtraDistributionPrefix starts the Run.Extra keys that record pushes:
// "distribution.<target>" = "sha256:<manifest digest>" for every target the
// run pushed to (docs/distribution.md).
const ExtraDistributionPrefix = "distribution."

// Where trivy bundles carry their databases (internal/adapter/trivy,
// internal/adapter/javadb).
const (
	trivyDBEntry     = "trivy/db.bundle"
	trivyJavaDBEntry = "trivy/java-db.bundle"
)

// validatePush checks a run's push targets at submit, before any work:
// --push and the profile's spec.distribution, in the URL forms of
// internal/distribute, with a tag for bundles (trivy DBs default to their
// schema major).
func validatePush(p exportapi.Profile, push []string) error {
	check := func(origin, t string) error {
		if err := distribute.Validate(t); err != nil {
			return xerr.New(xerr.InvalidInput, "%s: %s", origin, xerr.As(err).Message).WithHint("%s", xerr.As(err).Hint)
		}
		if distribute.KindOf(t) == "oci" && p.Spec.Kind != "trivy" && !hasTag(t) {
			return xerr.New(xerr.InvalidInput, "%s: %q names no tag", origin, t).
				WithHint("add one, e.g. %s:latest (only trivy DBs default to their schema major)", t)
		}
		return nil
	}
	for i, d := range p.Spec.Distribution {
		if d.Kind == "oci" || d.Kind == "object" {
			if err := check(fmt.Sprintf("profile %q spec.distribution[%d]", p.Metadata.Name, i), d.Target); err != nil {
				return err
			}
		}
	}
	for _, t := range push {
		if err := check("--push", t); err != nil {
			return err
		}
	}
	return nil
}

func hasTag(oci string) bool {
	rest := strings.TrimPrefix(oci, "oci://")
	_, repo, _ := strings.Cut(rest, "/")
	return strings.Contains(repo, ":")
}

// distributionTargets lists a run's push targets: the profile's
// spec.distribution entries of kind oci and object (kind http is the API's
// download, nothing to push), then --push, without duplicates.
func distributionTargets(run exportapi.Run, prof exportapi.Profile) []string {
	var out []string
	seen := map[string]bool{}
	add := func(t string) {
		if t != "" && !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	for _, d := range prof.Spec.Distribution {
		if d.Kind == "oci" || d.Kind == "object" {
			add(d.Target)
		}
	}
	for _, t := range run.Push {
		add(t)
	}
	return out
}

// distribute pushes a built and signed run to its targets. With no targets
// it does nothing and returns recorded=false. Otherwise it first records
// the artifacts on the run (and their run.artifact events), so a failed
// push leaves the bundle on disk, listed and downloadable; then it pushes
// to every target (all are tried), records each success as
// Extra["distribution.<target>"] = manifest digest, and returns
// ERR_EXPORT_DISTRIBUTION naming the targets that failed.
func (e *Engine) distribute(ctx context.Context, run exportapi.Run, arts []exportapi.Artifact, counts map[string]int64,
	exportID string, progress progressFn) (recorded bool, err error) {
	prof, err := e.ResolveProfileRevision(ctx, run)
	if err != nil {
		return false, err
	}
	targets := distributionTargets(run, prof)
	if len(targets) == 0 || len(arts) == 0 {
		return false, nil
	}
	if _, err := e.led.UpdateRun(ctx, run.ID, func(r *exportapi.Run) error {
		r.Artifacts, r.Counts, r.ExportID = arts, counts, exportID
		return nil
	}); err != nil {
		return false, err
	}
	now := e.cfg.Now().UTC()
	for i := range arts {
		a := arts[i]
		e.led.AppendEvent(ctx, exportapi.Event{RunID: run.ID, Type: exportapi.EventArtifact, Artifact: &a, Time: now})
	}
	log := e.log.With("runId", run.ID, "tenant", run.Tenant, "profile", run.Profile.Name)

	tmp := filepath.Join(e.RunDir(run.ID), ".distribute")
	defer os.RemoveAll(tmp)
	art, err := pushArtifact(prof, arts, tmp)
	if err != nil { // still a distribution failure: the bundle is recorded and stays downloadable
		return true, &xerr.Error{Code: xerr.Distribution, Err: err, Message: fmt.Sprintf("prepare the push of %s: %s", arts[0].Name, xerr.As(err).Message)}
	}
	var total int64
	var failed []string
	var first error
	progress("distribute", 0, int64(len(targets)), 0)
	for i, t := range targets {
		base, last := total, time.Now()
		tg, err := distribute.Open(t, distribute.Options{UserAgent: "stella/" + e.cfg.Version,
			Progress: func(n int64) {
				if time.Since(last) >= 250*time.Millisecond { // a few events a second, not one per read
					last = time.Now()
					progress("distribute", int64(i), int64(len(targets)), base+n)
				}
			}})
		var res distribute.Result
		start := time.Now()
		if err == nil {
			res, err = tg.Push(ctx, art)
			if e.cfg.Hooks.Pushed != nil {
				e.cfg.Hooks.Pushed(distribute.KindOf(t), time.Since(start), err)
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return true, err
			}
			if xerr.CodeOf(err) != xerr.Distribution {
				xe := xerr.As(err)
				err = &xerr.Error{Code: xerr.Distribution, Err: err, Hint: xe.Hint, Message: fmt.Sprintf("push to %s: %s", t, xe.Message)}
			}
			failed = append(failed, t)
			if first == nil {
				first = err
			}
			log.Error("distribution.push_failed", "target", t, "errorCode", xerr.Distribution.Label(), "error", err.Error())
			e.led.AppendEvent(ctx, exportapi.Event{RunID: run.ID, Type: exportapi.EventProgress, Phase: "distribute",
				ItemsDone: int64(i + 1), ItemsTotal: int64(len(targets)), Bytes: total, Time: e.cfg.Now().UTC(),
				ErrorCode: string(xerr.Distribution), Message: fmt.Sprintf("push to %s failed", t)})
			continue
		}
		total += res.Bytes
		if _, err := e.led.UpdateRun(ctx, run.ID, func(r *exportapi.Run) error {
			if r.Extra == nil {
				r.Extra = map[string]string{}
			}
			r.Extra[ExtraDistributionPrefix+t] = res.Digest
			return nil
		}); err != nil {
			return true, err
		}
		log.Info("distribution.pushed", "target", t, "reference", res.Reference, "digest", res.Digest,
			"bytes", res.Bytes, "seconds", time.Since(start).Seconds())
		e.led.AppendEvent(ctx, exportapi.Event{RunID: run.ID, Type: exportapi.EventProgress, Phase: "distribute",
			ItemsDone: int64(i + 1), ItemsTotal: int64(len(targets)), Bytes: total, Time: e.cfg.Now().UTC(),
			Message: fmt.Sprintf("pushed %s (%s)", t, res.Pinned())})
	}
	switch len(failed) {
	case 0:
		return true, nil
	case 1:
		if len(targets) == 1 {
			return true, first
		}
	}
	xe := xerr.As(first)
	return true, xerr.New(xerr.Distribution, "%d of %d pushes failed (%s); first: %s", len(failed), len(targets),
		strings.Join(failed, ", "), xe.Message).WithHint("%s", xe.Hint)
}

// pushArtifact is what a run pushes: a Trivy DB as the image trivy pulls,
// any other bundle as an artifact of its archive plus detached signatures.
func pushArtifact(prof exportapi.Profile, arts []exportapi.Artifact, tmp string) (distribute.Artifact, error) {
	archive := arts[0]
	if prof.Spec.Kind == "trivy" {
		entry, mk := trivyDBEntry, distribute.TrivyDB
		if prof.Spec.Variant == "java-db" {
			entry, mk = trivyJavaDBEntry, distribute.TrivyJavaDB
		}
		if err := os.MkdirAll(tmp, 0o700); err != nil {
			return distribute.Artifact{}, xerr.Wrap(xerr.Internal, err, "create %s", tmp)
		}
		p, err := extract(archive.Path, entry, tmp)
		if err != nil {
			return distribute.Artifact{}, err
		}
		return mk(p), nil
	}
	var detached []distribute.Layer
	for _, a := range arts[1:] {
		detached = append(detached, distribute.Layer{MediaType: a.MediaType, Title: a.Name, Path: a.Path,
			Digest: "sha256:" + a.SHA256, Size: a.Bytes})
	}
	return distribute.Bundle(distribute.Layer{MediaType: archive.MediaType, Title: archive.Name, Path: archive.Path,
		Digest: "sha256:" + archive.SHA256, Size: archive.Bytes}, detached...), nil
}

// extract copies one entry of a bundle archive into dir.
func extract(archive, rel, dir string) (string, error) {
	p, err := bundle.ExtractEntry(archive, rel, dir)
	switch {
	case err != nil:
		return "", xerr.Wrap(xerr.Internal, err, "read %s from %s", rel, archive)
	case p == "":
		return "", xerr.New(xerr.Internal, "%s has no %s to push", archive, rel)
	}
	return p, nil
}
