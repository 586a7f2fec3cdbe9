package canon

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stellaops/stella/internal/record"
	"github.com/stellaops/stella/pkg/exportapi"
)

func TestCanonicalize(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"b":1, "a":[true,null,"x<y&z"]}`, `{"a":[true,null,"x<y&z"],"b":1}`},
		{`{"z":{"d":1.50,"c":"\u00e9\n"}}`, `{"z":{"c":"é\n","d":1.50}}`},
		{` "tab\there" `, `"tab\there"`},
		{`[]`, `[]`},
	}
	for _, c := range cases {
		got, err := Canonicalize([]byte(c.in))
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if string(got) != c.want {
			t.Errorf("Canonicalize(%s) = %s, want %s", c.in, got, c.want)
		}
	}
	if _, err := Canonicalize([]byte(`{"a":1} {"b":2}`)); err == nil {
		t.Error("trailing value accepted")
	}
	if _, err := Canonicalize([]byte(`{"a":`)); err == nil {
		t.Error("truncated value accepted")
	}
}

// TestFastIsCanonical checks that the types written on the hot path declare
// their fields in sorted order, so Fast and Marshal agree.
func TestFastIsCanonical(t *testing.T) {
	vals := []any{
		record.Advisory{ID: "A", Aliases: []string{"b"}, Affected: []record.Affected{{Ecosystem: "Go", Package: "x",
			Ranges:   []record.Range{{Type: "SEMVER", Events: []record.Event{{Introduced: "0"}, {Fixed: "1.2"}}}},
			Severity: []record.Severity{{Type: "CVSS_V3", Score: "x"}}, Versions: []string{"1"}, Purl: "pkg:golang/x"}},
			Severity: []record.Severity{{Type: "CVSS_V3", Score: "x"}}, Summary: "s<", Details: "d", Modified: "m",
			Published: "p", Withdrawn: "w", CWEs: []string{"c"}, Related: []string{"r"}, Path: "p", Source: "s", Digest: "d",
			Ecosystems: []string{"Go"}, References: []string{"u"}},
		record.VEXStatement{ID: "i", Aliases: []string{"a"}, Digest: "d", DocumentID: "doc", Format: "f", Justification: "j",
			Modified: "m", Path: "p", Product: "pr", Source: "s", Status: "st", Statement: "x", Vulnerability: "v"},
		record.Component{Name: "n", Purl: "p", SHA1: "s", Version: "v"},
		exportapi.Event{RunID: "r", Seq: 1, Type: "t", Artifact: &exportapi.Artifact{Name: "n", Path: "p", SHA256: "s", Bytes: 1, MediaType: "m"},
			Bytes: 1, ErrorCode: "e", ItemsDone: 1, ItemsTotal: 2, Message: "m", Phase: "p", State: "s"},
		exportapi.Manifest{Contents: []exportapi.ContentEntry{{Path: "p", Digest: "d", Bytes: 1, Records: 1, ContentType: "c", PlainDigest: "x"}},
			Delta: &exportapi.Delta{Added: []string{"a"}}, Encryption: &exportapi.ManifestCrypt{Mode: "age", Recipients: []string{"r"}},
			ExportID: "e", Expires: "x", GeneratedAt: "g", RerunHash: "r", Schema: "s", Sequence: 1, Tenant: "t", Version: "v",
			Skipped: []exportapi.Skipped{{Path: "p", Reason: "r", Source: "s", Digest: "d"}},
			Sources: []exportapi.ManifestSource{{Name: "n", Digest: "d", Documents: 1}},
			Selectors: exportapi.Selectors{Ecosystems: []string{"e"}, ModifiedSince: "s", ModifiedUntil: "u", ProductPrefixes: []string{"p"},
				PurlPrefixes: []string{"p"}, Sources: []string{"s"}, Tenant: "t"},
			Profile: exportapi.ManifestProfile{Kind: "k", Name: "n", Revision: "r", Variant: "v"}},
		exportapi.Run{ID: "r", Tenant: "t", Extra: map[string]string{"b": "1", "a": "2"}, Counts: map[string]int64{"x": 1},
			Artifacts: []exportapi.Artifact{{Name: "n"}}, Sources: []exportapi.SourceSpec{{Name: "n", Path: "p"}}},
		exportapi.Profile{APIVersion: "a", Kind: "k", Metadata: exportapi.ProfileMetadata{Name: "n", Tenant: "t", Revision: "r1",
			Labels: map[string]string{"z": "1", "a": "2"}}, Spec: exportapi.ProfileSpec{Kind: "json", Variant: "raw", Include: []string{"vex"},
			Distribution: []exportapi.DistTarget{{Kind: "oci", Target: "t"}}, Retention: &exportapi.Retention{Mode: "days", Value: 1},
			Encryption: exportapi.Encryption{Enabled: true, Mode: "age", RecipientKeys: []string{"k"}, Strict: true}}},
	}
	for _, v := range vals {
		fast, err := Fast(v)
		if err != nil {
			t.Fatal(err)
		}
		slow, err := Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if string(fast) != string(slow) {
			t.Errorf("%T: fields are not declared in sorted JSON order:\nfast %s\ncanon %s", v, fast, slow)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain ascii text longer than eight", "\"quoted\" \\ back", "ctl \x00\x01\b\f\n\r\t\x1f\x7f",
		"caf\u00e9 \u2028\u2029 \U0001F600", "bad \xff\xfe utf8 \xe2\x80", "<html>&amp;</html>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := Fast(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendString(nil, s); string(got) != string(want) {
			t.Fatalf("AppendString(%q) = %s, encoding/json %s", s, got, want)
		}
		if got := AppendString([]byte("x"), []byte(s)); string(got) != "x"+string(want) {
			t.Fatalf("AppendString([]byte %q) = %s, encoding/json %s", s, got, want)
		}
	})
}

// BenchmarkAppendString escapes real OSV documents (pretty-printed JSON:
// a quote or a newline every eight to ten bytes), as raw lines do.
func BenchmarkAppendString(b *testing.B) {
	var docs [][]byte
	n := 0
	filepath.WalkDir("../../testdata/evidence/osv", func(p string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() && strings.HasSuffix(p, ".json") {
			if d, err := os.ReadFile(p); err == nil {
				docs = append(docs, d)
				n += len(d)
			}
		}
		return nil
	})
	if len(docs) == 0 {
		b.Fatal("no OSV documents under testdata/evidence/osv")
	}
	b.SetBytes(int64(n))
	var buf []byte
	for b.Loop() {
		for _, d := range docs {
			buf = AppendString(buf[:0], d)
		}
	}
}

// BenchmarkAppendStringShort escapes the short strings a normalised record
// and an index entry are made of.
func BenchmarkAppendStringShort(b *testing.B) {
	strs := []string{"AlmaLinux:8", "nodejs-nodemon", "1.18.3-1.module_el8.3.0+2023+d2377ea3", "0", "ECOSYSTEM",
		"introduced", "fixed", "BENCH-ALBA-2019:4275-0000042", "sha256:a3e9e46765793ad8261c1ae2e2ac092c0c91c432afcc37536b50aa289795b476",
		"data/raw/advisories/bench.jsonl.zst", "0000/BENCH-ALBA-2019_4275-0000042.json", "bench", "advisory", "Go", "PyPI",
		"pkg:npm/left-pad@1.3.0", "https://errata.almalinux.org/8/ALSA-2019-4275.html", "Moderate"}
	n := 0
	for _, s := range strs {
		n += len(s)
	}
	b.SetBytes(int64(n))
	var buf []byte
	for b.Loop() {
		buf = buf[:0]
		for _, s := range strs {
			buf = AppendString(buf, s)
		}
	}
}
