// Package record holds the types that flow down a run: evidence documents as
// read from a source, what a parser makes of them, and the normalised record
// schemas (one per kind) that bundles carry beside the raw bytes.
//
// Struct fields are declared in the alphabetical order of their JSON names so
// that encoding/json writes canonical JSON (sorted keys); a test checks it.
package record

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/stellaops/stella/internal/statcache"
)

// LinesVersion names the record lines stella writes: for one LinesVersion
// the raw and normalised lines of a document are a pure function of its
// bytes, source and path. It must change whenever parsing, normalising or
// writing lines changes their bytes (TestLinesVersion, over every fixture,
// fails until it does). A mirror delta takes a document unchanged since
// its base as unchanged without parsing it only when every bundle of the
// chain was written with the same LinesVersion: a stella upgrade that
// leaves the lines as they were keeps deltas small.
const LinesVersion = "lines/1"

// Kind is the kind of an evidence document.
type Kind string

// Evidence kinds (SPEC §2).
const (
	KindAdvisory Kind = "advisory" // OSV JSON / YAML
	KindVEX      Kind = "vex"      // OpenVEX, CSAF VEX, CycloneDX VEX
	KindSBOM     Kind = "sbom"     // CycloneDX JSON, SPDX 2.x JSON
	KindPolicy   Kind = "policy"   // policy snapshot JSON
	KindFindings Kind = "findings" // evaluated findings JSONL
)

// IncludeName is the profile `include` word of a kind (advisories, vex, sboms, findings).
func (k Kind) IncludeName() string {
	switch k {
	case KindAdvisory:
		return "advisories"
	case KindVEX:
		return "vex"
	case KindSBOM:
		return "sboms"
	case KindPolicy, KindFindings:
		return "findings"
	}
	return string(k)
}

// Document is one evidence file as read from a source.
type Document struct {
	Source string // source name
	Path   string // slash-separated path relative to the source root (never a host path)
	Digest string // "sha256:<hex>" of Raw
	Raw    []byte
	// Stat is the file's status when it was read (HasStat: folder sources
	// on Linux and macOS), for the stat cache of the next run of a chain.
	Stat    statcache.Stat
	HasStat bool
	// Unchanged is set (and Raw is nil) when the walker took the document
	// as unchanged from its status (evidence.Options.Unchanged).
	Unchanged bool
}

// Digest returns "sha256:<hex>" of b.
func Digest(b []byte) string {
	s := sha256.Sum256(b)
	var d [len("sha256:") + 2*sha256.Size]byte // one allocation: the string
	copy(d[:], "sha256:")
	hex.Encode(d[len("sha256:"):], s[:])
	return string(d[:])
}

// Parsed is what a parser makes of one document.
type Parsed struct {
	Kind   Kind
	Format string // osv-json, osv-yaml, openvex, csaf-vex, cyclonedx-vex, cyclonedx, spdx, policy-snapshot, findings-jsonl
	// ID is the record id of the document itself (advisory id, VEX document id,
	// SBOM serial/namespace, policy snapshot id). Findings documents have none;
	// each line is a record (Lines).
	ID       string
	Modified time.Time // zero when the document has no (or a zero) modified date
	// Ecosystems and Purls are what selectors match on.
	Ecosystems []string
	Purls      []string
	Products   []string
	// Subject names an SBOM's subject (component name and version), for its folder.
	Subject string
	// Advisory is set for KindAdvisory.
	Advisory *Advisory
	// Statements are set for KindVEX (one per vulnerability x product).
	Statements []VEXStatement
	// Lines are the findings of a findings JSONL document, each with its raw line bytes.
	Lines []FindingLine
	// Components of an SBOM (for adapters such as the Trivy Java DB).
	Components []Component
}

// Advisory is the normalised advisory record (data/normalized/advisories).
type Advisory struct {
	Affected   []Affected `json:"affected"`
	Aliases    []string   `json:"aliases"`
	CWEs       []string   `json:"cwes,omitempty"`
	Details    string     `json:"details,omitempty"`
	Digest     string     `json:"digest"` // of the raw document
	Ecosystems []string   `json:"ecosystems"`
	ID         string     `json:"id"`
	Modified   string     `json:"modified,omitempty"`  // UTC RFC 3339; omitted when zero
	Path       string     `json:"path"`                // document path within its source
	Published  string     `json:"published,omitempty"` // UTC RFC 3339
	References []string   `json:"references"`
	Related    []string   `json:"related,omitempty"`
	Severity   []Severity `json:"severity"` // as the source states it
	Source     string     `json:"source"`
	Summary    string     `json:"summary,omitempty"`
	Withdrawn  string     `json:"withdrawn,omitempty"` // UTC RFC 3339
}

// Affected is one affected package of an advisory.
type Affected struct {
	Ecosystem     string     `json:"ecosystem"`
	FixedVersions []string   `json:"fixedVersions"`
	Package       string     `json:"package"`
	Purl          string     `json:"purl,omitempty"`
	Ranges        []Range    `json:"ranges"`
	Severity      []Severity `json:"severity,omitempty"` // per-package severity, if the source gives one
	Versions      []string   `json:"versions,omitempty"` // explicitly listed affected versions
}

// Range is an OSV affected range.
type Range struct {
	Events []Event `json:"events"`
	Repo   string  `json:"repo,omitempty"`
	Type   string  `json:"type"` // SEMVER | ECOSYSTEM | GIT
}

// Event is one OSV range event; exactly one field is set.
type Event struct {
	Fixed        string `json:"fixed,omitempty"`
	Introduced   string `json:"introduced,omitempty"`
	LastAffected string `json:"last_affected,omitempty"`
	Limit        string `json:"limit,omitempty"`
}

// Severity is a severity as the source states it: a CVSS vector, or the
// source's own word (database_specific / ecosystem_specific severity).
type Severity struct {
	Score string `json:"score"`
	Type  string `json:"type"` // CVSS_V2 | CVSS_V3 | CVSS_V4 | Ubuntu | source word e.g. "ghsa", "alma"
}

// VEXStatement is one normalised VEX statement (data/normalized/vex): one
// vulnerability for one product.
type VEXStatement struct {
	Aliases       []string `json:"aliases,omitempty"`
	Digest        string   `json:"digest"`   // of the raw document
	DocumentID    string   `json:"document"` // id of the VEX document
	Format        string   `json:"format"`   // openvex | csaf-vex | cyclonedx-vex
	ID            string   `json:"id"`       // <document>#<vulnerability>#<product>
	Justification string   `json:"justification,omitempty"`
	Modified      string   `json:"modified,omitempty"`
	Path          string   `json:"path"`
	Product       string   `json:"product"` // purl or product id as the document names it
	Source        string   `json:"source"`
	Statement     string   `json:"statement,omitempty"`
	Status        string   `json:"status"` // not_affected | affected | fixed | under_investigation
	Vulnerability string   `json:"vulnerability"`
}

// Component is one SBOM component.
type Component struct {
	Name    string `json:"name"`
	Purl    string `json:"purl,omitempty"`
	SHA1    string `json:"sha1,omitempty"`
	Version string `json:"version,omitempty"`
}

// FindingLine is one line of a findings JSONL document.
type FindingLine struct {
	ID  string // findingId
	Raw []byte // the line, byte for byte, without its newline
}

// Time formats t as UTC RFC 3339, or "" when t is zero.
func Time(t time.Time) string {
	if t.IsZero() || t.Year() <= 1 {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
