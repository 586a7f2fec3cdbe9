package bundle

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/stellaops/stella/internal/canon"
	"github.com/stellaops/stella/pkg/exportapi"
)

func stageWith(t *testing.T, files map[string]string) *Stage {
	t.Helper()
	s, err := NewStage(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for p, c := range files {
		if err := s.Put(p, "text/plain", []byte(c), 1); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// buildBundle stages files plus a valid export.json and manifest.yaml.
func buildBundle(t *testing.T, files map[string]string) *Stage {
	t.Helper()
	s := stageWith(t, files)
	m := &exportapi.Manifest{Schema: exportapi.ManifestSchema, Version: "test", Tenant: "default",
		Profile:     exportapi.ManifestProfile{Kind: "json", Variant: "raw", Name: "json-raw", Revision: "r1"},
		GeneratedAt: "2026-01-01T00:00:00Z", Skipped: []exportapi.Skipped{}, Sources: []exportapi.ManifestSource{}}
	m.Contents = s.Entries()
	m.RerunHash = RerunHash(m.Contents)
	m.ExportID = ExportID(m.Tenant, m.Profile.Name, m.RerunHash)
	raw, err := canon.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put("export.json", "application/json", raw, 0); err != nil {
		t.Fatal(err)
	}
	y, err := RenderSummary(raw, m)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put("manifest.yaml", "application/yaml", y, 0); err != nil {
		t.Fatal(err)
	}
	return s
}

func archive(t *testing.T, s *Stage) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := s.WriteArchive(&buf, ArchiveOptions{Root: "json", Codec: Zstd}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestArchiveIsDeterministic(t *testing.T) {
	files := map[string]string{"data/b.txt": "bee", "data/a.txt": "ay", "README.md": "hi", "data/sub/c.txt": strings.Repeat("c", 1<<20)}
	a := archive(t, buildBundle(t, files))
	b := archive(t, buildBundle(t, files))
	if !bytes.Equal(a, b) {
		t.Fatal("two archives of the same files differ")
	}
	// Entries: sorted, directories first, zero times and owners, fixed modes.
	d, _ := zstd.NewReader(bytes.NewReader(a))
	tr := tar.NewReader(d)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.ModTime.Unix() != 0 || h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: mtime %v uid %d gid %d uname %q", h.Name, h.ModTime, h.Uid, h.Gid, h.Uname)
		}
		want := int64(0o644)
		if h.Typeflag == tar.TypeDir {
			want = 0o755
		}
		if h.Mode != want {
			t.Errorf("%s: mode %o, want %o", h.Name, h.Mode, want)
		}
	}
	want := []string{"json/", "json/README.md", "json/data/", "json/data/a.txt", "json/data/b.txt", "json/data/sub/",
		"json/data/sub/c.txt", "json/export.json", "json/manifest.yaml"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("entries\n got %v\nwant %v", names, want)
	}
}

func writeFile(t *testing.T, b []byte) string {
	p := filepath.Join(t.TempDir(), "b.tar.zst")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVerifyGoodBundle(t *testing.T) {
	p := writeFile(t, archive(t, buildBundle(t, map[string]string{"data/x.jsonl": "{}\n"})))
	rep := Verify(p, VerifyOptions{})
	if !rep.OK {
		t.Fatalf("good bundle failed: %+v", rep.Failed())
	}
}

// rawTar builds a zstd tar from hand-made headers.
func rawTar(t *testing.T, ents []tar.Header, bodies []string) []byte {
	t.Helper()
	var buf bytes.Buffer
	z, _ := zstd.NewWriter(&buf)
	tw := tar.NewWriter(z)
	for i, h := range ents {
		h := h
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(bodies[i]))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(bodies[i]))
		}
	}
	tw.Close()
	z.Close()
	return buf.Bytes()
}

func TestWalkArchiveRefusesUnsafeEntries(t *testing.T) {
	reg := func(n string) tar.Header { return tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644} }
	cases := map[string]struct {
		hs     []tar.Header
		bodies []string
	}{
		"traversal": {[]tar.Header{reg("json/../../etc/passwd")}, []string{"x"}},
		"absolute":  {[]tar.Header{reg("/json/x")}, []string{"x"}},
		"symlink":   {[]tar.Header{reg("json/a"), {Name: "json/l", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}}, []string{"a", ""}},
		"hardlink":  {[]tar.Header{reg("json/a"), {Name: "json/h", Typeflag: tar.TypeLink, Linkname: "json/a"}}, []string{"a", ""}},
		"two roots": {[]tar.Header{reg("json/a"), reg("other/b")}, []string{"a", "b"}},
		"duplicate": {[]tar.Header{reg("json/a"), reg("json/a")}, []string{"a", "b"}},
		"top-level": {[]tar.Header{reg("file")}, []string{"a"}},
		"device":    {[]tar.Header{{Name: "json/dev", Typeflag: tar.TypeChar}}, []string{""}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := WalkArchive(bytes.NewReader(rawTar(t, c.hs, c.bodies)), ReadLimits{}, func(string, int64, io.Reader) error { return nil })
			if !errors.Is(err, ErrUnsafe) {
				t.Fatalf("got %v, want ErrUnsafe", err)
			}
		})
	}
}

