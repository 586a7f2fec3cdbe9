package e2e

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/stellaops/stella/pkg/exportapi"
)

// startRegistry runs the real Debian docker-registry (distribution 2.8) on a
// free loopback port with its storage in a temp dir, and returns host:port.
func startRegistry(t *testing.T) string {
	t.Helper()
	return startRegistryWith(t, "")
}

// startRegistryWith adds YAML (e.g. an auth: section) to the registry config.
func startRegistryWith(t *testing.T, extra string) string {
	t.Helper()
	bin := oracle(t, "docker-registry")
	addr := freeAddr(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog: {disabled: true}
storage:
  filesystem: {rootdirectory: %s}
  delete: {enabled: true}
http:
  addr: %s
%s`, filepath.Join(dir, "data"), addr, extra)), 0o644)
	cmd := exec.Command(bin, "serve", cfg)
	logf, _ := os.Create(filepath.Join(dir, "registry.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start docker-registry: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return addr
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "registry.log"))
			t.Fatalf("docker-registry did not answer /v2/ on %s: %v\n%s", addr, err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freeAddr is a loopback address nothing listens on (right now).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// getManifest fetches a manifest from the registry the way a client does.
func getManifest(t *testing.T, addr, repo, ref string) (string, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v2/"+repo+"/manifests/"+ref, nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET manifest %s:%s: %d %s", repo, ref, resp.StatusCode, b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if d := resp.Header.Get("Docker-Content-Digest"); d != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Fatalf("registry digest %s does not match the manifest bytes", d)
	}
	return "sha256:" + hex.EncodeToString(sum[:]), m
}

func getBlobSHA256(t *testing.T, addr, repo, digest string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/v2/" + repo + "/blobs/" + digest)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	io.Copy(h, resp.Body)
	return hex.EncodeToString(h.Sum(nil))
}

// TestRegistryRoundTrip: a trivy:db run pushes to a real registry, and stock
// trivy with an empty cache pulls the DB with --db-repository and scans
// with it: the affected version is reported, the fixed one is not. A second
// run over the same evidence pushes the same manifest digest.
func TestRegistryRoundTrip(t *testing.T) {
	tv := oracle(t, "trivy")
	addr := startRegistry(t)
	e := newEnv(t)
	src := "pypa=" + testdata(t, "evidence/osv/pypa-advisory-database/t1")
	target := "oci://" + addr + "/trivy-db:2"
	out, stderr, code := e.run("run", "submit", "--profile", "trivy:db", "--source", src, "--push", target)
	if code != 0 {
		t.Fatalf("trivy:db run with --push: exit %d\n%s", code, stderr)
	}
	run := decodeRun(t, out)
	pushed := run.Extra["distribution."+target]
	if run.State != exportapi.StateSucceeded || !strings.HasPrefix(pushed, "sha256:") {
		t.Fatalf("run %s: state %s, extra %v", run.ID, run.State, run.Extra)
	}
	digest, m := getManifest(t, addr, "trivy-db", "2")
	if digest != pushed {
		t.Fatalf("registry holds %s, the run recorded %s", digest, pushed)
	}
	cfg := m["config"].(map[string]any)
	layers := m["layers"].([]any)
	l0 := layers[0].(map[string]any)
	if cfg["mediaType"] != "application/vnd.aquasec.trivy.config.v1+json" || len(layers) != 1 ||
		l0["mediaType"] != "application/vnd.aquasec.trivy.db.layer.v1.tar+gzip" ||
		l0["annotations"].(map[string]any)["org.opencontainers.image.title"] != "db.tar.gz" || m["annotations"] != nil {
		t.Fatalf("manifest is not the form trivy pulls: %v", m)
	}
	// run show (table) says where it went.
	if out, _, _ := e.run("run", "show", run.ID, "--format", "table"); !strings.Contains(out, target) || !strings.Contains(out, pushed) {
		t.Fatalf("run show does not name the push:\n%s", out)
	}
	// Events: a distribute phase with the pushed reference.
	if out, _, _ := e.run("run", "watch", run.ID); !strings.Contains(out, `"phase":"distribute"`) || !strings.Contains(out, pushed) {
		t.Fatalf("no distribute progress event naming the digest:\n%s", out)
	}

	cache := t.TempDir()
	scan := func(pin string, extra ...string) (string, string) {
		proj := t.TempDir()
		os.WriteFile(filepath.Join(proj, "requirements.txt"), []byte(pin+"\n"), 0o644)
		args := append([]string{"fs", "--cache-dir", cache}, extra...)
		args = append(args, "--skip-java-db-update", "--offline-scan", "--skip-version-check", "--disable-telemetry",
			"--scanners", "vuln", "--format", "json", "--no-progress", proj)
		c := exec.Command(tv, args...)
		c.Env = offlineEnv(t)
		var so, se strings.Builder
		c.Stdout, c.Stderr = &so, &se
		if err := c.Run(); err != nil {
			t.Fatalf("trivy %v: %v\n%s", args, err, se.String())
		}
		return so.String(), se.String()
	}
	got, log := scan("deluge==2.0.0", "--db-repository", addr+"/trivy-db:2")
	if !strings.Contains(log, "Artifact successfully downloaded") {
		t.Fatalf("trivy did not download the DB from the registry:\n%s", log)
	}
	if !strings.Contains(got, "PYSEC-2022-256") {
		t.Fatalf("deluge 2.0.0 (inside the affected range) not reported with the pulled DB:\n%s", got)
	}
	if _, err := os.Stat(filepath.Join(cache, "db", "trivy.db")); err != nil {
		t.Fatalf("no trivy.db in the cache after the pull: %v", err)
	}
	if got, _ := scan("deluge==2.1.0", "--skip-db-update"); strings.Contains(got, "PYSEC-2022-256") {
		t.Fatalf("deluge 2.1.0 (the fixed version) reported")
	}

	// Same evidence, another run: the same bytes, so the same manifest digest.
	again := "oci://" + addr + "/trivy-db:again"
	out, stderr, code = e.run("run", "submit", "--profile", "trivy:db", "--source", src, "--push", again)
	if code != 0 {
		t.Fatalf("second run: exit %d\n%s", code, stderr)
	}
	if d := decodeRun(t, out).Extra["distribution."+again]; d != pushed {
		t.Fatalf("second run pushed %s, the first %s: the manifest is not deterministic", d, pushed)
	}
}

// TestRegistryProfileDistribution: a json:raw profile whose
// spec.distribution lists an oci target pushes the bundle archive as an
// OCI artifact the registry serves back byte for byte.
func TestRegistryProfileDistribution(t *testing.T) {
	addr := startRegistry(t)
	e := newEnv(t)
	f := filepath.Join(t.TempDir(), "p.yaml")
	os.WriteFile(f, []byte(fmt.Sprintf(`apiVersion: stellaops.io/export.v1
kind: ExportProfile
metadata: {name: go-to-registry, tenant: default}
spec:
  kind: json
  variant: raw
  include: [advisories]
  distribution:
    - {kind: http}
    - {kind: oci, target: "oci://%s/exports/go:nightly"}
`, addr)), 0o644)
	if _, stderr, code := e.run("profile", "create", "-f", f); code != 0 {
		t.Fatalf("profile create: %s", stderr)
	}
	out, stderr, code := e.run("run", "submit", "--profile", "go-to-registry", "--source", "go="+testdata(t, "evidence/osv/golang-vulndb/t0"))
	if code != 0 {
		t.Fatalf("run: exit %d\n%s", code, stderr)
	}
	run := decodeRun(t, out)
	digest, m := getManifest(t, addr, "exports/go", "nightly")
	if run.Extra["distribution.oci://"+addr+"/exports/go:nightly"] != digest {
		t.Fatalf("run recorded %v, registry holds %s", run.Extra, digest)
	}
	if m["artifactType"] != "application/vnd.stellaops.export.bundle.v1" {
		t.Fatalf("artifactType %v", m["artifactType"])
	}
	layers := m["layers"].([]any)
	if len(layers) != len(run.Artifacts) {
		t.Fatalf("%d layers for %d artifacts", len(layers), len(run.Artifacts))
	}
	for i, a := range run.Artifacts {
		l := layers[i].(map[string]any)
		if l["annotations"].(map[string]any)["org.opencontainers.image.title"] != a.Name || l["digest"] != "sha256:"+a.SHA256 {
			t.Fatalf("layer %d %v does not describe artifact %+v", i, l, a)
		}
		if got := getBlobSHA256(t, addr, "exports/go", "sha256:"+a.SHA256); got != a.SHA256 {
			t.Fatalf("registry serves %s for %s", got, a.Name)
		}
	}
}

// TestRegistryPushFailure: a push to a closed port (and to s3://, not built
// in) fails the run with ERR_EXPORT_DISTRIBUTION, exit 10, errorCode
// distribution, and keeps the bundle: recorded, on disk, downloadable.
func TestRegistryPushFailure(t *testing.T) {
	e := newEnv(t)
	for _, bad := range []string{"oci://" + freeAddr(t), "oci://127.0.0.1:5000/exports/go"} { // no repository; a bundle without a tag
		_, stderr, code := e.run("run", "submit", "--profile", "json:raw", "--source", "go="+testdata(t, "evidence/osv/golang-vulndb/t0"), "--push", bad)
		if code != 2 || !strings.Contains(stderr, "ERR_EXPORT_INVALID_INPUT") {
			t.Fatalf("--push %s: exit %d (want 2 at submit)\n%s", bad, code, stderr)
		}
	}
	// A profile whose spec.distribution target is malformed is refused at submit too.
	f := filepath.Join(t.TempDir(), "p.yaml")
	os.WriteFile(f, []byte("apiVersion: stellaops.io/export.v1\nkind: ExportProfile\nmetadata: {name: bad-target, tenant: default}\n"+
		"spec: {kind: json, variant: raw, include: [advisories], distribution: [{kind: oci, target: \"oci://registry-without-repo\"}]}\n"), 0o644)
	if _, stderr, code := e.run("profile", "create", "-f", f); code != 0 {
		t.Fatalf("profile create: %s", stderr)
	}
	if _, stderr, code := e.run("run", "submit", "--profile", "bad-target", "--source", "go="+testdata(t, "evidence/osv/golang-vulndb/t0")); code != 2 ||
		!strings.Contains(stderr, "spec.distribution[0]") {
		t.Fatalf("malformed profile target: exit %d (want 2 at submit)\n%s", code, stderr)
	}
	closed := "oci://" + freeAddr(t) + "/exports/go:1"
	out, stderr, code := e.run("run", "submit", "--profile", "json:raw", "--source", "go="+testdata(t, "evidence/osv/golang-vulndb/t0"),
		"--push", closed, "--push", "s3://bucket/exports")
	if code != 10 || !strings.Contains(stderr, "ERR_EXPORT_DISTRIBUTION") {
		t.Fatalf("push to a closed port: exit %d (want 10)\n%s", code, stderr)
	}
	run := decodeRun(t, out)
	if run.State != exportapi.StateFailed || run.ErrorCode != "distribution" || run.ErrorType != "ERR_EXPORT_DISTRIBUTION" ||
		!strings.Contains(run.ErrorMessage, closed) || !strings.Contains(run.ErrorMessage, "s3://bucket/exports") {
		t.Fatalf("failed push run: %+v", run)
	}
	if len(run.Artifacts) == 0 {
		t.Fatal("the failed-push run lists no artifacts")
	}
	for _, a := range run.Artifacts {
		if _, err := os.Stat(a.Path); err != nil {
			t.Fatalf("bundle gone after a failed push: %v", err)
		}
	}
	dl := t.TempDir()
	if _, stderr, code := e.run("download", run.ID, "--output", dl); code != 0 {
		t.Fatalf("download of a failed-push run: exit %d %s", code, stderr)
	}
	if _, stderr, code := e.run("verify", filepath.Join(dl, run.Artifacts[0].Name)); code != 0 {
		t.Fatalf("verify the downloaded bundle: exit %d %s", code, stderr)
	}
}

// TestRegistryJavaDB: a trivy:java-db run pushed without a tag lands at the
// schema major (:1) in the form trivy --java-db-repository pulls: stock
// trivy downloads it into an empty cache's java-db/.
func TestRegistryJavaDB(t *testing.T) {
	tv := oracle(t, "trivy")
	addr := startRegistry(t)
	e := newEnv(t)
	c := e.cmd("run", "submit", "--profile", "trivy:java-db", "--source", "sbom="+testdata(t, "javadb/sbom"),
		"--push", "oci://"+addr+"/trivy-java-db")
	c.Env = append(c.Env, "STELLA_EXPORTCENTER_PROFILES_TRIVY_ENABLEJAVADB=true")
	var so, se strings.Builder
	c.Stdout, c.Stderr = &so, &se
	if err := c.Run(); err != nil {
		t.Fatalf("trivy:java-db run with --push: %v\n%s", err, se.String())
	}
	run := decodeRun(t, so.String())
	digest, m := getManifest(t, addr, "trivy-java-db", "1")
	if run.Extra["distribution.oci://"+addr+"/trivy-java-db"] != digest {
		t.Fatalf("run recorded %v, registry holds %s at :1", run.Extra, digest)
	}
	l0 := m["layers"].([]any)[0].(map[string]any)
	if l0["mediaType"] != "application/vnd.aquasec.trivy.javadb.layer.v1.tar+gzip" {
		t.Fatalf("java-db layer %v", l0)
	}
	cache := t.TempDir()
	tc := exec.Command(tv, "image", "--download-java-db-only", "--java-db-repository", addr+"/trivy-java-db:1",
		"--cache-dir", cache, "--skip-version-check", "--disable-telemetry", "--no-progress")
	tc.Env = offlineEnv(t)
	if b, err := tc.CombinedOutput(); err != nil {
		t.Fatalf("trivy --download-java-db-only: %v\n%s", err, b)
	}
	for _, f := range []string{"trivy-java.db", "metadata.json"} {
		if _, err := os.Stat(filepath.Join(cache, "java-db", f)); err != nil {
			t.Fatalf("trivy did not install java-db/%s from the registry: %v", f, err)
		}
	}
}

// TestRegistryAuth: against the real registry with htpasswd (basic) auth, an
// anonymous push fails with ERR_EXPORT_DISTRIBUTION naming the variables;
// STELLA_REGISTRY_USERNAME/PASSWORD and a docker config.json both work.
func TestRegistryAuth(t *testing.T) {
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	os.WriteFile(htpasswd, []byte("ci:"+string(hash)+"\n"), 0o600)
	addr := startRegistryWith(t, fmt.Sprintf("auth:\n  htpasswd: {realm: stella-test, path: %s}\n", htpasswd))
	e := newEnv(t)
	noDocker := t.TempDir()
	push := func(tag string, env ...string) (exportapi.Run, string, int) {
		c := e.cmd("run", "submit", "--profile", "json:raw", "--source", "go="+testdata(t, "evidence/osv/golang-vulndb/t0"),
			"--push", "oci://"+addr+"/exports/go:"+tag)
		c.Env = append(c.Env, append([]string{"DOCKER_CONFIG=" + noDocker, "STELLA_REGISTRY_USERNAME=", "STELLA_REGISTRY_PASSWORD="}, env...)...)
		var so, se strings.Builder
		c.Stdout, c.Stderr = &so, &se
		err := c.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return decodeRun(t, so.String()), se.String(), code
	}
	if run, stderr, code := push("anon"); code != 10 || run.ErrorCode != "distribution" || !strings.Contains(stderr, "STELLA_REGISTRY_USERNAME") {
		t.Fatalf("anonymous push: exit %d %+v\n%s", code, run, stderr)
	}
	if _, stderr, code := push("wrong", "STELLA_REGISTRY_USERNAME=ci", "STELLA_REGISTRY_PASSWORD=nope"); code != 10 {
		t.Fatalf("wrong password: exit %d\n%s", code, stderr)
	}
	if run, stderr, code := push("env", "STELLA_REGISTRY_USERNAME=ci", "STELLA_REGISTRY_PASSWORD=s3cret"); code != 0 || len(run.Extra) == 0 {
		t.Fatalf("env credentials: exit %d\n%s", code, stderr)
	}
	docker := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte("ci:s3cret"))
	os.WriteFile(filepath.Join(docker, "config.json"), []byte(`{"auths":{"`+addr+`":{"auth":"`+auth+`"}}}`), 0o600)
	if run, stderr, code := push("docker", "DOCKER_CONFIG="+docker); code != 0 || len(run.Extra) == 0 {
		t.Fatalf("docker config credentials: exit %d\n%s", code, stderr)
	}
}
