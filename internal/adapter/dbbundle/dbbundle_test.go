package dbbundle

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/stellaops/stella/internal/xerr"
)

var spec = Spec{
	Label:  "test.bundle",
	Files:  []string{"metadata.json", "test.db"},
	Limits: map[string]Limit{"metadata.json": {Max: 16, Note: "test metadata is small"}},
	NotFound: func(p string) error {
		return xerr.New(xerr.InvalidInput, "no test bundle at %s", p)
	},
}

// entry is one tar entry of a hand-made bundle.
type entry struct {
	name string
	typ  byte
	size int64 // header size; -1 = len(body)
	body string
}

// tgz writes a gzip tar of the entries; a short body (size > len(body))
// truncates the archive after it.
func tgz(t *testing.T, ents ...entry) string {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range ents {
		size := e.size
		if size < 0 {
			size = int64(len(e.body))
		}
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		if typ != tar.TypeReg {
			size = 0
		}
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Typeflag: typ, Mode: 0o644, Size: size}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
		if int64(len(e.body)) < size {
			tw.Flush() // reports the short write; the archive just ends here
			break
		}
	}
	tw.Close()
	zw.Close()
	p := filepath.Join(t.TempDir(), "test.bundle")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func reg(name, body string) entry { return entry{name: name, size: -1, body: body} }

func TestPackIsDeterministicAndRoundTrips(t *testing.T) {
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "metadata.json"), []byte(`{"Version":1}`), 0o600)
	os.WriteFile(filepath.Join(src, "test.db"), bytes.Repeat([]byte("db"), 1000), 0o600)
	var a, b bytes.Buffer
	if err := Pack(&a, src, spec.Files, 0, "test.bundle"); err != nil {
		t.Fatal(err)
	}
	// Other mtimes and modes do not change the bytes.
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	os.Chtimes(filepath.Join(src, "test.db"), old, old)
	os.Chmod(filepath.Join(src, "metadata.json"), 0o640)
	if err := Pack(&b, src, spec.Files, 0, "test.bundle"); err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(a.Bytes()) != sha256.Sum256(b.Bytes()) {
		t.Fatal("Pack is not deterministic")
	}
	// Header fields.
	zr, err := gzip.NewReader(bytes.NewReader(a.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Errorf("gzip header has name %q, time %v", zr.Name, zr.ModTime)
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
		if h.Mode != 0o644 || h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" || h.ModTime.Unix() != 0 || h.Typeflag != tar.TypeReg {
			t.Errorf("header %+v", h)
		}
	}
	if strings.Join(names, ",") != "metadata.json,test.db" {
		t.Errorf("entries %v", names)
	}

	bp := filepath.Join(t.TempDir(), "test.bundle")
	os.WriteFile(bp, a.Bytes(), 0o644)
	cache := t.TempDir()
	dir, err := spec.Prepare(bp, cache, "sub")
	if err != nil || dir != filepath.Join(cache, "sub") {
		t.Fatal(dir, err)
	}
	tmps, err := spec.Extract(bp, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer Remove(tmps)
	if err := Install(dir, tmps, []string{"test.db", "metadata.json"}); err != nil {
		t.Fatal(err)
	}
	if len(tmps) != 0 {
		t.Errorf("tmps after Install: %v", tmps)
	}
	for _, n := range spec.Files {
		want, _ := os.ReadFile(filepath.Join(src, n))
		got, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s differs after install (%v)", n, err)
		}
		if st, _ := os.Stat(filepath.Join(dir, n)); st == nil || st.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v", n, st)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("%d files in the target, want 2", len(ents))
	}
}

func TestPackMissingFile(t *testing.T) {
	err := Pack(&bytes.Buffer{}, t.TempDir(), spec.Files, 0, "test.bundle")
	if err == nil || !strings.HasPrefix(err.Error(), "test.bundle metadata.json: ") || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v", err)
	}
}

