// Package extsort sorts key/value pairs that may not fit in memory: pairs are
// buffered up to a memory budget, sorted, spilled to temporary run files, and
// merged back in key order. Memory stays bounded by the budget whatever the
// number of pairs.
package extsort

import (
	"bytes"
	"cmp"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"sync"
	"unsafe"

	"github.com/klauspost/compress/s2"
)

// chunkBytes is the size of the arena chunks that hold buffered pairs.
const chunkBytes = 1 << 20

// Sorter collects pairs; Add is safe for concurrent use.
type Sorter struct {
	dir    string
	budget int

	mu       sync.Mutex
	spillMu  sync.Mutex     // held while a buffer is written to its run file
	inflight sync.WaitGroup // spills not yet recorded
	err      error          // the first spill failure
	buf      []pair
	chunks   [][]byte // the arena chunks of buf
	free     [][]byte // chunks of written runs, for reuse
	arena    []byte   // backing store of the buffered keys and values
	size     int
	spill    Spill
	runs     []string
	pairs    int64
	done     bool
}

type pair struct {
	k, v []byte
	ab   uint64 // sortPairs: eight bytes of k from the depth being sorted on (see abIdx)
}

// New makes a sorter that spills to dir when its buffer passes budget bytes
// (0 = 64 MiB).
func New(dir string, budget int) *Sorter {
	if budget <= 0 {
		budget = 64 << 20
	}
	return &Sorter{dir: dir, budget: budget}
}

// Add adds a pair. key and val are copied. When the buffer passes the
// budget, the caller sorts and spills it to a run file while other callers
// go on filling a new buffer; a second spill waits for the first, so memory
// stays within about twice the budget.
func (s *Sorter) Add(key, val []byte) error {
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return errors.New("extsort: Add after Merge")
	}
	if s.err != nil {
		s.mu.Unlock()
		return s.err
	}
	n := len(key) + len(val)
	if len(s.arena)+n > cap(s.arena) {
		if n <= chunkBytes && len(s.free) > 0 { // a chunk of a written run
			s.arena = s.free[len(s.free)-1][:0]
			s.free = s.free[:len(s.free)-1]
		} else {
			s.arena = make([]byte, 0, max(n, chunkBytes))
		}
		s.chunks = append(s.chunks, s.arena)
	}
	off := len(s.arena)
	s.arena = append(s.arena, key...)
	s.arena = append(s.arena, val...)
	k := s.arena[off : off+len(key) : off+len(key)]
	v := s.arena[off+len(key) : off+n : off+n]
	s.buf = append(s.buf, pair{k: k, v: v})
	s.size += n + int(unsafe.Sizeof(pair{}))
	s.pairs++
	if s.size < s.budget {
		s.mu.Unlock()
		return nil
	}
	s.spillMu.Lock() // the previous spill must be done: two buffers at most
	buf, chunks, f, err := s.cut()
	s.inflight.Add(1)
	defer s.inflight.Done() // after the error and the chunks are recorded
	s.mu.Unlock()
	if err == nil {
		err = writeRun(f, buf, s.storeRuns())
	}
	s.spillMu.Unlock()
	s.mu.Lock()
	if err != nil && s.err == nil {
		s.err = err
	}
	for _, c := range chunks { // written: their memory holds the next buffer
		if cap(c) == chunkBytes {
			s.free = append(s.free, c)
		}
	}
	s.mu.Unlock()
	return err
}

// Spill is how run files are written.
type Spill int

const (
	// SpillAuto stores blocks uncompressed while the file system holding
	// the run files has storedRoom bytes free, S2-compressed below that.
	SpillAuto Spill = iota
	// SpillCompressed always compresses blocks with S2.
	SpillCompressed
	// SpillStored never compresses blocks.
	SpillStored
)

// storedRoom is the free space below which SpillAuto compresses run
// files. Stored runs cost about three times the bytes of S2 runs (a
// 200,000-document mirror spills 850 MB against 300 MB) and save
// compressing and decompressing every block (about 0.7 CPU-seconds of that
// build); the kernel's copies of the extra bytes take that back where
// system calls are dear, not where they are cheap (docs/performance.md).
const storedRoom = 10 << 30

var freeSpace = freeBytes // tests replace it

// SetSpill sets how run files are written (before the first Add).
func (s *Sorter) SetSpill(m Spill) { s.spill = m }

