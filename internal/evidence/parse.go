package evidence

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"reflect"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"
	"gopkg.in/yaml.v3"

	"github.com/stellaops/stella/internal/record"
)

// Parse detects the format of doc from its content (a .yaml/.yml name means
// YAML, a .jsonl/.ndjson name means JSON lines) and returns what it holds,
// with the normalised records filled and Source, Path and Digest copied from
// doc. Any problem is a *DocError with a precise reason. Parse never changes
// doc.Raw, and the result may share its memory (findings lines and the
// strings of an OSV record alias it): a caller that reuses doc.Raw's memory
// must be done with the result first.
func Parse(doc record.Document) (*record.Parsed, error) {
	if doc.Digest == "" {
		doc.Digest = record.Digest(doc.Raw)
	}
	d := &docCtx{doc: doc}
	p, err := d.parse()
	if err != nil {
		return nil, err
	}
	return p, nil
}

// docCtx carries the document being parsed, for error messages and for the
// fields every record copies.
type docCtx struct {
	doc  record.Document
	yaml bool // the document was read as YAML
}

// fail makes the *DocError of this document.
func (d *docCtx) fail(format string, args ...any) *DocError {
	return &DocError{Source: d.doc.Source, Path: d.doc.Path, Reason: fmt.Sprintf(format, args...)}
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

func (d *docCtx) parse() (*record.Parsed, *DocError) {
	raw := d.doc.Raw
	if reason := encodingProblem(raw); reason != "" {
		return nil, d.fail("%s", reason)
	}
	body := bytes.TrimPrefix(raw, utf8BOM)
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, d.fail("empty document")
	}
	switch strings.ToLower(path.Ext(d.doc.Path)) {
	case ".jsonl", ".ndjson":
		return d.parseLines(body)
	case ".yaml", ".yml":
		d.yaml = true
		js, err := d.yamlToJSON(body)
		if err != nil {
			return nil, err
		}
		return d.parseObject(js)
	}
	return d.parseObject(body)
}

// probe is decoded from every JSON object: the OSV fields (so that an OSV
// document, the bulk of any corpus, is decoded in one pass) and tolerant
// markers for the keys that tell the other formats apart.
type probe struct {
	osvDoc
	Context     jsonText   `json:"@context"`
	Graph       present    `json:"@graph"`
	Statements  present    `json:"statements"`
	Document    csafHeader `json:"document"`
	BomFormat   jsonText   `json:"bomFormat"`
	SPDXVersion jsonText   `json:"spdxVersion"`
	Schema      jsonText   `json:"schema"`
	// Things that are often found beside evidence but are not evidence.
	Sources      present `json:"Sources"` // VEX Hub manifest.json: {"ID", "Sources"}
	Feed         present `json:"feed"`    // ROLIE feed
	Service      present `json:"service"` // ROLIE service document
	Categories   present `json:"categories"`
	Aggregator   present `json:"aggregator"`       // CSAF aggregator
	CanonicalURL present `json:"canonical_url"`    // CSAF provider metadata
	MetadataVer  present `json:"metadata_version"` // CSAF provider metadata
}

const noKeysReason = "not an evidence document: JSON object has none of the keys of OSV, OpenVEX, CSAF, CycloneDX or SPDX"

