package distribute

import (
	"context"
	"encoding/base64"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stellaops/stella/internal/xerr"
)

func TestValidate(t *testing.T) {
	good := []string{
		"oci://127.0.0.1:5000/trivy-db:2", "oci://localhost/trivy-db", "oci://registry.example.com/a/b/c:v1.2",
		"oci://[::1]:5000/db:2", "s3://bucket/prefix", "s3://bucket",
	}
	bad := []string{
		"oci://", "oci://host", "oci://host/UPPER:2", "oci://host/repo:bad tag", "oci://host/repo@sha256:" + strings.Repeat("a", 64),
		"oci://user:pw@host/repo:2", "oci://host/repo:2?x=1", "s3://", "http://host/repo", "host/repo:2",
	}
	for _, g := range good {
		if err := Validate(g); err != nil {
			t.Errorf("%s: %v", g, err)
		}
	}
	for _, b := range bad {
		if err := Validate(b); xerr.CodeOf(err) != xerr.InvalidInput {
			t.Errorf("%s: %v, want ERR_EXPORT_INVALID_INPUT", b, err)
		}
	}
	if err := Validate("oci://user:pw@host/repo:2"); !strings.Contains(err.Error(), EnvUsername) {
		t.Errorf("credentials in the URL: %v", err)
	}
	if _, err := Open("s3://bucket/prefix", Options{}); xerr.CodeOf(err) != xerr.Distribution || !strings.Contains(err.Error(), "not built in yet") {
		t.Errorf("s3: %v", err)
	}
}

func TestLoopbackPlainHTTP(t *testing.T) {
	for h, want := range map[string]bool{
		"127.0.0.1:5000": true, "127.1.2.3": true, "localhost:5000": true, "LOCALHOST": true, "[::1]:5000": true,
		"10.0.0.1:5000": false, "registry.example.com": false, "localhost.example.com:5000": false, "ghcr.io": false,
	} {
		if got := isLoopback(h); got != want {
			t.Errorf("isLoopback(%q) = %v", h, got)
		}
	}
	f := false
	tg, _ := newOCI("oci://127.0.0.1:5000/x:1", Options{PlainHTTP: &f})
	if tg.plain {
		t.Error("PlainHTTP=false was ignored")
	}
}

// TestTrivyManifest pins the exact manifest trivy pulls: no artifactType, the
// trivy config media type over "{}", one layer with trivy's media type and
// title db.tar.gz, nothing else (no times) — so its digest is a function of
// the db.bundle bytes alone.
func TestTrivyManifest(t *testing.T) {
	p := writeFile(t, t.TempDir(), "db.bundle", []byte("db"))
	b, d, err := Manifest(TrivyDB(p))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
		`"config":{"mediaType":"application/vnd.aquasec.trivy.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},` +
		`"layers":[{"mediaType":"application/vnd.aquasec.trivy.db.layer.v1.tar+gzip","digest":"sha256:9d7de0d4aebc69e1d3e1ba8e5dc5d1e2f2cbd6d09d0e8d7bb4e13d0a8b3b24c5","size":2,"annotations":{"org.opencontainers.image.title":"db.tar.gz"}}]}`
	// The layer digest above is sha256("db"); check it rather than trust it.
	ld, _, _ := fileDigest(p)
	want = strings.Replace(want, "sha256:9d7de0d4aebc69e1d3e1ba8e5dc5d1e2f2cbd6d09d0e8d7bb4e13d0a8b3b24c5", ld, 1)
	if string(b) != want {
		t.Fatalf("manifest\n%s\nwant\n%s", b, want)
	}
	// Same bytes at another path, another time: the same digest.
	q := writeFile(t, t.TempDir(), "other-name", []byte("db"))
	if _, d2, _ := Manifest(TrivyDB(q)); d2 != d {
		t.Fatalf("digest depends on more than the bytes: %s vs %s", d, d2)
	}
	// The bundle form: artifactType and the OCI empty config.
	ab, _, err := Manifest(Bundle(Layer{Path: q}))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`"artifactType":"application/vnd.stellaops.export.bundle.v1"`, `"mediaType":"application/vnd.oci.empty.v1+json"`,
		`"mediaType":"application/vnd.stellaops.export.bundle.v1.tar+zstd"`, `"org.opencontainers.image.title":"other-name"`} {
		if !strings.Contains(string(ab), s) {
			t.Errorf("bundle manifest lacks %s:\n%s", s, ab)
		}
	}
	if _, _, err := Manifest(Artifact{Layers: []Layer{{Path: q, Title: "../x"}}}); err == nil {
		t.Error("a title with a path was accepted")
	}
}