// storeRuns says whether the next run file is written uncompressed.
func (s *Sorter) storeRuns() bool {
	switch s.spill {
	case SpillStored:
		return true
	case SpillCompressed:
		return false
	}
	free, ok := freeSpace(s.dir)
	return ok && free >= storedRoom
}

// cut takes the buffered pairs out for a spill and opens their run file;
// s.mu and s.spillMu are held.
func (s *Sorter) cut() ([]pair, [][]byte, *os.File, error) {
	f, err := os.CreateTemp(s.dir, "run-*.s2")
	if err != nil {
		return nil, nil, nil, fmt.Errorf("extsort: %w", err)
	}
	buf, chunks := s.buf, s.chunks
	s.runs = append(s.runs, f.Name())
	s.buf = make([]pair, 0, cap(buf))
	s.arena, s.chunks = nil, nil // the spilled pairs hold the old chunks until written
	s.size = 0
	return buf, chunks, f, nil
}

// Pairs is the number of pairs added.
func (s *Sorter) Pairs() int64 { return s.pairs }

// sortPairs orders pairs by key, and pairs with equal keys by value, so
// that the order never depends on the order of Add calls (which concurrent
// callers do not fix).
//
// Keys of one run share long prefixes (namespace, stream, an id prefix),
// so a comparison sort spends its time on cache misses and common prefixes.
// Instead the pairs are sorted eight key bytes at a time: those bytes are
// read once per pair, radix-sorted as integers with the pair's index, the
// pairs moved once into that order, and each range of pairs with equal
// bytes sorted on the next eight the same way. Ranges in which a key ends
// are sorted by comparing keys (then values).
func sortPairs(buf []pair) {
	var sc sortScratch
	sc.sortFrom(buf, 0)
}

type abIdx struct {
	ab uint64 // key bytes [depth, depth+8) as a big-endian integer
	i  uint32 // the pair's index in the range
}

