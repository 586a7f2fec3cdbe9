package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	_ "github.com/stellaops/stella/internal/adapter/mirror" // registers mirror:full and mirror:delta
	"github.com/stellaops/stella/internal/bundle"
	"github.com/stellaops/stella/internal/crypt"
	"github.com/stellaops/stella/internal/mirror"
	"github.com/stellaops/stella/internal/xerr"
)

func init() {
	extraCommands = append(extraCommands, NewMirrorCmd)
	verifyHooks = append(verifyHooks, verifyMirrorChain)
}

// verifyMirrorChain adds the mirror chain-field check to `stella export
// verify` of a mirror bundle (mirror verify runs the full mirror rules).
func verifyMirrorChain(_ context.Context, _ *Factory, _ *VerifyOptions, rep *bundle.Report) error {
	m := rep.Manifest
	if m == nil || m.Profile.Kind != "mirror" {
		return nil
	}
	for _, c := range rep.Checks {
		if c.Name == "mirror-chain" {
			return nil
		}
	}
	if probs := mirror.ChainProblems(m); len(probs) > 0 {
		rep.Add(bundle.Check{Name: "mirror-chain", OK: false, Detail: strings.Join(probs, "; ")})
	} else {
		rep.Add(bundle.Check{Name: "mirror-chain", OK: true, Detail: fmt.Sprintf("mirror:%s, sequence %d", m.Profile.Variant, m.Sequence)})
	}
	return nil
}

// NewMirrorCmd builds `stella export mirror` (the receiving side of mirror
// bundles; it never needs the network).
func NewMirrorCmd(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mirror",
		Short: "Verify and apply mirror bundles offline, and show what a mirror target holds",
	}
	cmd.AddCommand(newMirrorVerifyCmd(f), newMirrorApplyCmd(f), newMirrorStatusCmd(f))
	return cmd
}

// MirrorOptions are the flags of the mirror commands.
type MirrorOptions struct {
	VerifyOptions
	Bundles       []string
	TargetDir     string
	AllowRollback bool
}

