// Package statcache remembers, for the documents of folder sources, the
// file status (size, modification and change times, inode, device) they had
// when a run read them and the digest of their bytes, so that the next run of
// a chain (a mirror delta) can take a document whose status is unchanged as
// unchanged without reading and hashing it again — the technique of git's
// index. The change time (ctime) is what makes it safe: every write to a
// file, and every change of its times (touch, cp -p, rsync -t), sets ctime to
// the current time, and no system call sets it back. Entries whose times are
// too close to the start of the run that recorded them ("racily clean", as
// git calls them: the file may have changed again within the timestamp
// granularity) are never written, so those files are read again.
//
// The file is a header and fixed-size records sorted by the fingerprint of
// (source, path); Open maps it read-only and looks records up through a
// Fence, so the cache takes no heap (but a fixed table) however many
// documents it holds. Beside it a run keeps a document list (doclist.go).
package statcache

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/stellaops/stella/internal/mmapfile"
)

// Stat is the part of a file's status that a change to the file changes.
type Stat struct {
	Size    int64
	ModNs   int64 // modification time, ns since the epoch
	ChangNs int64 // status change time (ctime), ns since the epoch
	Ino     uint64
	Dev     uint64
}

// Key is the fingerprint of (source, path): the first 16 bytes of
// sha256(source \0 path).
type Key [16]byte

// KeyOf computes the key of a document.
func KeyOf(source, path string) Key {
	var buf [512]byte
	b := append(append(append(buf[:0], source...), 0), path...)
	sum := sha256.Sum256(b)
	return Key(sum[:16])
}

const (
	magic      = "STELLA-STATCACHE-1\n"
	recordSize = 16 + 5*8 + 32 // key, stat, sha256
)

// RacyWindow is how close to the start of the recording run a file's
// modification or change time may be before its entry is left out (covers
// filesystems with coarse timestamps).
var RacyWindow = 2 * time.Second

// Racy reports whether a file with status st, read by a run that started at
// start, must not be trusted next time.
func Racy(st Stat, start time.Time) bool {
	limit := start.Add(-RacyWindow).UnixNano()
	return st.ModNs >= limit || st.ChangNs >= limit
}

// Record encodes one entry (the value stored under Key in a sorter).
func Record(st Stat, digest string) ([]byte, error) {
	hexSum, ok := strings.CutPrefix(digest, "sha256:")
	if !ok {
		return nil, fmt.Errorf("statcache: digest %q is not sha256", digest)
	}
	sum, err := hex.DecodeString(hexSum)
	if err != nil || len(sum) != 32 {
		return nil, fmt.Errorf("statcache: digest %q is not sha256", digest)
	}
	b := make([]byte, 5*8+32)
	binary.BigEndian.PutUint64(b[0:], uint64(st.Size))
	binary.BigEndian.PutUint64(b[8:], uint64(st.ModNs))
	binary.BigEndian.PutUint64(b[16:], uint64(st.ChangNs))
	binary.BigEndian.PutUint64(b[24:], st.Ino)
	binary.BigEndian.PutUint64(b[32:], st.Dev)
	copy(b[40:], sum)
	return b, nil
}

// Writer writes a cache file; Add must be called in increasing key order.
type Writer struct {
	f      *os.File
	w      *bufio.Writer
	last   Key
	n      int64
	err    error
	closed bool
}

// Create starts a cache file at path (written in place; callers write to a
// temporary name and rename).
func Create(path string) (*Writer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	w := &Writer{f: f, w: bufio.NewWriterSize(f, 256<<10)}
	w.w.WriteString(magic)
	return w, nil
}

// Add appends the entry of key (rec from Record).
func (w *Writer) Add(key []byte, rec []byte) error {
	if w.err != nil {
		return w.err
	}
	if len(key) != len(Key{}) || len(rec) != recordSize-16 {
		w.err = errors.New("statcache: malformed entry")
		return w.err
	}
	if w.n > 0 && bytes.Compare(key, w.last[:]) <= 0 {
		w.err = errors.New("statcache: entries out of order")
		return w.err
	}
	copy(w.last[:], key)
	w.n++
	w.w.Write(key)
	_, w.err = w.w.Write(rec)
	return w.err
}

