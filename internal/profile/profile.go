// Package profile holds the built-in export profiles, reads profile documents
// (YAML or JSON), validates them, and resolves a --profile argument.
package profile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/stellaops/stella/internal/xerr"
	"github.com/stellaops/stella/pkg/exportapi"
)

var slug = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// Variants lists the kind:variant pairs of SPEC §3, in order.
var Variants = []struct{ Kind, Variant, Output string }{
	{"json", "raw", "canonical JSONL of advisories, VEX, SBOMs + manifest"},
	{"json", "policy", "json:raw + policy snapshot + evaluated findings"},
	{"trivy", "db", "Trivy DB (schema 2) bundle"},
	{"trivy", "java-db", "Trivy Java DB bundle"},
	{"mirror", "full", "complete mirror: raw, normalised, indexes, policy, provenance"},
	{"mirror", "delta", "changes since a base export"},
}

// TrivySchemaVersion is the only Trivy DB schema stella writes.
const TrivySchemaVersion = 2

// BuiltInName is the profile name of a built-in kind:variant ("json-raw").
func BuiltInName(kind, variant string) string { return kind + "-" + variant }

// BuiltIns returns the built-in profiles of a tenant, all at revision r1.
func BuiltIns(tenant string) []exportapi.Profile {
	out := make([]exportapi.Profile, 0, len(Variants))
	for _, v := range Variants {
		out = append(out, builtIn(tenant, v.Kind, v.Variant))
	}
	return out
}

func builtIn(tenant, kind, variant string) exportapi.Profile {
	spec := exportapi.ProfileSpec{
		Kind: kind, Variant: variant,
		Include:            []string{"advisories", "vex", "sboms"},
		PolicySnapshotMode: "none",
		Compression:        exportapi.Compression{Codec: "zstd", Level: 3},
		Distribution:       []exportapi.DistTarget{{Kind: "http"}},
	}
	switch kind + ":" + variant {
	case "json:policy":
		spec.Include = []string{"advisories", "vex", "sboms", "findings"}
		spec.PolicySnapshotMode = "required"
	case "trivy:db":
		spec.Include = []string{"advisories"}
		spec.SchemaVersion = TrivySchemaVersion
	case "trivy:java-db":
		spec.Include = []string{"sboms"}
		spec.SchemaVersion = 1
	case "mirror:full", "mirror:delta":
		spec.Include = []string{"advisories", "vex", "sboms", "findings"}
		spec.PolicySnapshotMode = "optional"
		spec.Retention = &exportapi.Retention{Mode: "count", Value: 5}
	}
	return exportapi.Profile{
		APIVersion: exportapi.ProfileAPIVersion, Kind: exportapi.ProfileKind, BuiltIn: true,
		Metadata: exportapi.ProfileMetadata{Name: BuiltInName(kind, variant), Tenant: tenant, Revision: "r1",
			Labels: map[string]string{"stellaops.io/builtin": "true"}},
		Spec: spec,
	}
}

// BuiltIn finds a built-in profile by "kind:variant" or by its name ("json-raw").
func BuiltIn(tenant, ref string) (exportapi.Profile, bool) {
	for _, v := range Variants {
		if ref == v.Kind+":"+v.Variant || ref == BuiltInName(v.Kind, v.Variant) {
			return builtIn(tenant, v.Kind, v.Variant), true
		}
	}
	return exportapi.Profile{}, false
}

// Decode reads a profile document (YAML or JSON; unknown fields are errors).
func Decode(data []byte, origin string) (exportapi.Profile, error) {
	var p exportapi.Profile
	trim := bytes.TrimSpace(data)
	var err error
	if len(trim) > 0 && trim[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		err = dec.Decode(&p)
	} else {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		err = dec.Decode(&p)
	}
	if err != nil {
		return p, xerr.Wrap(xerr.InvalidInput, err, "profile %s is not a valid profile document", origin).
			WithHint("see docs/profiles.md for the fields; `stella export profile show json:raw --format yaml` prints an example")
	}
	return p, nil
}

