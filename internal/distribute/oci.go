package distribute

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
	"oras.land/oras-go/v2/registry/remote/errcode"
	"oras.land/oras-go/v2/registry/remote/retry"

	"github.com/stellaops/stella/internal/xerr"
)

// Environment variables with registry credentials (used for every registry).
const (
	EnvUsername = "STELLA_REGISTRY_USERNAME"
	EnvPassword = "STELLA_REGISTRY_PASSWORD"
)

// maxManifestBytes bounds a manifest read by Pull.
const maxManifestBytes = 4 << 20

// ociTarget pushes to an OCI registry.
type ociTarget struct {
	raw   string
	ref   registry.Reference
	plain bool
	opt   Options
}

// parseOCI checks oci://host[:port]/repo[:tag].
func parseOCI(raw string) (registry.Reference, error) {
	rest := strings.TrimPrefix(raw, "oci://")
	bad := func(why string) error {
		return xerr.New(xerr.InvalidInput, "target %q: %s", raw, why).
			WithHint("write oci://host[:port]/repo:tag, e.g. oci://127.0.0.1:5000/trivy-db:2")
	}
	switch {
	case strings.ContainsAny(rest, "?#"):
		return registry.Reference{}, bad("query strings and fragments are not allowed")
	case strings.Contains(rest, "@"):
		host, _, _ := strings.Cut(rest, "/")
		if strings.Contains(host, "@") {
			return registry.Reference{}, bad("credentials do not belong in the URL (use " + EnvUsername + "/" + EnvPassword + " or docker login)")
		}
		return registry.Reference{}, bad("push by tag, not by digest")
	}
	ref, err := registry.ParseReference(rest)
	if err != nil {
		return registry.Reference{}, bad(strings.TrimPrefix(err.Error(), errdef.ErrInvalidReference.Error()+": "))
	}
	return ref, nil
}

func newOCI(raw string, opt Options) (*ociTarget, error) {
	ref, err := parseOCI(raw)
	if err != nil {
		return nil, err
	}
	plain := isLoopback(ref.Registry)
	if opt.PlainHTTP != nil {
		plain = *opt.PlainHTTP
	}
	return &ociTarget{raw: raw, ref: ref, plain: plain, opt: opt}, nil
}

// isLoopback reports whether a registry host[:port] is on this machine, where
// trivy (and docker) use plain HTTP.
func isLoopback(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (o *ociTarget) Kind() string   { return "oci" }
func (o *ociTarget) String() string { return o.raw }

// repository connects lazily; nothing is sent before the first request.
func (o *ociTarget) repository() *remote.Repository {
	ref := o.ref
	ref.Reference = ""
	repo := &remote.Repository{Reference: ref, PlainHTTP: o.plain}
	ua := o.opt.UserAgent
	if ua == "" {
		ua = "stella"
	}
	client := &auth.Client{Client: retry.DefaultClient, Cache: auth.NewCache(), Credential: o.credential}
	client.SetUserAgent(ua)
	repo.Client = client
	return repo
}

// credential finds the registry credentials: Options, then the environment,
// then the docker config (read only when the registry asks).
func (o *ociTarget) credential(ctx context.Context, hostport string) (auth.Credential, error) {
	if o.opt.Username != "" || o.opt.Password != "" {
		return auth.Credential{Username: o.opt.Username, Password: o.opt.Password}, nil
	}
	if u, p := os.Getenv(EnvUsername), os.Getenv(EnvPassword); u != "" || p != "" {
		return auth.Credential{Username: u, Password: p}, nil
	}
	store, err := credentials.NewStoreFromDocker(credentials.StoreOptions{})
	if err != nil {
		return auth.EmptyCredential, fmt.Errorf("reading the docker config for %s: %w", hostport, err)
	}
	return credentials.Credential(store)(ctx, hostport)
}

func (o *ociTarget) tag(a Artifact) (string, error) {
	if o.ref.Reference != "" {
		return o.ref.Reference, nil
	}
	if a.DefaultTag != "" {
		return a.DefaultTag, nil
	}
	return "", xerr.New(xerr.Distribution, "target %s names no tag", o.raw).
		WithHint("add a tag: %s:<tag>", o.raw)
}

// manifest builds the artifact's manifest. Its bytes depend only on the
// layers' bytes, titles and media types.
func manifest(a Artifact) ([]byte, ocispec.Manifest, error) {
	var none ocispec.Manifest
	if len(a.Layers) == 0 {
		return nil, none, xerr.New(xerr.Internal, "nothing to push: the artifact has no layers")
	}
	cfg := a.ConfigMediaType
	if cfg == "" {
		cfg = EmptyConfigMediaType
	}
	m := ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ManifestMediaType,
		ArtifactType: a.ArtifactType,
		Config:       ocispec.Descriptor{MediaType: cfg, Digest: digest.FromBytes(emptyJSON), Size: int64(len(emptyJSON))},
	}
	for i, l := range a.Layers {
		if l.Digest == "" || l.Size == 0 {
			d, n, err := fileDigest(l.Path)
			if err != nil {
				return nil, none, xerr.Wrap(xerr.Internal, err, "layer %d", i)
			}
			l.Digest, l.Size = d, n
		}
		d, err := digest.Parse(l.Digest)
		if err != nil {
			return nil, none, xerr.Wrap(xerr.Internal, err, "layer %s", l.Path)
		}
		if !safeTitle(l.Title) {
			return nil, none, xerr.New(xerr.Internal, "layer %s: title %q is not a plain file name", l.Path, l.Title)
		}
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: l.MediaType, Digest: d, Size: l.Size,
			Annotations: map[string]string{TitleAnnotation: l.Title}})
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, none, xerr.Wrap(xerr.Internal, err, "manifest")
	}
	return b, m, nil
}