// Close finishes the file (again: a no-op).
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err == nil {
		w.err = w.w.Flush()
	}
	if err := w.f.Close(); w.err == nil {
		w.err = err
	}
	return w.err
}

// Cache is an open cache file.
type Cache struct {
	data  []byte // the records
	unmap func() error
	fence *Fence
	trim  *mmapfile.Trimmer // drops the pages read in order
}

// trimEvery is how many records read in order from a mapped run cache
// (the stat cache, the document list, the mirror state) are read between
// trims of its resident pages, so that a scan does not leave the whole
// file resident. (Random look-ups are not trimmed: each would then fault
// its page in again, at about a microsecond each.)
const trimEvery = 65536

// TrimEvery is trimEvery, for the other mapped run caches.
const TrimEvery = trimEvery

// Open maps the cache at path; (nil, nil) when there is none or this
// platform cannot map files (then every document is read).
func Open(path string) (*Cache, error) {
	f, err := mmapfile.Open(path)
	if f == nil {
		return nil, err
	}
	defer f.Close() // the mapping outlives the file
	whole, unmap, err := mmapfile.Map(f)
	if err != nil {
		return nil, err
	}
	if len(whole) < len(magic) || string(whole[:len(magic)]) != magic {
		unmap()
		return nil, fmt.Errorf("statcache: %s is not a stat cache", path)
	}
	data := whole[len(magic):]
	if len(data)%recordSize != 0 {
		unmap()
		return nil, fmt.Errorf("statcache: %s is truncated", path)
	}
	c := &Cache{data: data, unmap: unmap, trim: mmapfile.NewTrimmer(whole, trimEvery)}
	if c.fence, err = readFence(f, c.Len()); err != nil {
		unmap()
		return nil, err
	}
	return c, nil
}

// Close unmaps the file.
func (c *Cache) Close() error {
	if c == nil || c.unmap == nil {
		return nil
	}
	return c.unmap()
}

// Lookup returns the digest recorded for (source, path) when the file's
// status st is the one recorded with it.
func (c *Cache) Lookup(source, path string, st Stat) (digest string, ok bool) {
	sum, _, ok := c.LookupSum(KeyOf(source, path), st)
	if !ok {
		return "", false
	}
	return "sha256:" + hex.EncodeToString(sum[:]), true
}

// Entry returns the key and record (as Record encodes it) of entry i, for
// copying an entry into a new cache.
func (c *Cache) Entry(i int) (key, rec []byte) {
	if i%trimEvery == 0 {
		c.trim.Now() // entries are copied in order: drop those behind
	}
	r := c.data[i*recordSize : (i+1)*recordSize]
	return r[:16], r[16:]
}

// LookupSum is Lookup by the document's key (KeyOf), giving the digest's
// bytes, which point into the cache (valid until Close), and the entry's
// number.
func (c *Cache) LookupSum(k Key, st Stat) (sum *[32]byte, i int, ok bool) {
	if c == nil {
		return nil, -1, false
	}
	m := c.search(k)
	if m >= c.Len() {
		return nil, -1, false
	}
	r := c.data[m*recordSize : (m+1)*recordSize]
	if !bytes.Equal(r[:16], k[:]) {
		return nil, -1, false
	}
	v := r[16:]
	if int64(binary.BigEndian.Uint64(v[0:])) != st.Size ||
		int64(binary.BigEndian.Uint64(v[8:])) != st.ModNs ||
		int64(binary.BigEndian.Uint64(v[16:])) != st.ChangNs ||
		binary.BigEndian.Uint64(v[24:]) != st.Ino ||
		binary.BigEndian.Uint64(v[32:]) != st.Dev {
		return nil, -1, false
	}
	return (*[32]byte)(v[40:72]), m, true
}

// search returns the first entry whose key is not before k.
func (c *Cache) search(k Key) int {
	return c.fence.Search(k, c.keyAt)
}

// maxFenceBits bounds a Fence's table: 2^16 starts (256 KiB) whatever the
// number of keys.
const maxFenceBits = 16

// Fence speeds up searches among sorted keys that are uniform hashes (the
// stat cache's, the mirror state's document keys): it records where each
// range of key prefixes starts, so a search looks at one small slice of
// the keys — a few neighbouring cache lines — instead of bisecting the
// whole array and missing the cache at every step.
type Fence struct {
	n     int
	shift uint     // 64 - prefix bits
	start []uint32 // start[j]: the first key whose prefix is >= j
}