func TestPushSkipsExistingBlobs(t *testing.T) {
	reg, host := newMemRegistry(t)
	p := writeFile(t, t.TempDir(), "db.bundle", []byte(strings.Repeat("x", 100000)))
	var seen int64
	tg, _ := Open("oci://"+host+"/trivy-db:2", Options{Progress: func(n int64) { seen = n }})
	res, err := tg.Push(context.Background(), TrivyDB(p))
	if err != nil {
		t.Fatal(err)
	}
	if res.Bytes != 100002 || seen < 100000 || reg.puts != 2 {
		t.Fatalf("first push: %+v, progress %d, %d uploads", res, seen, reg.puts)
	}
	tg2, _ := Open("oci://"+host+"/mirror/trivy-db:2", Options{})
	res2, err := tg2.Push(context.Background(), TrivyDB(p))
	if err != nil || res2.Bytes != 0 || reg.puts != 2 || res2.Digest != res.Digest {
		t.Fatalf("second push: %+v %v (%d uploads)", res2, err, reg.puts)
	}
	if got := string(reg.manifest("mirror/trivy-db", "2")); !strings.Contains(got, TrivyDBLayerMediaType) {
		t.Fatalf("stored manifest %s", got)
	}
	if res.Pinned() != host+"/trivy-db@"+res.Digest {
		t.Fatalf("pinned %s", res.Pinned())
	}
}

func TestCredentials(t *testing.T) {
	reg, host := newMemRegistry(t)
	reg.user, reg.pass = "ci", "s3cret"
	p := writeFile(t, t.TempDir(), "db.bundle", []byte("db"))
	ctx := context.Background()
	empty := t.TempDir()
	t.Setenv("DOCKER_CONFIG", empty)
	t.Setenv(EnvUsername, "")
	t.Setenv(EnvPassword, "")
	push := func() error {
		tg, _ := Open("oci://"+host+"/trivy-db:2", Options{})
		_, err := tg.Push(ctx, TrivyDB(p))
		return err
	}
	err := push()
	if xerr.CodeOf(err) != xerr.Distribution || !strings.Contains(xerr.As(err).Hint, EnvUsername) {
		t.Fatalf("anonymous push to an authenticated registry: %v (hint %q)", err, xerr.As(err).Hint)
	}
	// From the environment.
	t.Setenv(EnvUsername, "ci")
	t.Setenv(EnvPassword, "s3cret")
	if err := push(); err != nil {
		t.Fatalf("env credentials: %v", err)
	}
	// From the docker config ("auth" = base64 user:password).
	t.Setenv(EnvUsername, "")
	t.Setenv(EnvPassword, "")
	cfg := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte("ci:s3cret"))
	os.WriteFile(filepath.Join(cfg, "config.json"), []byte(`{"auths":{"`+host+`":{"auth":"`+auth+`"}}}`), 0o600)
	t.Setenv("DOCKER_CONFIG", cfg)
	if err := push(); err != nil {
		t.Fatalf("docker config credentials: %v", err)
	}
	// Wrong ones.
	t.Setenv(EnvUsername, "ci")
	t.Setenv(EnvPassword, "wrong")
	if err := push(); xerr.CodeOf(err) != xerr.Distribution {
		t.Fatalf("wrong password: %v", err)
	}
}

func TestClosedPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	p := writeFile(t, t.TempDir(), "db.bundle", []byte("db"))
	tg, _ := Open("oci://"+addr+"/trivy-db:2", Options{})
	_, err = tg.Push(context.Background(), TrivyDB(p))
	xe := xerr.As(err)
	if xe.Code != xerr.Distribution || !strings.Contains(xe.Hint, "nothing listens at http://"+addr) {
		t.Fatalf("closed port: %v (hint %q)", err, xe.Hint)
	}
}
