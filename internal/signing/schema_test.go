package signing

// A small JSON Schema checker (the draft-04/07 keywords the schemas in
// testdata/signing/schemas use) and the tests that validate our output with
// it. The checker refuses schemas with keywords it does not implement, so a
// schema cannot be half-checked without notice.

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/stellaops/stella/internal/canon"
)

// Keywords that only annotate (no effect on validity).
var annotationKeywords = map[string]bool{
	"$schema": true, "$id": true, "$comment": true, "title": true, "description": true,
	"definitions": true, "$defs": true, "binaryEncoding": true, "examples": true, "default": true,
}

// Keywords the checker implements.
var assertionKeywords = map[string]bool{
	"$ref": true, "type": true, "enum": true, "const": true,
	"properties": true, "required": true, "additionalProperties": true, "minProperties": true,
	"items": true, "minItems": true, "minLength": true, "pattern": true, "format": true,
	"oneOf": true, "anyOf": true, "allOf": true,
}

type jsonSchema struct {
	name string
	root map[string]any
}

func loadSchema(t *testing.T, file string, fix func(any)) *jsonSchema {
	t.Helper()
	p := filepath.Join(moduleRoot(t), "testdata", "signing", "schemas", file)
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	root, ok := decodeJSON(t, raw).(map[string]any)
	if !ok {
		t.Fatalf("%s: not a JSON object", file)
	}
	if fix != nil {
		fix(root)
	}
	s := &jsonSchema{name: file, root: root}
	s.checkKeywords(t, root, "#", false)
	return s
}

func decodeJSON(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("invalid JSON: %v\n%s", err, b)
	}
	return v
}

// checkKeywords walks every subschema and fails on unknown keywords.
func (s *jsonSchema) checkKeywords(t *testing.T, node any, at string, isMap bool) {
	t.Helper()
	m, ok := node.(map[string]any)
	if !ok {
		return
	}
	if isMap { // a name -> schema map (properties, definitions)
		for k, v := range m {
			s.checkKeywords(t, v, at+"/"+k, false)
		}
		return
	}
	for k, v := range m {
		switch {
		case k == "properties" || k == "definitions" || k == "$defs":
			s.checkKeywords(t, v, at+"/"+k, true)
		case k == "items" || k == "additionalProperties":
			s.checkKeywords(t, v, at+"/"+k, false)
		case k == "oneOf" || k == "anyOf" || k == "allOf":
			for i, sub := range v.([]any) {
				s.checkKeywords(t, sub, fmt.Sprintf("%s/%s/%d", at, k, i), false)
			}
		case annotationKeywords[k] || assertionKeywords[k]:
		default:
			t.Fatalf("%s: %s uses keyword %q that the test checker does not implement", s.name, at, k)
		}
	}
}

func (s *jsonSchema) resolve(ref string) (any, error) {
	if !strings.HasPrefix(ref, "#") {
		return nil, fmt.Errorf("remote $ref %q not supported", ref)
	}
	var node any = s.root
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#"), "/")[1:] {
		part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
		m, ok := node.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("$ref %q does not resolve", ref)
		}
		if node, ok = m[part]; !ok {
			return nil, fmt.Errorf("$ref %q does not resolve", ref)
		}
	}
	return node, nil
}

// validate returns the list of violations of v against the (sub)schema sch.
func (s *jsonSchema) validate(sch any, v any, at string) []string {
	switch b := sch.(type) {
	case bool:
		if b {
			return nil
		}
		return []string{at + ": not allowed"}
	case map[string]any:
		return s.validateObj(b, v, at)
	}
	return []string{at + ": schema is not an object"}
}

