package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// oracle finds a third-party client (cosign, trivy, age, …): $STELLA_<NAME>,
// else bin/<name> at the module root (tools/install.sh), else PATH. Without
// it the test is skipped, unless STELLA_REQUIRE_ORACLES is set (make test and
// CI set it), where a missing oracle fails the test.
func oracle(t *testing.T, name string) string {
	t.Helper()
	env := "STELLA_" + upper(name)
	if p := os.Getenv(env); p != "" {
		return p
	}
	if p, _ := filepath.Abs(filepath.Join("..", "..", "bin", name)); fileExists(p) {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if os.Getenv("STELLA_REQUIRE_ORACLES") != "" {
		t.Fatalf("%s is required (STELLA_REQUIRE_ORACLES is set) but not found: run tools/install.sh", name)
	}
	t.Skipf("%s not installed (tools/install.sh installs it; set %s to point at one)", name, env)
	return ""
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 32
		}
		if c == '-' {
			b[i] = '_'
		}
	}
	return string(b)
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// offlineEnv is an environment in which any network use fails fast.
func offlineEnv(t *testing.T) []string {
	home := t.TempDir()
	return append(os.Environ(), "HOME="+home, "TUF_ROOT="+filepath.Join(home, "tuf"),
		"HTTPS_PROXY=http://127.0.0.1:9", "HTTP_PROXY=http://127.0.0.1:9", "https_proxy=http://127.0.0.1:9",
		"http_proxy=http://127.0.0.1:9", "NO_PROXY=", "no_proxy=")
}
