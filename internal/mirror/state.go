package mirror

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/stellaops/stella/internal/extsort"
	"github.com/stellaops/stella/internal/mmapfile"
	"github.com/stellaops/stella/internal/statcache"
)

// RecordStateFile is the name of the mirror state in a run's directory: the
// record state of the run's chain after its bundle (the folded indexes of
// the chain up to it), kept beside the bundle so that the next delta starts
// from it instead of reading and folding the indexes of every bundle of the
// chain. It is a cache of what the bundles hold: a delta whose base has none
// (or an unreadable one) rebuilds it from the bundles.
//
// Layout: magic; the entries (uvarint len(kind), kind, uvarint len(id), id,
// then the entry's canonical JSON as AppendEntry writes it) in (kind, id)
// order; their offsets (n+1 little-endian uint64, relative to the first
// entry); the document index (docRecord bytes each: statcache.KeyOf(source,
// path), sha256 of the document, entry number as uint32) sorted by key and
// sum, for the advisory, VEX and SBOM entries (one document each); the
// header as JSON; a trailer (offsets of the parts, header length, CRC-32C of
// everything before the CRC).
const RecordStateFile = ".mirrorstate"

const (
	stateMagic   = "STELLA-MIRRORSTATE-1\n"
	docRecord    = 16 + 32 + 4
	stateTrailer = 4*8 + 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// RecordStateHeader describes a state file.
type RecordStateHeader struct {
	// RunID is the run whose bundle the state follows.
	RunID string `json:"runId"`
	// Index is the header of the chain's index files (include list,
	// compression; Index itself is empty).
	Index IndexHeader `json:"index"`
	// ChainVersion is the record.LinesVersion that wrote every bundle of
	// the chain up to this one, or "" when they differ or are not known.
	// (States of stella before lines versions hold a binary version here,
	// which matches no lines version: their next delta parses everything.)
	ChainVersion string `json:"chainVersion"`
	Entries      int64  `json:"entries"`
	Docs         int64  `json:"docs"`
}

// docIndexed kinds have one record per document: their documents can be
// found by source, path and digest.
func docIndexed(kind string) bool {
	return kind == KindAdvisory || kind == KindVEX || kind == KindSBOM
}

// docSum decodes a "sha256:<hex>" digest.
func docSum(digest string) (sum [32]byte, ok bool) {
	h, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(h) != 64 {
		return sum, false
	}
	_, err := hex.Decode(sum[:], []byte(h))
	return sum, err == nil
}

// RecordStateWriter writes a state file: entries in (kind, id) order, either new
// (Add) or ranges of a base state's entries (Copy).
type RecordStateWriter struct {
	path     string
	f        *os.File
	crc      hash.Hash32
	w        *bufio.Writer
	offs     *os.File // entry offsets, appended to the state at Close
	ow       *bufio.Writer
	docs     *extsort.Sorter // key, sum -> entry number: the new entries' documents
	base     *RecordState
	copies   []copyRange
	h        RecordStateHeader
	n        int64 // entries
	blob     uint64
	lastKind []byte
	lastID   []byte
	buf      []byte
	err      error
	done     bool
	// Add and Copy queue their work for a goroutine (run), so that writing
	// the state overlaps the caller's own work.
	pending []stateOp
	ops     chan []stateOp
	ran     chan struct{}
	closed  bool
	copied  int64 // bytes copied from the base since its pages were last trimmed
}

// stateOp is a queued Add (e) or Copy (from, to).
type stateOp struct {
	e        Entry
	from, to int
	isCopy   bool
}

// copyRange: base entries [from, to) were copied as entries at, at+1, …
type copyRange struct{ from, to, at int }

// CreateRecordState starts a state file at path (written in place: callers
// write to a temporary name and rename). tmp is scratch space for the
// document index (spilled past budget bytes); base is the state that Copy
// copies from (nil for none).
func CreateRecordState(path, tmp string, budget int, h RecordStateHeader, base *RecordState) (*RecordStateWriter, error) {
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, err
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	offs, err := os.CreateTemp(tmp, "offsets-*")
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	os.Remove(offs.Name()) // unlinked: nothing to clean up
	w := &RecordStateWriter{path: path, f: f, crc: crc32.New(castagnoli), offs: offs, ow: bufio.NewWriterSize(offs, 64<<10),
		docs: extsort.New(tmp, budget), base: base, h: h}
	w.w = bufio.NewWriterSize(io.MultiWriter(f, w.crc), 256<<10)
	w.w.WriteString(stateMagic)
	w.ops, w.ran = make(chan []stateOp, 8), make(chan struct{})
	go w.run()
	return w, nil
}

func (w *RecordStateWriter) run() {
	defer close(w.ran)
	for batch := range w.ops {
		for _, op := range batch {
			if w.err != nil {
				break
			}
			if op.isCopy {
				w.copyEntries(op.from, op.to)
			} else {
				w.add(op.e)
			}
		}
	}
}

func (w *RecordStateWriter) queue(op stateOp) error {
	if w.closed {
		return errors.New("internal: mirror state written after Close")
	}
	w.pending = append(w.pending, op)
	if len(w.pending) == 256 {
		w.ops <- w.pending
		w.pending = make([]stateOp, 0, 256)
	}
	return nil
}

// Add appends a new entry. Entries must come in (kind, id) order; a
// failure is reported by Close.
func (w *RecordStateWriter) Add(e Entry) error { return w.queue(stateOp{e: e}) }

// Copy appends the base's entries [from, to) as they are.
func (w *RecordStateWriter) Copy(from, to int) error {
	return w.queue(stateOp{from: from, to: to, isCopy: true})
}

// drain hands over what is queued and waits for the goroutine to finish.
func (w *RecordStateWriter) drain() {
	if w.closed {
		return
	}
	w.closed = true
	if len(w.pending) > 0 {
		w.ops <- w.pending
	}
	close(w.ops)
	<-w.ran
}

func (w *RecordStateWriter) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return w.err
}

