package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestTrivyImportAndScan: the CI smoke job of the runbook, through the CLI:
// a trivy:db run, verify --trivy, trivy import, then stock trivy scans offline.
func TestTrivyImportAndScan(t *testing.T) {
	tv := oracle(t, "trivy")
	e := newEnv(t)
	out, stderr, code := e.run("run", "submit", "--profile", "trivy:db", "--source", "pypa="+testdata(t, "evidence/osv/pypa-advisory-database/t1"))
	if code != 0 {
		t.Fatalf("trivy:db run: %s", stderr)
	}
	run := decodeRun(t, out)
	if _, stderr, code := e.run("verify", run.ID, "--trivy"); code != 0 {
		t.Fatalf("verify --trivy: exit %d %s", code, stderr)
	}
	cache := t.TempDir()
	if _, stderr, code := e.run("trivy", "import", run.ID, "--cache-dir", cache); code != 0 {
		t.Fatalf("trivy import: %s", stderr)
	}
	scan := func(pin string) string {
		proj := t.TempDir()
		os.WriteFile(filepath.Join(proj, "requirements.txt"), []byte(pin+"\n"), 0o644)
		c := exec.Command(tv, "fs", "--cache-dir", cache, "--skip-db-update", "--skip-java-db-update", "--offline-scan",
			"--skip-version-check", "--disable-telemetry", "--scanners", "vuln", "--format", "json", proj)
		c.Env = offlineEnv(t)
		b, err := c.Output()
		if err != nil {
			t.Fatalf("trivy: %v", err)
		}
		return string(b)
	}
	if got := scan("deluge==2.0.0"); !strings.Contains(got, "PYSEC-2022-256") {
		t.Fatalf("deluge 2.0.0 (inside the affected range) not reported:\n%s", got)
	}
	if got := scan("deluge==2.1.0"); strings.Contains(got, "PYSEC-2022-256") {
		t.Fatalf("deluge 2.1.0 (the fixed version) reported")
	}
	// A db.bundle with a broken schema is refused, naming the trivy versions.
	if _, stderr, code := e.run("trivy", "import", "/etc/hostname", "--cache-dir", t.TempDir()); code == 0 {
		t.Fatalf("importing a non-bundle succeeded: %s", stderr)
	}
}
