package cli

import (
	"os"

	"github.com/spf13/cobra"
)

// NewRootCmd builds `stella` with its `export` command tree.
func NewRootCmd(f *Factory) *cobra.Command {
	root := &cobra.Command{
		Use:           "stella",
		Short:         "stella: the Export Center of a vulnerability-management platform",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	root.SetIn(f.IO.In)
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)
	root.AddCommand(NewExportCmd(f))
	return root
}

// NewExportCmd builds `stella export`.
func NewExportCmd(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Build, verify, ship and apply signed evidence bundles",
		Long: `stella export turns security evidence (advisories, VEX, SBOMs) and policy overlays into
reproducible, signed bundles (JSON, Trivy DB, air-gap mirrors), keeps a ledger of every run,
and verifies bundles offline. With no --server it runs the embedded engine on a local ledger.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.G.Server, "server", os.Getenv("STELLA_SERVER"), "export service URL; every command delegates to it (STELLA_SERVER)")
	pf.StringVar(&f.G.Tenant, "tenant", os.Getenv("STELLA_TENANT"), "tenant to act for (STELLA_TENANT; default from config, else \"default\")")
	pf.StringVar(&f.G.Token, "token", os.Getenv("STELLA_TOKEN"), "bearer token for --server (STELLA_TOKEN)")
	pf.StringVar(&f.G.ConfigFile, "config", os.Getenv("STELLA_CONFIG"), "config file (default: <user config dir>/stella/config.yaml if present)")
	pf.StringVar(&f.G.Format, "format", "", "output format: table|json|yaml (default: table on a terminal, json otherwise)")
	pf.BoolVar(&f.G.Trace, "trace", false, "debug logs on stderr")
	pf.StringVar(&f.G.Ledger, "ledger", "", "ledger file (default: <data dir>/ledger.db; ExportCenter.Ledger.Path)")
	pf.StringVar(&f.G.MetricsFile, "metrics-textfile", "", "add this command's Prometheus metrics to this textfile (ExportCenter.Metrics.Textfile)")
	pf.StringVar(&f.G.DataDir, "data-dir", "", "data directory for the ledger and run artifacts (ExportCenter.DataDir)")
	cmd.AddCommand(
		NewProfileCmd(f),
		NewRunCmd(f),
		NewPlanCmd(f),
		NewDownloadCmd(f),
		NewVerifyCmd(f),
	)
	for _, extra := range extraCommands {
		cmd.AddCommand(extra(f))
	}
	return cmd
}

// extraCommands lets other files of this package add commands (trivy,
// mirror, key, serve) without touching the tree above.
var extraCommands []func(*Factory) *cobra.Command