// sortScratch holds the buffers of one sortPairs, reused down the ranges.
type sortScratch struct {
	ix, ix2 []abIdx
	tmp     []pair
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// sortFrom sorts pairs whose keys are equal before depth.
func (sc *sortScratch) sortFrom(ps []pair, depth int) {
	for {
		n := len(ps)
		if n < 2 {
			return
		}
		short := n <= 16
		for i := range ps {
			if len(ps[i].k) < depth+8 {
				short = true // a key ends here: compare whole keys (and lengths)
				break
			}
		}
		if short {
			slices.SortFunc(ps, func(a, b pair) int {
				if c := bytes.Compare(a.k[depth:], b.k[depth:]); c != 0 {
					return c
				}
				return bytes.Compare(a.v, b.v)
			})
			return
		}
		sc.ix = grow(sc.ix, n)
		ix := sc.ix
		for i := range ps {
			ix[i] = abIdx{binary.BigEndian.Uint64(ps[i].k[depth:]), uint32(i)}
		}
		if n < 256 {
			slices.SortFunc(ix, func(a, b abIdx) int { return cmp.Compare(a.ab, b.ab) })
		} else {
			sc.ix2 = grow(sc.ix2, n)
			ix = radixSort(ix, sc.ix2)
		}
		if ix[0].ab == ix[n-1].ab { // one range: on to the next eight bytes
			depth += 8
			continue
		}
		sc.tmp = grow(sc.tmp, n)
		copy(sc.tmp, ps)
		for j, x := range ix {
			ps[j] = sc.tmp[x.i]
			ps[j].ab = x.ab
		}
		for i := 0; i < n; {
			j := i + 1
			for j < n && ps[j].ab == ps[i].ab {
				j++
			}
			if j-i > 1 {
				sc.sortFrom(ps[i:j], depth+8)
			}
			i = j
		}
		return
	}
}

// radixSort sorts a by ab (least significant byte first, skipping bytes
// that are the same everywhere), using b as scratch; it returns whichever
// of the two holds the result.
func radixSort(a, b []abIdx) []abIdx {
	var counts [8][256]int
	for _, x := range a {
		for d := range 8 {
			counts[d][byte(x.ab>>(8*d))]++
		}
	}
	for d := range 8 {
		c := &counts[d]
		if c[byte(a[0].ab>>(8*d))] == len(a) {
			continue // every element has this byte: nothing to order
		}
		sum := 0
		for k := range c {
			c[k], sum = sum, sum+c[k]
		}
		for _, x := range a {
			k := byte(x.ab >> (8 * d))
			b[c[k]] = x
			c[k]++
		}
		a, b = b, a
	}
	return a
}

// runBlock is the uncompressed size a block of a run file is filled to: it
// bounds the memory each run's reader needs during a merge (a pair larger
// than a block gets a block of its own).
const runBlock = 256 << 10

// maxFanIn is the most runs merged at once: with more, runs are first
// merged into bigger ones, so that merge memory (a reader and two blocks per
// run) does not grow with the number of pairs.
const maxFanIn = 32

// Run files are a sequence of blocks, each a 12-byte header — the block's
// uncompressed length, its stored length and the CRC-32C of the
// uncompressed bytes, little-endian uint32s — and the block, S2-compressed
// (JSON records shrink several times, so the run files cost a fraction of
// the I/O) or, with storedFlag set in the stored length, as it is (no CPU
// spent compressing). A block holds whole pairs, each a uvarint key
// length, a uvarint value length, the key and the value. Pairs are
// appended to the block buffer once and the reader hands out pairs that
// point into the decoded block: no stream layers copying the bytes in
// between.
const blockHeader = 12

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// storedFlag, set in a block header's stored length, marks a block stored
// as it is (the length is then the block's own).
const storedFlag = 1 << 31

// runWriter writes one run file.
type runWriter struct {
	f      *os.File
	raw    []byte // a header's room, then the pairs of the block being filled
	z      []byte // header and compressed block
	stored bool   // blocks are written uncompressed
	err    error
}

func newRunWriter(f *os.File, stored bool) *runWriter {
	return &runWriter{f: f, raw: make([]byte, blockHeader, blockHeader+runBlock), stored: stored}
}

func (rw *runWriter) add(k, v []byte) error {
	if rw.err != nil {
		return rw.err
	}
	n := len(k) + len(v) + 2*binary.MaxVarintLen64
	if len(rw.raw) > blockHeader && len(rw.raw)-blockHeader+n > runBlock {
		if err := rw.flush(); err != nil {
			return err
		}
	}
	rw.raw = binary.AppendUvarint(rw.raw, uint64(len(k)))
	rw.raw = binary.AppendUvarint(rw.raw, uint64(len(v)))
	rw.raw = append(rw.raw, k...)
	rw.raw = append(rw.raw, v...)
	return nil
}

// flush compresses and writes the block being filled.
func (rw *runWriter) flush() error {
	block := rw.raw[blockHeader:]
	if len(block) == 0 || rw.err != nil {
		return rw.err
	}
	if len(block) >= storedFlag {
		rw.err = fmt.Errorf("a block of %d bytes", len(block))
		return rw.err
	}
	var out []byte
	if rw.stored {
		out = rw.raw
		binary.LittleEndian.PutUint32(out[4:], uint32(len(block))|storedFlag)
	} else {
		need := blockHeader + s2.MaxEncodedLen(len(block))
		if cap(rw.z) < need {
			rw.z = make([]byte, need)
		}
		z := s2.Encode(rw.z[blockHeader:need], block)
		if &z[0] != &rw.z[blockHeader] { // not encoded in place (it always is: dst was big enough)
			copy(rw.z[blockHeader:], z)
		}
		out = rw.z[:blockHeader+len(z)]
		binary.LittleEndian.PutUint32(out[4:], uint32(len(z)))
	}
	binary.LittleEndian.PutUint32(out[0:], uint32(len(block)))
	binary.LittleEndian.PutUint32(out[8:], crc32.Checksum(block, castagnoli))
	if _, err := rw.f.Write(out); err != nil {
		rw.err = err
		return err
	}
	if cap(rw.raw) > blockHeader+runBlock { // a big pair's block: do not keep it
		rw.raw = make([]byte, blockHeader, blockHeader+runBlock)
	}
	rw.raw = rw.raw[:blockHeader]
	return nil
}

// close finishes and closes the file.
func (rw *runWriter) close() error {
	err := rw.flush()
	if cerr := rw.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("extsort: spill to %s: %w", rw.f.Name(), err)
	}
	return nil
}

// writeRun sorts buf and writes it to f as a run, and closes f.
func writeRun(f *os.File, buf []pair, stored bool) error {
	sortPairs(buf)
	rw := newRunWriter(f, stored)
	for _, p := range buf {
		if err := rw.add(p.k, p.v); err != nil {
			rw.close()
			return fmt.Errorf("extsort: spill to %s: %w", f.Name(), err)
		}
	}
	return rw.close()
}

