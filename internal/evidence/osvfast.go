package evidence

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/stellaops/stella/internal/canon"
)

// A hand-written decoder for the common case of the probe: an OSV record.
// It reads js in one pass and fills pr exactly as encoding/json would, or
// gives up (ok=false) on anything it does not handle the same way: invalid
// JSON, a value of an unexpected type, a duplicate key, a key that matches a
// field only case-insensitively, a non-OSV marker key (CSAF "document",
// "@context", ...), a lone surrogate escape, very deep nesting. The caller
// then decodes with the general decoders. FuzzFastDecode checks that what it
// accepts decodes as encoding/json decodes it.

// osvScan is the decoder's cursor over one document.
type osvScan struct {
	b   []byte
	doc string // b as a string (shared, not copied): strings without escapes are its substrings
	i   int
}

// fastOSV decodes js (valid UTF-8, starting with '{' after whitespace) into
// a zero *pr; ok=false means pr must be decoded another way.
func fastOSV(js []byte, pr *probe) (ok bool) {
	// Strings without escapes share js's memory instead of being copied one
	// by one (Parse's results may alias doc.Raw; see Parse).
	s := osvScan{b: js, doc: unsafe.String(unsafe.SliceData(js), len(js))}
	if !s.topObject(&pr.osvDoc) {
		return false
	}
	s.ws()
	return s.i == len(s.b)
}

func (s *osvScan) ws() {
	// Local copies: the loop then keeps the index in a register instead
	// of storing it through s at every byte. After a newline (indentation
	// of a pretty-printed document) spaces go eight at a time.
	i, b := s.i, s.b
	for i < len(b) {
		c := b[i]
		if c > ' ' || wsMask&(1<<c) == 0 {
			break
		}
		i++
		if c == '\n' {
			for i+8 <= len(b) && binary.LittleEndian.Uint64(b[i:i+8]) == 0x2020202020202020 {
				i += 8
			}
		}
	}
	s.i = i
}

// wsMask has bit c set for each JSON whitespace byte c.
const wsMask = 1<<' ' | 1<<'\t' | 1<<'\n' | 1<<'\r'

// peek returns the next non-space byte (0 at the end).
func (s *osvScan) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *osvScan) eat(c byte) bool {
	if s.peek() == c {
		s.i++
		return true
	}
	return false
}

// literal reads null, true or false.
func (s *osvScan) literal(lit string) bool {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

// null reads a null if one is next.
func (s *osvScan) null() bool {
	return s.peek() == 'n' && s.literal("null")
}

// str reads a string value.
func (s *osvScan) str() (string, bool) {
	if s.peek() != '"' {
		return "", false
	}
	raw, esc, ok := s.strRaw()
	if !ok {
		return "", false
	}
	if !esc {
		return s.sub(raw), true
	}
	return unescape(raw)
}

// strRaw reads a string and returns its bytes between the quotes and
// whether it holds escapes; s.b[s.i] is the opening quote.
func (s *osvScan) strRaw() (raw []byte, esc, ok bool) {
	start := s.i + 1
	i := start
	b := s.b
	for {
		for i+8 <= len(b) {
			m := canon.StringStops8(binary.LittleEndian.Uint64(b[i : i+8]))
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) >> 3
			break
		}
		if i >= len(b) {
			return nil, false, false
		}
		switch c := b[i]; {
		case c == '"':
			s.i = i + 1
			return b[start:i], esc, true
		case c == '\\':
			esc = true
			if i+1 >= len(b) {
				return nil, false, false
			}
			if b[i+1] == 'u' {
				if i+6 > len(b) {
					return nil, false, false
				}
				for _, h := range b[i+2 : i+6] {
					if !isHex(h) {
						return nil, false, false
					}
				}
				i += 6
				continue
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
				continue
			}
			return nil, false, false
		case c < 0x20:
			return nil, false, false // a raw control character: invalid JSON
		default:
			i++
		}
	}
}

