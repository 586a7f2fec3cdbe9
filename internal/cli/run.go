package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stellaops/stella/internal/engine"
	"github.com/stellaops/stella/internal/watch"
	"github.com/stellaops/stella/internal/xerr"
	"github.com/stellaops/stella/pkg/exportapi"
)

// NewRunCmd builds `stella export run`.
func NewRunCmd(f *Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "run", Short: "Submit, list, show, watch and cancel export runs"}
	cmd.AddCommand(newRunSubmitCmd(f), newRunListCmd(f), newRunShowCmd(f), newRunWatchCmd(f), newRunCancelCmd(f))
	return cmd
}

// SubmitOptions are the flags of `run submit`.
type SubmitOptions struct {
	engine.SubmitRequest
	SourceFlags []string
	Watch       bool
}

func newRunSubmitCmd(f *Factory) *cobra.Command {
	o := &SubmitOptions{}
	cmd := &cobra.Command{
		Use:   "submit --profile <profile> [--selector k=v]... [--source name=path]...",
		Short: "Submit a run; the embedded engine executes it inline",
		Args:  cobra.NoArgs,
		RunE:  func(c *cobra.Command, _ []string) error { return runSubmit(c.Context(), f, o) },
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Profile, "profile", "", "profile: kind:variant (json:raw…) or a custom profile name[@rN]")
	fl.StringArrayVar(&o.Selectors, "selector", nil, "selector key=value (repeatable): source, ecosystem, purl, product, since, until")
	fl.StringArrayVar(&o.SourceFlags, "source", nil, "one-off evidence source name=path (repeatable): a directory or .zip/.tar.gz/.tar.zst")
	fl.StringVar(&o.BaseRunID, "base", "", "base run of a delta export")
	fl.BoolVar(&o.AllowEmpty, "allow-empty", false, "produce an empty, valid bundle when nothing matches")
	fl.BoolVar(&o.SkipInvalid, "skip-invalid", false, "list unreadable documents in skipped[] instead of failing")
	fl.StringVar(&o.Priority, "priority", "normal", "normal | catch-up")
	fl.BoolVar(&o.Watch, "watch", false, "show progress while the run executes")
	fl.StringArrayVar(&o.Push, "push", nil, "also push to oci://host[:port]/repo:tag or s3://bucket/prefix (repeatable)")
	cmd.MarkFlagRequired("profile")
	return cmd
}

func parseSources(flags []string) ([]exportapi.SourceSpec, error) {
	var out []exportapi.SourceSpec
	for _, s := range flags {
		n, p, ok := strings.Cut(s, "=")
		if !ok || n == "" || p == "" {
			return nil, xerr.New(xerr.InvalidInput, "--source %q: want name=path", s).WithHint("e.g. --source ghsa=./advisories")
		}
		out = append(out, exportapi.SourceSpec{Name: n, Path: p})
	}
	return out, nil
}

func runSubmit(ctx context.Context, f *Factory, o *SubmitOptions) error {
	srcs, err := parseSources(o.SourceFlags)
	if err != nil {
		return err
	}
	o.Sources = srcs
	o.Tenant = f.Tenant()
	eng, err := f.Engine(ctx)
	if err != nil {
		return err
	}
	run, err := eng.Submit(ctx, o.SubmitRequest)
	if err != nil {
		return err
	}
	if !o.Watch {
		fmt.Fprintf(f.IO.ErrOut, "run %s submitted (%s@%s)\n", run.ID, run.Profile.Name, run.Profile.Revision)
		final, err := eng.Execute(ctx, run.ID)
		if err != nil && final.ID == "" {
			return err
		}
		return reportRun(f, final)
	}
	done := make(chan struct{})
	var final exportapi.Run
	var execErr error
	go func() {
		defer close(done)
		final, execErr = eng.Execute(ctx, run.ID)
	}()
	werr := watchRun(ctx, f, eng, run.ID)
	<-done
	if execErr != nil && final.ID == "" {
		return execErr
	}
	if werr != nil && !errors.Is(werr, watch.ErrDetached) {
		return werr
	}
	if !f.IO.TTY {
		observeRun(f, final)
		return runFailure(final)
	}
	return reportRun(f, final)
}