// Merge calls fn for every pair in key order, pairs with equal keys in
// value order: the order depends only on the pairs added. The slices passed to
// fn are valid only during the call. Merge removes the run files.
func (s *Sorter) Merge(fn func(key, val []byte) error) error {
	s.mu.Lock()
	s.done = true
	s.mu.Unlock()
	s.inflight.Wait() // a spill in flight
	defer s.Close()
	s.mu.Lock()
	err := s.err
	s.free = nil // chunks kept for buffers to come: there are none now
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if len(s.runs) == 0 {
		sortPairs(s.buf)
		for _, p := range s.buf {
			if err := fn(p.k, p.v); err != nil {
				return err
			}
		}
		return nil
	}
	// Bound the fan-in: merge the oldest runs into bigger ones first.
	for len(s.runs) > maxFanIn {
		f, err := os.CreateTemp(s.dir, "run-*.s2")
		if err != nil {
			return fmt.Errorf("extsort: %w", err)
		}
		rw := newRunWriter(f, s.storeRuns())
		err = mergeRuns(s.runs[:maxFanIn], nil, rw.add)
		if cerr := rw.close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(f.Name())
			return err
		}
		for _, r := range s.runs[:maxFanIn] {
			os.Remove(r)
		}
		s.runs = append(s.runs[maxFanIn:], f.Name())
	}
	return mergeRuns(s.runs, s.buf, fn)
}

// mergeRuns calls fn for every pair of the run files and of mem (unsorted
// pairs in memory), in key order, pairs with equal keys in value order.
func mergeRuns(runs []string, mem []pair, fn func(key, val []byte) error) error {
	h := &mergeHeap{}
	defer func() {
		for _, rr := range *h {
			rr.close()
		}
	}()
	if len(mem) > 0 {
		sortPairs(mem)
		rr := &runReader{mem: mem, idx: len(runs)}
		rr.next()
		*h = append(*h, rr)
	}
	for i, name := range runs {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		rr := &runReader{f: f, idx: i}
		rr.prefetch()
		ok, err := rr.next()
		if err != nil {
			rr.close()
			return err
		}
		if ok {
			*h = append(*h, rr)
		} else {
			rr.close()
		}
	}
	heap.Init(h)
	for h.Len() > 0 {
		rr := (*h)[0]
		if err := fn(rr.k, rr.v); err != nil {
			return err
		}
		ok, err := rr.next()
		if err != nil {
			return err
		}
		if ok {
			heap.Fix(h, 0)
		} else {
			rr.close()
			heap.Pop(h)
		}
	}
	return nil
}

// Close removes the run files (after a spill in flight is done).
func (s *Sorter) Close() error {
	s.spillMu.Lock()
	defer s.spillMu.Unlock()
	for _, r := range s.runs {
		os.Remove(r)
	}
	s.runs = nil
	s.buf = nil
	s.arena, s.chunks, s.free = nil, nil, nil
	return nil
}

// runReader reads one sorted run: a run file, decoded ahead by its own
// goroutine a block at a time (so that decompression runs beside the
// merge), or the in-memory buffer (mem).
type runReader struct {
	f    *os.File
	mem  []pair
	k, v []byte
	idx  int

	batches chan *batch // decoded blocks, closed at the end of the run
	free    chan *batch // blocks handed back for reuse
	stop    chan struct{}
	done    chan struct{}
	err     error // the decoder's error, read after batches is closed
	cur     *batch
}

// batch is the pairs of one decoded block; they point into block.
type batch struct {
	block []byte
	pairs []pair
	pos   int // the next pair to hand out
}

func (rr *runReader) prefetch() {
	rr.batches = make(chan *batch, 1)
	rr.free = make(chan *batch, 2)
	rr.stop = make(chan struct{})
	rr.done = make(chan struct{})
	for i := 0; i < 2; i++ {
		rr.free <- &batch{block: make([]byte, 0, runBlock)}
	}
	go func() {
		defer close(rr.done)
		defer close(rr.batches)
		var hdr [blockHeader]byte
		var z []byte
		for {
			var b *batch
			select {
			case b = <-rr.free:
			case <-rr.stop:
				return
			}
			var err error
			z, err = readBlock(rr.f, hdr[:], z, b)
			if err == io.EOF {
				return
			}
			if err != nil {
				rr.err = fmt.Errorf("extsort: run %s: %w", rr.f.Name(), err)
				return
			}
			select {
			case rr.batches <- b:
			case <-rr.stop:
				return
			}
		}
	}()
}

