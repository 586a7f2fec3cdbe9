package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stellaops/stella/pkg/exportapi"
)

// signedRun makes a key with stella and a signed json:raw run of the sample.
func signedRun(t *testing.T) (e *env, keyDir string, run exportapi.Run, bundlePath string) {
	t.Helper()
	e = newEnv(t)
	keyDir = t.TempDir()
	t.Setenv("STELLA_SIGNING_PASSWORD", "correct horse")
	if _, stderr, code := e.run("key", "generate", "--output-key-prefix", filepath.Join(keyDir, "export-center")); code != 0 {
		t.Fatalf("key generate: %s", stderr)
	}
	t.Setenv("STELLA_EXPORTCENTER_SIGNING_KEY", filepath.Join(keyDir, "export-center.key"))
	out, stderr, code := e.run("run", "submit", "--profile", "json:raw", "--source", "sample="+testdata(t, "sample"))
	if code != 0 {
		t.Fatalf("signed run: %s", stderr)
	}
	run = decodeRun(t, out)
	for _, a := range run.Artifacts {
		if strings.HasSuffix(a.Name, ".tar.zst") {
			bundlePath = a.Path
		}
	}
	if len(run.Artifacts) != 3 {
		t.Fatalf("want bundle + .sig + .sigstore.json, got %+v", run.Artifacts)
	}
	return e, keyDir, run, bundlePath
}

func extract(t *testing.T, archive string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("tar", "--zstd", "-xf", archive, "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	return filepath.Join(dir, "json")
}

func cosign(t *testing.T, bin string, args ...string) (string, error) {
	c := exec.Command(bin, args...)
	c.Env = offlineEnv(t)
	out, err := c.CombinedOutput()
	return string(out), err
}

// TestCosignVerifiesOurBundles: stock cosign, offline, accepts every
// signature stella writes, and rejects them over changed bytes.
func TestCosignVerifiesOurBundles(t *testing.T) {
	cs := oracle(t, "cosign")
	_, keyDir, _, bundlePath := signedRun(t)
	pub := filepath.Join(keyDir, "export-center.pub")
	dir := extract(t, bundlePath)
	for sig, blob := range map[string]string{
		"signatures/export.sig":   "export.json",
		"signatures/manifest.sig": "manifest.yaml",
	} {
		if out, err := cosign(t, cs, "verify-blob", "--key", pub, "--signature", filepath.Join(dir, sig), "--insecure-ignore-tlog=true", filepath.Join(dir, blob)); err != nil || !strings.Contains(out, "Verified OK") {
			t.Fatalf("cosign verify-blob %s: %v\n%s", blob, err, out)
		}
	}
	if out, err := cosign(t, cs, "verify-blob", "--key", pub, "--signature", bundlePath+".sig", "--insecure-ignore-tlog=true", bundlePath); err != nil {
		t.Fatalf("cosign verify-blob archive: %v\n%s", err, out)
	}
	tr := filepath.Join(t.TempDir(), "tr.json")
	os.WriteFile(tr, []byte(`{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}`), 0o644)
	if out, err := cosign(t, cs, "verify-blob", "--key", pub, "--new-bundle-format", "--bundle", bundlePath+".sigstore.json",
		"--trusted-root", tr, "--insecure-ignore-tlog=true", bundlePath); err != nil {
		t.Fatalf("cosign verify-blob --bundle: %v\n%s", err, out)
	}
	if out, err := cosign(t, cs, "verify-blob-attestation", "--key", pub, "--signature", filepath.Join(dir, "provenance.dsse.json"),
		"--type", "slsaprovenance1", "--insecure-ignore-tlog=true", filepath.Join(dir, "export.json")); err != nil {
		t.Fatalf("cosign verify-blob-attestation of the DSSE provenance over export.json: %v\n%s", err, out)
	}
	// Changed bytes fail.
	ej := filepath.Join(dir, "export.json")
	b, _ := os.ReadFile(ej)
	os.WriteFile(ej, append(b, ' '), 0o644)
	if out, err := cosign(t, cs, "verify-blob", "--key", pub, "--signature", filepath.Join(dir, "signatures/export.sig"), "--insecure-ignore-tlog=true", ej); err == nil {
		t.Fatalf("cosign accepted a signature over changed bytes:\n%s", out)
	}
}

// TestStellaVerifiesCosignSignatures: signatures made by stock cosign over
// our files, with our key and with a cosign-made key, pass stella verify.
func TestStellaVerifiesCosignSignatures(t *testing.T) {
	cs := oracle(t, "cosign")
	e, keyDir, _, bundlePath := signedRun(t)
	pub := filepath.Join(keyDir, "export-center.pub")
	c := exec.Command(cs, "sign-blob", "--key", filepath.Join(keyDir, "export-center.key"), "--tlog-upload=false",
		"--output-signature", bundlePath+".sig", "--yes", bundlePath)
	c.Env = append(offlineEnv(t), "COSIGN_PASSWORD=correct horse")
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("cosign sign-blob: %v\n%s", err, out)
	}
	out, stderr, code := e.run("verify", bundlePath, "--key", pub)
	if code != 0 || !strings.Contains(out, `"archive-signature"`) {
		t.Fatalf("stella verify of a cosign signature: exit %d\n%s\n%s", code, out, stderr)
	}
	// A cosign key pair signs our runs, and cosign verifies the result.
	ck := t.TempDir()
	c = exec.Command(cs, "generate-key-pair")
	c.Dir, c.Env = ck, append(offlineEnv(t), "COSIGN_PASSWORD=pw2")
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
	}
	t.Setenv("STELLA_SIGNING_PASSWORD", "pw2")
	t.Setenv("STELLA_EXPORTCENTER_SIGNING_KEY", filepath.Join(ck, "cosign.key"))
	out, stderr, code = e.run("run", "submit", "--profile", "json:raw", "--source", "go="+testdata(t, "evidence/osv/golang-vulndb/t0"))
	if code != 0 {
		t.Fatalf("run with a cosign key: %s", stderr)
	}
	var arch string
	for _, a := range decodeRun(t, out).Artifacts {
		if strings.HasSuffix(a.Name, ".tar.zst") {
			arch = a.Path
		}
	}
	if out, err := cosign(t, cs, "verify-blob", "--key", filepath.Join(ck, "cosign.pub"), "--signature", arch+".sig", "--insecure-ignore-tlog=true", arch); err != nil {
		t.Fatalf("cosign verify of a run signed with a cosign key: %v\n%s", err, out)
	}
	if _, stderr, code := e.run("verify", arch, "--key", pub); code != 3 || !strings.Contains(stderr, "signature") {
		t.Fatalf("verify with another key: exit %d, want 3: %s", code, stderr)
	}
}

