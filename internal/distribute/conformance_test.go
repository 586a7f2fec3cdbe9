package distribute

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stellaops/stella/internal/xerr"
)

// backend opens targets of one kind. Each call of open gives a fresh, empty
// store; the function it returns opens a target in that store at a
// "repo:tag" (or "repo") path.
type backend struct {
	name string
	open func(t *testing.T) func(path string) Target
}

// backends is every backend the conformance test runs against. An object
// storage backend joins this list when it is built.
var backends = []backend{
	{"oci", func(t *testing.T) func(string) Target {
		_, host := newMemRegistry(t)
		return func(p string) Target {
			tg, err := Open("oci://"+host+"/"+p, Options{})
			if err != nil {
				t.Fatal(err)
			}
			return tg
		}
	}},
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConformance is the contract of a Target, run against every backend.
func TestConformance(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { conformance(t, b.open(t)) })
	}
}

func conformance(t *testing.T, open func(string) Target) {
	ctx := context.Background()
	src := t.TempDir()
	db := writeFile(t, src, "db.bundle", bytes.Repeat([]byte("trivy db "), 5000))
	arch := writeFile(t, src, "json-default-raw-20260101.tar.zst", bytes.Repeat([]byte("bundle "), 3000))
	sig := writeFile(t, src, "json-default-raw-20260101.tar.zst.sig", []byte("MEUCIQ==\n"))

	pullOne := func(tg Target) (Result, map[string][]byte, []Layer) {
		t.Helper()
		dir := t.TempDir()
		res, layers, err := tg.Pull(ctx, dir)
		if err != nil {
			t.Fatalf("pull %s: %v", tg, err)
		}
		files := map[string][]byte{}
		for _, l := range layers {
			b, err := os.ReadFile(l.Path)
			if err != nil {
				t.Fatal(err)
			}
			files[l.Title] = b
		}
		return res, files, layers
	}

	t.Run("trivy db round trip", func(t *testing.T) {
		tg := open("trivy-db:2")
		a := TrivyDB(db)
		_, want, err := Manifest(a)
		if err != nil {
			t.Fatal(err)
		}
		res, err := tg.Push(ctx, a)
		if err != nil {
			t.Fatalf("push: %v", err)
		}
		if res.Digest != want || res.MediaType != ManifestMediaType || res.Target != tg.String() {
			t.Fatalf("push result %+v, want digest %s", res, want)
		}
		got, files, layers := pullOne(tg)
		if got.Digest != want {
			t.Fatalf("pulled manifest %s, pushed %s", got.Digest, want)
		}
		orig, _ := os.ReadFile(db)
		if len(layers) != 1 || layers[0].Title != "db.tar.gz" || layers[0].MediaType != TrivyDBLayerMediaType || !bytes.Equal(files["db.tar.gz"], orig) {
			t.Fatalf("pulled layers %+v", layers)
		}
		// Pushing the same artifact again is harmless and deterministic.
		again, err := tg.Push(ctx, TrivyDB(db))
		if err != nil || again.Digest != want {
			t.Fatalf("second push: %+v %v", again, err)
		}
	})

	t.Run("default tag", func(t *testing.T) {
		res, err := open("defaults").Push(ctx, TrivyDB(db))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := open("defaults:"+TrivyDBTag).Pull(ctx, t.TempDir()); err != nil {
			t.Fatalf("a trivy DB pushed without a tag is not at :%s: %v (%+v)", TrivyDBTag, err, res)
		}
		_, err = open("defaults").Push(ctx, Bundle(Layer{Path: arch}))
		if xerr.CodeOf(err) != xerr.Distribution {
			t.Fatalf("a bundle without a tag: %v, want ERR_EXPORT_DISTRIBUTION", err)
		}
	})

	t.Run("bundle with detached signature", func(t *testing.T) {
		tg := open("exports/json:r1")
		res, err := tg.Push(ctx, Bundle(Layer{Path: arch}, Layer{MediaType: "application/vnd.dev.cosign.signature.v1+base64", Title: filepath.Base(sig), Path: sig}))
		if err != nil {
			t.Fatal(err)
		}
		got, files, layers := pullOne(tg)
		if got.Digest != res.Digest || len(layers) != 2 || layers[0].Title != filepath.Base(arch) || layers[0].MediaType != BundleLayerMediaType {
			t.Fatalf("pulled %+v %+v, pushed %+v", got, layers, res)
		}
		for _, p := range []string{arch, sig} {
			b, _ := os.ReadFile(p)
			if !bytes.Equal(files[filepath.Base(p)], b) {
				t.Fatalf("%s differs after the round trip", p)
			}
		}
	})

	t.Run("retag and failed push", func(t *testing.T) {
		tg := open("moving:latest")
		first, err := tg.Push(ctx, TrivyDB(db))
		if err != nil {
			t.Fatal(err)
		}
		second, err := tg.Push(ctx, Bundle(Layer{Path: arch}))
		if err != nil || second.Digest == first.Digest {
			t.Fatalf("retag: %+v %v", second, err)
		}
		if got, _, _ := pullOne(tg); got.Digest != second.Digest {
			t.Fatalf("tag points at %s, want the latest push %s", got.Digest, second.Digest)
		}
		// A push that fails part-way leaves the tag where it was.
		if _, err := tg.Push(ctx, TrivyDB(filepath.Join(src, "missing"))); err == nil {
			t.Fatal("pushing a missing file succeeded")
		}
		if got, _, _ := pullOne(tg); got.Digest != second.Digest {
			t.Fatalf("after a failed push the tag points at %s, want %s", got.Digest, second.Digest)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := open("cancelled:1").Push(cctx, TrivyDB(db)); err == nil {
			t.Fatal("a push with a cancelled context succeeded")
		}
	})
}
