package bundle

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/stellaops/stella/internal/record"
	"github.com/stellaops/stella/pkg/exportapi"
)

// manifestYAML is the human summary written as manifest.yaml. It is a pure
// function of export.json (and so is checked by regenerating it).
type manifestYAML struct {
	ExportID    string              `yaml:"exportId"`
	Tenant      string              `yaml:"tenant"`
	Profile     string              `yaml:"profile"`
	GeneratedAt string              `yaml:"generatedAt"`
	Expires     string              `yaml:"expires,omitempty"`
	Sequence    int64               `yaml:"sequence,omitempty"`
	Selectors   exportapi.Selectors `yaml:"selectors"`
	Counts      yaml.Node           `yaml:"counts"`
	TotalBytes  int64               `yaml:"totalBytes"`
	Sources     []summarySource     `yaml:"sources"`
	Skipped     int                 `yaml:"skipped"`
	Delta       *summaryDelta       `yaml:"delta,omitempty"`
	Files       []summaryFile       `yaml:"files"`
	ExportJSON  string              `yaml:"exportJsonDigest"`
	RerunHash   string              `yaml:"rerunHash"`
	Verify      string              `yaml:"verify"`
}

type summarySource struct {
	Name      string `yaml:"name"`
	Documents int64  `yaml:"documents"`
	Digest    string `yaml:"digest"`
}

type summaryFile struct {
	Path    string `yaml:"path"`
	Bytes   int64  `yaml:"bytes"`
	Records int64  `yaml:"records"`
	Digest  string `yaml:"digest"`
}

type summaryDelta struct {
	BaseExportID       string `yaml:"baseExportId"`
	BaseManifestDigest string `yaml:"baseManifestDigest"`
	Added              int    `yaml:"added"`
	Changed            int    `yaml:"changed"`
	Removed            int    `yaml:"removed"`
}

// RenderSummary renders manifest.yaml from export.json's bytes.
func RenderSummary(exportJSON []byte, m *exportapi.Manifest) ([]byte, error) {
	s := manifestYAML{
		ExportID: m.ExportID, Tenant: m.Tenant, GeneratedAt: m.GeneratedAt, Expires: m.Expires, Sequence: m.Sequence,
		Profile:   fmt.Sprintf("%s (%s:%s, %s)", m.Profile.Name, m.Profile.Kind, m.Profile.Variant, m.Profile.Revision),
		Selectors: m.Selectors, Skipped: len(m.Skipped), RerunHash: m.RerunHash,
		ExportJSON: record.Digest(exportJSON),
		Verify:     "stella export verify <bundle> --key <cosign.pub>",
	}
	counts := map[string]int64{}
	for _, c := range m.Contents {
		s.TotalBytes += c.Bytes
		s.Files = append(s.Files, summaryFile{Path: c.Path, Bytes: c.Bytes, Records: c.Records, Digest: c.Digest})
		if k := countKey(c.Path); k != "" {
			counts[k] += c.Records
		}
	}
	s.Counts = yaml.Node{Kind: yaml.MappingNode}
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		s.Counts.Content = append(s.Counts.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Value: k},
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: fmt.Sprint(counts[k])})
	}
	for _, src := range m.Sources {
		s.Sources = append(s.Sources, summarySource{Name: src.Name, Documents: src.Documents, Digest: src.Digest})
	}
	if d := m.Delta; d != nil {
		s.Delta = &summaryDelta{BaseExportID: d.BaseExportID, BaseManifestDigest: d.BaseManifestDigest,
			Added: len(d.Added), Changed: len(d.Changed), Removed: len(d.Removed)}
	}
	var buf bytes.Buffer
	buf.WriteString("# stella export bundle summary (generated from export.json; export.json is authoritative)\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(s); err != nil {
		return nil, err
	}
	enc.Close()
	return buf.Bytes(), nil
}

// countKey names the record count a content path adds to ("advisories.raw").
func countKey(p string) string {
	parts := strings.Split(p, "/")
	if len(parts) < 3 || parts[0] != "data" {
		return ""
	}
	return parts[2] + "." + parts[1]
}
