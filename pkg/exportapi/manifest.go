package exportapi

// ManifestSchema is the schema id written in export.json.
const ManifestSchema = "stellaops.io/export-manifest.v1"

// Manifest is export.json, the canonical manifest of a bundle (SPEC §5).
// Nothing per-run (run id, host, timings) is in it.
type Manifest struct {
	Contents    []ContentEntry   `json:"contents"`
	Delta       *Delta           `json:"delta,omitempty"`
	Encryption  *ManifestCrypt   `json:"encryption,omitempty"`
	Expires     string           `json:"expires,omitempty"`
	ExportID    string           `json:"exportId"`
	GeneratedAt string           `json:"generatedAt"`
	Profile     ManifestProfile  `json:"profile"`
	RerunHash   string           `json:"rerunHash"`
	Schema      string           `json:"schema"`
	Selectors   Selectors        `json:"selectors"`
	Sequence    int64            `json:"sequence,omitempty"`
	Skipped     []Skipped        `json:"skipped"`
	Sources     []ManifestSource `json:"sources"`
	Tenant      string           `json:"tenant"`
	Version     string           `json:"version"` // binary version that wrote it
}

// ManifestProfile names the profile revision of a bundle.
type ManifestProfile struct {
	Kind     string `json:"kind"`
	Name     string `json:"name"`
	Revision string `json:"revision"`
	Variant  string `json:"variant"`
}

// ContentEntry describes one file of a bundle.
type ContentEntry struct {
	Bytes       int64  `json:"bytes"`
	ContentType string `json:"contentType"`
	Digest      string `json:"digest"` // sha256:<hex> of the bytes as stored in the bundle
	Path        string `json:"path"`   // relative to the bundle root folder
	// PlainDigest is the sha256 of the plaintext when the entry is encrypted.
	PlainDigest string `json:"plainDigest,omitempty"`
	Records     int64  `json:"records"`
}

// ManifestSource is one evidence source that fed a bundle.
type ManifestSource struct {
	Digest    string `json:"digest"` // sha256 over the sorted "path digest" lines of its documents
	Documents int64  `json:"documents"`
	Name      string `json:"name"`
}

// Skipped is one evidence document left out with --skip-invalid.
type Skipped struct {
	Digest string `json:"digest,omitempty"`
	Path   string `json:"path"`
	Reason string `json:"reason"`
	Source string `json:"source"`
}

// Delta describes what a delta bundle changes relative to its base.
type Delta struct {
	Added              []string `json:"added"`
	BaseExportID       string   `json:"baseExportId"`
	BaseManifestDigest string   `json:"baseManifestDigest"`
	Changed            []string `json:"changed"`
	Removed            []string `json:"removed"`
}

// ManifestCrypt says how the data files of a bundle are encrypted.
type ManifestCrypt struct {
	// Keys hold the random run key of aes-gcm mode wrapped for each
	// recipient, sorted by recipient (empty in age mode).
	Keys       []WrappedKey `json:"keys,omitempty"`
	Mode       string       `json:"mode"` // age | aes-gcm
	Recipients []string     `json:"recipients"`
}

// WrappedKey is a run key encrypted to one recipient.
type WrappedKey struct {
	Recipient string `json:"recipient"`
	Wrapped   string `json:"wrapped"` // base64 (standard) of an age file holding the 32-byte key
}
