// Package canon writes canonical JSON: object keys sorted, no insignificant
// whitespace, no HTML escaping, numbers as written. Every JSON file stella
// puts in a bundle goes through it, so that the same value gives the same bytes.
package canon

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"unicode/utf8"
)

// Marshal returns the canonical JSON of v.
func Marshal(v any) ([]byte, error) {
	raw, err := Fast(v)
	if err != nil {
		return nil, err
	}
	return Canonicalize(raw)
}

// Fast marshals v with encoding/json without HTML escaping and without the
// trailing newline. It is canonical only for types whose struct fields are
// declared in the sorted order of their JSON names and whose maps have string
// keys (encoding/json sorts those); the hot record path uses it, and tests
// check those types against Marshal.
func Fast(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Canonicalize rewrites any JSON text canonically.
func Canonicalize(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("canonical json: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("canonical json: trailing data after the value")
	}
	var out bytes.Buffer
	out.Grow(len(raw))
	if err := write(&out, v); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func write(out *bytes.Buffer, v any) error {
	switch t := v.(type) {
	case nil:
		out.WriteString("null")
	case bool:
		out.WriteString(strconv.FormatBool(t))
	case json.Number:
		out.WriteString(t.String())
	case string:
		writeString(out, t)
	case []any:
		out.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				out.WriteByte(',')
			}
			if err := write(out, e); err != nil {
				return err
			}
		}
		out.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				out.WriteByte(',')
			}
			writeString(out, k)
			out.WriteByte(':')
			if err := write(out, t[k]); err != nil {
				return err
			}
		}
		out.WriteByte('}')
	default:
		return fmt.Errorf("canonical json: unexpected %T", v)
	}
	return nil
}

const hex = "0123456789abcdef"

// writeString writes s as a JSON string, escaping only what JSON requires.
func writeString(out *bytes.Buffer, s string) {
	out.WriteByte('"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				out.WriteByte('\\')
				out.WriteByte(c)
			case c == '\n':
				out.WriteString(`\n`)
			case c == '\r':
				out.WriteString(`\r`)
			case c == '\t':
				out.WriteString(`\t`)
			case c < 0x20:
				out.WriteString(`\u00`)
				out.WriteByte(hex[c>>4])
				out.WriteByte(hex[c&0xf])
			default:
				out.WriteByte(c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			out.WriteString(`\ufffd`)
		} else {
			out.WriteString(s[i : i+size])
		}
		i += size
	}
	out.WriteByte('"')
}