func TestWalkArchiveStopsBombs(t *testing.T) {
	// 300 MiB of zeros compresses to a few KiB: far over a 200x ratio.
	var buf bytes.Buffer
	z, _ := zstd.NewWriter(&buf)
	tw := tar.NewWriter(z)
	const n = 300 << 20
	tw.WriteHeader(&tar.Header{Name: "json/zeros", Typeflag: tar.TypeReg, Size: n, Mode: 0o644})
	zero := make([]byte, 1<<20)
	for i := 0; i < n>>20; i++ {
		tw.Write(zero)
	}
	tw.Close()
	z.Close()
	_, err := WalkArchive(bytes.NewReader(buf.Bytes()), ReadLimits{}, func(string, int64, io.Reader) error { return nil })
	if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "bomb") {
		t.Fatalf("got %v, want a decompression-bomb error", err)
	}
	_, err = WalkArchive(bytes.NewReader(buf.Bytes()), ReadLimits{MaxEntryBytes: 1 << 20}, func(string, int64, io.Reader) error { return nil })
	if !errors.Is(err, ErrUnsafe) {
		t.Fatalf("entry limit: got %v", err)
	}
}

func TestVerifyTamperMatrix(t *testing.T) {
	good := archive(t, buildBundle(t, map[string]string{"data/x.jsonl": "{\"a\":1}\n", "data/y.jsonl": "{}\n"}))
	// Rebuild variants from the good stage contents.
	mutate := func(f func(files map[string][]byte)) []byte {
		files := map[string][]byte{}
		_, err := WalkArchive(bytes.NewReader(good), ReadLimits{}, func(rel string, _ int64, r io.Reader) error {
			b, _ := io.ReadAll(r)
			files[rel] = b
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		f(files)
		s, _ := NewStage(t.TempDir())
		for p, b := range files {
			s.Put(p, "x", b, 0)
		}
		return archive(t, s)
	}
	cases := map[string]struct {
		data  []byte
		check string
	}{
		"flipped byte":  {mutate(func(m map[string][]byte) { m["data/x.jsonl"][2] ^= 1 }), "digests"},
		"missing entry": {mutate(func(m map[string][]byte) { delete(m, "data/y.jsonl") }), "digests"},
		"extra entry":   {mutate(func(m map[string][]byte) { m["data/z.jsonl"] = []byte("{}") }), "unlisted-entries"},
		"edited manifest": {mutate(func(m map[string][]byte) {
			m["export.json"] = bytes.Replace(m["export.json"], []byte(`"tenant":"default"`), []byte(`"tenant":"evil"`), 1)
		}), "export-id"},
		"edited summary": {mutate(func(m map[string][]byte) { m["manifest.yaml"] = append(m["manifest.yaml"], '#') }), "manifest-summary"},
		"truncated":      {good[:len(good)/2], "archive"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			rep := Verify(writeFile(t, c.data), VerifyOptions{})
			if rep.OK {
				t.Fatal("tampered bundle verified")
			}
			found := false
			for _, f := range rep.Failed() {
				if f.Name == c.check {
					found = true
				}
			}
			if !found {
				t.Fatalf("want failing check %q, got %+v", c.check, rep.Failed())
			}
		})
	}
}

func TestRerunHash(t *testing.T) {
	c := []exportapi.ContentEntry{{Digest: "sha256:bb"}, {Digest: "sha256:aa"}}
	sum := sha256.Sum256([]byte("sha256:aa\nsha256:bb"))
	if got := RerunHash(c); got != hex.EncodeToString(sum[:]) {
		t.Fatalf("RerunHash = %s", got)
	}
}

func FuzzWalkArchive(f *testing.F) {
	f.Add(rawTar(&testing.T{}, []tar.Header{{Name: "json/a", Typeflag: tar.TypeReg}}, []string{"x"}))
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0})
	f.Add([]byte("not an archive"))
	f.Fuzz(func(t *testing.T, b []byte) {
		WalkArchive(bytes.NewReader(b), ReadLimits{MaxTotalBytes: 1 << 24}, func(rel string, _ int64, r io.Reader) error {
			if CheckPath(rel) != nil {
				t.Fatalf("unsafe path %q passed through", rel)
			}
			_, err := io.Copy(io.Discard, r)
			return err
		})
	})
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"schema":"stellaops.io/export-manifest.v1","contents":[]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseManifest(b)
	})
}