// parseObject detects and parses one JSON object (a .json document, or a
// YAML document converted to JSON).
func (d *docCtx) parseObject(js []byte) (*record.Parsed, *DocError) {
	switch c := firstByte(js); c {
	case '{':
	case '[':
		return nil, d.fail("not an evidence document: the top-level %s value is an array; evidence documents are objects", d.lang())
	default:
		if d.yaml {
			return nil, d.fail("not an evidence document: the top-level YAML value is not a mapping")
		}
		return nil, d.fail("not JSON: the document starts with %q", head(js, 24))
	}
	var pr probe
	var err error
	if !fastDecode || !fastOSV(js, &pr) { // the common case, an OSV record, in one pass
		pr = probe{}
		err = unmarshal(js, &pr)
	}
	var typeErr *json.UnmarshalTypeError
	if err != nil && !errors.As(err, &typeErr) {
		return nil, d.fail("%s", jsonProblem(err, js))
	}
	if typeErr != nil { // the OSV fields are embedded: name them as in the document
		typeErr.Field = strings.TrimPrefix(typeErr.Field, "osvDoc.")
	}
	// Type errors can only come from the OSV fields of the probe; they
	// matter only if the document is OSV.
	switch {
	case pr.Context.Set:
		ctx := pr.Context.First()
		switch {
		case strings.HasPrefix(ctx, "https://openvex.dev/ns"):
			return d.openVEX(js)
		case strings.Contains(ctx, "spdx.org/rdf/3") || (bool(pr.Graph) && strings.Contains(ctx, "spdx")):
			return nil, d.fail("SPDX 3.0 JSON-LD is not supported (SPDX 2.x JSON is)")
		}
		return nil, d.fail("not an evidence document: JSON-LD @context %q is not OpenVEX (https://openvex.dev/ns...)", ctx)
	case d.yaml && !isOSV(&pr, typeErr):
		return nil, d.fail("not an evidence document: YAML is read for OSV and OpenVEX only, and this mapping has neither an OSV \"id\" and \"modified\" nor an OpenVEX \"@context\"")
	case pr.Document.Set:
		return d.csaf(js, &pr.Document)
	case pr.BomFormat.Set:
		if pr.BomFormat.Str != "CycloneDX" {
			return nil, d.fail("not an evidence document: bomFormat %q is not CycloneDX", pr.BomFormat.Str)
		}
		return d.cycloneDX(js)
	case pr.SPDXVersion.Set:
		if !strings.HasPrefix(pr.SPDXVersion.Str, "SPDX-2.") {
			return nil, d.fail("SPDX version %q is not supported (SPDX 2.x JSON is)", pr.SPDXVersion.Str)
		}
		return d.spdx(js)
	case pr.Schema.Set:
		switch pr.Schema.Str {
		case SnapshotSchema:
			return d.policySnapshot(js)
		case FindingSchema:
			return nil, d.fail("a single %s record; findings are read from JSON lines documents (.jsonl or .ndjson), one finding per line", FindingSchema)
		}
		return nil, d.fail("not an evidence document: unknown schema %q (policy snapshots use %q)", pr.Schema.Str, SnapshotSchema)
	case isOSV(&pr, typeErr):
		if typeErr != nil {
			return nil, d.fail("OSV: %s", typeProblem(typeErr))
		}
		return d.osv(&pr.osvDoc)
	case pr.ID.Set && bool(pr.Sources):
		return nil, d.fail("not an evidence document: a VEX Hub manifest.json (an index of a package's VEX documents); exclude it: Exclude: [\"**/manifest.json\"] on the source in the config file (ExportCenter.Sources[].Exclude)")
	case bool(pr.Feed || pr.Service || pr.Categories):
		return nil, d.fail("not an evidence document: a ROLIE feed, service or category document (an index of CSAF documents)")
	case bool(pr.Aggregator || pr.CanonicalURL && pr.MetadataVer):
		return nil, d.fail("not an evidence document: CSAF aggregator or provider metadata (an index of CSAF documents)")
	case bool(pr.Statements):
		return nil, d.fail("not an evidence document: has \"statements\" but no OpenVEX \"@context\"")
	}
	return nil, d.fail(noKeysReason)
}

// isOSV reports whether the probed object looks like an OSV record: an "id"
// with one of "modified", "published", "schema_version" or "affected", or an
// OSV body ("modified" with "affected" or "schema_version") that lacks its id.
func isOSV(pr *probe, typeErr *json.UnmarshalTypeError) bool {
	affected := len(pr.Affected) > 0 || typeErr != nil && strings.HasPrefix(typeErr.Field, "affected")
	if pr.ID.Set {
		return pr.Modified.Set || pr.Published.Set || pr.SchemaVersion.Set || affected
	}
	return pr.Modified.Set && (affected || pr.SchemaVersion.Set)
}

// fastOptions make the fast decoder match names as encoding/json does:
// exactly first, then as strings.EqualFold (not ignoring '_' and '-').
var fastOptions = jsonv2.JoinOptions(jsonv2.MatchCaseInsensitiveNames(true), jsonv1.MatchCaseSensitiveDelimiter(true))

// fastDecode turns the fast path off in tests that compare it with encoding/json.
var fastDecode = true

// unmarshal decodes js into *v (a zero value) with the same result as
// encoding/json, faster: a document that the fast decoder reads without
// complaint is done; any other (invalid JSON, a value of the wrong type, a
// duplicate key, which encoding/json tolerates) is decoded again from zero by
// encoding/json, whose result and error stand. So the fast path changes no
// outcome and no message; it only skips the slow decoder for good documents.
// v must be a non-nil pointer.
func unmarshal(js []byte, v any) error {
	if fastDecode && jsonv2.Unmarshal(js, v, fastOptions) == nil {
		return nil
	}
	reflect.ValueOf(v).Elem().SetZero()
	return json.Unmarshal(js, v)
}