func (w *RecordStateWriter) order(kind, id []byte) error {
	if w.n > 0 {
		if c := bytes.Compare(w.lastKind, kind); c > 0 || (c == 0 && bytes.Compare(w.lastID, id) >= 0) {
			return w.fail(fmt.Errorf("mirror state: %s:%s after %s:%s (not sorted, or twice)", kind, id, w.lastKind, w.lastID))
		}
	}
	return nil
}

func (w *RecordStateWriter) offset() {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], w.blob)
	w.ow.Write(b[:])
}

func (w *RecordStateWriter) add(e Entry) error {
	if w.err != nil {
		return w.err
	}
	if err := w.order([]byte(e.Kind), []byte(e.ID)); err != nil {
		return err
	}
	b := binary.AppendUvarint(w.buf[:0], uint64(len(e.Kind)))
	b = append(b, e.Kind...)
	b = binary.AppendUvarint(b, uint64(len(e.ID)))
	b = append(b, e.ID...)
	b = AppendEntry(b, e)
	w.buf = b
	w.offset()
	if _, err := w.w.Write(b); err != nil {
		return w.fail(err)
	}
	if docIndexed(e.Kind) {
		if sum, ok := docSum(e.Digest); ok {
			k := statcache.KeyOf(e.Source, e.Path)
			var num [4]byte
			binary.LittleEndian.PutUint32(num[:], uint32(w.n))
			if err := w.docs.Add(append(k[:], sum[:]...), num[:]); err != nil {
				return w.fail(err)
			}
		}
	}
	w.blob += uint64(len(b))
	w.lastKind, w.lastID = append(w.lastKind[:0], e.Kind...), append(w.lastID[:0], e.ID...)
	w.n++
	return nil
}

func (w *RecordStateWriter) copyEntries(from, to int) error {
	if w.err != nil || from >= to {
		return w.err
	}
	if w.base == nil || from < 0 || to > w.base.Len() {
		return w.fail(fmt.Errorf("internal: mirror state copy [%d, %d) of %d base entries", from, to, w.base.Len()))
	}
	k, id := w.base.KindID(from)
	if err := w.order(k, id); err != nil {
		return err
	}
	start := w.base.off(from)
	var b [8]byte
	for i := from; i < to; i++ {
		binary.LittleEndian.PutUint64(b[:], w.blob+w.base.off(i)-start)
		w.ow.Write(b[:])
	}
	end := w.base.off(to)
	if err := w.base.writeBlob(w.w, start, end); err != nil {
		return w.fail(err)
	}
	if w.copied += int64(end-start) + 8*int64(to-from); w.copied > 8<<20 {
		w.copied = 0
		w.base.trim.Now() // copied: drop those pages
	}
	w.copies = append(w.copies, copyRange{from: from, to: to, at: int(w.n)})
	w.blob += end - start
	w.n += int64(to - from)
	lk, lid := w.base.KindID(to - 1)
	w.lastKind, w.lastID = append(w.lastKind[:0], lk...), append(w.lastID[:0], lid...)
	return nil
}