// sub returns the bytes raw of the document (a string body that strRaw
// just read, ending at s.i-1) as a substring of s.doc.
func (s *osvScan) sub(raw []byte) string {
	end := s.i - 1
	return s.doc[end-len(raw) : end]
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// unescape decodes the escapes of a validated string body; a lone surrogate
// (which encoding/json turns into U+FFFD) gives up.
func unescape(raw []byte) (string, bool) {
	out, ok := appendUnescaped(make([]byte, 0, len(raw)), raw)
	if !ok {
		return "", false
	}
	return string(out), true
}

// appendUnescaped appends the decoded bytes of a validated string body to
// out (see unescape). Plain runs between escapes are copied whole.
func appendUnescaped(out, raw []byte) ([]byte, bool) {
	for i := 0; i < len(raw); {
		j := bytes.IndexByte(raw[i:], '\\')
		if j < 0 {
			return append(out, raw[i:]...), true
		}
		out = append(out, raw[i:i+j]...)
		i += j
		switch raw[i+1] {
		case 'u':
			r := hex4(raw[i+2 : i+6])
			i += 6
			if utf16.IsSurrogate(r) {
				if i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' {
					return out, false
				}
				r2 := hex4(raw[i+2 : i+6])
				dec := utf16.DecodeRune(r, r2)
				if dec == utf8.RuneError {
					return out, false
				}
				r = dec
				i += 6
			}
			out = utf8.AppendRune(out, r)
			continue
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		default: // '"', '\\', '/'
			out = append(out, raw[i+1])
		}
		i += 2
	}
	return out, true
}

func hex4(h []byte) rune {
	v, _ := strconv.ParseUint(string(h), 16, 16)
	return rune(v)
}

// key reads an object key and the colon after it; keys with escapes give up.
func (s *osvScan) key() (string, bool) {
	if s.peek() != '"' {
		return "", false
	}
	raw, esc, ok := s.strRaw()
	if !ok || esc {
		return "", false
	}
	k := s.sub(raw)
	if !s.eat(':') {
		return "", false
	}
	return k, true
}

// object reads an object, calling field for each member with the cursor on
// its value; field consumes the value. Duplicate keys give up (seen is a
// bitmask of the field numbers field returns; -1 = an unknown key, skipped).
func (s *osvScan) object(field func(k string) (int, bool)) bool {
	if !s.eat('{') {
		return false
	}
	if s.eat('}') {
		return true
	}
	var seen uint64
	for {
		k, ok := s.key()
		if !ok {
			return false
		}
		n, ok := field(k)
		if !ok {
			return false
		}
		if n >= 0 {
			if seen&(1<<n) != 0 {
				return false
			}
			seen |= 1 << n
		}
		if s.eat(',') {
			continue
		}
		return s.eat('}')
	}
}

// array reads an array, calling elem with the cursor on each element.
func (s *osvScan) array(elem func() bool) bool {
	if !s.eat('[') {
		return false
	}
	if s.eat(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		if s.eat(',') {
			continue
		}
		return s.eat(']')
	}
}

// unknown decides what to do with a key that is not one of names (the
// fields of the object being read): skip its value, unless it could match
// a field case-insensitively (encoding/json would then use it) or is
// not ASCII (Unicode case folding): give up.
func (s *osvScan) unknown(k string, names []string) (int, bool) {
	for i := 0; i < len(k); i++ {
		if k[i] >= utf8.RuneSelf {
			return 0, false
		}
	}
	for _, n := range names {
		if strings.EqualFold(k, n) {
			return 0, false
		}
	}
	return -1, s.skip(0)
}

// skip reads and validates any value.
func (s *osvScan) skip(depth int) bool {
	if depth > 500 {
		return false
	}
	switch c := s.peek(); {
	case c == '{':
		return s.object(func(string) (int, bool) { return -1, s.skip(depth + 1) })
	case c == '[':
		return s.array(func() bool { return s.skip(depth + 1) })
	case c == '"':
		_, _, ok := s.strRaw()
		return ok
	case c == 'n':
		return s.literal("null")
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	}
	return false
}

