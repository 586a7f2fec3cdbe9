package evidence

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/stellaops/stella/internal/record"
	"github.com/stellaops/stella/internal/xerr"
)

const evidenceRoot = "../../testdata/evidence"

// walked is what a walk reported: documents as "path digest" and problems
// as "path: reason".
type walked struct {
	docs []string
	errs []string
}

func walkAll(t *testing.T, src Source, opts Options) (walked, error) {
	t.Helper()
	var w walked
	err := Walk(context.Background(), src, opts, func(doc record.Document, err error) error {
		if doc.Source != src.Name {
			t.Errorf("%s: source %q, want %q", doc.Path, doc.Source, src.Name)
		}
		if err != nil {
			var de *DocError
			if !errors.As(err, &de) {
				t.Fatalf("%s: error %T is not a *DocError: %v", doc.Path, err, err)
			}
			if de.Path != doc.Path || de.Source != src.Name {
				t.Errorf("DocError names %q/%q, doc %q/%q", de.Source, de.Path, doc.Source, doc.Path)
			}
			w.errs = append(w.errs, doc.Path+": "+de.Reason)
			return nil
		}
		if got := record.Digest(doc.Raw); got != doc.Digest {
			t.Errorf("%s: digest %s, want %s", doc.Path, doc.Digest, got)
		}
		w.docs = append(w.docs, doc.Path+" "+doc.Digest)
		return nil
	})
	return w, err
}

// fixtureTree builds a small source folder from real files plus files that
// are not evidence, hidden ones, and a nested folder.
func fixtureTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	copyFile := func(from, to string) {
		b, err := os.ReadFile(filepath.Join(evidenceRoot, from))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, to), b)
	}
	copyFile("vex/openvex/go-vex-testdata/pkg/vex/testdata/v0.2.0.json", "vex/v0.2.0.json")
	copyFile("vex/openvex/go-vex-testdata/pkg/vex/testdata/v001-1.vex.json", "vex/v001-1.vex.json")
	copyFile("osv/almalinux-osv-database/t1/advisories/almalinux8/ALBA-2022:2116.json", "osv/almalinux8/ALBA-2022:2116.json")
	copyFile("osv/osv-schema-testdata/tools/ghsa/testdata/withdrawn.osv.json", "osv/ghsa/withdrawn.osv.json")
	copyFile("osv/osv-schema-testdata/LICENSE", "osv/LICENSE")
	copyFile("policy/findings.jsonl", "policy/findings.jsonl")
	copyFile("policy/snapshot.json", "policy/snapshot.json")
	writeFile(t, filepath.Join(dir, "README.md"), []byte("# not evidence\n"))
	writeFile(t, filepath.Join(dir, "osv-a/UPPER.JSON"), []byte(`{"id":"X-1","modified":"2024-01-01T00:00:00Z"}`))
	writeFile(t, filepath.Join(dir, ".github/workflows/ci.yml"), []byte("on: push\n"))
	writeFile(t, filepath.Join(dir, "vex/.hidden.json"), []byte("{}"))
	return dir
}