type verifyOut struct {
	OK     bool
	Checks []struct {
		Check  string
		OK     bool
		Detail string
	}
}

func failedChecks(t *testing.T, out string) []string {
	var v verifyOut
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("verify output: %v\n%s", err, out)
	}
	var f []string
	for _, c := range v.Checks {
		if !c.OK {
			f = append(f, c.Check)
		}
	}
	return f
}

// TestVerifyTamperMatrix: every tamper case exits 3 naming the failing check.
func TestVerifyTamperMatrix(t *testing.T) {
	e, keyDir, _, bundlePath := signedRun(t)
	pub := filepath.Join(keyDir, "export-center.pub")
	other := t.TempDir()
	if _, stderr, code := e.run("key", "generate", "--output-key-prefix", filepath.Join(other, "other")); code != 0 {
		t.Fatal(stderr)
	}
	if out, stderr, code := e.run("verify", bundlePath, "--key", pub); code != 0 {
		t.Fatalf("untampered: exit %d\n%s%s", code, out, stderr)
	}
	orig, _ := os.ReadFile(bundlePath)
	dataFile := func(dir string) string {
		m, _ := filepath.Glob(filepath.Join(dir, "data", "raw", "advisories", "*.jsonl.zst"))
		return m[0]
	}
	cases := []struct {
		name  string
		make  func(t *testing.T) string // returns the target to verify
		key   string
		check string
	}{
		{"flipped byte", func(t *testing.T) string {
			d := extract(t, bundlePath)
			b, _ := os.ReadFile(dataFile(d))
			b[len(b)/2] ^= 1
			os.WriteFile(dataFile(d), b, 0o644)
			return d
		}, pub, "digests"},
		{"truncated archive", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "t.tar.zst")
			os.WriteFile(p, orig[:len(orig)*2/3], 0o644)
			return p
		}, pub, "archive"},
		{"missing entry", func(t *testing.T) string {
			d := extract(t, bundlePath)
			os.Remove(dataFile(d))
			return d
		}, pub, "digests"},
		{"extra entry", func(t *testing.T) string {
			d := extract(t, bundlePath)
			os.WriteFile(filepath.Join(d, "data", "extra.jsonl"), []byte("{}\n"), 0o644)
			return d
		}, pub, "unlisted-entries"},
		{"swapped signature", func(t *testing.T) string {
			d := extract(t, bundlePath)
			a, _ := os.ReadFile(filepath.Join(d, "signatures/export.sig"))
			b, _ := os.ReadFile(filepath.Join(d, "signatures/manifest.sig"))
			os.WriteFile(filepath.Join(d, "signatures/export.sig"), b, 0o644)
			os.WriteFile(filepath.Join(d, "signatures/manifest.sig"), a, 0o644)
			return d
		}, pub, "signature signatures/export.sig"},
		{"wrong key", func(t *testing.T) string { return bundlePath }, filepath.Join(other, "other.pub"), "signature signatures/export.sig"},
		{"edited export.json, digests recomputed, old signature", func(t *testing.T) string {
			d := extract(t, bundlePath)
			p := filepath.Join(d, "export.json")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, bytes.Replace(b, []byte(`"version":"`), []byte(`"version":"x`), 1), 0o644)
			return d
		}, pub, "signature signatures/export.sig"},
		{"expired bundle", func(t *testing.T) string {
			d := extract(t, bundlePath)
			p := filepath.Join(d, "export.json")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, bytes.Replace(b, []byte(`"exportId"`), []byte(`"expires":"2020-01-01T00:00:00Z","exportId"`), 1), 0o644)
			return d
		}, pub, "expiry"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			target := c.make(t)
			out, stderr, code := e.run("verify", target, "--key", c.key)
			if code != 3 {
				t.Fatalf("exit %d, want 3\n%s\n%s", code, out, stderr)
			}
			failed := failedChecks(t, out)
			found := false
			for _, f := range failed {
				if f == c.check {
					found = true
				}
			}
			if !found || !strings.Contains(stderr, c.check) {
				t.Fatalf("failing checks %v (stderr %q), want %q among them", failed, stderr, c.check)
			}
		})
	}
}

