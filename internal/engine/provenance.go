package engine

import (
	"github.com/stellaops/stella/internal/record"
	"github.com/stellaops/stella/internal/signing"
	"github.com/stellaops/stella/internal/xerr"
	"github.com/stellaops/stella/pkg/exportapi"
)

// BuilderID identifies stella as the builder in provenance.
const BuilderID = "https://github.com/stellaops/stella/cmd/stella"

// provenanceExternal is the externalParameters object: what was asked.
type provenanceExternal struct {
	Profile   exportapi.ManifestProfile `json:"profile"`
	Selectors exportapi.Selectors       `json:"selectors"`
	Tenant    string                    `json:"tenant"`
}

// buildProvenance makes provenance.json: an in-toto Statement (SLSA v1
// predicate) whose subjects are export.json and every content entry, and
// whose resolved dependencies are the evidence sources. Nothing per-run is in it.
func buildProvenance(m *exportapi.Manifest, exportJSON []byte, version string, recipients []string) ([]byte, error) {
	subjects := []signing.Subject{{Name: "export.json", Digest: signing.SHA256Digest(record.Digest(exportJSON))}}
	for _, c := range m.Contents {
		subjects = append(subjects, signing.Subject{Name: c.Path, Digest: signing.SHA256Digest(c.Digest)})
	}
	var deps []signing.ResourceDescriptor
	for _, s := range m.Sources {
		deps = append(deps, signing.ResourceDescriptor{Name: "source:" + s.Name, Digest: signing.SHA256Digest(s.Digest)})
	}
	st := signing.NewProvenance(signing.ProvenanceInput{
		Subjects: subjects, BuilderID: BuilderID, BuilderVersion: version,
		ExternalParameters:   provenanceExternal{Profile: m.Profile, Selectors: m.Selectors, Tenant: m.Tenant},
		ResolvedDependencies: deps, EncryptionRecipients: recipients,
	})
	b, err := st.Canonical()
	if err != nil {
		return nil, xerr.Wrap(xerr.Internal, err, "provenance.json")
	}
	return b, nil
}
