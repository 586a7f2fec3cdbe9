package evidence

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stellaops/stella/internal/record"
	"github.com/stellaops/stella/internal/xerr"
)

// FuzzParse feeds arbitrary bytes, under any name, to Parse. The seed corpus
// (testdata/fuzz/FuzzParse) holds real documents of every format. Parse must
// not panic, must fail only with a *DocError that has a reason, and what it
// returns must marshal and keep its invariants.
func FuzzParse(f *testing.F) {
	f.Add("x.json", []byte(`{"id":"X-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"}]}]}]}`))
	f.Add("x.yaml", []byte("id: X\nmodified: 2024-01-01T00:00:00Z\n"))
	f.Add("x.jsonl", []byte(`{"schema":"stella.policy.finding/v1","findingId":"f1","policyId":"p","subject":"img","vulnerabilityId":"CVE-1","status":"fixed","verdict":"pass","evaluatedAt":"2026-01-01T00:00:00Z"}`+"\n"))
	f.Fuzz(func(t *testing.T, name string, raw []byte) {
		keep := append([]byte(nil), raw...)
		p, err := Parse(record.Document{Source: "fuzz", Path: name, Raw: raw})
		if !bytes.Equal(raw, keep) {
			t.Fatal("Parse changed Raw")
		}
		if err != nil {
			var de *DocError
			if !errors.As(err, &de) || de.Reason == "" || de.Source != "fuzz" || de.Path != name {
				t.Fatalf("bad error %T %v", err, err)
			}
			return
		}
		checkFuzzParsed(t, p, raw)
	})
}

func checkFuzzParsed(t *testing.T, p *record.Parsed, raw []byte) {
	t.Helper()
	if _, err := json.Marshal(p); err != nil {
		t.Fatalf("marshal: %v", err)
	}
	switch p.Kind {
	case record.KindAdvisory:
		if p.Advisory == nil || p.ID == "" || p.Advisory.ID != p.ID {
			t.Fatalf("advisory without id: %+v", p)
		}
	case record.KindVEX:
		seen := map[string]bool{}
		for _, s := range p.Statements {
			if seen[s.ID] || !validStatus(s.Status) || s.Product == "" || s.Vulnerability == "" {
				t.Fatalf("bad statement %+v", s)
			}
			seen[s.ID] = true
		}
	case record.KindFindings:
		if len(p.Lines) == 0 {
			t.Fatal("findings without lines")
		}
		for _, l := range p.Lines {
			if !bytes.Contains(raw, l.Raw) || bytes.ContainsAny(l.Raw, "\n") {
				t.Fatalf("line raw %q is not a line of the document", l.Raw)
			}
		}
	case record.KindSBOM, record.KindPolicy:
	default:
		t.Fatalf("unknown kind %q", p.Kind)
	}
}

// FuzzWalkTar feeds arbitrary bytes as a tar archive to the archive walker.
// It must not panic; every document it hands out must have a safe path
// inside the source, a correct digest and at most the size limit; every
// problem must be a *DocError or an InvalidInput *xerr.Error.
func FuzzWalkTar(f *testing.F) {
	tb := func(entries ...tarEntry) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for _, e := range entries {
			h := e.h
			if h.Typeflag == tar.TypeReg {
				h.Size = int64(len(e.body))
			}
			h.Mode = 0o644
			if err := tw.WriteHeader(&h); err != nil {
				f.Fatal(err)
			}
			tw.Write(e.body)
		}
		tw.Close()
		return b.Bytes()
	}
	f.Add(tb(reg("a/ok.json", `{"id":"X","modified":"2024-01-01T00:00:00Z"}`), reg("b.yaml", "id: Y\nmodified: 2024-01-01T00:00:00Z\n")))
	f.Add(tb(reg("../evil.json", `{}`), reg("/abs.json", `{}`), reg("./dir/../x.json", "{}")))
	f.Add(tb(tarEntry{h: tar.Header{Name: "l.json", Typeflag: tar.TypeSymlink, Linkname: "../../etc/passwd"}},
		tarEntry{h: tar.Header{Name: "h.json", Typeflag: tar.TypeLink, Linkname: "l.json"}},
		tarEntry{h: tar.Header{Name: "d/", Typeflag: tar.TypeDir}}, reg("d/.hidden.json", "{}"), reg("big.json", strings.Repeat("x", 300))))
	f.Add(tb(tarEntry{h: tar.Header{Name: strings.Repeat("long/", 40) + "x.json", Typeflag: tar.TypeReg, Format: tar.FormatPAX, PAXRecords: map[string]string{"comment": "x"}}, body: []byte("{}")}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 256
		w := &walker{ctx: context.Background(), src: Source{Name: "f", Path: "fuzz.tar"}, limit: limit,
			fn: func(doc record.Document, err error) error {
				if err != nil {
					var de *DocError
					if !errors.As(err, &de) || de.Reason == "" || de.Source != "f" {
						t.Fatalf("bad document error %T %v", err, err)
					}
					return nil
				}
				if doc.Path == "" || strings.HasPrefix(doc.Path, "/") || strings.ContainsAny(doc.Path, "\\\x00") {
					t.Fatalf("unsafe path %q", doc.Path)
				}
				for _, seg := range strings.Split(doc.Path, "/") {
					if seg == ".." || seg == "." || seg == "" || hidden(seg) {
						t.Fatalf("path %q has segment %q", doc.Path, seg)
					}
				}
				if !IsCandidate(doc.Path) || len(doc.Raw) > limit || doc.Digest != record.Digest(doc.Raw) {
					t.Fatalf("bad document %q (%d bytes)", doc.Path, len(doc.Raw))
				}
				if p, err := Parse(doc); err == nil {
					checkFuzzParsed(t, p, doc.Raw)
				}
				return nil
			}}
		err := w.walkTar(tar.NewReader(bytes.NewReader(data)))
		if err != nil {
			var xe *xerr.Error
			if !errors.As(err, &xe) || xe.Code != xerr.InvalidInput || xe.Hint == "" {
				t.Fatalf("bad source error %T %v", err, err)
			}
		}
	})
}