func writeFile(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestWalkDirLexicalAndPassesOver(t *testing.T) {
	dir := fixtureTree(t)
	got, err := walkAll(t, Source{Name: "s", Path: dir}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, d := range got.docs {
		paths = append(paths, strings.Fields(d)[0])
	}
	want := []string{
		"osv/almalinux8/ALBA-2022:2116.json",
		"osv/ghsa/withdrawn.osv.json",
		"osv-a/UPPER.JSON",
		"policy/findings.jsonl",
		"policy/snapshot.json",
		"vex/v0.2.0.json",
		"vex/v001-1.vex.json",
	}
	if strings.Join(paths, "\n") != strings.Join(want, "\n") {
		t.Errorf("walk order:\n%s\nwant:\n%s", strings.Join(paths, "\n"), strings.Join(want, "\n"))
	}
	if len(got.errs) != 0 {
		t.Errorf("unexpected document errors: %v", got.errs)
	}
}

// archiveTools builds archives of dir with the stock tools, the way a user
// would; each is skipped when its tool is missing.
func archiveTools(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := t.TempDir()
	run := func(name string, args ...string) bool {
		if _, err := exec.LookPath(name); err != nil {
			t.Logf("%s not installed; skipping that archive form", name)
			return false
		}
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, b)
		}
		return true
	}
	m := map[string]string{}
	if p := filepath.Join(out, "src.tar"); run("tar", "-cf", p, ".") {
		m["tar"] = p
	}
	if p := filepath.Join(out, "src.tar.gz"); run("tar", "-czf", p, ".") {
		m["tar.gz"] = p
	}
	if p := filepath.Join(out, "src.tgz"); run("tar", "-czf", p, ".") {
		m["tgz"] = p
	}
	if _, err := exec.LookPath("zstd"); err == nil {
		if p := filepath.Join(out, "src.tar.zst"); run("tar", "--zstd", "-cf", p, ".") {
			m["tar.zst"] = p
		}
	}
	if p := filepath.Join(out, "src.zip"); run("zip", "-qr", p, ".") {
		m["zip"] = p
	}
	return m
}

