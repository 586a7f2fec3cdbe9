// Package exportapi holds the public types of stella export: profiles, runs,
// events, artifacts and the export.json manifest. Another tool may import it to
// read what stella writes; their JSON form is part of the product contract.
//
// Struct fields are declared in the alphabetical order of their JSON names so
// that encoding/json writes canonical JSON (sorted keys) without a re-sort.
package exportapi

import "time"

// APIVersion and Kind of a profile document.
const (
	ProfileAPIVersion = "stellaops.io/export.v1"
	ProfileKind       = "ExportProfile"
)

// Profile is a versioned export profile (SPEC §3).
type Profile struct {
	APIVersion string          `json:"apiVersion" yaml:"apiVersion"`
	Archived   bool            `json:"archived,omitempty" yaml:"archived,omitempty"`
	BuiltIn    bool            `json:"builtIn,omitempty" yaml:"builtIn,omitempty"`
	Kind       string          `json:"kind" yaml:"kind"`
	Metadata   ProfileMetadata `json:"metadata" yaml:"metadata"`
	Spec       ProfileSpec     `json:"spec" yaml:"spec"`
}

// ProfileMetadata names a profile.
type ProfileMetadata struct {
	Labels   map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
	Name     string            `json:"name" yaml:"name"`
	Revision string            `json:"revision,omitempty" yaml:"revision,omitempty"` // r1, r2, ...
	Tenant   string            `json:"tenant" yaml:"tenant"`
}

// ProfileSpec is what a profile asks for.
type ProfileSpec struct {
	Compression        Compression  `json:"compression" yaml:"compression"`
	Distribution       []DistTarget `json:"distribution,omitempty" yaml:"distribution,omitempty"`
	Encryption         Encryption   `json:"encryption" yaml:"encryption"`
	Include            []string     `json:"include" yaml:"include"` // advisories, vex, sboms, findings
	Kind               string       `json:"kind" yaml:"kind"`       // json | trivy | mirror
	PolicySnapshotMode string       `json:"policySnapshotMode" yaml:"policySnapshotMode"`
	Retention          *Retention   `json:"retention,omitempty" yaml:"retention,omitempty"`
	SchemaVersion      int          `json:"schemaVersion,omitempty" yaml:"schemaVersion,omitempty"`
	Selectors          Selectors    `json:"selectors" yaml:"selectors"`
	Variant            string       `json:"variant" yaml:"variant"` // raw|policy|db|java-db|full|delta
}

// Compression of bundle data files.
type Compression struct {
	Codec string `json:"codec" yaml:"codec"` // zstd | gzip | none
	Level int    `json:"level,omitempty" yaml:"level,omitempty"`
}

// Encryption of bundle data files.
type Encryption struct {
	Enabled       bool     `json:"enabled" yaml:"enabled"`
	Mode          string   `json:"mode,omitempty" yaml:"mode,omitempty"` // age | aes-gcm
	RecipientKeys []string `json:"recipientKeys,omitempty" yaml:"recipientKeys,omitempty"`
	Strict        bool     `json:"strict,omitempty" yaml:"strict,omitempty"`
}

// DistTarget is one distribution target of a profile.
type DistTarget struct {
	Kind   string `json:"kind" yaml:"kind"`                         // http | oci | object
	Target string `json:"target,omitempty" yaml:"target,omitempty"` // oci://host/repo:tag, s3://bucket/prefix
}

// Retention of runs made with a profile.
type Retention struct {
	Mode  string `json:"mode" yaml:"mode"` // days | count
	Value int    `json:"value" yaml:"value"`
}

// Selectors narrow the evidence a run reads. Within one field, values are
// alternatives (OR); across fields they all apply (AND).
type Selectors struct {
	Ecosystems      []string `json:"ecosystems,omitempty" yaml:"ecosystems,omitempty"`
	ModifiedSince   string   `json:"modifiedSince,omitempty" yaml:"modifiedSince,omitempty"` // RFC 3339, inclusive
	ModifiedUntil   string   `json:"modifiedUntil,omitempty" yaml:"modifiedUntil,omitempty"` // RFC 3339, exclusive
	ProductPrefixes []string `json:"productPrefixes,omitempty" yaml:"productPrefixes,omitempty"`
	PurlPrefixes    []string `json:"purlPrefixes,omitempty" yaml:"purlPrefixes,omitempty"`
	Sources         []string `json:"sources,omitempty" yaml:"sources,omitempty"`
	Tenant          string   `json:"tenant,omitempty" yaml:"tenant,omitempty"`
}

