// Package mirror holds the mirror bundle format (indexes, tombstones, the
// README) and the receiving side of mirrors: verify a mirror bundle, apply a
// full bundle and its deltas to a target directory atomically, and show the
// chain a target holds. It works fully offline. docs/mirror.md describes
// the format and the guarantees.
package mirror

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unsafe"

	"github.com/stellaops/stella/internal/canon"
)

// Schemas of the files this package reads and writes.
const (
	IndexSchema  = "stellaops.io/mirror-index.v1"
	TargetSchema = "stellaops.io/mirror-target.v1"
	ChainSchema  = "stellaops.io/mirror-chain.v1"
)

// Record kinds of index entries, tombstones and delta lists.
const (
	KindAdvisory = "advisory"
	KindVEX      = "vex"
	KindSBOM     = "sbom"
	KindPolicy   = "policy"
	KindFinding  = "finding"
)

// Index names, in the order their files sort.
var IndexNames = []string{"advisories", "findings", "sbom", "vex"}

// TombstonesPath is the tombstone file of a delta bundle.
const TombstonesPath = "indexes/tombstones.jsonl"

// IndexPath is the bundle path of an index.
func IndexPath(name string) string { return "indexes/" + name + ".index.json" }

// IndexOf names the index a record kind is listed in.
func IndexOf(kind string) string {
	switch kind {
	case KindAdvisory:
		return "advisories"
	case KindVEX:
		return "vex"
	case KindSBOM:
		return "sbom"
	case KindPolicy, KindFinding:
		return "findings"
	}
	return ""
}

// Entry is one record of an index: where its raw form is, and where it came from.
type Entry struct {
	// Digest is "sha256:<hex>" of the original document (of the line, for a finding).
	Digest string `json:"digest"`
	// File is the bundle path of the record's raw form (a JSONL file, or the
	// document itself for SBOMs and the policy snapshot).
	File string `json:"file"`
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// Line is a finding's 1-based position among the findings of its document.
	Line   int64  `json:"line,omitempty"`
	Path   string `json:"path"`   // document path within its source
	Source string `json:"source"` // source name
	// Withdrawn is set for advisories that the source marks withdrawn.
	Withdrawn bool `json:"withdrawn,omitempty"`
}

// Key is "kind:id", the form of record names in delta lists.
func (e Entry) Key() string { return e.Kind + ":" + e.ID }

// Compare orders entries by kind, then id (bytewise).
func Compare(aKind, aID, bKind, bID string) int {
	if c := strings.Compare(aKind, bKind); c != 0 {
		return c
	}
	return strings.Compare(aID, bID)
}

// Compression is how the data files of a mirror are compressed (the
// profile's spec.compression); appliers re-compress merged files with it.
type Compression struct {
	Codec string `json:"codec"`
	Level int    `json:"level"`
}

// IndexHeader is the part of an index file before its records.
type IndexHeader struct {
	Compression Compression `json:"compression"`
	Include     []string    `json:"include"` // the profile's include list: what the chain selects
	Index       string      `json:"index"`   // advisories | findings | sbom | vex
}

// Tombstone marks a record that a delta removes ("removed") or that became
// withdrawn at its source ("withdrawn"; the record itself stays, with its
// new content, in the same delta).
type Tombstone struct {
	Digest string `json:"digest"` // the record's digest in the base
	File   string `json:"file"`   // where the base had it
	ID     string `json:"id"`
	Kind   string `json:"kind"`
	Path   string `json:"path"`
	Reason string `json:"reason"` // removed | withdrawn
	Source string `json:"source"`
}

// Tombstone reasons.
const (
	ReasonRemoved   = "removed"
	ReasonWithdrawn = "withdrawn"
)

// IndexWriter writes one index file, streaming: the header, then entries
// in (kind, id) order, as one canonical JSON object.
type IndexWriter struct {
	w        *bufio.Writer
	n        int64
	lastKind string
	lastID   string
	err      error
	buf      []byte
}

// NewIndexWriter starts an index file on w.
func NewIndexWriter(w io.Writer, h IndexHeader) (*IndexWriter, error) {
	if h.Include == nil {
		h.Include = []string{}
	}
	comp, err := canon.Marshal(h.Compression)
	if err != nil {
		return nil, err
	}
	inc, err := canon.Marshal(h.Include)
	if err != nil {
		return nil, err
	}
	idx, _ := canon.Marshal(h.Index)
	bw := bufio.NewWriterSize(w, 64<<10)
	fmt.Fprintf(bw, `{"compression":%s,"include":%s,"index":%s,"records":[`, comp, inc, idx)
	return &IndexWriter{w: bw}, nil
}