// readBlock reads the next block of r into b (z is the buffer for the
// compressed bytes, returned for reuse); io.EOF at the end of the run.
func readBlock(r io.Reader, hdr, z []byte, b *batch) ([]byte, error) {
	if _, err := io.ReadFull(r, hdr); err != nil {
		if err == io.ErrUnexpectedEOF {
			err = errors.New("truncated block header")
		}
		return z, err
	}
	rawLen := int(binary.LittleEndian.Uint32(hdr[0:]))
	zWord := binary.LittleEndian.Uint32(hdr[4:])
	stored := zWord&storedFlag != 0
	zLen := int(zWord &^ storedFlag)
	sum := binary.LittleEndian.Uint32(hdr[8:])
	if rawLen == 0 || zLen == 0 || (stored && zLen != rawLen) || zLen > s2.MaxEncodedLen(rawLen) {
		return z, fmt.Errorf("damaged block header (%d bytes, %d stored)", rawLen, zLen)
	}
	if cap(b.block) < rawLen || (cap(b.block) > runBlock && rawLen <= runBlock) {
		b.block = make([]byte, max(rawLen, runBlock)) // a big pair's block is not kept
	}
	var block []byte
	if stored {
		block = b.block[:rawLen]
		if _, err := io.ReadFull(r, block); err != nil {
			return z, fmt.Errorf("truncated block: %w", err)
		}
	} else {
		if cap(z) < zLen {
			z = make([]byte, zLen)
		}
		z = z[:zLen]
		if _, err := io.ReadFull(r, z); err != nil {
			return z, fmt.Errorf("truncated block: %w", err)
		}
		if n, err := s2.DecodedLen(z); err != nil || n != rawLen {
			return z, fmt.Errorf("damaged block (decoded length %d, want %d): %v", n, rawLen, err)
		}
		var err error
		if block, err = s2.Decode(b.block[:cap(b.block)], z); err != nil {
			return z, fmt.Errorf("damaged block: %w", err)
		}
	}
	if crc32.Checksum(block, castagnoli) != sum {
		return z, errors.New("damaged block: checksum mismatch")
	}
	b.block, b.pairs, b.pos = block, b.pairs[:0], 0
	for rest := block; len(rest) > 0; {
		kl, n := binary.Uvarint(rest)
		if n <= 0 {
			return z, errors.New("damaged block: pair header")
		}
		rest = rest[n:]
		vl, n := binary.Uvarint(rest)
		if n <= 0 || kl > uint64(len(rest)-n) || vl > uint64(len(rest)-n)-kl {
			return z, errors.New("damaged block: pair header")
		}
		rest = rest[n:]
		b.pairs = append(b.pairs, pair{k: rest[:kl:kl], v: rest[kl : kl+vl : kl+vl]})
		rest = rest[kl+vl:]
	}
	return z, nil
}

func (rr *runReader) close() {
	if rr.stop != nil {
		close(rr.stop)
		<-rr.done
		rr.stop = nil
	}
	if rr.f != nil {
		rr.f.Close()
	}
}

func (rr *runReader) next() (bool, error) {
	if rr.batches == nil {
		if len(rr.mem) == 0 {
			return false, nil
		}
		rr.k, rr.v = rr.mem[0].k, rr.mem[0].v
		rr.mem = rr.mem[1:]
		return true, nil
	}
	for rr.cur == nil || rr.cur.pos == len(rr.cur.pairs) {
		if rr.cur != nil {
			rr.free <- rr.cur
			rr.cur = nil
		}
		b, ok := <-rr.batches
		if !ok {
			<-rr.done
			return false, rr.err
		}
		rr.cur = b
	}
	p := rr.cur.pairs[rr.cur.pos]
	rr.cur.pos++
	rr.k, rr.v = p.k, p.v
	return true, nil
}

type mergeHeap []*runReader

func (h mergeHeap) Len() int { return len(h) }
func (h mergeHeap) Less(i, j int) bool {
	if c := bytes.Compare(h[i].k, h[j].k); c != 0 {
		return c < 0
	}
	if c := bytes.Compare(h[i].v, h[j].v); c != 0 {
		return c < 0
	}
	return h[i].idx < h[j].idx
}
func (h mergeHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *mergeHeap) Push(x any)   { *h = append(*h, x.(*runReader)) }
func (h *mergeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