// Normalize fills defaults and sorts set-like lists so that equal profiles
// compare equal.
func Normalize(p *exportapi.Profile) {
	if p.APIVersion == "" {
		p.APIVersion = exportapi.ProfileAPIVersion
	}
	if p.Kind == "" {
		p.Kind = exportapi.ProfileKind
	}
	s := &p.Spec
	if len(s.Include) == 0 {
		s.Include = []string{"advisories", "vex", "sboms"}
	}
	s.Include = sortUniq(s.Include)
	if s.PolicySnapshotMode == "" {
		s.PolicySnapshotMode = "none"
		if slices.Contains(s.Include, "findings") {
			s.PolicySnapshotMode = "optional"
		}
	}
	if s.Compression.Codec == "" {
		s.Compression.Codec = "zstd"
	}
	if s.Kind == "trivy" && s.SchemaVersion == 0 {
		s.SchemaVersion = TrivySchemaVersion
		if s.Variant == "java-db" {
			s.SchemaVersion = 1
		}
	}
	NormalizeSelectors(&s.Selectors)
	sort.Strings(s.Encryption.RecipientKeys)
}

// NormalizeSelectors sorts and dedupes selector lists.
func NormalizeSelectors(sel *exportapi.Selectors) {
	sel.Ecosystems = sortUniq(sel.Ecosystems)
	sel.Sources = sortUniq(sel.Sources)
	sel.PurlPrefixes = sortUniq(sel.PurlPrefixes)
	sel.ProductPrefixes = sortUniq(sel.ProductPrefixes)
}

func sortUniq(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	out := slices.Clone(in)
	sort.Strings(out)
	return slices.Compact(out)
}

// Validate checks a profile against the profile schema; every problem is
// named by its field.
func Validate(p exportapi.Profile) error {
	var probs []string
	add := func(f string, a ...any) { probs = append(probs, fmt.Sprintf(f, a...)) }
	if p.APIVersion != exportapi.ProfileAPIVersion {
		add("apiVersion: %q, want %q", p.APIVersion, exportapi.ProfileAPIVersion)
	}
	if p.Kind != exportapi.ProfileKind {
		add("kind: %q, want %q", p.Kind, exportapi.ProfileKind)
	}
	if n := p.Metadata.Name; !slug.MatchString(n) || len(n) < 3 || len(n) > 64 {
		add("metadata.name: %q must be a lowercase slug of 3 to 64 characters (a-z, 0-9, -)", n)
	}
	if t := p.Metadata.Tenant; !slug.MatchString(t) {
		add("metadata.tenant: %q must be a lowercase slug", t)
	}
	s := p.Spec
	known := false
	for _, v := range Variants {
		if v.Kind == s.Kind && v.Variant == s.Variant {
			known = true
		}
	}
	if !known {
		add("spec.kind/spec.variant: %q:%q is not one of json:raw, json:policy, trivy:db, trivy:java-db, mirror:full, mirror:delta", s.Kind, s.Variant)
	}
	for _, inc := range s.Include {
		if !slices.Contains([]string{"advisories", "vex", "sboms", "findings"}, inc) {
			add("spec.include: %q is not one of advisories, vex, sboms, findings", inc)
		}
	}
	switch s.PolicySnapshotMode {
	case "required", "optional", "none":
	default:
		add("spec.policySnapshotMode: %q is not required, optional or none", s.PolicySnapshotMode)
	}
	if s.PolicySnapshotMode == "required" && !slices.Contains(s.Include, "findings") {
		add("spec.policySnapshotMode: required needs \"findings\" in spec.include")
	}
	switch s.Compression.Codec {
	case "zstd":
		if s.Compression.Level < 0 || s.Compression.Level > 22 {
			add("spec.compression.level: %d is outside 0..22 for zstd", s.Compression.Level)
		}
	case "gzip":
		if s.Compression.Level < 0 || s.Compression.Level > 9 {
			add("spec.compression.level: %d is outside 0..9 for gzip", s.Compression.Level)
		}
	case "none":
	default:
		add("spec.compression.codec: %q is not zstd, gzip or none", s.Compression.Codec)
	}
	if e := s.Encryption; e.Enabled {
		if e.Mode != "age" && e.Mode != "aes-gcm" {
			add("spec.encryption.mode: %q is not age or aes-gcm", e.Mode)
		}
		if len(e.RecipientKeys) == 0 {
			add("spec.encryption.recipientKeys: at least one age1… or kms:// recipient is needed")
		}
		for _, k := range e.RecipientKeys {
			if !strings.HasPrefix(k, "age1") && !strings.HasPrefix(k, "kms://") {
				add("spec.encryption.recipientKeys: %q is neither an age1… key nor a kms:// reference", k)
			}
		}
	}
	for i, d := range s.Distribution {
		switch d.Kind {
		case "http":
		case "oci":
			if !strings.HasPrefix(d.Target, "oci://") {
				add("spec.distribution[%d].target: %q must be oci://host[:port]/repo:tag", i, d.Target)
			}
		case "object":
			if !strings.HasPrefix(d.Target, "s3://") {
				add("spec.distribution[%d].target: %q must be s3://bucket/prefix", i, d.Target)
			}
		default:
			add("spec.distribution[%d].kind: %q is not http, oci or object", i, d.Kind)
		}
	}
	if r := s.Retention; r != nil {
		if (r.Mode != "days" && r.Mode != "count") || r.Value < 1 {
			add("spec.retention: mode %q value %d; want mode days|count and value >= 1", r.Mode, r.Value)
		}
	}
	if s.Kind != "trivy" && s.SchemaVersion != 0 {
		add("spec.schemaVersion: only trivy profiles have a schema version")
	}
	if err := ValidateSelectors(s.Selectors); err != nil {
		add("spec.selectors: %v", err)
	}
	if len(probs) > 0 {
		return &xerr.Error{Code: xerr.InvalidInput,
			Message: fmt.Sprintf("profile %q is not valid: %s", p.Metadata.Name, strings.Join(probs, "; ")),
			Details: probs, Hint: "fix the named fields and submit the profile again"}
	}
	return nil
}