// Manifest returns the manifest bytes and digest Push would write for an
// artifact, without connecting.
func Manifest(a Artifact) ([]byte, string, error) {
	b, _, err := manifest(a)
	if err != nil {
		return nil, "", err
	}
	return b, digest.FromBytes(b).String(), nil
}

func safeTitle(t string) bool {
	return t != "" && t != "." && t != ".." && !strings.ContainsAny(t, "/\\\x00") && filepath.Base(t) == t
}

// Push uploads the config and layer blobs the registry does not have yet,
// then the manifest under the tag.
func (o *ociTarget) Push(ctx context.Context, a Artifact) (Result, error) {
	tag, err := o.tag(a)
	if err != nil {
		return Result{}, err
	}
	mb, m, err := manifest(a)
	if err != nil {
		return Result{}, err
	}
	repo := o.repository()
	res := Result{Target: o.raw, Reference: o.ref.Registry + "/" + o.ref.Repository + ":" + tag,
		MediaType: ManifestMediaType, Size: int64(len(mb))}
	if err := o.pushBlob(ctx, repo, m.Config, func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(emptyJSON)), nil
	}, &res); err != nil {
		return res, err
	}
	for i, l := range m.Layers {
		p := a.Layers[i].Path
		if err := o.pushBlob(ctx, repo, l, func() (io.ReadCloser, error) { return os.Open(p) }, &res); err != nil {
			return res, err
		}
	}
	md := content.NewDescriptorFromBytes(ManifestMediaType, mb)
	if err := repo.PushReference(ctx, md, bytes.NewReader(mb), tag); err != nil {
		return res, o.fail("push the manifest", err)
	}
	res.Digest = md.Digest.String()
	return res, nil
}

func (o *ociTarget) pushBlob(ctx context.Context, repo *remote.Repository, d ocispec.Descriptor, open func() (io.ReadCloser, error), res *Result) error {
	ok, err := repo.Exists(ctx, d)
	if err != nil {
		if d.Annotations[TitleAnnotation] == "" { // the first request of a push
			return o.fail("start the push", err)
		}
		return o.fail("check for "+blobName(d), err)
	}
	if ok {
		return nil
	}
	rc, err := open()
	if err != nil {
		return xerr.Wrap(xerr.Internal, err, "open the layer to push")
	}
	defer rc.Close()
	var r io.Reader = rc
	if o.opt.Progress != nil {
		r = &progressReader{r: rc, base: res.Bytes, fn: o.opt.Progress}
	}
	if err := repo.Push(ctx, d, r); err != nil && !errors.Is(err, errdef.ErrAlreadyExists) {
		return o.fail("upload "+blobName(d), err)
	}
	res.Bytes += d.Size
	return nil
}

func blobName(d ocispec.Descriptor) string {
	if t := d.Annotations[TitleAnnotation]; t != "" {
		return t
	}
	return "the config blob"
}

type progressReader struct {
	r    io.Reader
	base int64
	n    int64
	fn   func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	p.fn(p.base + p.n)
	return n, err
}