// observeRun records a finished run in the metrics.
func observeRun(f *Factory, run exportapi.Run) {
	m := f.Metrics()
	if run.StartedAt != nil && run.FinishedAt != nil {
		m.RunDuration.WithLabelValues(run.Profile.Kind).Observe(run.FinishedAt.Sub(*run.StartedAt).Seconds())
	}
	if run.State == exportapi.StateFailed {
		m.RunFailures.WithLabelValues(run.Profile.Name, run.ErrorCode).Inc()
	}
	for _, a := range run.Artifacts {
		m.RunBytes.WithLabelValues(run.Profile.Kind).Add(float64(a.Bytes))
	}
}

// reportRun prints a finished run and returns its failure as an error so
// that the exit code follows the run's error code.
func reportRun(f *Factory, run exportapi.Run) error {
	observeRun(f, run)
	if err := f.emit(run, func(w io.Writer) error { return runTable(w, run) }); err != nil {
		return err
	}
	return runFailure(run)
}

func runFailure(run exportapi.Run) error {
	switch run.State {
	case exportapi.StateFailed:
		code := xerr.Code(run.ErrorType)
		if code == "" {
			code = xerr.Internal
		}
		return &xerr.Error{Code: code, Message: fmt.Sprintf("run %s failed: %s", run.ID, run.ErrorMessage), Reported: true}
	case exportapi.StateCancelled:
		msg := fmt.Sprintf("run %s was cancelled", run.ID)
		if run.ErrorMessage != "" {
			msg += " (" + run.ErrorMessage + "); nothing it wrote was kept"
		}
		return &xerr.Error{Code: xerr.Internal, Message: msg, Reported: true}
	}
	return nil
}

func runTable(w io.Writer, r exportapi.Run) error {
	tw := newTable(w)
	row(tw, "run", r.ID)
	row(tw, "state", r.State)
	row(tw, "tenant", r.Tenant)
	row(tw, "profile", fmt.Sprintf("%s@%s (%s:%s)", r.Profile.Name, r.Profile.Revision, r.Profile.Kind, r.Profile.Variant))
	if r.ExportID != "" {
		row(tw, "export id", r.ExportID)
	}
	row(tw, "created", r.CreatedAt.Format(time.RFC3339))
	if r.StartedAt != nil && r.FinishedAt != nil {
		row(tw, "duration", r.FinishedAt.Sub(*r.StartedAt).Round(time.Millisecond))
	}
	if r.ErrorType != "" {
		row(tw, "error", r.ErrorType+" ("+r.ErrorCode+")")
	}
	if r.ErrorMessage != "" {
		row(tw, "message", r.ErrorMessage)
	}
	for _, k := range slices.Sorted(maps.Keys(r.Counts)) {
		row(tw, "count "+k, r.Counts[k])
	}
	for _, a := range r.Artifacts {
		row(tw, "artifact", fmt.Sprintf("%s  %s  sha256:%s", a.Path, humanBytes(a.Bytes), a.SHA256))
	}
	for _, k := range sortedExtraKeys(r.Extra, engine.ExtraDistributionPrefix) {
		row(tw, "pushed", strings.TrimPrefix(k, engine.ExtraDistributionPrefix)+"  "+r.Extra[k])
	}
	return tw.Flush()
}

func sortedExtraKeys(m map[string]string, prefix string) []string {
	var out []string
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// watchRun follows a run's events (from this or another process) until it ends.
func watchRun(ctx context.Context, f *Factory, eng *engine.Engine, id string) error {
	ch := make(chan exportapi.Event, 64)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		defer close(ch)
		var after int64
		lastRecover := time.Time{}
		for {
			evs, err := eng.Ledger().Events(wctx, id, after)
			if err == nil {
				for _, ev := range evs {
					after = ev.Seq
					select {
					case ch <- ev:
					case <-wctx.Done():
						return
					}
					if watch.IsTerminal(ev) {
						return
					}
				}
			}
			// A run whose process died never sends its last event: recover it.
			if time.Since(lastRecover) > 2*time.Second {
				lastRecover = time.Now()
				eng.Recover(wctx)
			}
			select {
			case <-wctx.Done():
				return
			case <-time.After(150 * time.Millisecond):
			}
		}
	}()
	final, err := watch.Watch(ctx, ch, watch.Options{RunID: id, Out: f.IO.Out, TTY: f.IO.TTY, In: ttyIn(f)})
	if err != nil {
		return err
	}
	_ = final
	return nil
}

func ttyIn(f *Factory) io.Reader {
	if f.IO.TTY {
		return f.IO.In
	}
	return nil
}