func (s *jsonSchema) validateObj(sch map[string]any, v any, at string) (errs []string) {
	fail := func(f string, a ...any) { errs = append(errs, at+": "+fmt.Sprintf(f, a...)) }
	if ref, ok := sch["$ref"].(string); ok {
		// draft-04/07: $ref replaces its siblings.
		target, err := s.resolve(ref)
		if err != nil {
			fail("%v", err)
			return errs
		}
		return s.validate(target, v, at)
	}
	if ty, ok := sch["type"]; ok {
		var types []string
		switch tt := ty.(type) {
		case string:
			types = []string{tt}
		case []any:
			for _, x := range tt {
				types = append(types, x.(string))
			}
		}
		match := false
		for _, want := range types {
			match = match || jsonTypeIs(v, want)
		}
		if !match {
			fail("type is %s, want %s", jsonTypeOf(v), strings.Join(types, "|"))
			return errs
		}
	}
	if c, ok := sch["const"]; ok && !jsonEqual(c, v) {
		fail("value %v is not the constant %v", v, c)
	}
	if en, ok := sch["enum"].([]any); ok {
		found := false
		for _, e := range en {
			found = found || jsonEqual(e, v)
		}
		if !found {
			fail("value %v not in enum", v)
		}
	}
	switch x := v.(type) {
	case map[string]any:
		if req, ok := sch["required"].([]any); ok {
			for _, r := range req {
				if _, ok := x[r.(string)]; !ok {
					fail("missing required property %q", r)
				}
			}
		}
		if n, ok := sch["minProperties"].(json.Number); ok {
			if min, _ := n.Int64(); int64(len(x)) < min {
				fail("%d properties, want at least %d", len(x), min)
			}
		}
		props, _ := sch["properties"].(map[string]any)
		for k, val := range x {
			if ps, ok := props[k]; ok {
				errs = append(errs, s.validate(ps, val, at+"/"+k)...)
			} else if ap, ok := sch["additionalProperties"]; ok {
				errs = append(errs, s.validate(ap, val, at+"/"+k)...)
			}
		}
	case []any:
		if n, ok := sch["minItems"].(json.Number); ok {
			if min, _ := n.Int64(); int64(len(x)) < min {
				fail("%d items, want at least %d", len(x), min)
			}
		}
		if it, ok := sch["items"]; ok {
			for i, e := range x {
				errs = append(errs, s.validate(it, e, fmt.Sprintf("%s/%d", at, i))...)
			}
		}
	case string:
		if n, ok := sch["minLength"].(json.Number); ok {
			if min, _ := n.Int64(); int64(len([]rune(x))) < min {
				fail("string shorter than %d", min)
			}
		}
		if p, ok := sch["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(x) {
			fail("%q does not match %s", x, p)
		}
		if f, ok := sch["format"].(string); ok {
			if err := checkFormat(f, sch, x); err != nil {
				fail("format %s: %v", f, err)
			}
		}
	}
	if all, ok := sch["allOf"].([]any); ok {
		for _, sub := range all {
			errs = append(errs, s.validate(sub, v, at)...)
		}
	}
	if anyOf, ok := sch["anyOf"].([]any); ok {
		okN := 0
		for _, sub := range anyOf {
			if len(s.validate(sub, v, at)) == 0 {
				okN++
			}
		}
		if okN == 0 {
			fail("matches none of anyOf")
		}
	}
	if oneOf, ok := sch["oneOf"].([]any); ok {
		okN := 0
		for _, sub := range oneOf {
			if len(s.validate(sub, v, at)) == 0 {
				okN++
			}
		}
		if okN != 1 {
			fail("matches %d of oneOf, want exactly 1", okN)
		}
	}
	return errs
}

func checkFormat(f string, sch map[string]any, x string) error {
	switch f {
	case "uri":
		u, err := url.Parse(x)
		if err != nil {
			return err
		}
		if u.Scheme == "" {
			return fmt.Errorf("%q has no scheme", x)
		}
	case "uri-reference":
		_, err := url.Parse(x)
		return err
	case "date-time":
		_, err := time.Parse(time.RFC3339, x)
		return err
	case "binary":
		if sch["binaryEncoding"] == "base64" {
			// protobuf JSON accepts standard or URL-safe, padded or not.
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
				if _, err := enc.DecodeString(x); err == nil {
					return nil
				}
			}
			return fmt.Errorf("not base64")
		}
	}
	return nil
}

