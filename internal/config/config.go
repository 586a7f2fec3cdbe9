// Package config loads stella's one configuration file (YAML, keys under
// ExportCenter: as in the runbook) with every key overridable by a STELLA_*
// environment variable (ExportCenter.Retention.Mirror.Mode ->
// STELLA_EXPORTCENTER_RETENTION_MIRROR_MODE). It is loaded once and passed down.
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"

	"github.com/stellaops/stella/internal/xerr"
)

// Config is the whole configuration.
type Config struct {
	ExportCenter ExportCenter `mapstructure:"ExportCenter"`
	// File is the config file that was read ("" when none).
	File string `mapstructure:"-"`
}

// ExportCenter holds every setting.
type ExportCenter struct {
	Tenant    string                     `mapstructure:"Tenant"`
	DataDir   string                     `mapstructure:"DataDir"`
	Ledger    Ledger                     `mapstructure:"Ledger"`
	Sources   []Source                   `mapstructure:"Sources"`
	Limits    Limits                     `mapstructure:"Limits"`
	Signing   Signing                    `mapstructure:"Signing"`
	Retention map[string]RetentionPolicy `mapstructure:"Retention"`
	Profiles  Profiles                   `mapstructure:"Profiles"`
	Metrics   Metrics                    `mapstructure:"Metrics"`
	Server    Server                     `mapstructure:"Server"`
}

// Ledger says where runs are recorded.
type Ledger struct {
	Driver string `mapstructure:"Driver"` // bolt | postgres
	Path   string `mapstructure:"Path"`   // bolt file
	DSN    string `mapstructure:"DSN"`    // postgres
}

// Source is a configured evidence source.
type Source struct {
	Name    string   `mapstructure:"Name"`
	Path    string   `mapstructure:"Path"`
	Exclude []string `mapstructure:"Exclude"`
}

// Limits bound what a run reads.
type Limits struct {
	MaxDocumentBytes int64 `mapstructure:"MaxDocumentBytes"`
	SortBufferBytes  int   `mapstructure:"SortBufferBytes"`
	Workers          int   `mapstructure:"Workers"`
	// TrustFileStat lets a mirror delta take a file whose status (size,
	// mtime, ctime, inode) is unchanged since its base read it as unchanged,
	// without reading it (internal/statcache). false reads every file.
	TrustFileStat bool `mapstructure:"TrustFileStat"`
}

// Signing configures bundle signatures.
type Signing struct {
	Key string `mapstructure:"Key"` // cosign key file or kms:// reference
}

// RetentionPolicy of one bundle kind.
type RetentionPolicy struct {
	Mode  string `mapstructure:"Mode"` // days | count
	Value int    `mapstructure:"Value"`
}

// Profiles holds per-kind switches.
type Profiles struct {
	Trivy TrivyProfiles `mapstructure:"Trivy"`
}

// TrivyProfiles switches.
type TrivyProfiles struct {
	EnableJavaDb bool `mapstructure:"EnableJavaDb"`
}

// Metrics output.
type Metrics struct {
	Textfile string `mapstructure:"Textfile"` // Prometheus textfile for CLI runs
}

// Server settings of `stella export serve`.
type Server struct {
	Listen string `mapstructure:"Listen"`
}

// DefaultDataDir is $XDG_DATA_HOME/stella or ~/.local/share/stella.
func DefaultDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "stella")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "stella")
	}
	return filepath.Join(os.TempDir(), "stella")
}

// DefaultFile is the config file looked for when --config is not given.
func DefaultFile() string {
	d, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "stella", "config.yaml")
}

// keys lists every leaf key, so that STELLA_* variables override keys that
// the file does not set.
var keys = map[string]any{
	"ExportCenter.Tenant":                      "default",
	"ExportCenter.DataDir":                     "",
	"ExportCenter.Ledger.Driver":               "bolt",
	"ExportCenter.Ledger.Path":                 "",
	"ExportCenter.Ledger.DSN":                  "",
	"ExportCenter.Limits.MaxDocumentBytes":     int64(32 << 20),
	"ExportCenter.Limits.SortBufferBytes":      32 << 20,
	"ExportCenter.Limits.Workers":              0,
	"ExportCenter.Limits.TrustFileStat":        true,
	"ExportCenter.Signing.Key":                 "",
	"ExportCenter.Retention.Json.Mode":         "count",
	"ExportCenter.Retention.Json.Value":        10,
	"ExportCenter.Retention.Trivy.Mode":        "count",
	"ExportCenter.Retention.Trivy.Value":       10,
	"ExportCenter.Retention.Mirror.Mode":       "count",
	"ExportCenter.Retention.Mirror.Value":      5,
	"ExportCenter.Profiles.Trivy.EnableJavaDb": false,
	"ExportCenter.Metrics.Textfile":            "",
	"ExportCenter.Server.Listen":               "127.0.0.1:8088",
}

