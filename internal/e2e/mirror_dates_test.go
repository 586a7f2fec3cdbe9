package e2e

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMirrorWithoutDates: golang/vulndb's repository has zero dates; a mirror
// of it would be born expired. The run is refused with what to set, and with
// SOURCE_DATE_EPOCH the bundle applies.
func TestMirrorWithoutDates(t *testing.T) {
	e := newEnv(t)
	src := "go=" + testdata(t, "evidence/osv/golang-vulndb/t0")
	_, stderr, code := e.run("run", "submit", "--profile", "mirror:full", "--source", src)
	if code != 2 || !strings.Contains(stderr, "SOURCE_DATE_EPOCH") || !strings.Contains(stderr, "expired") {
		t.Fatalf("dateless mirror: exit %d: %s", code, stderr)
	}
	t.Setenv("SOURCE_DATE_EPOCH", strconv.FormatInt(time.Now().Unix(), 10))
	out, stderr, code := e.run("run", "submit", "--profile", "mirror:full", "--source", src)
	if code != 0 {
		t.Fatalf("with SOURCE_DATE_EPOCH: %s", stderr)
	}
	run := decodeRun(t, out)
	if _, stderr, code := e.run("mirror", "apply", run.Artifacts[0].Path, "--target", filepath.Join(t.TempDir(), "target")); code != 0 {
		t.Fatalf("apply: %s", stderr)
	}
}
