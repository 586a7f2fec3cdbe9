// Package distribute pushes finished bundles to distribution targets (SPEC
// §8): one Target interface, one backend per URL scheme, one conformance
// test that every backend passes (internal/distribute/conformance_test.go).
//
// Backends:
//   - oci://host[:port]/repo[:tag]: an OCI registry (oras-go v2). A Trivy DB
//     is pushed as the single-layer image manifest that `trivy
//     --db-repository` pulls; any other bundle as an OCI artifact
//     (artifactType application/vnd.stellaops.export.bundle.v1).
//   - s3://bucket/prefix: object storage; not built in yet (Open fails with
//     ERR_EXPORT_DISTRIBUTION).
//
// What is pushed is a pure function of the bundle bytes: fixed config blobs,
// no timestamps, no per-run annotations, so the same db.bundle always gives
// the same manifest digest. See docs/distribution.md.
package distribute

import (
	"context"
	"path"
	"strings"

	"github.com/stellaops/stella/internal/bundle"
	"github.com/stellaops/stella/internal/xerr"
)

// Media types of what is pushed.
const (
	// ManifestMediaType is the OCI image manifest every push writes.
	ManifestMediaType = "application/vnd.oci.image.manifest.v1+json"
	// TrivyDBLayerMediaType is the layer trivy --db-repository downloads.
	TrivyDBLayerMediaType = "application/vnd.aquasec.trivy.db.layer.v1.tar+gzip"
	// TrivyJavaDBLayerMediaType is the layer trivy --java-db-repository downloads.
	TrivyJavaDBLayerMediaType = "application/vnd.aquasec.trivy.javadb.layer.v1.tar+gzip"
	// TrivyConfigMediaType is the config media type upstream Trivy DBs carry.
	TrivyConfigMediaType = "application/vnd.aquasec.trivy.config.v1+json"
	// BundleArtifactType is the artifactType of a pushed stella bundle.
	BundleArtifactType = "application/vnd.stellaops.export.bundle.v1"
	// BundleLayerMediaType is the layer media type of a stella bundle archive
	// (the same media type the run records for the artifact).
	BundleLayerMediaType = "application/vnd.stellaops.export.bundle.v1.tar+zstd"
	// EmptyConfigMediaType is the OCI empty config ({}) of artifacts.
	EmptyConfigMediaType = "application/vnd.oci.empty.v1+json"
	// TitleAnnotation names a layer's file (oras and trivy read it).
	TitleAnnotation = "org.opencontainers.image.title"
)

// emptyJSON is the fixed config blob of every push: "{}".
var emptyJSON = []byte("{}")

// Trivy schema majors, the tag upstream uses (trivy-db:2, trivy-java-db:1).
const (
	TrivyDBTag     = "2"
	TrivyJavaDBTag = "1"
)

// Artifact is what one push uploads: a config blob and layers, described by
// one OCI image manifest.
type Artifact struct {
	// ArtifactType is the manifest's artifactType ("" leaves it out: the
	// image-manifest form trivy's databases use).
	ArtifactType string
	// ConfigMediaType is the media type of the config blob, which is always
	// the two bytes "{}".
	ConfigMediaType string
	// Layers, in manifest order.
	Layers []Layer
	// DefaultTag is the tag used when the target names none ("" = a tag is
	// required).
	DefaultTag string
}

// Layer is one file of an artifact.
type Layer struct {
	MediaType string
	Title     string // org.opencontainers.image.title: the file name a puller writes
	Path      string // the file to upload
	// Digest ("sha256:…") and Size, when known; otherwise computed from Path.
	Digest string
	Size   int64
}

// TrivyDB is the artifact trivy --db-repository pulls: one layer, the
// db.bundle (gzip tar of trivy.db + metadata.json) titled db.tar.gz.
func TrivyDB(dbBundle string) Artifact {
	return Artifact{ConfigMediaType: TrivyConfigMediaType, DefaultTag: TrivyDBTag,
		Layers: []Layer{{MediaType: TrivyDBLayerMediaType, Title: "db.tar.gz", Path: dbBundle}}}
}

// TrivyJavaDB is the artifact trivy --java-db-repository pulls.
func TrivyJavaDB(javaDBBundle string) Artifact {
	return Artifact{ConfigMediaType: TrivyConfigMediaType, DefaultTag: TrivyJavaDBTag,
		Layers: []Layer{{MediaType: TrivyJavaDBLayerMediaType, Title: "javadb.tar.gz", Path: javaDBBundle}}}
}