// Load reads the config file (explicit path, or the default one if it
// exists) and the environment. An explicit file that does not exist is an error.
func Load(file string) (*Config, error) {
	v := viper.New()
	for k, d := range keys {
		v.SetDefault(k, d)
	}
	v.SetEnvPrefix("STELLA")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	explicit := file != ""
	if !explicit {
		file = DefaultFile()
	}
	cfg := &Config{}
	if file != "" {
		if _, err := os.Stat(file); err == nil {
			v.SetConfigFile(file)
			v.SetConfigType("yaml")
			if err := v.ReadInConfig(); err != nil {
				return nil, xerr.Wrap(xerr.InvalidInput, err, "config file %s", file).
					WithHint("fix the YAML; docs/config.md lists the keys")
			}
			cfg.File = file
		} else if explicit {
			return nil, xerr.New(xerr.InvalidInput, "config file %s does not exist", file).
				WithHint("create it (docs/config.md) or leave out --config")
		}
	}
	// A list cannot come from one variable as YAML: STELLA_EXPORTCENTER_SOURCES
	// is name=path,name=path.
	if s := os.Getenv("STELLA_EXPORTCENTER_SOURCES"); s != "" {
		var list []map[string]any
		for _, kv := range strings.Split(s, ",") {
			n, p, ok := strings.Cut(strings.TrimSpace(kv), "=")
			if !ok || n == "" || p == "" {
				return nil, xerr.New(xerr.InvalidInput, "STELLA_EXPORTCENTER_SOURCES: %q is not name=path", kv).
					WithHint("use name=path,name=path")
			}
			list = append(list, map[string]any{"Name": n, "Path": p})
		}
		v.Set("ExportCenter.Sources", list)
	}
	if err := v.Unmarshal(cfg); err != nil {
		return nil, xerr.Wrap(xerr.InvalidInput, err, "config %s", cfg.File).WithHint("docs/config.md lists the keys and their types")
	}
	ec := &cfg.ExportCenter
	if ec.DataDir == "" {
		ec.DataDir = DefaultDataDir()
	}
	if ec.Ledger.Path == "" {
		ec.Ledger.Path = filepath.Join(ec.DataDir, "ledger.db")
	}
	if ec.Tenant == "" {
		ec.Tenant = "default"
	}
	// Relative source paths in a config file are relative to the file.
	for i, s := range ec.Sources {
		if s.Path != "" && !filepath.IsAbs(s.Path) && cfg.File != "" {
			ec.Sources[i].Path = filepath.Join(filepath.Dir(cfg.File), s.Path)
		}
	}
	for k, r := range ec.Retention {
		if r.Mode != "days" && r.Mode != "count" {
			return nil, xerr.New(xerr.InvalidInput, "ExportCenter.Retention.%s.Mode %q is not days or count", k, r.Mode)
		}
	}
	return cfg, nil
}

// SourceDateEpoch reads SOURCE_DATE_EPOCH (the reproducible-builds
// convention): nil when unset.
func SourceDateEpoch() (*time.Time, error) {
	s, ok := os.LookupEnv("SOURCE_DATE_EPOCH")
	if !ok || s == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return nil, xerr.New(xerr.InvalidInput, "SOURCE_DATE_EPOCH=%q is not a non-negative number of seconds", s).
			WithHint("unset it, or set it to a Unix time such as $(git log -1 --format=%%ct)")
	}
	t := time.Unix(n, 0).UTC()
	return &t, nil
}

// ErrNoConfig is returned when no config exists where one is required.
var ErrNoConfig = errors.New("no config file")

// Describe lists the effective settings (for `stella export config`-style output and docs).
func (c *Config) Describe() string {
	ec := c.ExportCenter
	return fmt.Sprintf("file=%s dataDir=%s ledger=%s:%s tenant=%s sources=%d", c.File, ec.DataDir, ec.Ledger.Driver, ec.Ledger.Path, ec.Tenant, len(ec.Sources))
}