func jsonTypeOf(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case json.Number:
		if _, err := x.Int64(); err == nil {
			return "integer"
		}
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func jsonTypeIs(v any, want string) bool {
	got := jsonTypeOf(v)
	return got == want || (want == "number" && got == "integer")
}

func jsonEqual(a, b any) bool {
	ca, err1 := canon.Marshal(a)
	cb, err2 := canon.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ca, cb)
}

func (s *jsonSchema) check(t *testing.T, doc []byte) []string {
	t.Helper()
	return s.validate(s.root, decodeJSON(t, doc), "$")
}

// camelRequired maps snake_case names in every "required" list to
// lowerCamelCase: the generated sigstore schemas name oneOf alternatives by
// their protobuf field names (see testdata/signing/schemas/README.md).
func camelRequired(node any) {
	switch x := node.(type) {
	case map[string]any:
		for k, v := range x {
			if k == "required" {
				for i, r := range v.([]any) {
					v.([]any)[i] = lowerCamel(r.(string))
				}
				continue
			}
			camelRequired(v)
		}
	case []any:
		for _, v := range x {
			camelRequired(v)
		}
	}
}

func lowerCamel(s string) string {
	parts := strings.Split(s, "_")
	for i := 1; i < len(parts); i++ {
		if parts[i] != "" {
			r := []rune(parts[i])
			r[0] = unicode.ToUpper(r[0])
			parts[i] = string(r)
		}
	}
	return strings.Join(parts, "")
}

