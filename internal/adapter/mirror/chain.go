// Package mirror is the engine adapter of mirror bundles (mirror:full and
// mirror:delta): the json data layout plus indexes, tombstones, a README,
// a sequence per chain, an expiry, and optional encryption of data/. The
// receiving side (verify, apply, status) is internal/mirror; docs/mirror.md
// describes the format and the rules.
package mirror

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/stellaops/stella/internal/crypt"
	"github.com/stellaops/stella/internal/engine"
	"github.com/stellaops/stella/internal/ledger"
	"github.com/stellaops/stella/internal/xerr"
	"github.com/stellaops/stella/pkg/exportapi"
)

// Profile labels that tune mirror profiles (a label change makes a new
// profile revision, so bundles stay a function of the revision).
const (
	// LabelChain names the chain a profile's runs belong to. Default: the
	// profile name without a trailing "-full" or "-delta" (the built-ins
	// mirror-full and mirror-delta form the chain "mirror").
	LabelChain = "stellaops.io/mirror-chain"
	// LabelValidity is how long a bundle is valid after its generatedAt:
	// a Go duration ("720h") or a number of days ("30d"). Default 30 days.
	LabelValidity = "stellaops.io/mirror-validity"
)

// DefaultValidity is the validity of a mirror bundle without LabelValidity.
const DefaultValidity = 30 * 24 * time.Hour

// Run.Extra keys that a mirror run records at submission.
const (
	ExtraChain    = "mirror.chain"    // chain name
	ExtraSequence = "mirror.sequence" // the bundle's sequence
	ExtraPrevious = "mirror.previous" // full: the chain's previous run (for the sequence), if any
)

// ChainName is the chain a profile's runs belong to.
func ChainName(p exportapi.Profile) string {
	if c := p.Metadata.Labels[LabelChain]; c != "" {
		return c
	}
	n := p.Metadata.Name
	for _, suf := range []string{"-full", "-delta"} {
		if strings.HasSuffix(n, suf) && len(n) > len(suf) {
			return strings.TrimSuffix(n, suf)
		}
	}
	return n
}

// Validity reads a profile's validity.
func Validity(p exportapi.Profile) (time.Duration, error) {
	v := strings.TrimSpace(p.Metadata.Labels[LabelValidity])
	if v == "" {
		return DefaultValidity, nil
	}
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(v, "d"); ok {
		var n int
		n, err = strconv.Atoi(days)
		d = time.Duration(n) * 24 * time.Hour
	} else {
		d, err = time.ParseDuration(v)
	}
	if err != nil || d <= 0 {
		return 0, xerr.New(xerr.InvalidInput, "profile %q: label %s=%q is not a positive duration", p.Metadata.Name, LabelValidity, v).
			WithHint(`use a number of days ("30d") or a Go duration ("720h")`)
	}
	return d, nil
}

// Sequence is the mirror sequence a run recorded at submission (0 if none).
func Sequence(r exportapi.Run) int64 {
	n, _ := strconv.ParseInt(r.Extra[ExtraSequence], 10, 64)
	return n
}

// prepare resolves, at submission, what a mirror run's bytes depend on
// besides the evidence: its chain, its base (delta) or predecessor (full),
// and so its sequence. They become run parameters, so a replay with the
// same base gives the same bundle.
func prepare(ctx context.Context, pc engine.PrepareContext) error {
	run, p := pc.Run, pc.Profile
	if _, err := Validity(p); err != nil {
		return err
	}
	if enc := p.Spec.Encryption; enc.Enabled {
		if err := crypt.CheckMode(enc.Mode); err != nil {
			return err
		}
		if _, _, err := crypt.ParseRecipients(enc.RecipientKeys); err != nil {
			return err
		}
	}
	chain := ChainName(p)
	// A second run of the chain while one is pending or running would take
	// the same sequence (a full after the same predecessor, a delta on the
	// same base) and fork the chain: a receiver that applied one of the two
	// could not apply the next delta built on the other.
	// (plan writes nothing: it cannot fork the chain.)
	if !pc.Planning {
		if err := checkChainIdle(ctx, pc.Ledger, run.Tenant, chain); err != nil {
			return err
		}
	}
	if run.Extra == nil {
		run.Extra = map[string]string{}
	}
	run.Extra[ExtraChain] = chain
	switch p.Spec.Variant {
	case "full":
		if run.BaseRunID != "" {
			return xerr.New(xerr.InvalidInput, "--base is for mirror:delta runs; a mirror:full bundle has no base").
				WithHint("drop --base, or use --profile mirror:delta")
		}
		prev, err := newestInChain(ctx, pc.Ledger, run.Tenant, chain)
		if err != nil {
			return err
		}
		seq := int64(1)
		if prev != nil {
			seq = Sequence(*prev) + 1
			run.Extra[ExtraPrevious] = prev.ID
		}
		run.Extra[ExtraSequence] = strconv.FormatInt(seq, 10)
	case "delta":
		var base *exportapi.Run
		if run.BaseRunID != "" {
			b, err := pc.Ledger.Run(ctx, run.BaseRunID)
			if err != nil {
				if xerr.Is(err, xerr.RunNotFound) {
					return baseMissing("--base %s: no such run in the ledger", run.BaseRunID)
				}
				return err
			}
			if err := checkBase(b, run.Tenant, chain); err != nil {
				return err
			}
			base = &b
		} else {
			b, err := newestInChain(ctx, pc.Ledger, run.Tenant, chain)
			if err != nil {
				return err
			}
			if b == nil {
				return baseMissing("no succeeded mirror run of chain %q for tenant %q to be the base of this delta", chain, run.Tenant)
			}
			base = b
		}
		if _, err := bundleArtifact(*base); err != nil {
			return err
		}
		run.BaseRunID = base.ID
		run.Extra[ExtraSequence] = strconv.FormatInt(Sequence(*base)+1, 10)
	default:
		return xerr.New(xerr.InvalidInput, "mirror variant %q is not full or delta", p.Spec.Variant)
	}
	return nil
}