// NewFence reads the first 8 bytes of every key once (keyAt(i) is the
// i-th of n sorted keys).
func NewFence(n int, keyAt func(i int) []byte) *Fence {
	b := newFenceBuilder(n)
	for i := 0; i < n; i++ {
		b.add(keyAt(i))
	}
	return b.done()
}

// fenceBuilder builds a Fence from the n sorted keys given to add in order.
type fenceBuilder struct {
	f    *Fence
	i, j int
}

func newFenceBuilder(n int) *fenceBuilder {
	b := min(max(bits.Len(uint(n))-1, 1), maxFenceBits)
	return &fenceBuilder{f: &Fence{n: n, shift: uint(64 - b), start: make([]uint32, (1<<b)+1)}}
}

// add takes the next key (at least its first 8 bytes).
func (b *fenceBuilder) add(key []byte) {
	for p := int(binary.BigEndian.Uint64(key[:8]) >> b.f.shift); b.j <= p; b.j++ {
		b.f.start[b.j] = uint32(b.i)
	}
	b.i++
}

func (b *fenceBuilder) done() *Fence {
	for ; b.j < len(b.f.start); b.j++ {
		b.f.start[b.j] = uint32(b.f.n)
	}
	return b.f
}

// readFence builds the fence of the n records of the cache file f by
// reading the file rather than through its mapping (for the same reason
// as mmapfile.MapSum: faulting in every page of the mapping costs more
// than reading it, and the pages would be dropped after).
func readFence(f *os.File, n int) (*Fence, error) {
	b := newFenceBuilder(n)
	buf := make([]byte, recordSize*(1<<20/recordSize))
	r := io.NewSectionReader(f, int64(len(magic)), int64(n)*recordSize)
	for left := n; left > 0; {
		m := min(left, len(buf)/recordSize)
		if _, err := io.ReadFull(r, buf[:m*recordSize]); err != nil {
			return nil, fmt.Errorf("statcache: %s: %w", f.Name(), err)
		}
		for k := 0; k < m; k++ {
			b.add(buf[k*recordSize:])
		}
		left -= m
	}
	return b.done(), nil
}

// Search returns the first key (keyAt(i) is the i-th; only its first 16
// bytes count) that is not before k, or n.
func (f *Fence) Search(k Key, keyAt func(i int) []byte) int {
	// Keys compare as two big-endian words: the same order as
	// bytes.Compare of the 16 bytes, without its call per step.
	k0, k1 := binary.BigEndian.Uint64(k[:8]), binary.BigEndian.Uint64(k[8:16])
	p := k0 >> f.shift
	lo, hi := int(f.start[p]), int(f.start[p+1])
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		km := keyAt(m)[:16]
		if m0 := binary.BigEndian.Uint64(km[:8]); m0 < k0 || (m0 == k0 && binary.BigEndian.Uint64(km[8:]) < k1) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// Touch reads the keys where a search for each of ks would look, for a
// caller about to search for them all (keyAt as for Search). The loads do
// not depend on each other, so the processor overlaps their cache and TLB
// misses; the searches that follow find the lines in the cache. A zero key
// is passed over. It changes nothing.
func (f *Fence) Touch(ks []Key, keyAt func(i int) []byte) {
	var x byte
	for i := range ks {
		k := &ks[i]
		if *k == (Key{}) || f.n == 0 {
			continue
		}
		p := binary.BigEndian.Uint64(k[:8]) >> f.shift
		lo, hi := int(f.start[p]), int(f.start[p+1])
		if m := int(uint(lo+hi) >> 1); m < f.n {
			x += keyAt(m)[0]
		}
	}
	touchSink.Add(uint32(x)) // keeps the loads
}

var touchSink atomic.Uint32

func (c *Cache) keyAt(i int) []byte { return c.data[i*recordSize : i*recordSize+16] }

// Prefetch is Fence.Touch on the cache's keys (see LookupSum).
func (c *Cache) Prefetch(ks []Key) {
	if c == nil || c.fence == nil {
		return
	}
	c.fence.Touch(ks, c.keyAt)
}

// Len is the number of entries.
func (c *Cache) Len() int {
	if c == nil {
		return 0
	}
	return len(c.data) / recordSize
}