// schemaFixtures makes one of each output with realistic values.
func schemaFixtures(t *testing.T) (stmt, pred, env, bundle []byte) {
	t.Helper()
	kp := newKeyPair(t, t.TempDir(), "k", "pw")
	blob := []byte("export.json bytes")
	st := NewProvenance(ProvenanceInput{
		Subjects: []Subject{
			{Name: "export.json", Digest: SHA256Digest(hexSHA256(blob))},
			{Name: "data/raw/advisories/osv.jsonl.zst", Digest: SHA256Digest("sha256:" + hexSHA256([]byte("a")))},
		},
		BuilderID:      "https://github.com/stellaops/stella",
		BuilderVersion: "v0.1.0",
		ExternalParameters: map[string]any{
			"profile":   map[string]any{"kind": "mirror", "variant": "full", "name": "nightly", "revision": "3"},
			"selectors": map[string]any{"tenant": "acme", "ecosystems": []string{"npm"}},
		},
		ResolvedDependencies: []ResourceDescriptor{{Name: "osv", Digest: SHA256Digest(hexSHA256([]byte("osv")))}},
		EncryptionRecipients: []string{"age1qqq"},
	})
	st.Predicate.RunDetails.Metadata = &BuildMetadata{InvocationID: "run-1", StartedOn: "2026-11-27T10:00:00Z", FinishedOn: "2026-11-27T10:01:00Z"}
	stmt, err := st.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	pred = mustJSON(t, st.Predicate)
	env, err = SignDSSE(kp.signer, InTotoPayloadType, stmt)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := kp.signer.Sign(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	bundle = NewBundle(sig, sha256.Sum256(blob), kp.signer.PublicKey())
	return stmt, pred, env, bundle
}

func TestSchemasAcceptOurOutput(t *testing.T) {
	stmtSchema := loadSchema(t, "in-toto-statement-v1.schema.json", nil)
	predSchema := loadSchema(t, "slsa-provenance-v1.schema.json", nil)
	envSchema := loadSchema(t, "dsse-envelope.schema.json", nil)
	bundleSchema := loadSchema(t, "sigstore-bundle.schema.json", camelRequired)

	stmt, pred, env, bundle := schemaFixtures(t)
	for name, c := range map[string]struct {
		s   *jsonSchema
		doc []byte
	}{
		"statement": {stmtSchema, stmt}, "predicate": {predSchema, pred},
		"envelope": {envSchema, env}, "bundle": {bundleSchema, bundle},
	} {
		if errs := c.s.check(t, c.doc); len(errs) > 0 {
			t.Errorf("%s does not validate against %s:\n  %s\n%s", name, c.s.name, strings.Join(errs, "\n  "), c.doc)
		}
	}
}

// The checker and the schemas really reject broken documents.
func TestSchemasRejectBrokenOutput(t *testing.T) {
	stmtSchema := loadSchema(t, "in-toto-statement-v1.schema.json", nil)
	predSchema := loadSchema(t, "slsa-provenance-v1.schema.json", nil)
	envSchema := loadSchema(t, "dsse-envelope.schema.json", nil)
	bundleSchema := loadSchema(t, "sigstore-bundle.schema.json", camelRequired)
	stmt, pred, env, bundle := schemaFixtures(t)

	edit := func(doc []byte, f func(m map[string]any)) []byte {
		m := decodeJSON(t, doc).(map[string]any)
		f(m)
		return mustJSON(t, m)
	}
	obj := func(m map[string]any, path ...string) map[string]any {
		for _, p := range path {
			m = m[p].(map[string]any)
		}
		return m
	}
	cases := []struct {
		name string
		s    *jsonSchema
		doc  []byte
	}{
		{"statement: wrong _type", stmtSchema, edit(stmt, func(m map[string]any) { m["_type"] = "https://in-toto.io/Statement/v0.1" })},
		{"statement: no subject", stmtSchema, edit(stmt, func(m map[string]any) { delete(m, "subject") })},
		{"statement: empty subject", stmtSchema, edit(stmt, func(m map[string]any) { m["subject"] = []any{} })},
		{"statement: subject without digest", stmtSchema, edit(stmt, func(m map[string]any) {
			delete(m["subject"].([]any)[0].(map[string]any), "digest")
		})},
		{"statement: uppercase hex", stmtSchema, edit(stmt, func(m map[string]any) {
			d := m["subject"].([]any)[0].(map[string]any)["digest"].(map[string]any)
			d["sha256"] = strings.ToUpper(d["sha256"].(string))
		})},
		{"statement: prefixed digest", stmtSchema, edit(stmt, func(m map[string]any) {
			d := m["subject"].([]any)[0].(map[string]any)["digest"].(map[string]any)
			d["sha256"] = "sha256:" + d["sha256"].(string)
		})},
		{"statement: predicateType not a URI", stmtSchema, edit(stmt, func(m map[string]any) { m["predicateType"] = "slsa" })},
		{"predicate: no buildType", predSchema, edit(pred, func(m map[string]any) { delete(obj(m, "buildDefinition"), "buildType") })},
		{"predicate: no externalParameters", predSchema, edit(pred, func(m map[string]any) { delete(obj(m, "buildDefinition"), "externalParameters") })},
		{"predicate: builder id not a URI", predSchema, edit(pred, func(m map[string]any) { obj(m, "runDetails", "builder")["id"] = "stella" })},
		{"predicate: local time", predSchema, edit(pred, func(m map[string]any) {
			obj(m, "runDetails", "metadata")["startedOn"] = "2026-11-27T10:00:00+01:00"
		})},
		{"predicate: dependency with only a name", predSchema, edit(pred, func(m map[string]any) {
			obj(m, "buildDefinition")["resolvedDependencies"] = []any{map[string]any{"name": "osv"}}
		})},
		{"envelope: extra field", envSchema, edit(env, func(m map[string]any) { m["x"] = "y" })},
		{"envelope: payload not base64", envSchema, edit(env, func(m map[string]any) { m["payload"] = "%%%" })},
		{"envelope: signature extra field", envSchema, edit(env, func(m map[string]any) {
			m["signatures"].([]any)[0].(map[string]any)["cert"] = "x"
		})},
		{"bundle: no messageSignature", bundleSchema, edit(bundle, func(m map[string]any) { delete(m, "messageSignature") })},
		{"bundle: unknown algorithm", bundleSchema, edit(bundle, func(m map[string]any) {
			obj(m, "messageSignature", "messageDigest")["algorithm"] = "SHA1"
		})},
		{"bundle: no key material", bundleSchema, edit(bundle, func(m map[string]any) { m["verificationMaterial"] = map[string]any{} })},
	}
	for _, c := range cases {
		if errs := c.s.check(t, c.doc); len(errs) == 0 {
			t.Errorf("%s: accepted by %s:\n%s", c.name, c.s.name, c.doc)
		}
	}
}
