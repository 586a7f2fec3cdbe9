package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stellaops/stella/pkg/exportapi"
)

func TestProfileLifecycle(t *testing.T) {
	e := newEnv(t)
	out, _, code := e.run("profile", "list")
	var list []exportapi.Profile
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 6 {
		t.Fatalf("built-ins: exit %d, %d profiles\n%s", code, len(list), out)
	}
	f := filepath.Join(t.TempDir(), "p.yaml")
	write := func(body string) { os.WriteFile(f, []byte(body), 0o644) }
	write(`apiVersion: stellaops.io/export.v1
kind: ExportProfile
metadata: {name: pypi-only, tenant: default}
spec:
  kind: json
  variant: raw
  include: [advisories]
  selectors: {ecosystems: [PyPI]}
`)
	out, stderr, code := e.run("profile", "create", "-f", f)
	var p exportapi.Profile
	if code != 0 || json.Unmarshal([]byte(out), &p) != nil || p.Metadata.Revision != "r1" {
		t.Fatalf("create: exit %d %s %s", code, out, stderr)
	}
	if _, stderr, code := e.run("profile", "create", "-f", f); code != 2 || !strings.Contains(stderr, "already exists") {
		t.Fatalf("second create: exit %d %s", code, stderr)
	}
	if out, _, _ := e.run("profile", "update", "-f", f); !strings.Contains(out, `"revision": "r1"`) {
		t.Fatalf("unchanged update made a revision: %s", out)
	}
	// The profile's selectors apply to runs.
	src := "--source=pypa=" + testdata(t, "evidence/osv/pypa-advisory-database/t0")
	src2 := "--source=go=" + testdata(t, "evidence/osv/golang-vulndb/t0")
	out, stderr, code = e.run("run", "submit", "--profile", "pypi-only", src, src2)
	if code != 0 {
		t.Fatalf("run with the custom profile: %s", stderr)
	}
	r1 := decodeRun(t, out)
	if r1.Profile.Revision != "r1" || r1.Counts["raw.advisories"] == 0 || r1.Counts["raw.advisories"] != r1.Counts["records"] {
		t.Fatalf("r1 run: %+v", r1)
	}
	write(strings.Replace(string(mustRead(t, f)), "[PyPI]", "[Go]", 1))
	out, _, code = e.run("profile", "update", "-f", f)
	if code != 0 || !strings.Contains(out, `"revision": "r2"`) {
		t.Fatalf("update: %s", out)
	}
	out, _, _ = e.run("run", "submit", "--profile", "pypi-only", src, src2)
	if r2 := decodeRun(t, out); r2.Profile.Revision != "r2" || r2.ExportID == r1.ExportID {
		t.Fatalf("r2 run: %+v", r2)
	}
	out, _, _ = e.run("profile", "show", "pypi-only@r1")
	if !strings.Contains(out, "PyPI") {
		t.Fatalf("show @r1: %s", out)
	}
	if _, _, code := e.run("profile", "archive", "pypi-only"); code != 0 {
		t.Fatal("archive failed")
	}
	if _, stderr, code := e.run("run", "submit", "--profile", "pypi-only", src); code != 2 || !strings.Contains(stderr, "archived") {
		t.Fatalf("run of an archived profile: exit %d %s", code, stderr)
	}
	// Invalid documents name the field.
	write("apiVersion: stellaops.io/export.v1\nkind: ExportProfile\nmetadata: {name: X, tenant: default}\nspec: {kind: json, variant: raw, compression: {codec: lz4}}\n")
	if _, stderr, code := e.run("profile", "create", "-f", f); code != 2 || !strings.Contains(stderr, "metadata.name") || !strings.Contains(stderr, "spec.compression.codec") {
		t.Fatalf("invalid profile: exit %d %s", code, stderr)
	}
	write("apiVersion: stellaops.io/export.v1\nkind: ExportProfile\nmetadata: {name: typo, tenant: default}\nspec: {kind: json, variant: raw, colour: red}\n")
	if _, stderr, code := e.run("profile", "create", "-f", f); code != 2 || !strings.Contains(stderr, "colour") {
		t.Fatalf("unknown field: exit %d %s", code, stderr)
	}
}

func mustRead(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