// decode unmarshals a JSON object into a format's struct; problems are
// reported with the format's name.
func (d *docCtx) decode(js []byte, v any, format string) *DocError {
	if err := unmarshal(js, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return d.fail("%s: %s", format, typeProblem(te))
		}
		return d.fail("%s: %v", format, err)
	}
	return nil
}

func (d *docCtx) lang() string {
	if d.yaml {
		return "YAML"
	}
	return "JSON"
}

// jsonProblem explains a JSON syntax error.
func jsonProblem(err error, js []byte) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		switch {
		case se.Error() == "unexpected end of JSON input":
			return fmt.Sprintf("truncated JSON at offset %d", len(js))
		case strings.Contains(se.Error(), "after top-level value"):
			off := se.Offset - 1
			return fmt.Sprintf("trailing data after the JSON value at offset %d (JSON lines documents must be named .jsonl or .ndjson)", off)
		}
		line, col := lineCol(js, se.Offset-1)
		return fmt.Sprintf("invalid JSON at offset %d (line %d, column %d): %s", se.Offset-1, line, col, se.Error())
	}
	return "invalid JSON: " + err.Error()
}

// typeProblem explains a JSON value of the wrong type.
func typeProblem(te *json.UnmarshalTypeError) string {
	want := "a " + te.Type.Kind().String()
	switch te.Type.Kind().String() {
	case "slice", "array":
		want = "an array"
	case "struct", "map":
		want = "an object"
	case "string":
		want = "a string"
	}
	if te.Field == "" {
		return fmt.Sprintf("the document is a JSON %s, expected %s", te.Value, want)
	}
	return fmt.Sprintf("%q is a JSON %s, expected %s", te.Field, te.Value, want)
}

func lineCol(b []byte, off int64) (line, col int) {
	if off < 0 {
		off = 0
	}
	if off > int64(len(b)) {
		off = int64(len(b))
	}
	line = 1 + bytes.Count(b[:off], []byte{'\n'})
	col = int(off) - bytes.LastIndexByte(b[:off], '\n')
	return line, col
}

func firstByte(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c
	}
	return 0
}

// head returns the start of b for a message, at most n bytes, cut at a rune.
func head(b []byte, n int) string {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) <= n {
		return string(b)
	}
	s := string(b[:n])
	return strings.ToValidUTF8(s, "") + "..."
}

// jsonText is a tolerant JSON value: it records whether its key was present
// (and not null) and its value when that is a string, and never fails.
type jsonText struct {
	Set   bool
	IsStr bool
	Str   string
	arr   []string // string items when the value is an array
}

func (t *jsonText) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	t.Set = true
	switch firstByte(b) {
	case '"':
		if json.Unmarshal(b, &t.Str) == nil {
			t.IsStr = true
		}
	case '[':
		var items []json.RawMessage
		if json.Unmarshal(b, &items) == nil {
			for _, it := range items {
				var s string
				if json.Unmarshal(it, &s) == nil {
					t.arr = append(t.arr, s)
				}
			}
		}
	}
	return nil
}

// UnmarshalJSONFrom is UnmarshalJSON for the fast decoder, with the same result.
func (t *jsonText) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	switch dec.PeekKind() {
	case 'n':
		_, err := dec.ReadToken()
		return err
	case '"':
		tok, err := dec.ReadToken()
		if err != nil {
			return err
		}
		t.Set, t.IsStr, t.Str = true, true, tok.String()
		return nil
	case '[':
		t.Set = true
		if _, err := dec.ReadToken(); err != nil {
			return err
		}
		for dec.PeekKind() != ']' {
			switch dec.PeekKind() {
			case '"':
				tok, err := dec.ReadToken()
				if err != nil {
					return err
				}
				t.arr = append(t.arr, tok.String())
			case 'n': // encoding/json reads null into a string as ""
				if _, err := dec.ReadToken(); err != nil {
					return err
				}
				t.arr = append(t.arr, "")
			default:
				if err := dec.SkipValue(); err != nil {
					return err
				}
			}
		}
		_, err := dec.ReadToken()
		return err
	}
	t.Set = true
	return dec.SkipValue()
}

// First is the string value, or the first string of an array value.
func (t jsonText) First() string {
	if t.IsStr {
		return t.Str
	}
	if len(t.arr) > 0 {
		return t.arr[0]
	}
	return ""
}

// present records that a key was present and not null.
type present bool

func (p *present) UnmarshalJSON(b []byte) error {
	*p = string(b) != "null"
	return nil
}

// UnmarshalJSONFrom is UnmarshalJSON for the fast decoder.
func (p *present) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	*p = dec.PeekKind() != 'n'
	return dec.SkipValue()
}

