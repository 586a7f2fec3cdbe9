package evidence

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stellaops/stella/internal/canon"
)

// rawLineOf writes a raw record line the way the exporter does (keys in
// order, strings escaped by canon.AppendString).
func rawLineOf(doc []byte, digest, id, path, source string) []byte {
	b := canon.AppendString(append([]byte(nil), `{"contentType":`...), "application/json")
	b = canon.AppendString(append(b, `,"digest":`...), digest)
	b = canon.AppendString(append(b, `,"document":`...), doc)
	b = canon.AppendString(append(b, `,"format":`...), "osv")
	b = canon.AppendString(append(b, `,"id":`...), id)
	b = canon.AppendString(append(b, `,"kind":`...), "advisory")
	b = canon.AppendString(append(b, `,"path":`...), path)
	b = canon.AppendString(append(b, `,"source":`...), source)
	return append(b, "}\n"...)
}

// checkRawLine fails t when fastRawLine decodes line differently from
// encoding/json (or decodes what encoding/json rejects).
func checkRawLine(t *testing.T, line []byte) bool {
	t.Helper()
	var fast rawLine
	doc, ok := fastRawLine(line, &fast)
	var slow rawLine
	jerr := json.Unmarshal(line, &slow)
	if !ok {
		return false
	}
	if jerr != nil {
		t.Fatalf("fast path took %q, encoding/json rejects it: %v", line, jerr)
	}
	fast.Document = string(doc)
	if fast != slow {
		t.Fatalf("line %q:\nfast %+v\njson %+v", line, fast, slow)
	}
	return true
}

// Every real fixture document, as the exporter writes its raw line, takes
// the fast path and decodes to what encoding/json gives.
func TestFastRawLineOnFixtures(t *testing.T) {
	n := 0
	filepath.WalkDir(evidenceRoot, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || !(strings.HasSuffix(p, ".json") || strings.HasSuffix(p, ".yaml")) {
			return nil
		}
		doc, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		line := rawLineOf(doc, "sha256:00", "ID-1", "a/b.json", "src")
		if !checkRawLine(t, line) && json.Valid(doc) {
			// Documents with invalid UTF-8 or lone surrogates may fall back; valid JSON text must not.
			if strings.ToValidUTF8(string(doc), "\ufffd") == string(doc) {
				t.Errorf("%s: its raw line does not take the fast path", p)
			}
		}
		n++
		return nil
	})
	if n < 20 {
		t.Fatalf("only %d fixtures", n)
	}
}

func FuzzRawLine(f *testing.F) {
	f.Add(rawLineOf([]byte("{\n  \"id\": \"X\",\n  \"details\": \"a \\\"quoted\\\" \\u00e9 \\ud83d\\ude00 tab\\t\"\n}\n"), "sha256:ab", "X", "p/x.json", "s"))
	for _, s := range []string{
		`{}`, `{"document":""}` + "\n", `{"digest":null}`, `{"Digest":"x"}`, `{"digest":"a","digest":"b"}`,
		`{"id":"x","other":1}`, ` { "id" : "x" , "path" : "p" } `, `{"id":"x"} trailing`, `{"document":"\ud800"}`,
		`{"document":"\udc00\u0041"}`, "{\"id\":\"\xff\"}", `{"id":"a\/b\b\f\n\r\t\\\""}`, `{"id":1}`, `{"id":"x",}`,
		`{"document":"\u0000"}`, `[]`, `{"id":"x"`, `{"id":"x"}` + "\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		checkRawLine(t, line)
	})
}