// Add appends an entry; entries must come in strictly increasing (kind, id) order.
func (iw *IndexWriter) Add(e Entry) error {
	if iw.err != nil {
		return iw.err
	}
	if iw.n > 0 && Compare(iw.lastKind, iw.lastID, e.Kind, e.ID) >= 0 {
		iw.err = fmt.Errorf("index: %s:%s after %s:%s (not sorted, or twice)", e.Kind, e.ID, iw.lastKind, iw.lastID)
		return iw.err
	}
	iw.buf = AppendEntry(iw.buf[:0], e)
	if iw.n > 0 {
		iw.w.WriteByte(',')
	}
	_, iw.err = iw.w.Write(iw.buf)
	iw.n++
	iw.lastKind, iw.lastID = e.Kind, e.ID
	return iw.err
}

// Count is the number of entries written.
func (iw *IndexWriter) Count() int64 { return iw.n }

// Close finishes the file (it does not close the underlying writer).
func (iw *IndexWriter) Close() error {
	if iw.err != nil {
		return iw.err
	}
	fmt.Fprintf(iw.w, `],"schema":"%s"}`, IndexSchema)
	return iw.w.Flush()
}

// IndexReader reads an index file, streaming. Entries are parsed by a
// small scanner for the canonical form stella writes (with a fallback to
// encoding/json for anything else), so reading a large index is cheap.
type IndexReader struct {
	Header IndexHeader
	br     *bufio.Reader
	done   bool
	n      int64
	last   []byte // kind, NUL, id of the last entry (for the order check)
	buf    []byte
}

const maxIndexHeader = 1 << 20

var recordsKey = regexp.MustCompile(`"records"\s*:\s*\[$`)

// OpenIndex reads an index file's header; Next then yields its entries.
func OpenIndex(r io.Reader) (*IndexReader, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	// The header is everything up to `"records":[` (keys are sorted and
	// "records" comes after the header keys).
	var head []byte
	for {
		c, err := br.ReadByte()
		if err != nil {
			return nil, fmt.Errorf("index: no records array: %w", err)
		}
		head = append(head, c)
		if len(head) > maxIndexHeader {
			return nil, fmt.Errorf("index: header over %d bytes", maxIndexHeader)
		}
		if c == '[' && recordsKey.Match(head[max(0, len(head)-64):]) {
			break
		}
	}
	var h struct {
		Compression *Compression `json:"compression"`
		Include     []string     `json:"include"`
		Index       string       `json:"index"`
	}
	probe := append(bytes.Clone(head), ']', '}')
	dec := json.NewDecoder(bytes.NewReader(probe))
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("index: header: %w", err)
	}
	if h.Compression == nil || h.Index == "" {
		return nil, fmt.Errorf("index: header lacks compression or index")
	}
	return &IndexReader{Header: IndexHeader{Compression: *h.Compression, Include: h.Include, Index: h.Index}, br: br}, nil
}

func (ir *IndexReader) skipSpace() (byte, error) {
	for {
		c, err := ir.br.ReadByte()
		if err != nil {
			return 0, err
		}
		if c != ' ' && c != '\n' && c != '\r' && c != '\t' {
			return c, nil
		}
	}
}

// Next returns the next entry; ok is false at the end (then the trailer,
// with the schema, has been checked).
func (ir *IndexReader) Next() (e Entry, ok bool, err error) {
	return ir.next(false)
}

// NextView is Next for a caller that keeps nothing of the entry: its
// strings share the reader's buffer and are valid only until the next
// call (no allocation per entry). Copy what is kept (strings.Clone).
func (ir *IndexReader) NextView() (e Entry, ok bool, err error) {
	return ir.next(true)
}

