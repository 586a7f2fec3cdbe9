package mirror

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzIndexReader: whatever an index file holds, reading it with Next and
// with NextView gives the same entries and the same error (NextView's
// entries, copied at once, are Next's), and no input panics.
func FuzzIndexReader(f *testing.F) {
	var buf bytes.Buffer
	w, err := NewIndexWriter(&buf, IndexHeader{Index: "findings", Compression: Compression{Codec: "zstd", Level: 3}})
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range []Entry{
		{Kind: KindFinding, ID: `a/"2\`, Digest: "sha256:01", File: "data/policy/evaluations.jsonl.zst", Source: "p", Path: "é.jsonl", Line: 1, Withdrawn: true},
		{Kind: KindFinding, ID: "a/1", Digest: "sha256:00", File: "data/policy/evaluations.jsonl.zst", Source: "p", Path: "f.jsonl", Line: 3},
		{Kind: KindFinding, ID: "b", Digest: "sha256:02", File: "x", Source: "q", Path: "g"},
	} {
		if err := w.Add(e); err != nil {
			f.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(strings.Replace(buf.String(), `"id":"b"`, `"id":"a"`, 1)))
	f.Fuzz(func(t *testing.T, b []byte) {
		read := func(view bool) ([]Entry, string) {
			r, err := OpenIndex(bytes.NewReader(b))
			if err != nil {
				return nil, err.Error()
			}
			var out []Entry
			for len(out) < 10000 {
				var e Entry
				var ok bool
				if view {
					e, ok, err = r.NextView()
					e = Entry{Digest: strings.Clone(e.Digest), File: strings.Clone(e.File), ID: strings.Clone(e.ID),
						Kind: strings.Clone(e.Kind), Line: e.Line, Path: strings.Clone(e.Path), Source: strings.Clone(e.Source), Withdrawn: e.Withdrawn}
				} else {
					e, ok, err = r.Next()
				}
				if err != nil {
					return out, err.Error()
				}
				if !ok {
					break
				}
				out = append(out, e)
			}
			return out, ""
		}
		a, aerr := read(false)
		v, verr := read(true)
		if aerr != verr || len(a) != len(v) {
			t.Fatalf("Next: %d entries, %q; NextView: %d entries, %q", len(a), aerr, len(v), verr)
		}
		for i := range a {
			if a[i] != v[i] {
				t.Fatalf("entry %d: Next %+v, NextView %+v", i, a[i], v[i])
			}
		}
	})
}
