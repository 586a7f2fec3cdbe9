package evidence

import (
	"unicode/utf8"
	"unsafe"
)

// fastRawLine decodes a mirror's raw record line into rl and the document
// into a buffer of its own (getRaw: Release may pool it), exactly as
// encoding/json.Unmarshal into rawLine and a copy of its Document would.
// It takes the lines the exporter writes: valid UTF-8, an object whose
// members are rawLine's fields by their exact names, each once, all
// strings. Anything else (another key, a key spelled in another case, a
// null, a duplicate, a lone surrogate escape) reports false, and the
// caller decodes with encoding/json, whose result and message stand.
// rl's strings may alias line.
func fastRawLine(line []byte, rl *rawLine) (doc []byte, ok bool) {
	if !utf8.Valid(line) {
		return nil, false
	}
	s := osvScan{b: line, doc: unsafe.String(unsafe.SliceData(line), len(line))}
	if !s.eat('{') {
		return nil, false
	}
	var seen uint8
	if !s.eat('}') {
		for {
			k, ok := s.key()
			if !ok || s.peek() != '"' {
				return nil, false
			}
			var bit uint8
			var dst *string
			switch k {
			case "contentType":
				bit, dst = 1<<0, &rl.ContentType
			case "digest":
				bit, dst = 1<<1, &rl.Digest
			case "document":
				bit = 1 << 2
			case "format":
				bit, dst = 1<<3, &rl.Format
			case "id":
				bit, dst = 1<<4, &rl.ID
			case "kind":
				bit, dst = 1<<5, &rl.Kind
			case "path":
				bit, dst = 1<<6, &rl.Path
			case "source":
				bit, dst = 1<<7, &rl.Source
			default:
				return nil, false
			}
			if seen&bit != 0 {
				return nil, false
			}
			seen |= bit
			raw, esc, ok := s.strRaw()
			if !ok {
				return nil, false
			}
			if dst == nil { // the document: into a buffer of its own
				doc = getRaw(len(raw))
				if !esc {
					doc = append(doc, raw...)
				} else if doc, ok = appendUnescaped(doc, raw); !ok {
					return nil, false
				}
			} else if !esc {
				*dst = s.sub(raw)
			} else if *dst, ok = unescape(raw); !ok {
				return nil, false
			}
			if s.eat(',') {
				continue
			}
			if s.eat('}') {
				break
			}
			return nil, false
		}
	}
	s.ws()
	if s.i != len(s.b) {
		return nil, false
	}
	if doc == nil {
		doc = getRaw(0)
	}
	return doc, true
}
