package mirror

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
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
	}
	if _, err := TopString(line, "missing"); err == nil {
		t.Error("missing field found")
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
