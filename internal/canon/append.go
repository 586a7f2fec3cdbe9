package canon

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// AppendString appends s as a JSON string exactly as encoding/json writes it
// with HTML escaping off (and so as Fast does): '"', '\\' and control
// characters escaped (\b \f \n \r \t short, others \u00XX), invalid UTF-8 as
// \ufffd, U+2028 and U+2029 as \u2028 and \u2029. It skips runs of eight
// plain ASCII bytes at a time, which is most of any JSON document.
func AppendString[S ~string | ~[]byte](dst []byte, s S) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start, i := 0, 0
	for i < len(s) {
		if i+8 <= len(s) {
			// Jump over plain bytes to the first one that needs a look.
			if m := special8(binary.LittleEndian.Uint64([]byte(s[i : i+8]))); m == 0 {
				i += 8
				continue
			} else {
				i += bits.TrailingZeros64(m) >> 3
			}
		}
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		n := min(len(s)-i, utf8.UTFMax)
		c, size := utf8.DecodeRuneInString(string(s[i : i+n]))
		switch {
		case c == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case c == '\u2028' || c == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[c&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

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