// TestVerifyOffline runs verify in an empty network namespace.
func TestVerifyOffline(t *testing.T) {
	e, keyDir, _, bundlePath := signedRun(t)
	if err := exec.Command("unshare", "-n", "true").Run(); err != nil {
		t.Skipf("no network namespaces here (%v); the proxy-variable environment of the cosign tests covers this", err)
	}
	c := exec.Command("unshare", "-n", stellaBin, "export", "--data-dir", e.data, "verify", bundlePath, "--key", filepath.Join(keyDir, "export-center.pub"))
	c.Env = offlineEnv(t)
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("verify without a network: %v\n%s", err, out)
	}
}

// TestSigningFailures: key trouble fails the run with ERR_EXPORT_SIGNING
// (exit 10) before anything is marked complete; a retry with the key back
// gives the same unsigned content.
func TestSigningFailures(t *testing.T) {
	e, keyDir, run, _ := signedRun(t)
	src := "sample=" + testdata(t, "sample")
	t.Setenv("STELLA_EXPORTCENTER_SIGNING_KEY", filepath.Join(keyDir, "missing.key"))
	out, stderr, code := e.run("run", "submit", "--profile", "json:raw", "--source", src)
	if code != 10 || !strings.Contains(stderr, "ERR_EXPORT_SIGNING") || !strings.Contains(stderr, "missing.key") {
		t.Fatalf("missing key: exit %d: %s", code, stderr)
	}
	failed := decodeRun(t, out)
	if failed.ErrorCode != "signing" || len(failed.Artifacts) != 0 {
		t.Fatalf("ledger: %+v", failed)
	}
	if left, _ := filepath.Glob(filepath.Join(e.data, "runs", failed.ID, "*")); len(left) != 0 {
		t.Fatalf("a run that failed signing left %v", left)
	}
	t.Setenv("STELLA_EXPORTCENTER_SIGNING_KEY", filepath.Join(keyDir, "export-center.key"))
	t.Setenv("STELLA_SIGNING_PASSWORD", "wrong")
	_, stderr, code = e.run("run", "submit", "--profile", "json:raw", "--source", src)
	if code != 10 || !strings.Contains(stderr, "STELLA_SIGNING_PASSWORD") {
		t.Fatalf("wrong password: exit %d: %s", code, stderr)
	}
	t.Setenv("STELLA_SIGNING_PASSWORD", "correct horse")
	out, stderr, code = e.run("run", "submit", "--profile", "json:raw", "--source", src)
	if code != 0 {
		t.Fatalf("retry: %s", stderr)
	}
	if again := decodeRun(t, out); again.ExportID != run.ExportID || again.Artifacts[0].SHA256 != run.Artifacts[0].SHA256 {
		t.Fatalf("retry differs: %s/%s vs %s/%s", again.ExportID, again.Artifacts[0].SHA256, run.ExportID, run.Artifacts[0].SHA256)
	}
}

// TestCosignVerifiesTrivyDBSignature: the runbook's CI job —
// cosign verify-blob --signature signatures/trivy-db.sig trivy/db.bundle.
func TestCosignVerifiesTrivyDBSignature(t *testing.T) {
	cs := oracle(t, "cosign")
	e, keyDir, _, _ := signedRun(t)
	out, stderr, code := e.run("run", "submit", "--profile", "trivy:db", "--source", "pypa="+testdata(t, "evidence/osv/pypa-advisory-database/t1"))
	if code != 0 {
		t.Fatalf("signed trivy:db run: %s", stderr)
	}
	var arch string
	for _, a := range decodeRun(t, out).Artifacts {
		if strings.HasSuffix(a.Name, ".tar.zst") {
			arch = a.Path
		}
	}
	dir := t.TempDir()
	if b, err := exec.Command("tar", "--zstd", "-xf", arch, "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, b)
	}
	root := filepath.Join(dir, "trivy")
	pub := filepath.Join(keyDir, "export-center.pub")
	if out, err := cosign(t, cs, "verify-blob", "--key", pub, "--signature", filepath.Join(root, "signatures/trivy-db.sig"),
		"--insecure-ignore-tlog=true", filepath.Join(root, "trivy/db.bundle")); err != nil || !strings.Contains(out, "Verified OK") {
		t.Fatalf("cosign verify-blob trivy-db.sig: %v\n%s", err, out)
	}
	if _, stderr, code := e.run("verify", arch, "--key", pub, "--trivy"); code != 0 {
		t.Fatalf("stella verify --key --trivy: %s", stderr)
	}
}