func newMirrorVerifyCmd(f *Factory) *cobra.Command {
	o := &MirrorOptions{}
	cmd := &cobra.Command{
		Use:   "verify <bundle|dir|runId>",
		Short: "Verify a mirror bundle: digests, signatures, chain fields, tombstones, indexes, expiry (exit 3 on any failure)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, a []string) error {
			o.Target = a[0]
			return mirrorVerifyRun(c.Context(), f, o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Key, "key", "", "cosign public key (PEM) to check signatures with")
	fl.StringVar(&o.TrustRoot, "trust-root", "", "trust root file (keys) to check signatures with")
	fl.StringArrayVar(&o.Identity, "identity", nil, "age identity file to decrypt an encrypted bundle's data and check it (repeatable)")
	return cmd
}

func mirrorVerifyRun(ctx context.Context, f *Factory, o *MirrorOptions) error {
	p, err := resolveBundle(ctx, f, o.Target)
	if err != nil {
		return err
	}
	ids, err := crypt.LoadIdentities(o.Identity)
	if err != nil {
		return err
	}
	rep := mirror.Verify(p, mirror.VerifyOptions{Now: time.Now().UTC(), Identities: ids})
	for _, h := range verifyHooks {
		if err := h(ctx, f, &o.VerifyOptions, rep); err != nil {
			return err
		}
	}
	rep.Finish()
	if err := f.emit(rep, func(w io.Writer) error { return checksTable(w, rep) }); err != nil {
		return err
	}
	if !rep.OK {
		var names []string
		for _, c := range rep.Failed() {
			names = append(names, c.Name+": "+c.Detail)
			f.Metrics().VerifyFailures.WithLabelValues(c.Name).Inc()
		}
		return &xerr.Error{Code: xerr.Verify, Message: fmt.Sprintf("%s failed verification: %v", p, names), Reported: true}
	}
	return nil
}

func checksTable(w io.Writer, rep *bundle.Report) error {
	tw := newTable(w, "CHECK", "RESULT", "DETAIL")
	for _, c := range rep.Checks {
		res := "ok"
		if !c.OK {
			res = "FAIL"
		}
		row(tw, c.Name, res, c.Detail)
	}
	return tw.Flush()
}

func newMirrorApplyCmd(f *Factory) *cobra.Command {
	o := &MirrorOptions{}
	cmd := &cobra.Command{
		Use:   "apply <full bundle> [<delta>...] --target <dir>",
		Short: "Apply a full mirror bundle and its deltas to a folder, atomically and idempotently",
		Long: `Apply verifies every bundle (as mirror verify does), orders them by sequence, checks
that each delta applies on the state the target holds (its baseManifestDigest), builds the
new state beside the current one and switches to it in one rename. The target never holds a
half-applied state, also when the process is killed. Applying what the target holds already
is a no-op; an older bundle is refused unless --allow-rollback; expired bundles are refused.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, a []string) error {
			o.Bundles = a
			return mirrorApplyRun(c.Context(), f, o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.TargetDir, "target", "", "folder that holds (or will hold) the applied mirror")
	fl.StringArrayVar(&o.Identity, "identity", nil, "age identity file for encrypted bundles (repeatable)")
	fl.BoolVar(&o.AllowRollback, "allow-rollback", false, "allow a full bundle older than the target's state to replace it")
	fl.StringVar(&o.Key, "key", "", "cosign public key (PEM): also require valid signatures")
	fl.StringVar(&o.TrustRoot, "trust-root", "", "trust root file (keys): also require valid signatures")
	cmd.MarkFlagRequired("target")
	return cmd
}

func mirrorApplyRun(ctx context.Context, f *Factory, o *MirrorOptions) error {
	var paths []string
	for _, b := range o.Bundles {
		p, err := resolveBundle(ctx, f, b)
		if err != nil {
			return err
		}
		paths = append(paths, p)
	}
	ids, err := crypt.LoadIdentities(o.Identity)
	if err != nil {
		return err
	}
	opt := mirror.ApplyOptions{Target: o.TargetDir, Bundles: paths, Identities: ids, AllowRollback: o.AllowRollback,
		Logger: f.Logger()}
	if o.Key != "" || o.TrustRoot != "" {
		opt.Check = func(root string, rep *bundle.Report) error {
			for _, h := range verifyHooks {
				if err := h(ctx, f, &o.VerifyOptions, rep); err != nil {
					return err
				}
			}
			return nil
		}
	}
	res, err := mirror.Apply(ctx, opt)
	if err != nil {
		if xerr.Is(err, xerr.Verify) {
			f.Metrics().VerifyFailures.WithLabelValues("mirror-apply").Inc()
		}
		return err
	}
	return f.emit(res, func(w io.Writer) error {
		if res.NoOp {
			fmt.Fprintf(w, "%s already holds %s (sequence %d): nothing to do\n", res.Target, res.Head.ExportID, res.Head.Sequence)
			return nil
		}
		tw := newTable(w, "SEQUENCE", "VARIANT", "EXPORT ID", "ADDED", "CHANGED", "REMOVED", "BUNDLE")
		for _, l := range res.Applied {
			row(tw, l.Sequence, l.Variant, l.ExportID, l.Added, l.Changed, l.Removed, l.Bundle)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		for _, b := range res.AlreadyApplied {
			fmt.Fprintf(w, "already applied: %s\n", b)
		}
		fmt.Fprintf(w, "%s is now at sequence %d (%s), valid until %s\n", res.Target, res.Head.Sequence, res.Head.ExportID, res.Head.Expires)
		return nil
	})
}

func newMirrorStatusCmd(f *Factory) *cobra.Command {
	var target string
	cmd := &cobra.Command{
		Use:   "status --target <dir>",
		Short: "Show the chain of mirror bundles a target folder holds",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if _, err := os.Stat(target); err != nil {
				return xerr.New(xerr.InvalidInput, "--target %s: %v", target, err)
			}
			st, err := mirror.ReadState(target)
			if err != nil {
				return err
			}
			return f.emit(st, func(w io.Writer) error {
				if st.Chain == nil {
					fmt.Fprintf(w, "%s holds no applied mirror\n", target)
					return nil
				}
				h := st.Chain.Head()
				state := "valid"
				if exp, err := time.Parse(time.RFC3339, h.Expires); err == nil && !time.Now().Before(exp) {
					state = "EXPIRED"
				}
				fmt.Fprintf(w, "tenant %s, sequence %d (%s), %s until %s, generation %s\n\n", st.Chain.Tenant, h.Sequence, h.ExportID, state, h.Expires, st.Generation)
				tw := newTable(w, "SEQUENCE", "VARIANT", "EXPORT ID", "MANIFEST DIGEST", "BASE MANIFEST DIGEST", "GENERATED", "EXPIRES", "APPLIED", "+", "~", "-")
				for _, l := range st.Chain.Applied {
					base := l.BaseManifestDigest
					if base == "" {
						base = "-"
					}
					row(tw, l.Sequence, l.Variant, l.ExportID, l.ManifestDigest, base, l.GeneratedAt, l.Expires, l.AppliedAt, l.Added, l.Changed, l.Removed)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&target, "target", "", "folder that holds the applied mirror")
	cmd.MarkFlagRequired("target")
	return cmd
}
