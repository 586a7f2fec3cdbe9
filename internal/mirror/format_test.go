package mirror

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stellaops/stella/internal/canon"
)

func TestIndexRoundTrip(t *testing.T) {
	in := []Entry{
		{Kind: KindFinding, ID: "a/1", Digest: "sha256:00", File: "data/policy/evaluations.jsonl.zst", Source: "p", Path: "f.jsonl", Line: 3},
		{Kind: KindFinding, ID: "a/10", Digest: "sha256:01", File: "data/policy/evaluations.jsonl.zst", Source: "p", Path: "f.jsonl", Line: 1},
		{Kind: KindPolicy, ID: `quote " and \ back`, Digest: "sha256:02", File: "data/policy/snapshot.json", Source: "p", Path: "dir/é ü.json"},
		{Kind: KindPolicy, ID: "z\u2028", Digest: "sha256:03", File: "data/policy/snapshot.json", Source: "p", Path: "x", Withdrawn: true},
	}
	var buf bytes.Buffer
	w, err := NewIndexWriter(&buf, IndexHeader{Compression: Compression{Codec: "zstd", Level: 3}, Include: []string{"findings"}, Index: "findings"})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range in {
		if err := w.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Add(in[0]); err == nil {
		t.Fatal("unsorted entry accepted")
	}
	w.err = nil
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !json.Valid(buf.Bytes()) {
		t.Fatalf("not JSON: %s", buf.String())
	}
	for _, text := range []string{buf.String(), indent(t, buf.Bytes())} {
		r, err := OpenIndex(strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		if r.Header.Index != "findings" || r.Header.Compression.Level != 3 {
			t.Fatalf("header %+v", r.Header)
		}
		var out []Entry
		for {
			e, ok, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			out = append(out, e)
		}
		if len(out) != len(in) {
			t.Fatalf("%d entries", len(out))
		}
		for i := range in {
			if in[i] != out[i] {
				t.Fatalf("entry %d: %+v, want %+v", i, out[i], in[i])
			}
		}
	}
	// Damaged files are errors, not short reads.
	for _, bad := range []string{buf.String()[:buf.Len()/2], strings.Replace(buf.String(), IndexSchema, "x", 1),
		strings.Replace(buf.String(), `"kind":"policy"`, `"kind":"sbom"`, 1)} {
		r, err := OpenIndex(strings.NewReader(bad))
		if err != nil {
			continue
		}
		for {
			_, ok, err := r.Next()
			if err != nil {
				break
			}
			if !ok {
				t.Fatalf("damaged index read to the end: %q", bad)
			}
		}
	}
}

func indent(t *testing.T, b []byte) string {
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestTopString(t *testing.T) {
	line := []byte(`{"contentType":"application/json","digest":"sha256:ab","document":"{\"id\":\"X\",\"source\":\"no\"}","format":"osv-json","id":"GO-1 \"q\"","kind":"advisory","path":"a/b.json","source":"src"}`)
	for key, want := range map[string]string{"id": `GO-1 "q"`, "source": "src", "path": "a/b.json", "digest": "sha256:ab", "contentType": "application/json"} {
		got, err := TopString(line, key)
		if err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", key, got, err, want)
		}
		got, err = TopStringNearEnd(line, key)
		if err != nil || got != want {
			t.Errorf("%s from the end: %q %v, want %q", key, got, err, want)
		}
	}
	for _, f := range []func([]byte, string) (string, error){TopString, TopStringNearEnd} {
		if _, err := f(line, "missing"); err == nil {
			t.Error("missing field found")
		}
		if _, err := f([]byte(`{"id":"unterminated`), "id"); err == nil {
			t.Error("unterminated string read")
		}
		if _, err := f([]byte(`{"a":"x","id":"unterminated`), "id"); err == nil {
			t.Error("unterminated string read")
		}
	}
}

func TestAppendEntryIsCanonical(t *testing.T) {
	for _, e := range []Entry{
		{Kind: "advisory", ID: "GO-2024-1", Digest: "sha256:ab", File: "data/raw/advisories/x.jsonl.zst", Source: "s", Path: "a/b.json"},
		{Kind: "finding", ID: "p/r/1", Line: 12, Withdrawn: true, Path: "<b>&amp;</b>", Source: "x\u2028y"},
		{Kind: "vex", ID: "https://x/y?a=1&b=\"2\"", Path: "é\x01\t\\", Source: "\xff"},
	} {
		want, _ := canonFast(e)
		if got := AppendEntry(nil, e); !bytes.Equal(got, want) {
			t.Errorf("AppendEntry %s\n canon.Fast %s", got, want)
		}
		back, err := ParseEntry(AppendEntry(nil, e))
		if err != nil {
			t.Fatal(err)
		}
		if e.Source != "\xff" && back != e {
			t.Errorf("round trip %+v -> %+v", e, back)
		}
	}
}

// openString's quote-counting fast path agrees with the byte scan.
func TestOpenStringFastPath(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	alphabet := []byte(`{}",:ab\`)
	for i := 0; i < 20000; i++ {
		b := []byte{'{'}
		for j := rng.IntN(40); j > 0; j-- {
			b = append(b, alphabet[rng.IntN(len(alphabet))])
		}
		if got, want := openString(b), openStringScan(b); got != want {
			t.Fatalf("openString(%q) = %v, the scan says %v", b, got, want)
		}
	}
}

// TopString and TopStringNearEnd read the fields of a line as encoding
// them gave them, whatever the values hold (quotes, backslashes, key-like
// text, non-ASCII), and agree.
func FuzzTopString(f *testing.F) {
	f.Add("GO-1", "src", "a/b.json", `{"id":"X","source":"no"}`)
	f.Add(`x","id":"y`, `\`, `,"path":"`, "\u2028\"\\")
	f.Fuzz(func(t *testing.T, id, source, path, doc string) {
		if !utf8.ValidString(id) || !utf8.ValidString(source) || !utf8.ValidString(path) {
			t.Skip() // canonical JSON replaces invalid UTF-8
		}
		line, err := canon.Marshal(map[string]string{"id": id, "source": source, "path": path, "document": doc, "digest": "sha256:00"})
		if err != nil {
			t.Skip()
		}
		for key, want := range map[string]string{"id": id, "source": source, "path": path} {
			a, errA := TopString(line, key)
			b, errB := TopStringNearEnd(line, key)
			if errA != nil || errB != nil || a != want || b != want {
				t.Fatalf("%s in %s: %q (%v) and from the end %q (%v), want %q", key, line, a, errA, b, errB, want)
			}
		}
	})
}