// Abort removes the unfinished file.
func (w *RecordStateWriter) Abort() {
	w.drain()
	if w.done {
		return
	}
	w.done = true
	w.docs.Close()
	w.offs.Close()
	w.f.Close()
	os.Remove(w.path)
}

// Close finishes the file: the offsets, the document index (the copied
// entries' documents, renumbered, merged with the new ones), the header
// and the trailer. On failure the file is removed.
func (w *RecordStateWriter) Close() error {
	w.drain()
	if w.done {
		return w.err
	}
	if err := w.finish(); err != nil {
		w.fail(err)
		w.Abort()
		return w.err
	}
	w.done = true
	return nil
}

func (w *RecordStateWriter) finish() error {
	defer w.docs.Close()
	defer w.offs.Close()
	if w.err != nil {
		return w.err
	}
	w.offset() // the end of the last entry
	if err := w.ow.Flush(); err != nil {
		return err
	}
	offsAt := uint64(len(stateMagic)) + w.blob
	if _, err := w.offs.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if _, err := io.Copy(w.w, w.offs); err != nil {
		return err
	}
	docsAt := offsAt + 8*uint64(w.n+1)
	ndocs, err := w.writeDocs()
	if err != nil {
		return err
	}
	h := w.h
	h.Entries, h.Docs = w.n, ndocs
	h.Index.Index = ""
	if h.Index.Include == nil {
		h.Index.Include = []string{}
	}
	hj, err := json.Marshal(h)
	if err != nil {
		return err
	}
	headAt := docsAt + uint64(ndocs)*docRecord
	w.w.Write(hj)
	var t [stateTrailer]byte
	binary.LittleEndian.PutUint64(t[0:], offsAt)
	binary.LittleEndian.PutUint64(t[8:], docsAt)
	binary.LittleEndian.PutUint64(t[16:], headAt)
	binary.LittleEndian.PutUint64(t[24:], uint64(len(hj)))
	w.w.Write(t[:32])
	if err := w.w.Flush(); err != nil {
		return err
	}
	binary.LittleEndian.PutUint32(t[32:], w.crc.Sum32())
	if _, err := w.f.Write(t[32:]); err != nil {
		return err
	}
	return w.f.Close()
}

// writeDocs writes the document index: the base's records of copied
// entries (renumbered) merged with those of the new entries.
func (w *RecordStateWriter) writeDocs() (int64, error) {
	var n int64
	var rec [docRecord]byte
	put := func(key []byte, num uint32) error {
		copy(rec[:48], key)
		binary.LittleEndian.PutUint32(rec[48:], num)
		n++
		_, err := w.w.Write(rec[:])
		return err
	}
	bi, bn := 0, 0
	if w.base != nil {
		bn = w.base.docCount()
	}
	nextBase := func() ([]byte, uint32, bool) {
		for bi < bn {
			r := w.base.docAt(bi)
			bi++
			w.base.trim.Tick()
			if at, ok := w.renumber(int(binary.LittleEndian.Uint32(r[48:]))); ok {
				return r[:48], uint32(at), true
			}
		}
		return nil, 0, false
	}
	bk, bnum, bok := nextBase()
	err := w.docs.Merge(func(k, v []byte) error {
		for bok && bytes.Compare(bk, k) <= 0 {
			if err := put(bk, bnum); err != nil {
				return err
			}
			bk, bnum, bok = nextBase()
		}
		return put(k, binary.LittleEndian.Uint32(v))
	})
	for err == nil && bok {
		err = put(bk, bnum)
		bk, bnum, bok = nextBase()
	}
	return n, err
}

// renumber maps a base entry number to its number in this state, if the
// entry was copied.
func (w *RecordStateWriter) renumber(old int) (int, bool) {
	c := w.copies
	lo, hi := 0, len(c)
	for lo < hi {
		m := (lo + hi) / 2
		switch {
		case old < c[m].from:
			hi = m
		case old >= c[m].to:
			lo = m + 1
		default:
			return c[m].at + old - c[m].from, true
		}
	}
	return 0, false
}

// RecordState is an open state file.
type RecordState struct {
	h       RecordStateHeader
	blob    []byte // the entries
	offs    []byte
	docs    []byte
	fence   *statcache.Fence // over docs
	release func() error
	// trim drops the pages read in order (the checks at open, the copies
	// and the document index of a delta)
	trim *mmapfile.Trimmer
	// file is the state file, open beside its mapping: the entries a
	// delta copies into the next state are read from it (see writeBlob).
	file *os.File
}