// ValidateSelectors checks the time window.
func ValidateSelectors(s exportapi.Selectors) error {
	for _, f := range []struct{ n, v string }{{"modifiedSince", s.ModifiedSince}, {"modifiedUntil", s.ModifiedUntil}} {
		if f.v == "" {
			continue
		}
		if _, err := time.Parse(time.RFC3339, f.v); err != nil {
			return fmt.Errorf("%s %q is not an RFC 3339 time (e.g. 2026-01-02T00:00:00Z)", f.n, f.v)
		}
	}
	if s.Tenant != "" && !slug.MatchString(s.Tenant) {
		return fmt.Errorf("tenant %q is not a lowercase slug", s.Tenant)
	}
	return nil
}

// ParseSelectors turns repeated --selector k=v flags into selectors added to base.
// Keys: source, ecosystem, purl, product, since, until, tenant.
func ParseSelectors(base exportapi.Selectors, kvs []string) (exportapi.Selectors, error) {
	s := base
	s.Ecosystems = slices.Clone(s.Ecosystems)
	s.Sources = slices.Clone(s.Sources)
	s.PurlPrefixes = slices.Clone(s.PurlPrefixes)
	s.ProductPrefixes = slices.Clone(s.ProductPrefixes)
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(strings.ToLower(k))
		v = strings.TrimSpace(v)
		if !ok || v == "" {
			return s, xerr.New(xerr.InvalidInput, "--selector %q: want key=value", kv).
				WithHint("keys: source, ecosystem, purl, product, since, until, tenant")
		}
		switch k {
		case "source", "sources":
			s.Sources = append(s.Sources, v)
		case "ecosystem", "ecosystems":
			s.Ecosystems = append(s.Ecosystems, v)
		case "purl":
			s.PurlPrefixes = append(s.PurlPrefixes, v)
		case "product":
			s.ProductPrefixes = append(s.ProductPrefixes, v)
		case "since", "modifiedsince":
			s.ModifiedSince = v
		case "until", "modifieduntil":
			s.ModifiedUntil = v
		case "tenant":
			s.Tenant = v
		default:
			return s, xerr.New(xerr.InvalidInput, "--selector %q: unknown key %q", kv, k).
				WithHint("keys: source, ecosystem, purl, product, since, until, tenant")
		}
	}
	NormalizeSelectors(&s)
	if err := ValidateSelectors(s); err != nil {
		return s, xerr.Wrap(xerr.InvalidInput, err, "--selector").WithHint("fix the selector value")
	}
	return s, nil
}
