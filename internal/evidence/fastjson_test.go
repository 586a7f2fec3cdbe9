package evidence

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/stellaops/stella/internal/record"
)

// The fast decoder must give what encoding/json gives for every document it
// accepts (unmarshal falls back to encoding/json for the others). These tests
// compare the two on every JSON fixture and, in FuzzFastDecode, on any bytes.

// sameAsV1 decodes raw into a probe both ways; when the fast decoder accepts
// it, encoding/json must accept it with the same value.
func sameAsV1(t *testing.T, name string, raw []byte) {
	t.Helper()
	var fast, slow probe
	slowErr := json.Unmarshal(raw, &slow)
	if jsonv2.Unmarshal(raw, &fast, fastOptions) == nil {
		if slowErr != nil {
			t.Fatalf("%s: fast decoder accepted what encoding/json rejects: %v", name, slowErr)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%s: fast decoder differs from encoding/json:\nfast %+v\nslow %+v", name, fast, slow)
		}
	}
	// The OSV scanner, on what Parse hands it: valid UTF-8 starting with '{'.
	if !utf8.Valid(raw) || firstByte(raw) != '{' {
		return
	}
	var osv probe
	if fastOSV(raw, &osv) {
		if slowErr != nil {
			t.Fatalf("%s: OSV scanner accepted what encoding/json rejects: %v", name, slowErr)
		}
		if !reflect.DeepEqual(osv, slow) {
			t.Fatalf("%s: OSV scanner differs from encoding/json:\nscan %+v\nslow %+v", name, osv, slow)
		}
	}
}

func TestFastDecodeMatchesEncodingJSON(t *testing.T) {
	n, fastOK, scanOK := 0, 0, 0
	err := filepath.WalkDir(evidenceRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".json") {
			return err
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		n++
		var pr probe
		if jsonv2.Unmarshal(raw, &pr, fastOptions) == nil {
			fastOK++
		}
		var sc probe
		if utf8.Valid(raw) && firstByte(raw) == '{' && fastOSV(raw, &sc) {
			scanOK++
		}
		sameAsV1(t, p, raw)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 100 || fastOK < n*9/10 {
		t.Fatalf("fast decoder took %d of %d fixtures; expected nearly all", fastOK, n)
	}
	if scanOK < n/2 { // most fixtures are OSV records
		t.Fatalf("OSV scanner took %d of %d fixtures; expected most", scanOK, n)
	}
	t.Logf("fast decoder took %d of %d JSON fixtures, OSV scanner %d", fastOK, n, scanOK)
}

// TestFastParseMatchesEncodingJSON parses every fixture (all formats) with
// and without the fast decoder: same records, same errors.
func TestFastParseMatchesEncodingJSON(t *testing.T) {
	err := filepath.WalkDir(evidenceRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		doc := record.Document{Source: "s", Path: filepath.ToSlash(p), Raw: raw}
		fast, ferr := Parse(doc)
		fastDecode = false
		slow, serr := Parse(doc)
		fastDecode = true
		if (ferr == nil) != (serr == nil) || ferr != nil && ferr.Error() != serr.Error() {
			t.Fatalf("%s: errors differ: fast %v, encoding/json %v", p, ferr, serr)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%s: records differ:\nfast %+v\nslow %+v", p, fast, slow)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestFastDecodeEdgeCases(t *testing.T) {
	for _, doc := range []string{
		`{"ID":"X","Modified":"2024-01-01T00:00:00Z"}`,
		`{"id":"X","id":"Y"}`,
		`{"id":["a",1,"b"],"modified":null,"database_specific":{"severity":"HIGH","cwe_ids":["CWE-1",2]}}`,
		`{"database_specific":{"SEVERITY":"low","CWE_IDS":["CWE-79"]},"affected":[{"ecosystem_specific":[1]}]}`,
		`{"document":{"csaf_version":"2.0","category":"csaf_vex"},"@context":["https://openvex.dev/ns",1]}`,
		`{"affected":[{"ranges":[{"events":[{"fixed":null,"introduced":"0"}]}]}]}`,
		`{"summary":"caf\u00e9 \ud83d\ude00","details":"\u0000"}`,
		`{"summary":"\ud83d","details":"\ude00\u0041"}`,
		`{"id":"X","aliases":["a",null],"modified":["x",null,2],"database_specific":{"cwe_ids":["a",null]}}`,
		`{"id":"X","affected":[{"package":{"name":"a","Name":"b"}}]}`,
		`{"id":"X","affected":[{"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.0"}]}],"versions":["1","2"]}],"references":[{"type":"WEB","url":"https://x"}],"severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N"}]}`,
		`{"id":"X","credits":[{"name":"a","contact":["b"]}],"n":-1.5e+3,"t":true,"f":false,"z":null,"o":{}}`,
		` {"id" : "X" , "modified" : "2024-01-01T00:00:00Z" } `,
		`{"id":"X"} x`,
		`{"id":"X","details":"a\qb"}`,
		`{"id":"X","n":01}`,
		`{"id":"X","n":1.}`,
	} {
		sameAsV1(t, doc, []byte(doc))
	}
}

func FuzzFastDecode(f *testing.F) {
	f.Add([]byte(`{"id":"X-1","modified":"2024-01-01T00:00:00Z","database_specific":{"severity":"HIGH","cwe_ids":["CWE-79"]}}`))
	f.Add([]byte(`{"ID":"X","Statements":[],"document":{"csaf_version":"2.0"}}`))
	// Real records of several sources as seeds.
	n := 0
	filepath.WalkDir(evidenceRoot+"/osv", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".json") && n < 40 {
			if raw, err := os.ReadFile(p); err == nil && len(raw) < 8<<10 {
				f.Add(raw)
				n++
			}
		}
		return nil
	})
	f.Fuzz(func(t *testing.T, raw []byte) {
		sameAsV1(t, "fuzz input", raw)
	})
}
