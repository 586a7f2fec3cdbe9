package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stellaops/stella/internal/profile"
	"github.com/stellaops/stella/internal/xerr"
	"github.com/stellaops/stella/pkg/exportapi"
)

// NewProfileCmd builds `stella export profile`.
func NewProfileCmd(f *Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "profile", Short: "List, show, create, update and archive export profiles"}
	cmd.AddCommand(
		&cobra.Command{Use: "list", Short: "List the profiles of the tenant (built-in and custom)", Args: cobra.NoArgs,
			RunE: func(c *cobra.Command, _ []string) error { return profileList(c.Context(), f) }},
		&cobra.Command{Use: "show <name|kind:variant>[@rN]", Short: "Show a profile (latest revision, or @rN)", Args: cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, a []string) error { return profileShow(c.Context(), f, a[0]) }},
		profileWriteCmd(f, "create"),
		profileWriteCmd(f, "update"),
		&cobra.Command{Use: "archive <name>", Short: "Archive a custom profile: it can no longer be used for new runs", Args: cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, a []string) error { return profileArchive(c.Context(), f, a[0]) }},
	)
	return cmd
}

func profileList(ctx context.Context, f *Factory) error {
	eng, err := f.Engine(ctx)
	if err != nil {
		return err
	}
	tenant := f.Tenant()
	stored, err := eng.Ledger().Profiles(ctx, tenant)
	if err != nil {
		return err
	}
	all := append(profile.BuiltIns(tenant), stored...)
	return f.emit(all, func(w io.Writer) error {
		tw := newTable(w, "NAME", "KIND", "REVISION", "INCLUDE", "STATUS")
		for _, p := range all {
			status := "custom"
			if p.BuiltIn {
				status = "built-in"
			}
			if p.Archived {
				status = "archived"
			}
			row(tw, p.Metadata.Name, p.Spec.Kind+":"+p.Spec.Variant, p.Metadata.Revision, strings.Join(p.Spec.Include, ","), status)
		}
		return tw.Flush()
	})
}

func profileShow(ctx context.Context, f *Factory, ref string) error {
	eng, err := f.Engine(ctx)
	if err != nil {
		return err
	}
	name, rev, _ := strings.Cut(ref, "@")
	p, err := eng.Ledger().Profile(ctx, f.Tenant(), name, rev)
	if xerr.Is(err, xerr.ProfileNotFound) {
		if b, ok := profile.BuiltIn(f.Tenant(), name); ok && (rev == "" || rev == "r1") {
			p, err = b, nil
		}
	}
	if err != nil {
		return err
	}
	return f.emit(p, func(w io.Writer) error {
		save := f.G.Format
		f.G.Format = "yaml"
		defer func() { f.G.Format = save }()
		return f.emit(p, nil)
	})
}

func profileWriteCmd(f *Factory, verb string) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   verb + " -f <profile.yaml|json>",
		Short: map[string]string{"create": "Create a custom profile (revision r1) from a file", "update": "Update a custom profile: a changed spec makes a new revision"}[verb],
		Args:  cobra.NoArgs,
		RunE:  func(c *cobra.Command, _ []string) error { return profileWrite(c.Context(), f, verb, file) },
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "profile document (YAML or JSON; - for stdin)")
	cmd.MarkFlagRequired("file")
	return cmd
}

func profileWrite(ctx context.Context, f *Factory, verb, file string) error {
	var data []byte
	var err error
	if file == "-" {
		data, err = io.ReadAll(f.IO.In)
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return xerr.Wrap(xerr.InvalidInput, err, "read profile %s", file)
	}
	p, err := profile.Decode(data, file)
	if err != nil {
		return err
	}
	if p.Metadata.Tenant == "" {
		p.Metadata.Tenant = f.Tenant()
	}
	p.Metadata.Revision, p.BuiltIn, p.Archived = "", false, false
	profile.Normalize(&p)
	if err := profile.Validate(p); err != nil {
		return err
	}
	if _, ok := profile.BuiltIn(p.Metadata.Tenant, p.Metadata.Name); ok {
		return xerr.New(xerr.InvalidInput, "profile name %q is taken by a built-in profile", p.Metadata.Name).
			WithHint("choose another metadata.name")
	}
	eng, err := f.Engine(ctx)
	if err != nil {
		return err
	}
	_, gerr := eng.Ledger().Profile(ctx, p.Metadata.Tenant, p.Metadata.Name, "")
	switch {
	case verb == "create" && gerr == nil:
		return xerr.New(xerr.InvalidInput, "profile %q already exists for tenant %q", p.Metadata.Name, p.Metadata.Tenant).
			WithHint("use `stella export profile update -f %s` to make a new revision", file)
	case verb == "update" && xerr.Is(gerr, xerr.ProfileNotFound):
		return xerr.New(xerr.ProfileNotFound, "profile %q does not exist for tenant %q", p.Metadata.Name, p.Metadata.Tenant).
			WithHint("use `stella export profile create -f %s`", file)
	case gerr != nil && !xerr.Is(gerr, xerr.ProfileNotFound):
		return gerr
	}
	saved, changed, err := eng.Ledger().SaveProfile(ctx, p)
	if err != nil {
		return err
	}
	return f.emit(saved, func(w io.Writer) error {
		if changed {
			fmt.Fprintf(w, "profile %s saved as revision %s\n", saved.Metadata.Name, saved.Metadata.Revision)
		} else {
			fmt.Fprintf(w, "profile %s unchanged (revision %s)\n", saved.Metadata.Name, saved.Metadata.Revision)
		}
		return nil
	})
}

func profileArchive(ctx context.Context, f *Factory, name string) error {
	if _, ok := profile.BuiltIn(f.Tenant(), name); ok {
		return xerr.New(xerr.InvalidInput, "built-in profile %q cannot be archived", name)
	}
	eng, err := f.Engine(ctx)
	if err != nil {
		return err
	}
	if err := eng.Ledger().ArchiveProfile(ctx, f.Tenant(), name); err != nil {
		return err
	}
	p, err := eng.Ledger().Profile(ctx, f.Tenant(), name, "")
	if err != nil {
		return err
	}
	return f.emit(p, func(w io.Writer) error {
		fmt.Fprintf(w, "profile %s archived\n", name)
		return nil
	})
}

var _ = exportapi.ProfileKind