// yamlToJSON converts a one-document YAML stream to JSON so that YAML and
// JSON documents go through the same decoders. Every scalar becomes a JSON
// string (null stays null): the fields read are strings, and a version such
// as 1.10 keeps its text. Aliases are expanded within a budget.
func (d *docCtx) yamlToJSON(body []byte) (js []byte, derr *DocError) {
	defer func() {
		if r := recover(); r != nil { // the YAML library must not bring the run down
			js, derr = nil, d.fail("invalid YAML: parser failure: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(body))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if err == io.EOF {
			return nil, d.fail("empty document")
		}
		return nil, d.fail("invalid YAML: %s", yamlProblem(err))
	}
	var more yaml.Node
	switch err := dec.Decode(&more); {
	case err == nil:
		return nil, d.fail("YAML stream holds more than one document (a second \"---\" at line %d); put each in its own file", more.Line)
	case err != io.EOF:
		return nil, d.fail("invalid YAML: %s", yamlProblem(err))
	}
	c := yamlConv{budget: 8*len(body) + 1<<20}
	n := &root
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		return nil, d.fail("not an evidence document: the top-level YAML value is a %s, not a mapping", yamlKind(n))
	}
	if err := c.write(n, 0); err != nil {
		return nil, d.fail("invalid YAML: %v", err)
	}
	return c.buf.Bytes(), nil
}

func yamlProblem(err error) string {
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

type yamlConv struct {
	buf    bytes.Buffer
	budget int
}

func (c *yamlConv) write(n *yaml.Node, depth int) error {
	if c.buf.Len() > c.budget {
		return fmt.Errorf("aliases expand the document beyond %d bytes", c.budget)
	}
	if depth > 1000 {
		return fmt.Errorf("nested deeper than 1000 levels at line %d", n.Line)
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) != 1 {
			return fmt.Errorf("empty YAML document")
		}
		return c.write(n.Content[0], depth+1)
	case yaml.AliasNode:
		if n.Alias == nil {
			return fmt.Errorf("unknown alias at line %d", n.Line)
		}
		return c.write(n.Alias, depth+1)
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			c.buf.WriteString("null")
			return nil
		}
		writeJSONString(&c.buf, n.Value)
		return nil
	case yaml.SequenceNode:
		c.buf.WriteByte('[')
		for i, it := range n.Content {
			if i > 0 {
				c.buf.WriteByte(',')
			}
			if err := c.write(it, depth+1); err != nil {
				return err
			}
		}
		c.buf.WriteByte(']')
		return nil
	case yaml.MappingNode:
		if len(n.Content)%2 != 0 {
			return fmt.Errorf("malformed mapping at line %d", n.Line)
		}
		c.buf.WriteByte('{')
		seen := make(map[string]bool, len(n.Content)/2)
		for i := 0; i < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind == yaml.AliasNode && k.Alias != nil {
				k = k.Alias
			}
			if k.Kind != yaml.ScalarNode {
				return fmt.Errorf("mapping key at line %d is a %s; keys must be scalars", k.Line, yamlKind(k))
			}
			if k.ShortTag() == "!!merge" {
				return fmt.Errorf("merge key \"<<\" at line %d is not supported", k.Line)
			}
			if seen[k.Value] {
				return fmt.Errorf("duplicate key %q at line %d", k.Value, k.Line)
			}
			seen[k.Value] = true
			if i > 0 {
				c.buf.WriteByte(',')
			}
			writeJSONString(&c.buf, k.Value)
			c.buf.WriteByte(':')
			if err := c.write(v, depth+1); err != nil {
				return err
			}
		}
		c.buf.WriteByte('}')
		return nil
	}
	return fmt.Errorf("unsupported YAML node at line %d", n.Line)
}

func yamlKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "sequence"
	case yaml.MappingNode:
		return "mapping"
	case yaml.ScalarNode:
		return "scalar"
	case yaml.AliasNode:
		return "alias"
	case yaml.DocumentNode:
		return "document"
	}
	return "node"
}

// writeJSONString writes s (valid UTF-8) as a JSON string.
func writeJSONString(buf *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	buf.WriteByte('"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		buf.WriteString(s[start:i])
		switch c {
		case '"', '\\':
			buf.WriteByte('\\')
			buf.WriteByte(c)
		case '\n':
			buf.WriteString(`\n`)
		case '\r':
			buf.WriteString(`\r`)
		case '\t':
			buf.WriteString(`\t`)
		default:
			buf.WriteString(`\u00`)
			buf.WriteByte(hex[c>>4])
			buf.WriteByte(hex[c&0xF])
		}
		start = i + 1
	}
	buf.WriteString(s[start:])
	buf.WriteByte('"')
}