// OpenRecordState opens the state file at path: (nil, nil) when there is none.
// A damaged file (magic, checksum, trailer, offsets) gives an error;
// callers rebuild the state from the bundles then.
func OpenRecordState(path string) (*RecordState, error) {
	f, err := mmapfile.Open(path)
	if f == nil {
		return nil, err
	}
	data, release, sum, err := mmapfile.MapSum(f)
	var s *RecordState
	if err == nil {
		if s, err = parseStateSum(data, sum); err != nil {
			release()
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("mirror state %s: %w", filepath.Base(path), err)
	}
	s.file = f // kept open for writeBlob
	s.release = func() error { f.Close(); return release() }
	s.fence = statcache.NewFence(s.docCount(), s.docAt)
	s.trim = mmapfile.NewTrimmer(data, statcache.TrimEvery)
	s.trim.Now() // the checks read the offsets and documents
	return s, nil
}

// parseStateSum checks and indexes the bytes of a state file whose bytes
// but the last four have the CRC-32C sum (taken as the file was opened).
func parseStateSum(data []byte, sum uint32) (*RecordState, error) {
	if len(data) < len(stateMagic)+stateTrailer || string(data[:len(stateMagic)]) != stateMagic {
		return nil, errors.New("not a mirror state file")
	}
	t := data[len(data)-stateTrailer:]
	if sum != binary.LittleEndian.Uint32(t[32:]) {
		return nil, errors.New("checksum mismatch (damaged or truncated)")
	}
	offsAt, docsAt := binary.LittleEndian.Uint64(t[0:]), binary.LittleEndian.Uint64(t[8:])
	headAt, headLen := binary.LittleEndian.Uint64(t[16:]), binary.LittleEndian.Uint64(t[24:])
	end := uint64(len(data) - stateTrailer)
	if !(uint64(len(stateMagic)) <= offsAt && offsAt <= docsAt && docsAt <= headAt && headLen <= end && headAt == end-headLen) {
		return nil, errors.New("malformed trailer")
	}
	s := &RecordState{}
	if err := json.Unmarshal(data[headAt:end], &s.h); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	s.blob = data[len(stateMagic):offsAt]
	s.offs = data[offsAt:docsAt]
	s.docs = data[docsAt:headAt]
	if s.h.Entries < 0 || s.h.Docs < 0 || s.h.Entries > int64(len(s.offs)) || s.h.Docs > int64(len(s.docs)) ||
		uint64(len(s.offs)) != 8*uint64(s.h.Entries+1) || uint64(len(s.docs)) != docRecord*uint64(s.h.Docs) {
		return nil, errors.New("sizes do not match the header")
	}
	prev := uint64(0)
	for i := 0; i <= int(s.h.Entries); i++ {
		o := binary.LittleEndian.Uint64(s.offs[8*i:])
		if o < prev || o > uint64(len(s.blob)) || (i == 0 && o != 0) || (i == int(s.h.Entries) && o != uint64(len(s.blob))) {
			return nil, fmt.Errorf("entry offset %d out of order", i)
		}
		prev = o
	}
	for i := 0; i < int(s.h.Docs); i++ {
		if int64(binary.LittleEndian.Uint32(s.docs[i*docRecord+48:])) >= s.h.Entries {
			return nil, fmt.Errorf("document %d names an entry out of range", i)
		}
	}
	return s, nil
}

// Close releases the file.
func (s *RecordState) Close() error {
	if s == nil || s.release == nil {
		return nil
	}
	return s.release()
}

// writeBlob writes the entries' bytes [start, end) to w. They are read
// from the file, not through the mapping: on the virtual machines these
// runs use, faulting in the pages of a mapping costs more than copying
// the bytes (see mmapfile.MapSum), and a delta copies nearly all of
// its base's entries.
func (s *RecordState) writeBlob(w *bufio.Writer, start, end uint64) error {
	if s.file == nil {
		_, err := w.Write(s.blob[start:end])
		return err
	}
	n, err := w.ReadFrom(io.NewSectionReader(s.file, int64(len(stateMagic))+int64(start), int64(end-start)))
	if err == nil && n != int64(end-start) {
		err = fmt.Errorf("mirror state: %d of %d bytes of entries read (the file changed?)", n, end-start)
	}
	return err
}

// Header is the state's header.
func (s *RecordState) Header() RecordStateHeader { return s.h }

// Len is the number of entries.
func (s *RecordState) Len() int {
	if s == nil {
		return 0
	}
	return int(s.h.Entries)
}

func (s *RecordState) off(i int) uint64   { return binary.LittleEndian.Uint64(s.offs[8*i:]) }
func (s *RecordState) docCount() int      { return int(s.h.Docs) }
func (s *RecordState) docAt(i int) []byte { return s.docs[i*docRecord : (i+1)*docRecord] }
func (s *RecordState) raw(i int) []byte   { return s.blob[s.off(i):s.off(i+1)] }

func uvarintField(b []byte) (f, rest []byte, ok bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, nil, false
	}
	return b[k : k+int(n)], b[k+int(n):], true
}