// number validates a JSON number.
func (s *osvScan) number() bool {
	b, i := s.b, s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	s.i = i
	return true
}

// text reads a jsonText: never a type error.
func (s *osvScan) text(t *jsonText) bool {
	switch s.peek() {
	case 'n':
		return s.literal("null")
	case '"':
		v, ok := s.str()
		t.Set, t.IsStr, t.Str = true, true, v
		return ok
	case '[':
		t.Set = true
		return s.array(func() bool {
			switch s.peek() {
			case '"':
				v, ok := s.str()
				t.arr = append(t.arr, v)
				return ok
			case 'n': // encoding/json reads null into a string as ""
				t.arr = append(t.arr, "")
				return s.literal("null")
			}
			return s.skip(1)
		})
	}
	t.Set = true
	return s.skip(0)
}

// objects reads an array of objects into *dst (null leaves it nil), each
// element, appended as a zero value, filled by elem.
func objects[T any](s *osvScan, dst *[]T, elem func(*T) bool) bool {
	if s.null() {
		return true
	}
	*dst = []T{}
	return s.array(func() bool {
		var zero T
		*dst = append(*dst, zero)
		return elem(&(*dst)[len(*dst)-1])
	})
}

// strField reads a string field (null leaves it empty).
func (s *osvScan) strField(dst *string) bool {
	if s.null() {
		return true
	}
	v, ok := s.str()
	*dst = v
	return ok
}

// optStr reads a *string field (null leaves it nil).
func (s *osvScan) optStr(dst **string) bool {
	if s.null() {
		return true
	}
	v, ok := s.str()
	*dst = &v
	return ok
}

// strings reads a []string field (null leaves it nil; a null element gives up).
func (s *osvScan) strings(dst *[]string) bool {
	if s.null() {
		return true
	}
	out := []string{}
	ok := s.array(func() bool {
		v, ok := s.str()
		out = append(out, v)
		return ok
	})
	*dst = out
	return ok
}

// specific reads a database_specific / ecosystem_specific value.
func (s *osvScan) specific(sp *specific) bool {
	if s.peek() != '{' {
		return s.skip(0)
	}
	var sev jsonText
	var cwe []string
	cweSet := false
	ok := s.object(func(k string) (int, bool) {
		switch k {
		case "severity":
			return 0, s.text(&sev)
		case "cwe_ids":
			cweSet = true
			return 1, s.cweIDs(&cwe)
		}
		return s.unknown(k, specificNames)
	})
	if sev.IsStr {
		sp.severity = sev.Str
	}
	if cweSet && cwe != nil {
		sp.cweIDs = cwe
	}
	return ok
}

var specificNames = []string{"severity", "cwe_ids"}

// cweIDs reads "cwe_ids": an array of strings, or anything else (ignored).
func (s *osvScan) cweIDs(dst *[]string) bool {
	if s.peek() != '[' {
		return s.skip(0)
	}
	out := []string{}
	all := true
	ok := s.array(func() bool {
		switch s.peek() {
		case '"':
			v, ok := s.str()
			out = append(out, v)
			return ok
		case 'n': // encoding/json reads null into a string as ""
			out = append(out, "")
			return s.literal("null")
		}
		all = false
		return s.skip(1)
	})
	if all {
		*dst = out
	}
	return ok
}

var osvNames = []string{"affected", "aliases", "database_specific", "details", "id", "modified", "published",
	"references", "related", "schema_version", "severity", "summary", "withdrawn",
	// the probe's markers of other formats: met, they give up
	"@context", "@graph", "statements", "document", "bomFormat", "spdxVersion", "schema", "Sources", "feed",
	"service", "categories", "aggregator", "canonical_url", "metadata_version"}

