package canon

import (
	"encoding/binary"
	"math/bits"
	"slices"
	"unicode/utf8"
)

// AppendString appends s as a JSON string exactly as encoding/json writes it
// with HTML escaping off (and so as Fast does): '"', '\\' and control
// characters escaped (\b \f \n \r \t short, others \u00XX), invalid UTF-8 as
// \ufffd, U+2028 and U+2029 as \u2028 and \u2029. It skips runs of eight
// plain ASCII bytes at a time, which is most of any JSON document. Unlike
// append, it may write into dst's spare capacity past the length it returns.
func AppendString[S ~string | ~[]byte](dst []byte, s S) []byte {
	// The string is copied a word at a time: each eight bytes are stored
	// whole and the output advances past the plain ones, so that a plain
	// run between two escapes (in a pretty-printed document a quote or
	// newline comes every eight to ten bytes) costs a store, not a copy
	// call. An ASCII byte's output, itself or its escape, is one table
	// entry, stored whole. d always has room for a store and an escape.
	const room = 16
	o := len(dst)
	d := dst
	if need := len(s) + len(s)>>3 + room; cap(d)-o < need {
		d = slices.Grow(d, need)
	}
	d = d[:cap(d)]
	d[o] = '"'
	o++
	for i := 0; i < len(s); {
		if len(d)-o < room {
			d = slices.Grow(d[:o], len(s)-i+(len(s)-i)>>3+room)
			d = d[:cap(d)]
		}
		if i+8 <= len(s) {
			w := binary.LittleEndian.Uint64([]byte(s[i : i+8]))
			binary.LittleEndian.PutUint64(d[o:o+8], w)
			m := special8(w)
			if m == 0 {
				i += 8
				o += 8
				continue
			}
			k := bits.TrailingZeros64(m) >> 3
			i += k
			o += k
		}
		if b := s[i]; b < utf8.RuneSelf {
			e := escapeTab[b]
			binary.LittleEndian.PutUint64(d[o:o+8], e)
			o += int(e >> 56)
			i++
			continue
		}
		n := min(len(s)-i, utf8.UTFMax)
		c, size := utf8.DecodeRuneInString(string(s[i : i+n]))
		switch {
		case c == utf8.RuneError && size == 1:
			o += copy(d[o:], `\ufffd`)
		case c == '\u2028' || c == '\u2029':
			o += copy(d[o:], `\u202`)
			d[o] = "0123456789abcdef"[c&0xF]
			o++
		default:
			o += copy(d[o:o+size], s[i:i+size])
		}
		i += size
	}
	if o == len(d) {
		d = slices.Grow(d[:o], 1)
		d = d[:cap(d)]
	}
	d[o] = '"'
	return d[:o+1]
}

// escapeTab holds, for each ASCII byte, what a JSON string holds for it
// (the byte, or its escape: \" \\ \b \f \n \r \t, or \u00XX), little-endian
// in the low bytes, and its length in the top byte.
var escapeTab = func() (t [128]uint64) {
	const hex = "0123456789abcdef"
	for b := range 128 {
		var out []byte
		switch b {
		case '"', '\\':
			out = []byte{'\\', byte(b)}
		case '\b':
			out = []byte(`\b`)
		case '\f':
			out = []byte(`\f`)
		case '\n':
			out = []byte(`\n`)
		case '\r':
			out = []byte(`\r`)
		case '\t':
			out = []byte(`\t`)
		default:
			if b < 0x20 {
				out = []byte{'\\', 'u', '0', '0', hex[b>>4], hex[b&0xF]}
			} else {
				out = []byte{byte(b)}
			}
		}
		var e [8]byte
		copy(e[:], out)
		e[7] = byte(len(out))
		t[b] = binary.LittleEndian.Uint64(e[:])
	}
	return t
}()

// special8 marks (high bit of each byte) the bytes of x, little-endian, that
// need attention when escaping: StringStops8's, and bytes at or above 0x80.
func special8(x uint64) uint64 { return StringStops8(x) | x&0x8080808080808080 }

// StringStops8 marks (high bit of each byte) the bytes of x, little-endian,
// that end a run of plain bytes inside a JSON string: '"', '\\' and control
// characters. Bytes above the first marked one may be marked wrongly
// (borrows), never the first.
func StringStops8(x uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	below20 := (x - ones*0x20) & ^x & highs
	quote := x ^ (ones * '"')
	quote = (quote - ones) & ^quote & highs
	bslash := x ^ (ones * '\\')
	bslash = (bslash - ones) & ^bslash & highs
	return below20 | quote | bslash
}