// goArchives builds the same archives with Go's writers, from a file list
// in lexical order, so that the comparison runs without the tools too.
func goArchives(t *testing.T, dir string) map[string]string {
	t.Helper()
	type file struct {
		rel  string
		data []byte
	}
	var files []file
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		files = append(files, file{filepath.ToSlash(rel), b})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	m := map[string]string{}
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for _, f := range files {
		must(t, tw.WriteHeader(&tar.Header{Name: f.rel, Mode: 0o644, Size: int64(len(f.data)), Typeflag: tar.TypeReg}))
		_, err := tw.Write(f.data)
		must(t, err)
	}
	must(t, tw.Close())
	m["go.tar"] = filepath.Join(out, "go.tar")
	must(t, os.WriteFile(m["go.tar"], tb.Bytes(), 0o644))
	var gb bytes.Buffer
	gw := gzip.NewWriter(&gb)
	_, err = gw.Write(tb.Bytes())
	must(t, err)
	must(t, gw.Close())
	m["go.tar.gz"] = filepath.Join(out, "go.tar.gz")
	must(t, os.WriteFile(m["go.tar.gz"], gb.Bytes(), 0o644))
	var zb bytes.Buffer
	zw, err := zstd.NewWriter(&zb)
	must(t, err)
	_, err = zw.Write(tb.Bytes())
	must(t, err)
	must(t, zw.Close())
	m["go.tzst"] = filepath.Join(out, "go.tzst")
	must(t, os.WriteFile(m["go.tzst"], zb.Bytes(), 0o644))
	var pb bytes.Buffer
	pw := zip.NewWriter(&pb)
	for i := len(files) - 1; i >= 0; i-- { // reverse order: Walk sorts zip entries
		w, err := pw.Create(files[i].rel)
		must(t, err)
		_, err = w.Write(files[i].data)
		must(t, err)
	}
	must(t, pw.Close())
	m["go.zip"] = filepath.Join(out, "go.ZIP")
	must(t, os.WriteFile(m["go.zip"], pb.Bytes(), 0o644))
	return m
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestWalkArchivesGiveTheSameDocuments(t *testing.T) {
	dir := fixtureTree(t)
	want, err := walkAll(t, Source{Name: "s", Path: dir}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sortedWant := append([]string(nil), want.docs...)
	sort.Strings(sortedWant)
	archives := archiveTools(t, dir)
	for k, v := range goArchives(t, dir) {
		archives[k] = v
	}
	for kind, p := range archives {
		t.Run(kind, func(t *testing.T) {
			got, err := walkAll(t, Source{Name: "s", Path: p}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(got.errs) != 0 {
				t.Errorf("document errors: %v", got.errs)
			}
			if strings.HasSuffix(kind, "zip") {
				// zip entries are visited in the folder walk order
				if strings.Join(got.docs, "\n") != strings.Join(want.docs, "\n") {
					t.Errorf("zip order:\n%s\nwant:\n%s", strings.Join(got.docs, "\n"), strings.Join(want.docs, "\n"))
				}
			}
			sort.Strings(got.docs)
			if strings.Join(got.docs, "\n") != strings.Join(sortedWant, "\n") {
				t.Errorf("documents:\n%s\nwant:\n%s", strings.Join(got.docs, "\n"), strings.Join(sortedWant, "\n"))
			}
		})
	}
}

func TestWalkExclude(t *testing.T) {
	dir := fixtureTree(t)
	cases := []struct {
		exclude []string
		gone    []string // paths no longer walked
	}{
		{[]string{"policy"}, []string{"policy/findings.jsonl", "policy/snapshot.json"}},
		{[]string{"policy/**"}, []string{"policy/findings.jsonl", "policy/snapshot.json"}},
		{[]string{"**/*.jsonl"}, []string{"policy/findings.jsonl"}},
		{[]string{"*.json"}, nil}, // anchored: only top-level files
		{[]string{"osv/*/*.json"}, []string{"osv/almalinux8/ALBA-2022:2116.json", "osv/ghsa/withdrawn.osv.json"}},
		{[]string{"osv/**/ALBA-*"}, []string{"osv/almalinux8/ALBA-2022:2116.json"}},
		{[]string{"**/v0.[0-9].0.json", "./osv-a/"}, []string{"vex/v0.2.0.json", "osv-a/UPPER.JSON"}},
	}
	archives := goArchives(t, dir)
	for _, c := range cases {
		for _, p := range []string{dir, archives["go.tar"], archives["go.zip"]} {
			got, err := walkAll(t, Source{Name: "s", Path: p, Exclude: c.exclude}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			all := strings.Join(got.docs, "\n")
			for _, g := range c.gone {
				if strings.Contains(all, g+" ") {
					t.Errorf("%v on %s: %s still walked", c.exclude, filepath.Base(p), g)
				}
			}
			if want := 7 - len(c.gone); len(got.docs) != want {
				t.Errorf("%v on %s: %d documents, want %d", c.exclude, filepath.Base(p), len(got.docs), want)
			}
		}
	}
}

func TestMatchSegments(t *testing.T) {
	cases := []struct {
		pattern, path string
		want          bool
	}{
		{"a/b.json", "a/b.json", true},
		{"a/*.json", "a/b.json", true},
		{"a/*.json", "a/c/b.json", false},
		{"**", "a/b/c", true},
		{"**/b.json", "b.json", true},
		{"**/b.json", "x/y/b.json", true},
		{"a/**", "a", true},
		{"a/**", "a/x/y", true},
		{"a/**/z", "a/z", true},
		{"a/**/z", "a/x/y/z", true},
		{"a/**/z", "a/x/y/q", false},
		{"**/**/x", "x", true},
		{"*", "a/b", false},
		{"a?c", "abc", true},
		{"[a-c]x", "bx", true},
	}
	for _, c := range cases {
		ex, err := newExcluder([]string{c.pattern})
		if err != nil {
			t.Fatal(err)
		}
		if got := ex.match(c.path); got != c.want {
			t.Errorf("match(%q, %q) = %v, want %v", c.pattern, c.path, got, c.want)
		}
	}
	if _, err := newExcluder([]string{"a/[b"}); err == nil {
		t.Error("bad pattern accepted")
	}
	if _, err := newExcluder([]string{" "}); err == nil {
		t.Error("empty pattern accepted")
	}
}

func TestIsCandidate(t *testing.T) {
	for name, want := range map[string]bool{
		"a.json": true, "A.JSON": true, "x/y.yaml": true, "x.yml": true, "x.jsonl": true, "x.NDJSON": true,
		"LICENSE": false, "README.md": false, "x.json.asc": false, "x.json.sha512": false, "bom.xml": false,
		"example.spdx": false, "delta.tsv": false, ".hidden.json": false, ".json": false, "dir/.x.yaml": false,
	} {
		if got := IsCandidate(name); got != want {
			t.Errorf("IsCandidate(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestWalkSymlinkIsDocumentError(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "outside.json")
	writeFile(t, target, []byte(`{"secret":true}`))
	writeFile(t, filepath.Join(dir, "a.json"), []byte(`{}`))
	if err := os.Symlink(target, filepath.Join(dir, "link.json")); err != nil {
		t.Skip("no symlinks here:", err)
	}
	if err := os.Symlink(t.TempDir(), filepath.Join(dir, "linkdir")); err != nil {
		t.Fatal(err)
	}
	got, err := walkAll(t, Source{Name: "s", Path: dir}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.docs) != 1 || len(got.errs) != 2 {
		t.Fatalf("docs %v errs %v", got.docs, got.errs)
	}
	for _, e := range got.errs {
		if !strings.Contains(e, "symbolic link") {
			t.Errorf("reason: %s", e)
		}
	}
	// An exclude pattern takes the link out of the walk.
	got, err = walkAll(t, Source{Name: "s", Path: dir, Exclude: []string{"link*"}}, Options{})
	if err != nil || len(got.errs) != 0 {
		t.Fatalf("with exclude: %v %v", err, got.errs)
	}
}

// tarOf builds a tar archive from headers and bodies.
func tarOf(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := e.h
		if h.Typeflag == tar.TypeReg || h.Typeflag == 0 {
			h.Size = int64(len(e.body))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		must(t, tw.WriteHeader(&h))
		if len(e.body) > 0 {
			_, err := tw.Write(e.body)
			must(t, err)
		}
	}
	must(t, tw.Close())
	return b.Bytes()
}

type tarEntry struct {
	h    tar.Header
	body []byte
}

func reg(name, body string) tarEntry {
	return tarEntry{tar.Header{Name: name, Typeflag: tar.TypeReg}, []byte(body)}
}

func TestWalkTarRejectsUnsafeEntries(t *testing.T) {
	data := tarOf(t,
		reg("ok.json", `{}`),
		reg("../evil.json", `{}`),
		reg("/abs.json", `{}`),
		reg("a/../../up.json", `{}`),
		reg("a/../fine.json", `{}`),
		reg(`win\evil.json`, `{}`),
		tarEntry{h: tar.Header{Name: "link.json", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}},
		tarEntry{h: tar.Header{Name: "hard.json", Typeflag: tar.TypeLink, Linkname: "ok.json"}},
		tarEntry{h: tar.Header{Name: "fifo.json", Typeflag: tar.TypeFifo}},
		tarEntry{h: tar.Header{Name: "dir/", Typeflag: tar.TypeDir}},
		reg("./dir/in.json", `{}`),
		reg("notes.txt", `x`),
	)
	p := filepath.Join(t.TempDir(), "x.tar")
	must(t, os.WriteFile(p, data, 0o644))
	got, err := walkAll(t, Source{Name: "s", Path: p}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantDocs := []string{"ok.json", "dir/in.json"}
	if len(got.docs) != len(wantDocs) {
		t.Fatalf("docs %v, want %v", got.docs, wantDocs)
	}
	for i, w := range wantDocs {
		if !strings.HasPrefix(got.docs[i], w+" ") {
			t.Errorf("doc %d = %s, want %s", i, got.docs[i], w)
		}
	}
	wantErrs := []string{
		"../evil.json: unsafe archive entry name",
		"/abs.json: unsafe archive entry name",
		"a/../../up.json: unsafe archive entry name",
		"a/../fine.json: unsafe archive entry name",
		`win\evil.json: unsafe archive entry name`,
		"link.json: archive entry is a link",
		"hard.json: archive entry is a link",
		"fifo.json: archive entry is not a regular file",
	}
	if len(got.errs) != len(wantErrs) {
		t.Fatalf("errors %q, want %d", got.errs, len(wantErrs))
	}
	for i, w := range wantErrs {
		if !strings.HasPrefix(got.errs[i], w) {
			t.Errorf("error %d = %q, want prefix %q", i, got.errs[i], w)
		}
	}
}

func TestWalkZipRejectsUnsafeEntries(t *testing.T) {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	add := func(name string, mode fs.FileMode, body string) {
		h := &zip.FileHeader{Name: name, Method: zip.Deflate}
		h.SetMode(mode)
		w, err := zw.CreateHeader(h)
		must(t, err)
		_, err = w.Write([]byte(body))
		must(t, err)
	}
	add("ok.json", 0o644, `{}`)
	add("../evil.json", 0o644, `{}`)
	add("/abs.json", 0o644, `{}`)
	add("link.json", fs.ModeSymlink|0o777, "/etc/passwd")
	add("dup.json", 0o644, `{"a":1}`)
	add("dup.json", 0o644, `{"a":2}`)
	must(t, zw.Close())
	p := filepath.Join(t.TempDir(), "x.zip")
	must(t, os.WriteFile(p, b.Bytes(), 0o644))
	got, err := walkAll(t, Source{Name: "s", Path: p}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.docs) != 2 { // ok.json and the first dup.json
		t.Errorf("docs %v", got.docs)
	}
	joined := strings.Join(got.errs, "\n")
	for _, w := range []string{"../evil.json: unsafe", "/abs.json: unsafe", "link.json: archive entry is a symbolic link", "dup.json: archive has two entries"} {
		if !strings.Contains(joined, w) {
			t.Errorf("missing error %q in\n%s", w, joined)
		}
	}
}

func TestWalkSizeLimit(t *testing.T) {
	small := `{"id":"A-1","modified":"2024-01-01T00:00:00Z"}`
	big := `{"id":"A-2","modified":"2024-01-01T00:00:00Z","details":"` + strings.Repeat("x", 200) + `"}`
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "small.json"), []byte(small))
	writeFile(t, filepath.Join(dir, "big.json"), []byte(big))
	archives := goArchives(t, dir)
	for _, p := range []string{dir, archives["go.tar"], archives["go.tar.gz"], archives["go.tzst"], archives["go.zip"]} {
		got, err := walkAll(t, Source{Name: "s", Path: p}, Options{MaxDocumentBytes: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.docs) != 1 || !strings.HasPrefix(got.docs[0], "small.json ") {
			t.Errorf("%s: docs %v", filepath.Base(p), got.docs)
		}
		if len(got.errs) != 1 || !strings.Contains(got.errs[0], "big.json: document is 259 bytes, over the 100 bytes document size limit; raise ExportCenter.Limits.MaxDocumentBytes") {
			t.Errorf("%s: errs %q", filepath.Base(p), got.errs)
		}
	}
	// A reader that lies about its size is still cut at the limit.
	raw, big2, err := readLimited(strings.NewReader(strings.Repeat("y", 500)), 10, 100)
	if err != nil || !big2 || raw != nil {
		t.Errorf("readLimited over the limit: %v %v %v", len(raw), big2, err)
	}
	raw, big2, err = readLimited(strings.NewReader("abc"), -1, 3)
	if err != nil || big2 || string(raw) != "abc" {
		t.Errorf("readLimited at the limit: %q %v %v", raw, big2, err)
	}
	// A regular file is read in one go when it ends at the size of its
	// status, and read on when it grew after that status was taken, or
	// shrank.
	for _, c := range []struct {
		name        string
		write, then string
	}{
		{"same", "0123456789", ""},
		{"grew", "0123456789", "abcdefghijklmnopqrstuvwxyz"},
		{"grew one", "0123456789", "!"},
	} {
		p := filepath.Join(t.TempDir(), "f.json")
		writeFile(t, p, []byte(c.write))
		f, err := openRegular(p)
		if err != nil {
			t.Fatal(err)
		}
		if c.then != "" {
			a, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			a.WriteString(c.then)
			a.Close()
		}
		raw, big, err := readLimited(f, f.size, 1000)
		f.Close()
		if err != nil || big || string(raw) != c.write+c.then {
			t.Errorf("%s: read %q (%v, %v), want %q", c.name, raw, big, err, c.write+c.then)
		}
	}
	p := filepath.Join(t.TempDir(), "shrank.json")
	writeFile(t, p, []byte("0123456789"))
	f, err := openRegular(p)
	if err != nil {
		t.Fatal(err)
	}
	os.Truncate(p, 4)
	raw, _, err = readLimited(f, f.size, 1000)
	f.Close()
	if err != nil || string(raw) != "0123" {
		t.Errorf("shrank: read %q (%v)", raw, err)
	}
}

func TestWalkEncodingProblems(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "latin1.json"), []byte("{\"id\":\"caf\xe9\"}"))
	writeFile(t, filepath.Join(dir, "utf16.json"), []byte{0xFF, 0xFE, '{', 0, '}', 0})
	got, err := walkAll(t, Source{Name: "s", Path: dir}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"latin1.json: not valid UTF-8 (first bad byte 0xe9 at offset 10)",
		"utf16.json: UTF-16 text; evidence documents must be UTF-8",
	}
	if strings.Join(got.errs, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got.errs, "\n"), strings.Join(want, "\n"))
	}
}

func TestWalkSourceErrors(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "notes.txt")
	writeFile(t, plain, []byte("x"))
	badGz := filepath.Join(dir, "bad.tar.gz")
	writeFile(t, badGz, []byte("this is not gzip"))
	empty := filepath.Join(dir, "empty.tar")
	writeFile(t, empty, nil)
	badZip := filepath.Join(dir, "bad.zip")
	writeFile(t, badZip, []byte("PK\x03\x04 not really"))
	// A tar.zst cut in the middle of an entry.
	tz := goArchives(t, fixtureTree(t))["go.tzst"]
	b, err := os.ReadFile(tz)
	must(t, err)
	cut := filepath.Join(dir, "cut.tar.zst")
	writeFile(t, cut, b[:len(b)/2])
	// A tar whose second header is garbage.
	tb := tarOf(t, reg("a.json", `{}`), reg("b.json", `{}`))
	copy(tb[1024:1100], bytes.Repeat([]byte{'Z'}, 76))
	badTar := filepath.Join(dir, "garbage.tar")
	writeFile(t, badTar, tb)

	cases := []struct {
		src  Source
		want string
	}{
		{Source{Name: "s", Path: filepath.Join(dir, "nope")}, "does not exist"},
		{Source{Name: "s", Path: plain}, "is neither a folder nor a .zip, .tar, .tar.gz, .tgz, .tar.zst or .tzst archive"},
		{Source{Name: "s", Path: badGz}, "is corrupt or truncated after 0 entries: gzip"},
		{Source{Name: "s", Path: empty}, "is empty or not a tar archive"},
		{Source{Name: "s", Path: badZip}, "is corrupt or truncated"},
		{Source{Name: "s", Path: cut}, "is corrupt or truncated"},
		{Source{Name: "s", Path: badTar}, "is corrupt or truncated after 1 entries"},
		{Source{Name: "s", Path: dir, Exclude: []string{"[x"}}, "exclude pattern"},
		{Source{Name: "", Path: dir}, "has no name"},
		{Source{Name: "s"}, "has no path"},
	}
	for _, c := range cases {
		_, err := walkAll(t, c.src, Options{})
		var xe *xerr.Error
		if !errors.As(err, &xe) || xe.Code != xerr.InvalidInput {
			t.Errorf("%s: error %v is not an InvalidInput *xerr.Error", c.src.Path, err)
			continue
		}
		if !strings.Contains(xe.Message, c.want) || (c.src.Name != "" && !strings.Contains(xe.Message, `"s"`)) {
			t.Errorf("%s: message %q, want %q and the source name", c.src.Path, xe.Message, c.want)
		}
		if xe.Hint == "" {
			t.Errorf("%s: no hint", c.src.Path)
		}
	}
}

func TestWalkStopsOnCallbackError(t *testing.T) {
	dir := fixtureTree(t)
	stop := errors.New("stop here")
	for name, p := range map[string]string{"dir": dir, "tar": goArchives(t, dir)["go.tar"], "zip": goArchives(t, dir)["go.zip"]} {
		n := 0
		err := Walk(context.Background(), Source{Name: "s", Path: p}, Options{}, func(record.Document, error) error {
			n++
			if n == 2 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || n != 2 {
			t.Errorf("%s: err %v after %d calls", name, err, n)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err = Walk(ctx, Source{Name: "s", Path: p}, Options{}, func(record.Document, error) error { return nil })
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s: cancelled walk returned %v", name, err)
		}
	}
}

func TestWalkLessMatchesWalkDir(t *testing.T) {
	names := []string{"a-c/x.json", "a/b.json", "a/b/c.json", "a.json", "a0.json", "B.json", "a/b-c.json"}
	sort.Slice(names, func(i, j int) bool { return walkLess(names[i], names[j]) })
	want := []string{"B.json", "a/b/c.json", "a/b-c.json", "a/b.json", "a-c/x.json", "a.json", "a0.json"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("order %v, want %v", names, want)
	}
	dir := t.TempDir()
	for _, n := range names {
		writeFile(t, filepath.Join(dir, n), []byte("{}"))
	}
	got, err := walkAll(t, Source{Name: "s", Path: dir}, Options{})
	must(t, err)
	for i := range got.docs {
		got.docs[i] = strings.Fields(got.docs[i])[0]
	}
	if strings.Join(got.docs, " ") != strings.Join(want, " ") {
		t.Errorf("WalkDir order %v, want %v", got.docs, want)
	}
}

// Options.Unchanged is asked about each folder's files a batch at a time
// with their status; files it answers for are passed with its digest and
// no content, the others are read as usual, and Readers does not change
// which documents are passed.
func TestWalkUnchangedBatches(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 300; i++ { // more than one batch in one folder
		writeFile(t, filepath.Join(dir, "a", fmt.Sprintf("X-%03d.json", i)),
			fmt.Appendf(nil, `{"id":"X-%03d","modified":"2024-01-01T00:00:00Z"}`, i))
	}
	writeFile(t, filepath.Join(dir, "b", "Y-1.json"), []byte(`{"id":"Y-1","modified":"2024-01-01T00:00:00Z"}`))
	for _, readers := range []int{1, 4} {
		var mu sync.Mutex
		asked := map[string]bool{}
		unchanged := func(q *UnchangedBatch) {
			mu.Lock()
			defer mu.Unlock()
			if q.Source != "s" || len(q.Paths) == 0 || len(q.Paths) > batchFiles {
				t.Errorf("batch of %d for source %q", len(q.Paths), q.Source)
			}
			for i, p := range q.Paths {
				if !q.Has[i] || q.Stats[i].Size <= 0 {
					t.Errorf("%s: no status", p)
				}
				asked[p] = true
				if strings.HasSuffix(p, "0.json") { // every tenth: known unchanged
					q.Digests[i] = "sha256:known-" + p
				}
			}
		}
		var docs []record.Document
		err := Walk(context.Background(), Source{Name: "s", Path: dir}, Options{Readers: readers, Unchanged: unchanged},
			func(doc record.Document, err error) error {
				if err != nil {
					return err
				}
				mu.Lock()
				docs = append(docs, doc)
				mu.Unlock()
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
		if len(docs) != 301 || len(asked) != 301 {
			t.Fatalf("readers %d: %d documents passed, %d asked about; want 301", readers, len(docs), len(asked))
		}
		known := 0
		for _, d := range docs {
			if strings.HasSuffix(d.Path, "0.json") {
				known++
				if !d.Unchanged || d.Raw != nil || d.Digest != "sha256:known-"+d.Path || !d.HasStat {
					t.Errorf("%s: passed as %+v, want unchanged with the given digest", d.Path, d)
				}
			} else if d.Unchanged || d.Raw == nil || d.Digest != record.Digest(d.Raw) {
				t.Errorf("%s: not read", d.Path)
			}
		}
		if known != 30 {
			t.Errorf("readers %d: %d known unchanged, want 30", readers, known)
		}
	}
}
