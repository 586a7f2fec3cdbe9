package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stellaops/stella/internal/xerr"
)

// stella runs one CLI invocation against a data dir and returns stdout,
// stderr and the error.
func stella(t *testing.T, dataDir string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	f := &Factory{IO: &IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}}
	defer f.Close()
	cmd := NewRootCmd(f)
	cmd.SetArgs(append([]string{"export", "--data-dir", dataDir, "--config", filepath.Join(dataDir, "none.yaml")}, args...))
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func TestMirrorCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds bundles")
	}
	root, _ := filepath.Abs(filepath.Join("..", "..", "testdata", "mirror"))
	data := t.TempDir()
	os.WriteFile(filepath.Join(data, "none.yaml"), []byte("{}\n"), 0o644)
	t.Setenv("SOURCE_DATE_EPOCH", fmt.Sprint(time.Now().Add(-time.Hour).Unix()))
	src := func(snap string) []string {
		var a []string
		for _, n := range []string{"alma", "drupal", "policy", "sbom"} {
			a = append(a, "--source", n+"="+filepath.Join(root, snap, n))
		}
		return a
	}
	type run struct {
		ID        string `json:"runId"`
		State     string `json:"state"`
		BaseRunID string `json:"baseRunId"`
		Artifacts []struct {
			Path string `json:"path"`
		} `json:"artifacts"`
	}
	var runs []run
	for _, x := range []struct{ profile, snap string }{{"mirror:full", "t0"}, {"mirror:delta", "t1"}} {
		out, stderr, err := stella(t, data, append([]string{"run", "submit", "--profile", x.profile}, src(x.snap)...)...)
		if err != nil {
			t.Fatalf("%s: %v\n%s", x.profile, err, stderr)
		}
		var one run
		if err := json.Unmarshal([]byte(out), &one); err != nil || one.State != "succeeded" {
			t.Fatalf("%s: %v %s", x.profile, err, out)
		}
		runs = append(runs, one)
	}
	full, delta := runs[0].Artifacts[0].Path, runs[1].Artifacts[0].Path
	if runs[1].BaseRunID != runs[0].ID {
		t.Fatalf("delta base %q, want %q", runs[1].BaseRunID, runs[0].ID)
	}
	if !strings.HasSuffix(full, "-full-1.tar.zst") || !strings.HasSuffix(delta, "-delta-2.tar.zst") {
		t.Fatalf("names %s %s", full, delta)
	}
	// verify, by path and by run id; the common verify checks the chain fields too.
	for _, args := range [][]string{{"mirror", "verify", full}, {"mirror", "verify", runs[1].ID}, {"verify", delta}} {
		out, stderr, err := stella(t, data, args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s%s", args, err, out, stderr)
		}
		if !strings.Contains(out, `"mirror-chain"`) || !strings.Contains(out, `"ok": true`) {
			t.Fatalf("%v: %s", args, out)
		}
	}
	target := filepath.Join(t.TempDir(), "target")
	out, stderr, err := stella(t, data, "mirror", "apply", delta, full, "--target", target)
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, stderr)
	}
	var res struct {
		Applied []struct{ Sequence int } `json:"applied"`
	}
	if json.Unmarshal([]byte(out), &res); len(res.Applied) != 2 {
		t.Fatalf("apply: %s", out)
	}
	out, _, err = stella(t, data, "mirror", "apply", full, delta, "--target", target, "--format", "table")
	if err != nil || !strings.Contains(out, "nothing to do") {
		t.Fatalf("re-apply: %v %s", err, out)
	}
	out, _, err = stella(t, data, "mirror", "status", "--target", target, "--format", "table")
	if err != nil || !strings.Contains(out, "sequence 2") || !strings.Contains(out, "delta") {
		t.Fatalf("status: %v\n%s", err, out)
	}
	// A damaged bundle: exit code 3 and the apply_failed event on stderr.
	b, _ := os.ReadFile(delta)
	bad := filepath.Join(t.TempDir(), "bad.tar.zst")
	os.WriteFile(bad, b[:len(b)/2], 0o644)
	_, stderr, err = stella(t, data, "mirror", "apply", bad, "--target", target)
	if xerr.As(err).Code.ExitCode() != 3 || !strings.Contains(stderr, `"msg":"mirror.delta.apply_failed"`) {
		t.Fatalf("damaged: %v\n%s", err, stderr)
	}
	_, _, err = stella(t, data, "mirror", "verify", bad)
	if xerr.As(err).Code.ExitCode() != 3 {
		t.Fatalf("verify damaged: %v", err)
	}
	// The target is an evidence source.
	out, stderr, err = stella(t, data, "run", "submit", "--profile", "json:raw", "--source", "mirror="+target)
	if err != nil || !strings.Contains(out, `"succeeded"`) {
		t.Fatalf("json:raw from the target: %v\n%s", err, stderr)
	}
}
