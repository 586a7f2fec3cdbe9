// Package javadb builds the Trivy Java DB (trivy-java-db schema 1) from the
// Maven components with SHA-1 hashes that SBOM evidence lists, packs it as
// java-db.bundle (gzip tar of metadata.json + trivy-java.db), and installs a
// java-db.bundle into a trivy cache directory (<cache>/java-db/).
//
// trivy uses the Java DB to name a JAR that carries no pom.properties: it
// computes the archive's SHA-1 and looks it up in `indices` (joined to
// `artifacts` for the groupId/artifactId). The file written here has exactly
// the tables and indices of the upstream trivy-java-db build (docs/trivy.md,
// "Java DB"), is written by the SQLite the same trivy release links
// (modernc.org/sqlite), and is byte-identical for the same entries (fixed
// insertion order, explicit row ids, fixed page size, VACUUM at the end, no
// timestamps inside).
//
// The engine registration (trivy:java-db) lives in register.go.
package javadb

import (
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/stellaops/stella/internal/record"
)

// File names inside java-db.bundle and in <cache>/java-db/.
const (
	DBFile       = "trivy-java.db"
	MetadataFile = "metadata.json"
)

// SchemaVersion is the trivy-java-db schema written (and the only one trivy
// v0.74.0 reads: it is the `:1` of its default repositories).
const SchemaVersion = 1

// DefaultBundlePath is where the adapter stages java-db.bundle in the bundle.
const DefaultBundlePath = "trivy/java-db.bundle"

// BundleMediaType is the media type of java-db.bundle: the layer type trivy
// pulls from an OCI registry (--java-db-repository), whose content is the
// same gzip tar.
const BundleMediaType = "application/vnd.aquasec.trivy.javadb.layer.v1.tar+gzip"

// DefaultNextUpdateInterval is upstream's update interval (trivy caches a
// downloaded Java DB for 3 days).
const DefaultNextUpdateInterval = 3 * 24 * time.Hour

// CacheSubdir is the folder of a trivy cache that holds the Java DB.
const CacheSubdir = "java-db"

// The upstream schema, statement for statement (trivy-java-db pkg/db Init).
// SQLite keeps each CREATE statement's text in sqlite_master, so the text
// itself is part of the format and must not be reworded.
var schemaSQL = []string{
	"CREATE TABLE artifacts(id INTEGER PRIMARY KEY, group_id TEXT, artifact_id TEXT)",
	"CREATE TABLE indices(artifact_id INTEGER, version TEXT, sha1 BLOB, archive_type TEXT, foreign key (artifact_id) references artifacts(id))",
	"CREATE UNIQUE INDEX artifacts_idx ON artifacts(artifact_id, group_id)",
	"CREATE INDEX indices_artifact_idx ON indices(artifact_id)",
	"CREATE UNIQUE INDEX indices_sha1_idx ON indices(sha1)",
}

// Metadata is metadata.json (the field names and shape of trivy-java-db's
// db.Metadata).
type Metadata struct {
	Version      int `json:",omitempty"`
	NextUpdate   time.Time
	UpdatedAt    time.Time
	DownloadedAt time.Time
}

// Entry is one row of `indices` with its artifact: a JAR's SHA-1 and the
// Maven coordinates it belongs to.
type Entry struct {
	GroupID     string
	ArtifactID  string
	Version     string
	SHA1        [20]byte
	ArchiveType string // "jar" (default), "aar", or the purl's type qualifier
}

// Coordinates is "group:artifact:version" (plus ":type" when not jar).
func (e Entry) Coordinates() string {
	s := e.GroupID + ":" + e.ArtifactID + ":" + e.Version
	if e.ArchiveType != "jar" {
		s += " (" + e.ArchiveType + ")"
	}
	return s
}

// compare orders entries by coordinates, then archive type, then SHA-1.
func (e Entry) compare(o Entry) int {
	for _, p := range [][2]string{{e.GroupID, o.GroupID}, {e.ArtifactID, o.ArtifactID}, {e.Version, o.Version}, {e.ArchiveType, o.ArchiveType}} {
		if c := strings.Compare(p[0], p[1]); c != 0 {
			return c
		}
	}
	return strings.Compare(string(e.SHA1[:]), string(o.SHA1[:]))
}

// FromComponent makes the entry of one SBOM component. ok is false (with no
// error) for a component that is not a Maven archive with a SHA-1: not a
// pkg:maven purl, no hash, or a type that is no archive (pom). err is set
// for a Maven component with a SHA-1 whose purl or hash is malformed.
func FromComponent(c record.Component) (e Entry, ok bool, err error) {
	if c.SHA1 == "" || !isMavenPurl(c.Purl) {
		return e, false, nil
	}
	g, a, v, typ, err := parseMavenPurl(c.Purl)
	if err != nil {
		return e, false, err
	}
	if v == "" {
		v = c.Version
	}
	if v == "" {
		return e, false, fmt.Errorf("component %q (%s) has a SHA-1 but no version", c.Name, c.Purl)
	}
	if typ == "pom" {
		return e, false, nil // a POM is not an archive trivy hashes
	}
	sha := strings.ToLower(strings.TrimSpace(c.SHA1))
	b, derr := hex.DecodeString(sha)
	if derr != nil || len(b) != 20 {
		return e, false, fmt.Errorf("component %q (%s): SHA-1 %q is not 40 hex digits", c.Name, c.Purl, c.SHA1)
	}
	e = Entry{GroupID: g, ArtifactID: a, Version: v, ArchiveType: typ}
	copy(e.SHA1[:], b)
	return e, true, nil
}

func isMavenPurl(p string) bool {
	return len(p) > len("pkg:maven/") && strings.EqualFold(p[:len("pkg:maven/")], "pkg:maven/")
}

// parseMavenPurl splits pkg:maven/<group>/<artifact>@<version>?type=…#sub
// (purl spec: namespace = groupId, name = artifactId, each segment
// percent-encoded; type qualifier default "jar").
func parseMavenPurl(p string) (group, artifact, version, typ string, err error) {
	rest := p[len("pkg:maven/"):]
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		rest = rest[:i]
	}
	typ = "jar"
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		q, qerr := url.ParseQuery(rest[i+1:])
		if qerr != nil {
			return "", "", "", "", fmt.Errorf("purl %q: qualifiers: %v", p, qerr)
		}
		if t := strings.ToLower(q.Get("type")); t != "" {
			typ = t
		}
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		if version, err = url.PathUnescape(rest[i+1:]); err != nil {
			return "", "", "", "", fmt.Errorf("purl %q: version: %v", p, err)
		}
		rest = rest[:i]
	}
	rest = strings.Trim(rest, "/")
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return "", "", "", "", fmt.Errorf("purl %q has no groupId (pkg:maven/<groupId>/<artifactId>@<version>)", p)
	}
	if group, err = url.PathUnescape(rest[:i]); err == nil {
		artifact, err = url.PathUnescape(rest[i+1:])
	}
	if err != nil {
		return "", "", "", "", fmt.Errorf("purl %q: %v", p, err)
	}
	if group == "" || artifact == "" || strings.Contains(group, "/") {
		return "", "", "", "", fmt.Errorf("purl %q is not pkg:maven/<groupId>/<artifactId>@<version>", p)
	}
	return group, artifact, version, typ, nil
}
