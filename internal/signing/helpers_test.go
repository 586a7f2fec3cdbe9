package signing

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// moduleRoot finds the directory holding go.mod, upwards from the package.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

var cosignVersionOnce sync.Once

// cosignPath returns the real cosign binary (the oracle): $STELLA_COSIGN,
// else bin/cosign under the module root. When it is missing the test is
// skipped, unless STELLA_REQUIRE_ORACLES is set (CI), where it fails.
func cosignPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("STELLA_COSIGN")
	where := "STELLA_COSIGN=" + p
	if p == "" {
		p = filepath.Join(moduleRoot(t), "bin", "cosign")
		where = p
	}
	if !isExecutable(p) {
		msg := "cosign oracle not found at " + where +
			" (run tools/install.sh cosign, or set STELLA_COSIGN to a cosign v2 binary)"
		if os.Getenv("STELLA_REQUIRE_ORACLES") != "" {
			t.Fatal(msg + "; STELLA_REQUIRE_ORACLES is set, so a missing oracle is a failure")
		}
		t.Skip(msg + "; set STELLA_REQUIRE_ORACLES=1 to make this a failure")
	}
	cosignVersionOnce.Do(func() {
		out, _ := exec.Command(p, "version").CombinedOutput()
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "GitVersion:") {
				t.Logf("oracle: %s %s", p, strings.Join(strings.Fields(l)[1:], " "))
			}
		}
	})
	return p
}

// cosignRun runs the oracle in dir with a closed environment: HOME and
// TUF_ROOT are temporary directories (nothing lands in the real $HOME) and
// every proxy variable points at a closed local port, so any network access
// cosign tried would fail: a success proves none is needed.
type cosignRun struct {
	t    *testing.T
	bin  string
	dir  string
	home string
}

func newCosign(t *testing.T) *cosignRun {
	t.Helper()
	bin := cosignPath(t)
	dir := t.TempDir()
	home := filepath.Join(dir, ".home")
	if err := os.MkdirAll(filepath.Join(home, "tuf"), 0o755); err != nil {
		t.Fatal(err)
	}
	return &cosignRun{t: t, bin: bin, dir: dir, home: home}
}

// run executes cosign with args (relative paths are under c.dir) and extra
// environment entries; it returns the combined output and whether it exited 0.
func (c *cosignRun) run(env []string, args ...string) (string, bool) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Dir = c.dir
	const deadProxy = "http://127.0.0.1:9"
	cmd.Env = append([]string{
		"PATH=/usr/bin:/bin",
		"HOME=" + c.home,
		"TUF_ROOT=" + filepath.Join(c.home, "tuf"),
		"TMPDIR=" + c.home,
		"HTTPS_PROXY=" + deadProxy, "HTTP_PROXY=" + deadProxy,
		"https_proxy=" + deadProxy, "http_proxy=" + deadProxy,
		"NO_PROXY=", "no_proxy=",
	}, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Stdin = nil
	err := cmd.Run()
	if ctx.Err() != nil {
		c.t.Fatalf("cosign %s: timed out\n%s", strings.Join(args, " "), out.String())
	}
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			c.t.Fatalf("cosign %s: %v", strings.Join(args, " "), err)
		}
	}
	return out.String(), err == nil
}

// mustPass runs cosign and fails the test unless it exits 0 (and, for verify
// commands, prints "Verified OK").
func (c *cosignRun) mustPass(env []string, args ...string) string {
	c.t.Helper()
	out, ok := c.run(env, args...)
	if !ok {
		c.t.Fatalf("cosign %s: failed, want success:\n%s", strings.Join(args, " "), out)
	}
	if strings.HasPrefix(args[0], "verify") && !strings.Contains(out, "Verified OK") {
		c.t.Fatalf("cosign %s: exit 0 without \"Verified OK\":\n%s", strings.Join(args, " "), out)
	}
	return out
}

// mustFail runs cosign and fails the test if it exits 0.
func (c *cosignRun) mustFail(env []string, args ...string) string {
	c.t.Helper()
	out, ok := c.run(env, args...)
	if ok {
		c.t.Fatalf("cosign %s: succeeded, want failure:\n%s", strings.Join(args, " "), out)
	}
	return out
}

func (c *cosignRun) path(name string) string { return filepath.Join(c.dir, name) }

func (c *cosignRun) write(name string, data []byte) string {
	c.t.Helper()
	p := c.path(name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		c.t.Fatal(err)
	}
	return p
}

func (c *cosignRun) read(name string) []byte {
	c.t.Helper()
	b, err := os.ReadFile(c.path(name))
	if err != nil {
		c.t.Fatal(err)
	}
	return b
}

// testBlob is 256 KiB of random bytes plus some text: big enough that a
// streaming bug would show, random so that no two runs sign the same thing.
func testBlob(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, 256<<10)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return append(b, []byte("\nstella signing test blob\n")...)
}

// flip returns a copy of b with one bit changed in the middle.
func flip(b []byte) []byte {
	c := bytes.Clone(b)
	c[len(c)/2] ^= 0x01
	return c
}

func staticPassword(pw string) func() ([]byte, error) {
	return func() ([]byte, error) { return []byte(pw), nil }
}

// keyPair is a generated key pair written to files under dir.
type keyPair struct {
	priv, pub         []byte
	privPath, pubPath string
	signer            Signer
	verifier          Verifier
}

func newKeyPair(t *testing.T, dir, name, password string) keyPair {
	t.Helper()
	priv, pub, err := GenerateKeyPair([]byte(password))
	if err != nil {
		t.Fatal(err)
	}
	kp := keyPair{priv: priv, pub: pub,
		privPath: filepath.Join(dir, name+".key"), pubPath: filepath.Join(dir, name+".pub")}
	if err := os.WriteFile(kp.privPath, priv, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kp.pubPath, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	kp.signer, err = LoadSigner(context.Background(), kp.privPath, staticPassword(password))
	if err != nil {
		t.Fatal(err)
	}
	kp.verifier, err = LoadVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}