func (ir *IndexReader) next(view bool) (e Entry, ok bool, err error) {
	if ir.done {
		return e, false, nil
	}
	c, err := ir.skipSpace()
	if err != nil {
		return e, false, fmt.Errorf("index: truncated after %d entries", ir.n)
	}
	if ir.n > 0 && c != ']' {
		if c != ',' {
			return e, false, fmt.Errorf("index: want , or ] after entry %d, found %q", ir.n, c)
		}
		if c, err = ir.skipSpace(); err != nil {
			return e, false, fmt.Errorf("index: truncated after %d entries", ir.n)
		}
	}
	if c == ']' {
		ir.done = true
		rest, err := io.ReadAll(io.LimitReader(ir.br, 4096))
		if err != nil {
			return e, false, err
		}
		var tr struct {
			Schema string `json:"schema"`
		}
		if err := json.Unmarshal(append([]byte{'{'}, bytes.TrimLeft(rest, " \n\r\t,")...), &tr); err != nil {
			return e, false, fmt.Errorf("index: trailer: %w", err)
		}
		if tr.Schema != IndexSchema {
			return e, false, fmt.Errorf("index: schema %q, want %q", tr.Schema, IndexSchema)
		}
		return e, false, nil
	}
	if c != '{' {
		return e, false, fmt.Errorf("index: entry %d does not start with {", ir.n+1)
	}
	// An entry is a flat object: it ends at the first } outside a string.
	buf := append(ir.buf[:0], '{')
	for {
		chunk, err := ir.br.ReadSlice('}')
		if err == bufio.ErrBufferFull {
			err = nil
		}
		if err != nil {
			return e, false, fmt.Errorf("index: truncated in entry %d", ir.n+1)
		}
		buf = append(buf, chunk...)
		if len(buf) > 1<<20 {
			return e, false, fmt.Errorf("index: entry %d is over 1 MiB", ir.n+1)
		}
		if buf[len(buf)-1] == '}' && !openString(buf) {
			break
		}
	}
	ir.buf = buf
	var str string
	if view {
		str = unsafe.String(unsafe.SliceData(buf), len(buf))
	} else {
		str = string(buf) // the entry's strings are substrings of one copy
	}
	if e, err = parseEntryIn(buf, str); err != nil {
		return e, false, fmt.Errorf("index: entry %d: %w", ir.n+1, err)
	}
	if e.ID == "" || IndexOf(e.Kind) != ir.Header.Index {
		return e, false, fmt.Errorf("index %s: entry %d: kind %q / id %q do not belong here", ir.Header.Index, ir.n+1, e.Kind, e.ID)
	}
	if ir.n > 0 {
		lastKind, lastID, _ := bytes.Cut(ir.last, []byte{0})
		c := bytes.Compare(lastKind, []byte(e.Kind))
		if c == 0 {
			c = bytes.Compare(lastID, []byte(e.ID))
		}
		if c >= 0 {
			return e, false, fmt.Errorf("index %s: %s:%s is not sorted after %s:%s", ir.Header.Index, e.Kind, e.ID, lastKind, lastID)
		}
	}
	ir.n++
	ir.last = append(append(append(ir.last[:0], e.Kind...), 0), e.ID...)
	return e, true, nil
}

// openString reports whether b ends inside a JSON string; it also refuses
// nested objects and arrays by reporting them as open (parseEntry then
// fails on them).
func openString(b []byte) bool {
	if bytes.IndexByte(b, '\\') < 0 { // no escapes (the common case): count the quotes
		return bytes.Count(b[1:], []byte{'"'})%2 == 1
	}
	return openStringScan(b)
}

// openStringScan is openString byte by byte.
func openStringScan(b []byte) bool {
	in, esc := false, false
	for _, c := range b[1:] {
		switch {
		case esc:
			esc = false
		case in && c == '\\':
			esc = true
		case c == '"':
			in = !in
		}
	}
	return in
}

// parseEntry reads one canonical entry object; anything unusual goes
// through encoding/json.
func parseEntry(b []byte) (Entry, error) {
	return parseEntryIn(b, string(b)) // the entry's strings are substrings of one copy (one allocation, not six)
}

// parseEntryIn is parseEntry with str holding b's bytes: the entry's
// strings are substrings of it.
func parseEntryIn(b []byte, str string) (Entry, error) {
	var e Entry
	i := 1
	for i < len(b)-1 {
		if b[i] != '"' {
			return slowEntry(b)
		}
		j := bytes.IndexByte(b[i+1:], '"')
		if j < 0 || i+j+2 >= len(b) || b[i+j+2] != ':' {
			return slowEntry(b)
		}
		key := b[i+1 : i+1+j]
		i += j + 3
		var sv string
		var raw []byte
		if b[i] == '"' {
			k := i + 1
			for k < len(b) && b[k] != '"' {
				if b[k] == '\\' {
					return slowEntry(b)
				}
				k++
			}
			if k >= len(b) {
				return slowEntry(b)
			}
			sv = str[i+1 : k]
			i = k + 1
		} else {
			k := i
			for k < len(b) && b[k] != ',' && b[k] != '}' {
				k++
			}
			raw = b[i:k]
			i = k
		}
		switch string(key) {
		case "digest":
			e.Digest = sv
		case "file":
			e.File = sv
		case "id":
			e.ID = sv
		case "kind":
			e.Kind = sv
		case "path":
			e.Path = sv
		case "source":
			e.Source = sv
		case "line":
			n, err := strconv.ParseInt(string(raw), 10, 64)
			if err != nil {
				return slowEntry(b)
			}
			e.Line = n
		case "withdrawn":
			if string(raw) != "true" && string(raw) != "false" {
				return slowEntry(b)
			}
			e.Withdrawn = string(raw) == "true"
		default:
			return slowEntry(b)
		}
		if i < len(b)-1 {
			if b[i] != ',' {
				return slowEntry(b)
			}
			i++
		}
	}
	return e, nil
}

