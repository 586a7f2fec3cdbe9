package signing

import (
	"bytes"
	"cmp"
	"encoding/json"
	"slices"
	"strings"

	"github.com/stellaops/stella/internal/canon"
	"github.com/stellaops/stella/internal/xerr"
)

// Type URIs of the in-toto Statement v1 and the SLSA provenance v1 predicate.
const (
	StatementType      = "https://in-toto.io/Statement/v1"
	SLSAProvenanceType = "https://slsa.dev/provenance/v1"
	// BuildType names stella's export build: what externalParameters and
	// internalParameters mean is documented at this address.
	BuildType = "https://github.com/stellaops/stella/blob/main/docs/signing.md#provenance-v1"
)

// Statement is an in-toto Statement v1 whose predicate is SLSA provenance v1.
// Fields are declared in the sorted order of their JSON names.
type Statement struct {
	Type          string     `json:"_type"`
	Predicate     Provenance `json:"predicate"`
	PredicateType string     `json:"predicateType"`
	Subject       []Subject  `json:"subject"`
}

// Subject is an artifact the statement is about (an in-toto
// ResourceDescriptor with name and digest). Digest maps an algorithm
// ("sha256") to a lowercase hex value.
type Subject struct {
	Digest map[string]string `json:"digest"`
	Name   string            `json:"name"`
}

// Provenance is the SLSA provenance v1 predicate.
type Provenance struct {
	BuildDefinition BuildDefinition `json:"buildDefinition"`
	RunDetails      RunDetails      `json:"runDetails"`
}

// BuildDefinition is SLSA's buildDefinition.
type BuildDefinition struct {
	BuildType            string               `json:"buildType"`
	ExternalParameters   any                  `json:"externalParameters"`
	InternalParameters   any                  `json:"internalParameters,omitempty"`
	ResolvedDependencies []ResourceDescriptor `json:"resolvedDependencies,omitempty"`
}

// ResourceDescriptor is the in-toto ResourceDescriptor subset stella writes.
type ResourceDescriptor struct {
	Digest map[string]string `json:"digest,omitempty"`
	Name   string            `json:"name,omitempty"`
	URI    string            `json:"uri,omitempty"`
}

// RunDetails is SLSA's runDetails.
type RunDetails struct {
	Builder  Builder        `json:"builder"`
	Metadata *BuildMetadata `json:"metadata,omitempty"`
}

// Builder identifies the binary that made the bundle.
type Builder struct {
	ID      string            `json:"id"`
	Version map[string]string `json:"version,omitempty"`
}

// BuildMetadata is per-run data. It never goes into a bundle (bundles are a
// pure function of their inputs); a signed copy for one run may carry it.
// Times are UTC RFC 3339.
type BuildMetadata struct {
	FinishedOn   string `json:"finishedOn,omitempty"`
	InvocationID string `json:"invocationId,omitempty"`
	StartedOn    string `json:"startedOn,omitempty"`
}

// InternalParameters is the internalParameters object of stella's buildType.
type InternalParameters struct {
	EncryptionRecipients []string `json:"encryptionRecipients,omitempty"`
}

// ProvenanceInput is what NewProvenance needs.
type ProvenanceInput struct {
	// Subjects: export.json and every artifact, each with its sha256.
	Subjects []Subject
	// BuilderID identifies the stella binary (a URI).
	BuilderID string
	// BuilderVersion is the stella version; written as version{"stella": v}.
	BuilderVersion string
	// ExternalParameters: the profile (kind, variant, name, revision) and the
	// selectors; must marshal to a JSON object. nil gives {}.
	ExternalParameters any
	// ResolvedDependencies: every evidence source, name + sha256 digest.
	ResolvedDependencies []ResourceDescriptor
	// EncryptionRecipients, if any; written sorted (and without duplicates)
	// into internalParameters.
	EncryptionRecipients []string
}

// NewProvenance builds the provenance Statement of a bundle. It does not
// change in's slices. Subjects and dependencies are sorted by name (then
// uri), recipients sorted, digests normalised (a "sha256:" prefix on a sha256
// value is dropped, hex lowercased), so equal inputs give equal bytes.
func NewProvenance(in ProvenanceInput) Statement {
	subjects := make([]Subject, len(in.Subjects))
	for i, s := range in.Subjects {
		subjects[i] = Subject{Name: s.Name, Digest: normDigests(s.Digest)}
	}
	slices.SortStableFunc(subjects, func(a, b Subject) int { return cmp.Compare(a.Name, b.Name) })

	var deps []ResourceDescriptor
	for _, d := range in.ResolvedDependencies {
		deps = append(deps, ResourceDescriptor{Name: d.Name, URI: d.URI, Digest: normDigests(d.Digest)})
	}
	slices.SortStableFunc(deps, func(a, b ResourceDescriptor) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.URI, b.URI))
	})

	ext := in.ExternalParameters
	if ext == nil {
		ext = map[string]any{}
	}
	var internal any
	if len(in.EncryptionRecipients) > 0 {
		r := slices.Clone(in.EncryptionRecipients)
		slices.Sort(r)
		internal = InternalParameters{EncryptionRecipients: slices.Compact(r)}
	}
	var version map[string]string
	if in.BuilderVersion != "" {
		version = map[string]string{"stella": in.BuilderVersion}
	}
	return Statement{
		Type:          StatementType,
		Subject:       subjects,
		PredicateType: SLSAProvenanceType,
		Predicate: Provenance{
			BuildDefinition: BuildDefinition{
				BuildType:            BuildType,
				ExternalParameters:   ext,
				InternalParameters:   internal,
				ResolvedDependencies: deps,
			},
			RunDetails: RunDetails{Builder: Builder{ID: in.BuilderID, Version: version}},
		},
	}
}

// SHA256Digest is the digest set {"sha256": hex} of a "sha256:<hex>" or
// bare hex digest.
func SHA256Digest(d string) map[string]string {
	return map[string]string{"sha256": strings.ToLower(strings.TrimPrefix(d, "sha256:"))}
}

func normDigests(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for alg, v := range m {
		alg = strings.ToLower(alg)
		v = strings.TrimPrefix(strings.ToLower(v), alg+":")
		out[alg] = v
	}
	return out
}

// Canonical is the statement as canonical JSON (sorted keys, no whitespace,
// no HTML escaping): the bytes of provenance.json and of the DSSE payload.
func (s Statement) Canonical() ([]byte, error) {
	b, err := canon.Marshal(s)
	if err != nil {
		return nil, xerr.Wrap(xerr.Internal, err, "encoding the provenance statement")
	}
	return b, nil
}

// ParseStatement reads a provenance Statement (e.g. a VerifyDSSE payload)
// and checks its _type and predicateType. Errors are xerr.Verify.
func ParseStatement(b []byte) (Statement, error) {
	var s Statement
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&s); err != nil {
		return Statement{}, xerr.Wrap(xerr.Verify, err, "malformed provenance statement")
	}
	if s.Type != StatementType {
		return Statement{}, xerr.New(xerr.Verify, "provenance _type is %q, want %q", s.Type, StatementType)
	}
	if s.PredicateType != SLSAProvenanceType {
		return Statement{}, xerr.New(xerr.Verify, "provenance predicateType is %q, want %q", s.PredicateType, SLSAProvenanceType)
	}
	return s, nil
}