func TestExtractAcceptsDotEntries(t *testing.T) {
	bp := tgz(t, entry{name: "./", typ: tar.TypeDir}, reg("./metadata.json", "{}"), reg("./test.db", "x"))
	tmps, err := spec.Extract(bp, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer Remove(tmps)
	if b, _ := os.ReadFile(tmps["test.db"]); string(b) != "x" {
		t.Errorf("test.db = %q", b)
	}
}

func TestExtractRefuses(t *testing.T) {
	notGzip := filepath.Join(t.TempDir(), "x.bundle")
	os.WriteFile(notGzip, []byte("not gzip"), 0o644)
	cases := []struct {
		name, bundle, want string
		code               xerr.Code
	}{
		{"missing bundle", filepath.Join(t.TempDir(), "none"), "no test bundle at ", xerr.InvalidInput},
		{"not gzip", notGzip, "is not a gzip tar (test.bundle)", xerr.Verify},
		{"unexpected entry", tgz(t, reg("metadata.json", "{}"), reg("other", "x")),
			`unexpected entry "other" (a test.bundle holds metadata.json and test.db only)`, xerr.Verify},
		{"non-regular", tgz(t, entry{name: "test.db", typ: tar.TypeSymlink}), "test.db is not a regular file", xerr.Verify},
		{"directory", tgz(t, entry{name: "test.db/", typ: tar.TypeDir}), "test.db/ is not a regular file", xerr.Verify},
		{"duplicate", tgz(t, reg("test.db", "a"), reg("test.db", "b")), "test.db appears twice", xerr.Verify},
		{"too large", tgz(t, reg("metadata.json", strings.Repeat("x", 17)), reg("test.db", "x")),
			"metadata.json is 17 bytes; test metadata is small", xerr.Verify},
		{"short read", tgz(t, reg("metadata.json", "{}"), entry{name: "test.db", size: 1 << 20, body: "abc"}),
			"extract test.db", xerr.Verify},
		{"missing file", tgz(t, reg("test.db", "x")), "has no metadata.json (a test.bundle holds metadata.json and test.db)", xerr.Verify},
		{"empty", tgz(t), "has no metadata.json", xerr.Verify},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			tmps, err := spec.Extract(c.bundle, dir)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			var xe *xerr.Error
			if !errors.As(err, &xe) || xe.Code != c.code {
				t.Errorf("code of %v, want %v", err, c.code)
			}
			if tmps != nil {
				t.Errorf("tmps = %v on error", tmps)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("%d temporary files left", len(ents))
			}
		})
	}
}

func TestPrepare(t *testing.T) {
	bp := tgz(t)
	if _, err := spec.Prepare(bp, "", "sub"); err == nil || !strings.Contains(err.Error(), "no cache directory given") {
		t.Errorf("no cache dir: %v", err)
	}
	cache := t.TempDir()
	if _, err := spec.Prepare(filepath.Join(cache, "none"), cache, "sub"); err == nil || !strings.Contains(err.Error(), "no test bundle at") {
		t.Errorf("missing bundle: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cache, "sub")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the target was created for a missing bundle (%v)", err)
	}
}

func TestInstallKeepsWhatItCannotRename(t *testing.T) {
	dir := t.TempDir()
	tmp := filepath.Join(dir, ".a.import-1")
	os.WriteFile(tmp, []byte("a"), 0o600)
	tmps := map[string]string{"a": tmp, "b": filepath.Join(dir, ".b.import-missing")}
	err := Install(dir, tmps, []string{"a", "b"})
	if err == nil || !strings.Contains(err.Error(), "install b") {
		t.Fatalf("err = %v", err)
	}
	if _, ok := tmps["a"]; ok {
		t.Error("a is still in tmps after it was installed")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a")); string(b) != "a" {
		t.Error("a not installed")
	}
}

func TestParseMetadata(t *testing.T) {
	m, err := ParseMetadata([]byte(`{"Version":2,"UpdatedAt":"2024-05-01T10:00:00Z"}`), "test DB")
	if err != nil || m.Version != 2 || !m.UpdatedAt.Equal(time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("%+v %v", m, err)
	}
	if _, err := ParseMetadata([]byte(`{`), "test DB"); err == nil || !strings.Contains(err.Error(), "metadata.json is not test DB metadata") {
		t.Errorf("bad JSON: %v", err)
	}
	if _, err := ParseMetadata([]byte(`{}`), "test DB"); err == nil || !strings.Contains(err.Error(), "metadata.json has no Version") {
		t.Errorf("no Version: %v", err)
	}
}

func TestUpdatedAt(t *testing.T) {
	conf := time.Date(2024, 5, 1, 12, 0, 0, 500, time.FixedZone("x", 3600))
	newest := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	if got := UpdatedAt(conf, newest); !got.Equal(conf.Truncate(time.Second)) || got.Location() != time.UTC {
		t.Errorf("configured: %v", got)
	}
	if got := UpdatedAt(time.Time{}, newest); !got.Equal(newest) {
		t.Errorf("newest: %v", got)
	}
	if got := UpdatedAt(time.Time{}, time.Time{}); got.Unix() != 0 {
		t.Errorf("epoch: %v", got)
	}
}