// KindID returns entry i's kind and id (aliasing the file; nil for a
// malformed entry).
func (s *RecordState) KindID(i int) (kind, id []byte) {
	kind, rest, ok := uvarintField(s.raw(i))
	if !ok {
		return nil, nil
	}
	id, _, ok = uvarintField(rest)
	if !ok {
		return nil, nil
	}
	return kind, id
}

// Entry decodes entry i.
func (s *RecordState) Entry(i int) (Entry, error) {
	kind, rest, ok := uvarintField(s.raw(i))
	var id []byte
	if ok {
		id, rest, ok = uvarintField(rest)
	}
	if !ok {
		return Entry{}, fmt.Errorf("mirror state: entry %d is malformed", i)
	}
	e, err := ParseEntry(rest)
	if err != nil {
		return Entry{}, fmt.Errorf("mirror state: entry %d: %w", i, err)
	}
	if e.Kind != string(kind) || e.ID != string(id) {
		return Entry{}, fmt.Errorf("mirror state: entry %d is %s:%s, its record %s:%s", i, kind, id, e.Kind, e.ID)
	}
	return e, nil
}

// cmpKindID compares entry i with (kind, id).
func (s *RecordState) cmpKindID(i int, kind, id string) int {
	k, d := s.KindID(i)
	if c := bytes.Compare(k, []byte(kind)); c != 0 {
		return c
	}
	return bytes.Compare(d, []byte(id))
}

// Is reports whether entry i is (kind, id).
func (s *RecordState) Is(i int, kind, id string) bool {
	return i >= 0 && i < s.Len() && s.cmpKindID(i, kind, id) == 0
}

// Search returns the first entry at or after lo that is not before (kind,
// id); Len() when there is none. It gallops from lo, so walking ids in
// order costs little per step.
func (s *RecordState) Search(kind, id string, lo int) int {
	n := s.Len()
	if lo >= n || s.cmpKindID(lo, kind, id) >= 0 {
		return lo
	}
	// Entry lo is before the target: find hi that is not.
	step, hi := 1, lo+1
	for hi < n && s.cmpKindID(hi, kind, id) < 0 {
		lo = hi
		step *= 2
		hi = lo + step
	}
	hi = min(hi, n)
	for hi-lo > 1 { // entry lo is before the target; hi is Len() or not before it
		m := int(uint(lo+hi) >> 1)
		if s.cmpKindID(m, kind, id) < 0 {
			lo = m
		} else {
			hi = m
		}
	}
	return hi
}

// Prefetch warms the document index where Find will look for keys (a hint;
// statcache.Fence.Touch).
func (s *RecordState) Prefetch(keys []statcache.Key) {
	if s != nil && s.fence != nil {
		s.fence.Touch(keys, s.docAt)
	}
}

// Find returns the number of the entry of the document with key k
// (statcache.KeyOf(source, path)) and digest, or -1.
func (s *RecordState) Find(k statcache.Key, digest string) int {
	sum, ok := docSum(digest)
	if !ok {
		return -1
	}
	return s.FindSum(k, &sum)
}

// FindSum is Find with the digest's bytes.
func (s *RecordState) FindSum(k statcache.Key, sum *[32]byte) int {
	if s == nil {
		return -1
	}
	n := s.docCount()
	for i := s.fence.Search(k, s.docAt); i < n; i++ {
		r := s.docAt(i)
		if !bytes.Equal(r[:16], k[:]) {
			break
		}
		if bytes.Equal(r[16:48], sum[:]) {
			return int(binary.LittleEndian.Uint32(r[48:]))
		}
	}
	return -1
}

// Range returns the entries of one kind: [from, to).
func (s *RecordState) Range(kind string) (from, to int) {
	from = s.Search(kind, "", 0)
	to = from
	for to < s.Len() {
		if k, _ := s.KindID(to); string(k) != kind {
			break
		}
		to++
	}
	return from, to
}
