package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/stellaops/stella/internal/bundle"
	"github.com/stellaops/stella/internal/engine"
	"github.com/stellaops/stella/internal/ledger"
	"github.com/stellaops/stella/internal/xerr"
	"github.com/stellaops/stella/pkg/exportapi"
)

func runFilter(tenant string, states []string, prof string, limit int, cursor string) ledger.RunFilter {
	f := ledger.RunFilter{Tenant: tenant, Profile: prof, Limit: limit, Cursor: cursor}
	for _, s := range states {
		f.States = append(f.States, exportapi.RunState(s))
	}
	return f
}

// NewPlanCmd builds `stella export plan`.
func NewPlanCmd(f *Factory) *cobra.Command {
	o := &SubmitOptions{}
	cmd := &cobra.Command{
		Use:   "plan --profile <profile> [--selector k=v]... [--source name=path]...",
		Short: "Show what a run would include (counts per kind, source and ecosystem) without writing anything",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx := c.Context()
			srcs, err := parseSources(o.SourceFlags)
			if err != nil {
				return err
			}
			o.Sources, o.Tenant = srcs, f.Tenant()
			eng, err := f.Engine(ctx)
			if err != nil {
				return err
			}
			plan, err := eng.Plan(ctx, o.SubmitRequest)
			if err != nil {
				return err
			}
			return f.emit(plan, func(w io.Writer) error { return planTable(w, plan) })
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Profile, "profile", "", "profile: kind:variant or a custom profile name[@rN]")
	fl.StringArrayVar(&o.Selectors, "selector", nil, "selector key=value (repeatable)")
	fl.StringArrayVar(&o.SourceFlags, "source", nil, "one-off evidence source name=path (repeatable)")
	fl.BoolVar(&o.SkipInvalid, "skip-invalid", false, "count unreadable documents as skipped instead of failing")
	cmd.MarkFlagRequired("profile")
	return cmd
}

func planTable(w io.Writer, p *engine.Plan) error {
	tw := newTable(w)
	row(tw, "profile", fmt.Sprintf("%s@%s (%s:%s)", p.Profile.Name, p.Profile.Revision, p.Profile.Kind, p.Profile.Variant))
	row(tw, "tenant", p.Tenant)
	for _, s := range p.Sources {
		row(tw, "source", s.Name+"  "+s.Path)
	}
	row(tw, "documents read", p.Documents)
	row(tw, "not selected", p.NotSelected)
	row(tw, "skipped (invalid)", len(p.Skipped))
	tw.Flush()
	tw = newTable(w, "\nGROUP", "KEY", "RECORDS")
	keys := make([]string, 0, len(p.Counts))
	for k := range p.Counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		g, key := "kind", k
		for i := 0; i < len(k); i++ {
			if k[i] == '/' {
				g, key = k[:i], k[i+1:]
				if g != "ecosystem" {
					g, key = "source", k
				}
				break
			}
		}
		row(tw, g, key, p.Counts[k])
	}
	for _, s := range p.Skipped {
		row(tw, "skipped", s.Source+"/"+s.Path, s.Reason)
	}
	return tw.Flush()
}

// NewDownloadCmd builds `stella export download`.
func NewDownloadCmd(f *Factory) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "download <runId> --output <dir>",
		Short: "Copy a run's artifacts out, re-checking every sha256 (exit 3 on a mismatch)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, a []string) error {
			ctx := c.Context()
			eng, err := f.Engine(ctx)
			if err != nil {
				return err
			}
			run, err := eng.Ledger().Run(ctx, a[0])
			if err != nil {
				return err
			}
			// A run whose push failed (errorCode distribution) keeps its bundle.
			pushFailed := run.State == exportapi.StateFailed && run.ErrorType == string(xerr.Distribution) && len(run.Artifacts) > 0
			if run.State != exportapi.StateSucceeded && !pushFailed {
				return xerr.New(xerr.InvalidInput, "run %s is %s; only succeeded runs (and runs whose push failed) have artifacts to download", run.ID, run.State)
			}
			return download(ctx, f, run, out)
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", ".", "directory to copy the artifacts into")
	return cmd
}

type downloaded struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
	OK     bool   `json:"ok"`
	Error  string `json:"error,omitempty"`
}

