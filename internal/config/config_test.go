package config

import (
	"os"
	"path/filepath"
	"testing"
)

func TestFileAndEnvironment(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "config.yaml")
	os.WriteFile(file, []byte(`ExportCenter:
  Tenant: acme
  DataDir: /srv/stella
  Sources:
    - Name: ghsa
      Path: feeds/ghsa
      Exclude: ["**/manifest.json"]
  Retention:
    Mirror: {Mode: days, Value: 14}
`), 0o644)
	t.Setenv("STELLA_EXPORTCENTER_RETENTION_MIRROR_MODE", "count")
	t.Setenv("STELLA_EXPORTCENTER_LIMITS_WORKERS", "3")
	c, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	ec := c.ExportCenter
	if ec.Tenant != "acme" || ec.DataDir != "/srv/stella" || ec.Ledger.Path != "/srv/stella/ledger.db" {
		t.Errorf("file keys: %+v", ec)
	}
	if len(ec.Sources) != 1 || ec.Sources[0].Path != filepath.Join(dir, "feeds/ghsa") || ec.Sources[0].Exclude[0] != "**/manifest.json" {
		t.Errorf("sources (relative to the file): %+v", ec.Sources)
	}
	if r := ec.Retention["mirror"]; r.Mode != "count" || r.Value != 14 {
		t.Errorf("env override of ExportCenter.Retention.Mirror.Mode: %+v (%v)", r, ec.Retention)
	}
	if ec.Limits.Workers != 3 || ec.Limits.SortBufferBytes != 32<<20 {
		t.Errorf("limits: %+v", ec.Limits)
	}
	t.Setenv("STELLA_EXPORTCENTER_SOURCES", "a=/x,b=/y")
	c, _ = Load(file)
	if len(c.ExportCenter.Sources) != 2 || c.ExportCenter.Sources[1].Name != "b" {
		t.Errorf("STELLA_EXPORTCENTER_SOURCES: %+v", c.ExportCenter.Sources)
	}
}

func TestErrors(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("an explicit missing file is an error")
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("ExportCenter: [\n"), 0o644)
	if _, err := Load(bad); err == nil {
		t.Error("bad YAML accepted")
	}
	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	if _, err := SourceDateEpoch(); err == nil {
		t.Error("bad SOURCE_DATE_EPOCH accepted")
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	if ts, err := SourceDateEpoch(); err != nil || ts.Unix() != 1700000000 {
		t.Errorf("SOURCE_DATE_EPOCH: %v %v", ts, err)
	}
}