func (s *osvScan) topObject(o *osvDoc) bool {
	return s.object(func(k string) (int, bool) {
		switch k {
		case "affected":
			return 0, objects(s, &o.Affected, s.affected)
		case "aliases":
			return 1, s.strings(&o.Aliases)
		case "database_specific":
			return 2, s.specific(&o.DatabaseSpecific)
		case "details":
			return 3, s.strField(&o.Details)
		case "id":
			return 4, s.text(&o.ID)
		case "modified":
			return 5, s.text(&o.Modified)
		case "published":
			return 6, s.text(&o.Published)
		case "references":
			return 7, objects(s, &o.References, func(r *osvReference) bool {
				return s.object(func(k string) (int, bool) {
					switch k {
					case "type":
						return 0, s.strField(&r.Type)
					case "url":
						return 1, s.strField(&r.URL)
					}
					return s.unknown(k, referenceNames)
				})
			})
		case "related":
			return 8, s.strings(&o.Related)
		case "schema_version":
			return 9, s.text(&o.SchemaVersion)
		case "severity":
			return 10, s.severities(&o.Severity)
		case "summary":
			return 11, s.strField(&o.Summary)
		case "withdrawn":
			return 12, s.text(&o.Withdrawn)
		}
		for _, n := range osvNames[13:] {
			if k == n {
				return 0, false // another format's marker: the general decoder reads it
			}
		}
		return s.unknown(k, osvNames)
	})
}

var (
	referenceNames = []string{"type", "url"}
	severityNames  = []string{"score", "type"}
	affectedNames  = []string{"ecosystem_specific", "package", "ranges", "severity", "versions", "database_specific"}
	packageNames   = []string{"ecosystem", "name", "purl"}
	rangeNames     = []string{"events", "repo", "type"}
	eventNames     = []string{"fixed", "introduced", "last_affected", "limit"}
)

func (s *osvScan) severities(dst *[]osvSeverity) bool {
	return objects(s, dst, func(v *osvSeverity) bool {
		return s.object(func(k string) (int, bool) {
			switch k {
			case "score":
				return 0, s.strField(&v.Score)
			case "type":
				return 1, s.strField(&v.Type)
			}
			return s.unknown(k, severityNames)
		})
	})
}

func (s *osvScan) affected(a *osvAffected) bool {
	return s.object(func(k string) (int, bool) {
		switch k {
		case "ecosystem_specific":
			return 0, s.specific(&a.EcosystemSpecific)
		case "package":
			if s.null() {
				return 1, true
			}
			return 1, s.object(func(k string) (int, bool) {
				switch k {
				case "ecosystem":
					return 0, s.strField(&a.Package.Ecosystem)
				case "name":
					return 1, s.strField(&a.Package.Name)
				case "purl":
					return 2, s.strField(&a.Package.Purl)
				}
				return s.unknown(k, packageNames)
			})
		case "ranges":
			return 2, objects(s, &a.Ranges, s.rangeOf)
		case "severity":
			return 3, s.severities(&a.Severity)
		case "versions":
			return 4, s.strings(&a.Versions)
		}
		return s.unknown(k, affectedNames[:5])
	})
}

func (s *osvScan) rangeOf(r *osvRange) bool {
	return s.object(func(k string) (int, bool) {
		switch k {
		case "events":
			return 0, objects(s, &r.Events, func(e *osvEvent) bool {
				return s.object(func(k string) (int, bool) {
					switch k {
					case "fixed":
						return 0, s.optStr(&e.Fixed)
					case "introduced":
						return 1, s.optStr(&e.Introduced)
					case "last_affected":
						return 2, s.optStr(&e.LastAffected)
					case "limit":
						return 3, s.optStr(&e.Limit)
					}
					return s.unknown(k, eventNames)
				})
			})
		case "repo":
			return 1, s.strField(&r.Repo)
		case "type":
			return 2, s.strField(&r.Type)
		}
		return s.unknown(k, rangeNames)
	})
}