func slowEntry(b []byte) (Entry, error) {
	var e Entry
	err := json.Unmarshal(b, &e)
	return e, err
}

// ReadTombstones parses a tombstone file (sorted by kind, id; one per record).
func ReadTombstones(r io.Reader) ([]Tombstone, error) {
	var out []Tombstone
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		var t Tombstone
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&t); err != nil {
			return nil, fmt.Errorf("tombstones line %d: %w", n, err)
		}
		if t.Reason != ReasonRemoved && t.Reason != ReasonWithdrawn {
			return nil, fmt.Errorf("tombstones line %d: reason %q is not removed or withdrawn", n, t.Reason)
		}
		if IndexOf(t.Kind) == "" || t.ID == "" {
			return nil, fmt.Errorf("tombstones line %d: kind %q / id %q", n, t.Kind, t.ID)
		}
		if k := len(out); k > 0 && Compare(out[k-1].Kind, out[k-1].ID, t.Kind, t.ID) >= 0 {
			return nil, fmt.Errorf("tombstones line %d: %s:%s is not sorted (or twice)", n, t.Kind, t.ID)
		}
		out = append(out, t)
	}
	return out, sc.Err()
}

// WriteTombstones writes tombstones (sorted) as canonical JSON lines.
func WriteTombstones(w io.Writer, ts []Tombstone) error {
	bw := bufio.NewWriter(w)
	for _, t := range ts {
		b, err := canon.Fast(t)
		if err != nil {
			return err
		}
		bw.Write(b)
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// ErrNoField is returned by TopString when a line lacks the field.
var ErrNoField = errors.New("field not found")

// TopString returns the string value of a top-level field of a canonical
// JSON object line (as stella writes them: no whitespace). Inside a JSON
// string every quote is escaped, so `,"key":"` and `{"key":"` occur only
// as real keys; nested objects of the line formats stella writes have no
// keys of the names looked up here.
func TopString(line []byte, key string) (string, error) { return topString(line, key, false) }

// TopStringNearEnd is TopString for a field that sorts after a line's
// big fields (a raw line's id, path and source come after the document):
// it looks for the key from the end of the line, so it reads the last few
// hundred bytes instead of the whole line. Same result as TopString.
func TopStringNearEnd(line []byte, key string) (string, error) { return topString(line, key, true) }

func topString(line []byte, key string, fromEnd bool) (string, error) {
	var buf [32]byte
	pat := append(buf[:0], '{', '"')
	pat = append(pat, key...)
	pat = append(pat, '"', ':', '"')
	i := 0
	if !bytes.HasPrefix(line, pat) { // the first key, or after a comma
		pat[0] = ','
		if fromEnd {
			i = bytes.LastIndex(line, pat)
		} else {
			i = bytes.Index(line, pat)
		}
		if i < 0 {
			return "", fmt.Errorf("%w: %q", ErrNoField, key)
		}
	}
	start := i + len(pat) - 1 // at the opening quote
	j := start + 1
	esc := false
	for ; j < len(line); j++ {
		c := line[j]
		if esc {
			esc = false
			continue
		}
		if c == '\\' {
			esc = true
			continue
		}
		if c == '"' {
			break
		}
	}
	if j >= len(line) {
		return "", fmt.Errorf("unterminated string in field %q", key)
	}
	raw := line[start : j+1]
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("field %q: %w", key, err)
	}
	return s, nil
}

// ParseEntry reads one entry object (as AppendEntry writes it).
func ParseEntry(b []byte) (Entry, error) { return parseEntry(b) }

// AppendEntry appends the canonical JSON of e to dst: the bytes
// canon.Fast(e) gives, without reflection.
func AppendEntry(dst []byte, e Entry) []byte {
	dst = append(dst, `{"digest":`...)
	dst = canon.AppendString(dst, e.Digest)
	dst = append(dst, `,"file":`...)
	dst = canon.AppendString(dst, e.File)
	dst = append(dst, `,"id":`...)
	dst = canon.AppendString(dst, e.ID)
	dst = append(dst, `,"kind":`...)
	dst = canon.AppendString(dst, e.Kind)
	if e.Line != 0 {
		dst = append(dst, `,"line":`...)
		dst = strconv.AppendInt(dst, e.Line, 10)
	}
	dst = append(dst, `,"path":`...)
	dst = canon.AppendString(dst, e.Path)
	dst = append(dst, `,"source":`...)
	dst = canon.AppendString(dst, e.Source)
	if e.Withdrawn {
		dst = append(dst, `,"withdrawn":true`...)
	}
	return append(dst, '}')
}