func download(ctx context.Context, f *Factory, run exportapi.Run, out string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return xerr.Wrap(xerr.InvalidInput, err, "--output %s", out)
	}
	var res []downloaded
	var bad []string
	for _, a := range run.Artifacts {
		d := downloaded{Name: a.Name, Path: filepath.Join(out, a.Name)}
		sum, n, err := copyChecked(a.Path, d.Path)
		d.Bytes, d.SHA256 = n, sum
		switch {
		case err != nil:
			d.Error = err.Error()
		case n != a.Bytes:
			d.Error = fmt.Sprintf("%d bytes, the ledger recorded %d (truncated or replaced)", n, a.Bytes)
		case sum != a.SHA256:
			d.Error = fmt.Sprintf("sha256 %s, the ledger recorded %s (tampered or damaged)", sum, a.SHA256)
		default:
			d.OK = true
		}
		if !d.OK {
			os.Remove(d.Path)
			bad = append(bad, a.Name+": "+d.Error)
		}
		res = append(res, d)
	}
	if err := f.emit(res, func(w io.Writer) error {
		tw := newTable(w, "ARTIFACT", "BYTES", "SHA256", "CHECK")
		for _, d := range res {
			check := "ok"
			if !d.OK {
				check = "FAILED: " + d.Error
			}
			row(tw, d.Path, d.Bytes, d.SHA256, check)
		}
		return tw.Flush()
	}); err != nil {
		return err
	}
	if len(bad) > 0 {
		return &xerr.Error{Code: xerr.Verify, Message: fmt.Sprintf("run %s: %d artifact(s) failed the sha256 check: %v", run.ID, len(bad), bad),
			Hint: "the stored artifact was changed after the run; rerun the export (same profile revision and evidence give the same bytes)"}
	}
	return nil
}

// copyChecked copies src to dst (atomically) and returns the copy's sha256.
func copyChecked(src, dst string) (string, int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", 0, err
	}
	defer in.Close()
	tmp := dst + ".partial"
	o, err := os.Create(tmp)
	if err != nil {
		return "", 0, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(o, h), in)
	if cerr := o.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", n, err
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// VerifyHook adds checks (signatures, Trivy DB) to a verify report.
type VerifyHook func(ctx context.Context, f *Factory, o *VerifyOptions, rep *bundle.Report) error

var verifyHooks []VerifyHook

// VerifyOptions are the flags of `verify`.
type VerifyOptions struct {
	Target    string
	Key       string
	TrustRoot string
	Trivy     bool
	Identity  []string
	Bundle    string
}

// NewVerifyCmd builds `stella export verify`.
func NewVerifyCmd(f *Factory) *cobra.Command {
	o := &VerifyOptions{}
	cmd := &cobra.Command{
		Use:   "verify <bundle|dir|runId>",
		Short: "Verify a bundle fully offline: digests, manifest, rerun hash, signatures, expiry (exit 3 on any failure)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, a []string) error {
			o.Target = a[0]
			return verifyRun(c.Context(), f, o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Key, "key", "", "cosign public key (PEM) to check signatures with")
	fl.StringVar(&o.TrustRoot, "trust-root", "", "trust root file (keys) to check signatures with")
	fl.BoolVar(&o.Trivy, "trivy", false, "also check that the Trivy DB opens with the schema and buckets trivy expects")
	fl.StringArrayVar(&o.Identity, "identity", nil, "age identity file for encrypted bundles (repeatable)")
	fl.StringVar(&o.Bundle, "bundle", "", "sigstore bundle (v0.3 JSON) of the archive to check")
	return cmd
}

// resolveBundle turns a verify/apply argument into a bundle path: a file or
// directory as given, else a run id whose bundle artifact is used.
func resolveBundle(ctx context.Context, f *Factory, target string) (string, error) {
	if _, err := os.Stat(target); err == nil {
		return target, nil
	}
	eng, err := f.Engine(ctx)
	if err != nil {
		return "", err
	}
	run, err := eng.Ledger().Run(ctx, target)
	if err != nil {
		if xerr.Is(err, xerr.RunNotFound) {
			return "", xerr.New(xerr.RunNotFound, "%s is neither a file, a directory nor a run id", target).
				WithHint("pass the bundle path, or a run id from `stella export run list`")
		}
		return "", err
	}
	for _, a := range run.Artifacts {
		if a.MediaType == engine.BundleMediaType {
			return a.Path, nil
		}
	}
	return "", xerr.New(xerr.RunNotFound, "run %s has no bundle artifact (state %s)", run.ID, run.State)
}

func verifyRun(ctx context.Context, f *Factory, o *VerifyOptions) error {
	p, err := resolveBundle(ctx, f, o.Target)
	if err != nil {
		return err
	}
	rep := bundle.Verify(p, bundle.VerifyOptions{Now: time.Now().UTC()})
	for _, h := range verifyHooks {
		if err := h(ctx, f, o, rep); err != nil {
			return err
		}
	}
	rep.Finish()
	if err := f.emit(rep, func(w io.Writer) error {
		tw := newTable(w, "CHECK", "RESULT", "DETAIL")
		for _, c := range rep.Checks {
			res := "ok"
			if !c.OK {
				res = "FAIL"
			}
			row(tw, c.Name, res, c.Detail)
		}
		return tw.Flush()
	}); err != nil {
		return err
	}
	if !rep.OK {
		var names []string
		for _, c := range rep.Failed() {
			f.Metrics().VerifyFailures.WithLabelValues(c.Name).Inc()
			names = append(names, c.Name+": "+c.Detail)
		}
		return &xerr.Error{Code: xerr.Verify, Message: fmt.Sprintf("%s failed verification: %v", p, names), Reported: true}
	}
	return nil
}