func baseMissing(format string, args ...any) *xerr.Error {
	return xerr.New(xerr.BaseMissing, format, args...).
		WithHint("run `stella export run submit --profile mirror:full` to start a new chain, then deltas from it")
}

// checkBase checks that r can be the base of a delta of tenant/chain.
func checkBase(r exportapi.Run, tenant, chain string) error {
	switch {
	case r.Profile.Kind != "mirror":
		return xerr.New(xerr.InvalidInput, "--base %s is a %s:%s run, not a mirror run", r.ID, r.Profile.Kind, r.Profile.Variant)
	case r.Tenant != tenant:
		return xerr.New(xerr.InvalidInput, "--base %s belongs to tenant %q, not %q", r.ID, r.Tenant, tenant)
	case r.State != exportapi.StateSucceeded:
		return baseMissing("--base %s is %s; only a succeeded run can be a base", r.ID, r.State)
	case r.Extra[ExtraChain] != chain:
		return xerr.New(xerr.InvalidInput, "--base %s belongs to mirror chain %q, this profile to %q", r.ID, r.Extra[ExtraChain], chain).
			WithHint("pick a base of the same chain (label %s), or omit --base", LabelChain)
	case Sequence(r) == 0:
		return baseMissing("run %s records no mirror sequence (made by an older stella)", r.ID)
	}
	return nil
}

// checkChainIdle refuses a run of a chain that has a pending or running
// run, naming it.
func checkChainIdle(ctx context.Context, led ledger.Ledger, tenant, chain string) error {
	live, err := firstInChain(ctx, led, tenant, chain, []exportapi.RunState{exportapi.StatePending, exportapi.StateRunning}, nil)
	if err != nil || live == nil {
		return err
	}
	e := xerr.New(xerr.InvalidInput, "mirror run %s of chain %q (tenant %q) is %s; a second run of the chain now would take the same sequence and fork the chain",
		live.ID, chain, tenant, live.State)
	if live.State == exportapi.StateRunning || live.Owner != "" {
		return e.WithHint("wait for it to finish (`stella export run watch %s`), then submit again", live.ID)
	}
	return e.WithHint("it was submitted but never started: cancel it (`stella export run cancel %s`) and submit again", live.ID)
}

// newestInChain is the newest succeeded mirror run of a tenant's chain, or nil.
func newestInChain(ctx context.Context, led ledger.Ledger, tenant, chain string) (*exportapi.Run, error) {
	return firstInChain(ctx, led, tenant, chain, []exportapi.RunState{exportapi.StateSucceeded},
		func(r exportapi.Run) bool { return Sequence(r) > 0 })
}

// firstInChain is the newest mirror run of a tenant's chain in one of
// states (and accepted by ok, when given), or nil.
func firstInChain(ctx context.Context, led ledger.Ledger, tenant, chain string, states []exportapi.RunState, ok func(exportapi.Run) bool) (*exportapi.Run, error) {
	f := ledger.RunFilter{Tenant: tenant, States: states, Limit: 200}
	for {
		runs, next, err := led.Runs(ctx, f)
		if err != nil {
			return nil, err
		}
		for i := range runs {
			r := runs[i]
			if r.Profile.Kind == "mirror" && r.Extra[ExtraChain] == chain && (ok == nil || ok(r)) {
				return &r, nil
			}
		}
		if next == "" {
			return nil, nil
		}
		f.Cursor = next
	}
}

// bundleArtifact is the bundle archive of a run, checked to still exist.
func bundleArtifact(r exportapi.Run) (exportapi.Artifact, error) {
	for _, a := range r.Artifacts {
		if a.MediaType != engine.BundleMediaType {
			continue
		}
		st, err := os.Stat(a.Path)
		if err != nil {
			return a, baseMissing("the bundle of mirror run %s (%s) is gone (pruned or moved): %v", r.ID, a.Name, unwrap(err))
		}
		if st.Size() != a.Bytes {
			return a, baseMissing("the bundle of mirror run %s (%s) has %d bytes, the ledger recorded %d (damaged or replaced)", r.ID, a.Name, st.Size(), a.Bytes)
		}
		return a, nil
	}
	return exportapi.Artifact{}, baseMissing("mirror run %s has no bundle artifact (state %s)", r.ID, r.State)
}

func unwrap(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// chainRuns returns the runs from the last full bundle up to base, oldest first.
func chainRuns(ctx context.Context, led ledger.Ledger, base exportapi.Run) ([]exportapi.Run, error) {
	out := []exportapi.Run{base}
	r := base
	for r.Profile.Variant == "delta" {
		if len(out) > 100000 {
			return nil, fmt.Errorf("mirror chain longer than 100000 bundles")
		}
		if r.BaseRunID == "" {
			return nil, baseMissing("delta run %s records no base run", r.ID)
		}
		b, err := led.Run(ctx, r.BaseRunID)
		if err != nil {
			if xerr.Is(err, xerr.RunNotFound) {
				return nil, baseMissing("run %s, the base of %s, is no longer in the ledger", r.BaseRunID, r.ID)
			}
			return nil, err
		}
		if b.State != exportapi.StateSucceeded {
			return nil, baseMissing("run %s, the base of %s, is %s", b.ID, r.ID, b.State)
		}
		out = append(out, b)
		r = b
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}
