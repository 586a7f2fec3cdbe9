package e2e

import (
	"archive/zip"
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// javaDBEnv enables trivy:java-db the way an operator does (config key
// ExportCenter.Profiles.Trivy.EnableJavaDb, here through its variable).
const javaDBEnv = "STELLA_EXPORTCENTER_PROFILES_TRIVY_ENABLEJAVADB=true"

// runWith runs stella like env.run, with extra environment variables.
func (e *env) runWith(extra []string, args ...string) (string, string, int) {
	e.t.Helper()
	c := e.cmd(args...)
	c.Env = append(c.Env, extra...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// vendoredJAR writes a JAR as a build that vendors a library leaves it:
// renamed, with only META-INF/MANIFEST.MF (no Maven or OSGi headers) and a
// class-less file — no pom.properties, no version in the file name, so trivy
// can name it by its SHA-1 only. The bytes are fixed (stored entries, fixed
// times), so its SHA-1 is the one testdata/javadb/sbom lists.
func vendoredJAR(t *testing.T, path string) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	mod := time.Date(2021, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, f := range []struct{ name, body string }{
		{"META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\nCreated-By: stella e2e test\r\n\r\n"},
		{"NOTICE.txt", "A vendored logging library (no classes in this test archive).\n"},
	} {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.name, Method: zip.Store, Modified: mod})
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(f.body))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	s := sha1.Sum(buf.Bytes())
	return hex.EncodeToString(s[:])
}

// trivyJSON is the part of `trivy --format json` the test reads.
type trivyJSON struct {
	Results []struct {
		Target   string
		Type     string
		Packages []struct {
			Name, Version, FilePath string
		}
		Vulnerabilities []struct {
			VulnerabilityID, PkgName, PkgPath, InstalledVersion, FixedVersion, Severity string
			VendorIDs                                                                   []string
		}
	}
}

// TestJavaDBIdentifiesJARWithoutPom is the proof of trivy:java-db: stock
// trivy, offline, names a JAR that has no pom.properties through the Java DB
// stella built from an SBOM (the JAR's SHA-1 -> Maven coordinates), and then
// reports the log4j advisory of the trivy:db bundle against it. The same
// scan with a Java DB that lacks the SHA-1 finds neither the package nor the
// advisory: the Java DB is what identified it.
func TestJavaDBIdentifiesJARWithoutPom(t *testing.T) {
	tv := oracle(t, "trivy")
	e := newEnv(t)
	sboms := testdata(t, "javadb/sbom")

	// Off by default: refused at submit, saying how to enable it.
	_, stderr, code := e.run("run", "submit", "--profile", "trivy:java-db", "--source", "sbom="+sboms)
	if code != 2 || !strings.Contains(stderr, "ERR_EXPORT_INVALID_INPUT") || !strings.Contains(stderr, "EnableJavaDb") {
		t.Fatalf("trivy:java-db without the toggle: exit %d, %s", code, stderr)
	}

	// The project: one vendored JAR.
	proj := t.TempDir()
	sha := vendoredJAR(t, filepath.Join(proj, "lib", "vendored-logging.jar"))
	sbom, err := os.ReadFile(filepath.Join(sboms, "legacy-billing.cdx.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(sbom), `"content": "`+sha+`"`) {
		t.Fatalf("the test JAR's SHA-1 %s is not the one testdata/javadb/sbom/legacy-billing.cdx.json lists (did archive/zip change its output?)", sha)
	}

	out, stderr, code := e.run("run", "submit", "--profile", "trivy:db", "--source", "gh="+testdata(t, "trivy/advisories"))
	if code != 0 {
		t.Fatalf("trivy:db run: %s", stderr)
	}
	dbRun := decodeRun(t, out)
	out, stderr, code = e.runWith([]string{javaDBEnv}, "run", "submit", "--profile", "trivy:java-db", "--source", "sbom="+sboms)
	if code != 0 {
		t.Fatalf("trivy:java-db run: %s", stderr)
	}
	javaRun := decodeRun(t, out)
	if out, stderr, code := e.run("verify", javaRun.ID, "--trivy"); code != 0 || !strings.Contains(out+stderr, "trivy-java-db") {
		t.Fatalf("verify --trivy of the java-db run: exit %d\n%s\n%s", code, out, stderr)
	}
	// The control: the same SBOM without hashes gives an empty Java DB.
	out, stderr, code = e.runWith([]string{javaDBEnv}, "run", "submit", "--profile", "trivy:java-db", "--allow-empty",
		"--source", "sbom="+testdata(t, "javadb/control"))
	if code != 0 {
		t.Fatalf("trivy:java-db control run: %s", stderr)
	}
	emptyRun := decodeRun(t, out)

	scan := func(javaRunID string) trivyJSON {
		t.Helper()
		cache := t.TempDir()
		for _, id := range []string{dbRun.ID, javaRunID} {
			if out, stderr, code := e.run("trivy", "import", id, "--cache-dir", cache); code != 0 {
				t.Fatalf("trivy import %s: exit %d %s %s", id, code, out, stderr)
			}
		}
		// rootfs, not fs: `trivy fs` scans lock files only and leaves
		// JARs (individual packages) to rootfs and image scans.
		c := exec.Command(tv, "rootfs", "--cache-dir", cache, "--skip-db-update", "--skip-java-db-update", "--offline-scan",
			"--skip-version-check", "--disable-telemetry", "--scanners", "vuln", "--list-all-pkgs", "--format", "json", "--debug", proj)
		c.Env = offlineEnv(t)
		var so, se bytes.Buffer
		c.Stdout, c.Stderr = &so, &se
		if err := c.Run(); err != nil {
			t.Fatalf("trivy: %v\n%s", err, se.String())
		}
		var r trivyJSON
		if err := json.Unmarshal(so.Bytes(), &r); err != nil {
			t.Fatalf("trivy output: %v\n%s", err, so.String())
		}
		// Both scans must have opened the JAR (the control is not vacuous).
		if !strings.Contains(se.String(), "Parsing Java artifacts") || !strings.Contains(se.String(), "vendored-logging.jar") {
			t.Fatalf("trivy did not parse the JAR:\n%s", se.String())
		}
		return r
	}

	const pkg, ver, adv = "org.apache.logging.log4j:log4j-core", "2.14.1", "GHSA-jfh8-c2jp-5v3q"
	got := scan(javaRun.ID)
	var named, reported bool
	for _, res := range got.Results {
		for _, p := range res.Packages {
			named = named || (p.Name == pkg && p.Version == ver && strings.HasSuffix(p.FilePath, "vendored-logging.jar"))
		}
		for _, v := range res.Vulnerabilities {
			if v.VulnerabilityID == adv && v.PkgName == pkg && v.InstalledVersion == ver {
				reported = true
				t.Logf("reported: %s %s %s in %s (fixed %s, severity %s, %v)", v.VulnerabilityID, v.PkgName, v.InstalledVersion, v.PkgPath, v.FixedVersion, v.Severity, v.VendorIDs)
			}
		}
	}
	if !named || !reported {
		t.Fatalf("with stella's Java DB trivy named the JAR: %v, reported %s: %v; results %+v", named, adv, reported, got.Results)
	}

	got = scan(emptyRun.ID)
	for _, res := range got.Results {
		for _, p := range res.Packages {
			if p.Name == pkg {
				t.Fatalf("without the SHA-1 in the Java DB trivy still named the JAR %s %s: something else identified it", p.Name, p.Version)
			}
		}
		if len(res.Vulnerabilities) > 0 {
			t.Fatalf("without the SHA-1 in the Java DB trivy reported %+v", res.Vulnerabilities)
		}
	}
}