// Pull fetches the tagged manifest and its layers into dir.
func (o *ociTarget) Pull(ctx context.Context, dir string) (Result, []Layer, error) {
	tag := o.ref.Reference
	if tag == "" {
		return Result{}, nil, xerr.New(xerr.InvalidInput, "target %s names no tag to pull", o.raw)
	}
	repo := o.repository()
	md, rc, err := repo.FetchReference(ctx, tag)
	if err != nil {
		return Result{}, nil, o.fail("fetch the manifest", err)
	}
	if md.Size > maxManifestBytes {
		rc.Close()
		return Result{}, nil, xerr.New(xerr.Distribution, "%s: manifest of %d bytes is too large", o.raw, md.Size)
	}
	mb, err := content.ReadAll(rc, md)
	rc.Close()
	if err != nil {
		return Result{}, nil, o.fail("read the manifest", err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		return Result{}, nil, xerr.Wrap(xerr.Distribution, err, "%s: manifest", o.raw)
	}
	res := Result{Target: o.raw, Reference: o.ref.Registry + "/" + o.ref.Repository + ":" + tag,
		Digest: md.Digest.String(), MediaType: md.MediaType, Size: md.Size}
	var out []Layer
	for _, l := range m.Layers {
		title := l.Annotations[TitleAnnotation]
		if !safeTitle(title) {
			return res, out, xerr.New(xerr.Distribution, "%s: layer %s has no usable title (%q)", o.raw, l.Digest, title)
		}
		dst := filepath.Join(dir, title)
		if err := fetchTo(ctx, repo, l, dst); err != nil {
			return res, out, o.fail("fetch layer "+title, err)
		}
		res.Bytes += l.Size
		out = append(out, Layer{MediaType: l.MediaType, Title: title, Path: dst, Digest: l.Digest.String(), Size: l.Size})
	}
	return res, out, nil
}

func fetchTo(ctx context.Context, repo *remote.Repository, d ocispec.Descriptor, dst string) error {
	rc, err := repo.Fetch(ctx, d)
	if err != nil {
		return err
	}
	defer rc.Close()
	tmp := dst + ".partial"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	vr := content.NewVerifyReader(rc, d)
	_, err = io.Copy(f, vr)
	if err == nil {
		err = vr.Verify()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, dst)
}

// fail turns a registry error into ERR_EXPORT_DISTRIBUTION with a hint that
// says what to check.
func (o *ociTarget) fail(what string, err error) error {
	if xe := (*xerr.Error)(nil); errors.As(err, &xe) {
		return err
	}
	scheme := "https"
	if o.plain {
		scheme = "http"
	}
	e := &xerr.Error{Code: xerr.Distribution, Err: err,
		Message: fmt.Sprintf("%s: could not %s: %s", o.raw, what, shortCause(err))}
	var resp *errcode.ErrorResponse
	var uerr x509.UnknownAuthorityError
	var herr tls.RecordHeaderError
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return e
	case errors.Is(err, syscall.ECONNREFUSED):
		return e.WithHint("nothing listens at %s://%s: start the registry or fix the target; the bundle is kept, rerun the export to push again", scheme, o.ref.Registry)
	case errors.Is(err, auth.ErrBasicCredentialNotFound),
		errors.As(err, &resp) && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden):
		return e.WithHint("the registry wants credentials or refused the ones given: set %s/%s, or `docker login %s` (read from DOCKER_CONFIG or ~/.docker/config.json)", EnvUsername, EnvPassword, o.ref.Registry)
	case errors.As(err, &herr):
		return e.WithHint("%s answered plain HTTP to HTTPS; stella uses plain HTTP only for loopback hosts", o.ref.Registry)
	case errors.As(err, &uerr):
		return e.WithHint("the registry's certificate is not trusted: add its CA to the system trust store (or SSL_CERT_FILE)")
	case errors.As(err, &resp):
		return e.WithHint("the registry answered %d; check the repository name and that the registry accepts OCI image manifests", resp.StatusCode)
	}
	return e.WithHint("check that %s://%s is reachable; the bundle is kept, rerun the export to push again", scheme, o.ref.Registry)
}

// shortCause is the part of a registry error a person needs: the network
// error without the request URL, or the registry's status and error codes.
func shortCause(err error) string {
	if errors.Is(err, auth.ErrBasicCredentialNotFound) {
		return "the registry asks for a user name and password, and none is configured"
	}
	var resp *errcode.ErrorResponse
	if errors.As(err, &resp) {
		s := fmt.Sprintf("%s %s answered %d %s", resp.Method, resp.URL.Path, resp.StatusCode, http.StatusText(resp.StatusCode))
		if len(resp.Errors) > 0 {
			s += " (" + resp.Errors.Error() + ")"
		}
		return s
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err.Error()
	}
	return err.Error()
}
