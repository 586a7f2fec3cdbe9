package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"gopkg.in/yaml.v3"

	"github.com/stellaops/stella/internal/xerr"
)

// format resolves --format: table on a TTY, JSON otherwise.
func (f *Factory) format() (string, error) {
	switch f.G.Format {
	case "":
		if f.IO.TTY {
			return "table", nil
		}
		return "json", nil
	case "table", "json", "yaml":
		return f.G.Format, nil
	}
	return "", xerr.New(xerr.InvalidInput, "--format %q is not table, json or yaml", f.G.Format)
}

// emit writes v as JSON or YAML, or calls table for the table form.
func (f *Factory) emit(v any, table func(w io.Writer) error) error {
	format, err := f.format()
	if err != nil {
		return err
	}
	switch format {
	case "json":
		enc := json.NewEncoder(f.IO.Out)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		// Go through JSON so field names match the JSON form.
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		var generic any
		if err := yaml.Unmarshal(b, &generic); err != nil {
			return err
		}
		enc := yaml.NewEncoder(f.IO.Out)
		enc.SetIndent(2)
		defer enc.Close()
		return enc.Encode(generic)
	}
	return table(f.IO.Out)
}

// newTable makes a tab-aligned writer; call Flush when done.
func newTable(w io.Writer, header ...string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(header) > 0 {
		fmt.Fprintln(tw, strings.Join(header, "\t"))
	}
	return tw
}

func row(w io.Writer, cols ...any) {
	s := make([]string, len(cols))
	for i, c := range cols {
		s[i] = fmt.Sprint(c)
	}
	fmt.Fprintln(w, strings.Join(s, "\t"))
}

func humanBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}