func newRunWatchCmd(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "watch <runId>",
		Short: "Follow a run live (a terminal view on a TTY, NDJSON events otherwise); exits non-zero if it fails",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, a []string) error {
			ctx := c.Context()
			eng, err := f.Engine(ctx)
			if err != nil {
				return err
			}
			if _, err := eng.Ledger().Run(ctx, a[0]); err != nil {
				return err
			}
			if err := watchRun(ctx, f, eng, a[0]); err != nil {
				if errors.Is(err, watch.ErrDetached) {
					return nil
				}
				return err
			}
			run, err := eng.Ledger().Run(ctx, a[0])
			if err != nil {
				return err
			}
			return runFailure(run)
		},
	}
}

func newRunListCmd(f *Factory) *cobra.Command {
	var states []string
	var prof, cursor string
	var limit int
	var all bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List runs, newest first",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx := c.Context()
			eng, err := f.Engine(ctx)
			if err != nil {
				return err
			}
			eng.Recover(ctx)
			flt := runFilter(f.Tenant(), states, prof, limit, cursor)
			if all {
				flt.Tenant = ""
			}
			runs, next, err := eng.Ledger().Runs(ctx, flt)
			if err != nil {
				return err
			}
			out := struct {
				Runs       []exportapi.Run `json:"runs"`
				NextCursor string          `json:"nextCursor,omitempty"`
			}{runs, next}
			if out.Runs == nil {
				out.Runs = []exportapi.Run{}
			}
			return f.emit(out, func(w io.Writer) error {
				tw := newTable(w, "RUN", "STATE", "PROFILE", "CREATED", "ERROR")
				for _, r := range runs {
					row(tw, r.ID, r.State, r.Profile.Name+"@"+r.Profile.Revision, r.CreatedAt.Format(time.RFC3339), r.ErrorType)
				}
				if next != "" {
					row(tw, "more: --cursor "+next)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().StringSliceVar(&states, "status", nil, "only runs in these states (pending,running,succeeded,failed,cancelled,expired)")
	cmd.Flags().StringVar(&prof, "profile", "", "only runs of this profile name")
	cmd.Flags().IntVar(&limit, "limit", 50, "runs per page")
	cmd.Flags().StringVar(&cursor, "cursor", "", "page cursor from a previous list")
	cmd.Flags().BoolVar(&all, "all-tenants", false, "list every tenant's runs")
	return cmd
}

func newRunShowCmd(f *Factory) *cobra.Command {
	var events bool
	cmd := &cobra.Command{
		Use:   "show <runId>",
		Short: "Show a run: state, timings, counts, artifacts, error",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, a []string) error {
			ctx := c.Context()
			eng, err := f.Engine(ctx)
			if err != nil {
				return err
			}
			eng.Recover(ctx)
			run, err := eng.Ledger().Run(ctx, a[0])
			if err != nil {
				return err
			}
			if !events {
				return f.emit(run, func(w io.Writer) error { return runTable(w, run) })
			}
			evs, err := eng.Ledger().Events(ctx, a[0], 0)
			if err != nil {
				return err
			}
			out := struct {
				Run    exportapi.Run     `json:"run"`
				Events []exportapi.Event `json:"events"`
			}{run, evs}
			return f.emit(out, func(w io.Writer) error {
				if err := runTable(w, run); err != nil {
					return err
				}
				tw := newTable(w, "\nSEQ", "TIME", "TYPE", "PHASE", "DONE/TOTAL", "MESSAGE")
				for _, e := range evs {
					row(tw, e.Seq, e.Time.Format(time.RFC3339Nano), e.Type, e.Phase, fmt.Sprintf("%d/%d", e.ItemsDone, e.ItemsTotal), e.Message)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&events, "events", false, "also print the run's event log")
	return cmd
}

func newRunCancelCmd(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel <runId>",
		Short: "Cancel a pending or running run",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, a []string) error {
			ctx := c.Context()
			eng, err := f.Engine(ctx)
			if err != nil {
				return err
			}
			run, err := eng.Cancel(ctx, a[0])
			if err != nil {
				return err
			}
			return f.emit(run, func(w io.Writer) error {
				if run.State == exportapi.StateCancelled {
					fmt.Fprintf(w, "run %s cancelled\n", run.ID)
				} else {
					fmt.Fprintf(w, "run %s: cancel requested; it stops at its next step\n", run.ID)
				}
				return nil
			})
		},
	}
}
