// Command stella is the Export Center CLI: `stella export …`.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"

	"github.com/stellaops/stella/internal/cli"
	"github.com/stellaops/stella/internal/xerr"
)

func main() {
	// A soft heap limit keeps peak memory bounded whatever the corpus size
	// (the sorter spills to disk); GOMEMLIMIT overrides it.
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(160 << 20)
	}
	// Runs allocate a lot of short-lived garbage (one parse per document);
	// with the heap capped above, a lazier collector costs no peak memory
	// and saves about a quarter of a run's time. GOGC overrides it.
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(400)
	}
	os.Exit(run())
}

func run() int {
	// STELLA_CPUPROFILE=<file> writes a CPU profile of the whole command
	// (for `make bench` investigations; see docs/performance.md).
	if p := os.Getenv("STELLA_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				defer func() { pprof.StopCPUProfile(); f.Close() }()
			}
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first interrupt ends ctx: commands stop where they check it and
	// clean up. A second one kills the process the default way (what is
	// crash-safe stays so: a mirror target, the ledger's leases).
	go func() { <-ctx.Done(); stop() }()
	f := &cli.Factory{IO: cli.System(), Hooks: cli.DefaultHooks}
	defer f.Close()
	cmd := cli.NewRootCmd(f)
	err := cmd.ExecuteContext(ctx)
	if merr := f.FlushMetrics(); merr != nil && err == nil {
		err = merr
	}
	if err == nil {
		return 0
	}
	return report(f, err, ctx.Err() != nil)
}

// report prints an error with its code, what was wrong and what to do, and
// returns the exit code of SPEC §7 for it.
// An interrupted command (Ctrl-C, SIGTERM) says so instead of "a bug".
func report(f *cli.Factory, err error, interrupted bool) int {
	e := xerr.As(err)
	if cli.IsUsageError(err) {
		e = &xerr.Error{Code: xerr.InvalidInput, Message: err.Error(), Hint: "see --help"}
	}
	if interrupted && e.Code == xerr.Internal && !e.Reported {
		c := *e
		c.Hint = "the command was interrupted; what it was writing was not kept (a mirror target stays as it was, a run is marked cancelled): run it again"
		e = &c
	}
	fmt.Fprintf(f.IO.ErrOut, "Error: %s: %s\n", e.Code, e.Message)
	if !e.Reported {
		for _, d := range e.Details {
			fmt.Fprintf(f.IO.ErrOut, "  - %s\n", d)
		}
		if e.Hint != "" {
			fmt.Fprintf(f.IO.ErrOut, "Hint: %s\n", e.Hint)
		}
	}
	return e.Code.ExitCode()
}