// Bundle is the artifact of a stella bundle archive: the .tar.zst first,
// titled with its file name, then any detached files beside it (the
// archive's signature, its sigstore bundle) in the order given.
func Bundle(archive Layer, detached ...Layer) Artifact {
	if archive.MediaType == "" {
		archive.MediaType = BundleLayerMediaType
	}
	if archive.Title == "" {
		archive.Title = path.Base(strings.ReplaceAll(archive.Path, "\\", "/"))
	}
	return Artifact{ArtifactType: BundleArtifactType, ConfigMediaType: EmptyConfigMediaType,
		Layers: append([]Layer{archive}, detached...)}
}

// Result says where a push went.
type Result struct {
	Target    string `json:"target"`    // the target as given (oci://…)
	Reference string `json:"reference"` // host/repo:tag, what a client pulls
	Digest    string `json:"digest"`    // sha256:… of the manifest
	MediaType string `json:"mediaType"` // of the manifest
	Size      int64  `json:"size"`      // manifest bytes
	Bytes     int64  `json:"bytes"`     // blob bytes uploaded (0 when the target had them all)
}

// Pinned is the reference pinned to its digest: host/repo@sha256:….
func (r Result) Pinned() string {
	ref := r.Reference
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref + "@" + r.Digest
}

// Target is one distribution target. Implementations are safe for one push
// at a time.
type Target interface {
	// Kind is the profile distribution kind: "oci" or "object".
	Kind() string
	// String is the target as the user wrote it.
	String() string
	// Push uploads an artifact and returns where it went. Pushing the same
	// artifact again is harmless and yields the same Result digest.
	Push(ctx context.Context, a Artifact) (Result, error)
	// Pull downloads what the target holds into dir (one file per layer,
	// named by its title, each checked against its digest) and returns the
	// manifest it resolved.
	Pull(ctx context.Context, dir string) (Result, []Layer, error)
}

// Options configure how targets connect.
type Options struct {
	// Username and Password, when set, are used for every registry;
	// otherwise STELLA_REGISTRY_USERNAME / STELLA_REGISTRY_PASSWORD, then the
	// docker config (DOCKER_CONFIG or ~/.docker/config.json, including
	// credential helpers), then anonymous access.
	Username, Password string
	// PlainHTTP forces plain HTTP (true) or HTTPS (false); nil = plain HTTP
	// for loopback hosts (localhost, 127.0.0.0/8, ::1) only, like trivy.
	PlainHTTP *bool
	// UserAgent of requests ("" = "stella").
	UserAgent string
	// Progress, if set, is told the bytes uploaded so far.
	Progress func(bytes int64)
}

// Validate checks a target URL without connecting (for --push at submit
// and profile validation).
func Validate(raw string) error {
	switch {
	case strings.HasPrefix(raw, "oci://"):
		_, err := parseOCI(raw)
		return err
	case strings.HasPrefix(raw, "s3://"):
		rest := strings.TrimPrefix(raw, "s3://")
		if bucket, _, _ := strings.Cut(rest, "/"); bucket == "" {
			return xerr.New(xerr.InvalidInput, "target %q: want s3://bucket/prefix", raw)
		}
		return nil
	}
	return xerr.New(xerr.InvalidInput, "target %q: want oci://host[:port]/repo:tag or s3://bucket/prefix", raw)
}

// Open makes the target a URL names.
func Open(raw string, opt Options) (Target, error) {
	switch {
	case strings.HasPrefix(raw, "oci://"):
		return newOCI(raw, opt)
	case strings.HasPrefix(raw, "s3://"):
		if err := Validate(raw); err != nil {
			return nil, err
		}
		return nil, xerr.New(xerr.Distribution, "target %s: object storage (s3://) is not built in yet", raw).
			WithHint("push to an OCI registry (oci://host/repo:tag), or copy the bundle with `stella export download` and your own uploader; the bundle is kept")
	}
	return nil, Validate(raw)
}

// KindOf is the distribution kind of a target URL ("oci", "object", or "").
func KindOf(raw string) string {
	switch {
	case strings.HasPrefix(raw, "oci://"):
		return "oci"
	case strings.HasPrefix(raw, "s3://"):
		return "object"
	}
	return ""
}

// fileDigest returns the sha256 digest ("sha256:<hex>") and size of a file.
func fileDigest(p string) (string, int64, error) {
	sum, n, err := bundle.FileSHA256(p)
	if err != nil {
		return "", 0, err
	}
	return "sha256:" + sum, n, nil
}