// RunState is the state of a run.
type RunState string

// Run states (SPEC §4).
const (
	StatePending   RunState = "pending"
	StateRunning   RunState = "running"
	StateSucceeded RunState = "succeeded"
	StateFailed    RunState = "failed"
	StateCancelled RunState = "cancelled"
	StateExpired   RunState = "expired"
)

// Terminal reports whether a run in this state will not change any more
// (except by retention, which expires it).
func (s RunState) Terminal() bool {
	return s == StateSucceeded || s == StateFailed || s == StateCancelled || s == StateExpired
}

// Run is one export run as the ledger records it.
type Run struct {
	AllowEmpty      bool              `json:"allowEmpty,omitempty"`
	Artifacts       []Artifact        `json:"artifacts,omitempty"`
	BaseRunID       string            `json:"baseRunId,omitempty"`
	CancelRequested bool              `json:"cancelRequested,omitempty"`
	Counts          map[string]int64  `json:"counts,omitempty"`
	CreatedAt       time.Time         `json:"createdAt"`
	ErrorCode       string            `json:"errorCode,omitempty"` // label: validation, signing, ...
	ErrorMessage    string            `json:"errorMessage,omitempty"`
	ErrorType       string            `json:"errorType,omitempty"` // ERR_EXPORT_*
	ExportID        string            `json:"exportId,omitempty"`
	Extra           map[string]string `json:"extra,omitempty"`
	FinishedAt      *time.Time        `json:"finishedAt,omitempty"`
	Host            string            `json:"host,omitempty"`
	Owner           string            `json:"owner,omitempty"` // lease holder (host:pid) while running
	Priority        string            `json:"priority"`        // normal | catch-up
	Profile         ProfileRef        `json:"profile"`
	Push            []string          `json:"push,omitempty"`
	ID              string            `json:"runId"`
	Selectors       Selectors         `json:"selectors"`
	SkipInvalid     bool              `json:"skipInvalid,omitempty"`
	Sources         []SourceSpec      `json:"sources,omitempty"`
	StartedAt       *time.Time        `json:"startedAt,omitempty"`
	State           RunState          `json:"state"`
	Tenant          string            `json:"tenant"`
}

// ProfileRef names the profile revision a run used.
type ProfileRef struct {
	Kind     string `json:"kind"`
	Name     string `json:"name"`
	Revision string `json:"revision"`
	Variant  string `json:"variant"`
}

// SourceSpec is an evidence source: a name and a directory or archive.
type SourceSpec struct {
	Name string `json:"name" yaml:"name" mapstructure:"name"`
	Path string `json:"path" yaml:"path" mapstructure:"path"`
}

// Artifact is one file a run produced.
type Artifact struct {
	Bytes     int64  `json:"bytes"`
	MediaType string `json:"mediaType"`
	Name      string `json:"name"`
	Path      string `json:"path"`   // absolute path on the machine that ran it
	SHA256    string `json:"sha256"` // lowercase hex
}

// Event types of a run's event log.
const (
	EventStarted   = "run.started"
	EventProgress  = "run.progress"
	EventArtifact  = "run.artifact"
	EventCompleted = "run.completed"
	EventFailed    = "run.failed"
	EventCancelled = "run.cancelled"
)

// Event is one entry of a run's ordered event log.
type Event struct {
	Artifact   *Artifact `json:"artifact,omitempty"`
	Bytes      int64     `json:"bytes,omitempty"`
	ErrorCode  string    `json:"errorCode,omitempty"`
	ItemsDone  int64     `json:"itemsDone,omitempty"`
	ItemsTotal int64     `json:"itemsTotal,omitempty"`
	Message    string    `json:"message,omitempty"`
	Phase      string    `json:"phase,omitempty"`
	RunID      string    `json:"runId"`
	Seq        int64     `json:"seq"`
	State      RunState  `json:"state,omitempty"`
	Time       time.Time `json:"time"`
	Type       string    `json:"type"`
}
