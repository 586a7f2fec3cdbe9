package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMovedDataDir: a data directory moved elsewhere (a bigger disk, a
// restored backup) keeps working. Runs record absolute artifact paths; the
// moved runs' bundles are found in their folders under the new place: run
// show names them there, download copies them, and a mirror delta takes
// the moved full run as its base.
func TestMovedDataDir(t *testing.T) {
	e := newEnv(t)
	t.Setenv("SOURCE_DATE_EPOCH", strconv.FormatInt(time.Now().Unix(), 10))
	src := "osv=" + testdata(t, "evidence/osv/pypa-advisory-database/t0")
	out, stderr, code := e.run("run", "submit", "--profile", "mirror:full", "--source", src)
	if code != 0 {
		t.Fatalf("full: %s", stderr)
	}
	full := decodeRun(t, out)
	moved := filepath.Join(t.TempDir(), "moved")
	if err := os.Rename(e.data, moved); err != nil {
		t.Fatal(err)
	}
	e.data = moved

	out, stderr, code = e.run("run", "show", full.ID)
	if code != 0 {
		t.Fatalf("show: %s", stderr)
	}
	shown := decodeRun(t, out)
	for _, a := range shown.Artifacts {
		if !strings.HasPrefix(a.Path, moved+string(filepath.Separator)) {
			t.Fatalf("artifact %s still named at %s", a.Name, a.Path)
		}
	}
	dl := t.TempDir()
	if _, stderr, code := e.run("download", full.ID, "--output", dl); code != 0 {
		t.Fatalf("download from the moved data directory: exit %d: %s", code, stderr)
	}
	out, stderr, code = e.run("run", "submit", "--profile", "mirror:delta", "--source", src)
	if code != 0 {
		t.Fatalf("delta on the moved base: exit %d: %s", code, stderr)
	}
	if delta := decodeRun(t, out); delta.BaseRunID != full.ID {
		t.Fatalf("delta base %q, want %q", delta.BaseRunID, full.ID)
	}
}
