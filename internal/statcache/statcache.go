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
// (source, path); Open maps it read-only and looks records up by binary
// search, so the cache takes no heap however many documents it holds.
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
}

// Open maps the cache at path; (nil, nil) when there is none or this
// platform cannot map files (then every document is read).
func Open(path string) (*Cache, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	head := make([]byte, len(magic))
	if _, err := io.ReadFull(f, head); err != nil || string(head) != magic {
		return nil, fmt.Errorf("statcache: %s is not a stat cache", path)
	}
	data, unmap, err := mmapfile.Map(f)
	if err != nil {
		return nil, err
	}
	data = data[len(magic):]
	if len(data)%recordSize != 0 {
		unmap()
		return nil, fmt.Errorf("statcache: %s is truncated", path)
	}
	return &Cache{data: data, unmap: unmap}, nil
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
	d, _, ok := c.LookupIndex(source, path, st)
	return d, ok
}

// Entry returns the key and record (as Record encodes it) of entry i, for
// copying an entry into a new cache.
func (c *Cache) Entry(i int) (key, rec []byte) {
	r := c.data[i*recordSize : (i+1)*recordSize]
	return r[:16], r[16:]
}

// LookupIndex is Lookup that also returns the entry's index.
func (c *Cache) LookupIndex(source, path string, st Stat) (digest string, i int, ok bool) {
	return c.LookupKey(KeyOf(source, path), st)
}

// LookupKey is LookupIndex by the document's key (KeyOf).
func (c *Cache) LookupKey(k Key, st Stat) (digest string, i int, ok bool) {
	if c == nil {
		return "", -1, false
	}
	lo, hi := c.window(k)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		r := c.data[m*recordSize:]
		switch bytes.Compare(r[:16], k[:]) {
		case 0:
			v := r[16:recordSize]
			if int64(binary.BigEndian.Uint64(v[0:])) != st.Size ||
				int64(binary.BigEndian.Uint64(v[8:])) != st.ModNs ||
				int64(binary.BigEndian.Uint64(v[16:])) != st.ChangNs ||
				binary.BigEndian.Uint64(v[24:]) != st.Ino ||
				binary.BigEndian.Uint64(v[32:]) != st.Dev {
				return "", -1, false
			}
			return "sha256:" + hex.EncodeToString(v[40:72]), m, true
		case -1:
			lo = m + 1
		default:
			hi = m
		}
	}
	return "", -1, false
}

// window narrows the search for k among the entries.
func (c *Cache) window(k Key) (lo, hi int) {
	return SearchWindow(k, len(c.data)/recordSize, func(i int) []byte { return c.data[i*recordSize : i*recordSize+16] })
}

// SearchWindow narrows a search for k among n sorted keys that are uniform
// hashes (keyAt(i) is the i-th; only its first 16 bytes are compared): an
// entry sits near n·k/2^64, so [lo, hi) is a window around that place, or
// all of [0, n) when the window cannot hold k.
func SearchWindow(k Key, n int, keyAt func(i int) []byte) (lo, hi int) {
	if n < 64 {
		return 0, n
	}
	guess, _ := bits.Mul64(binary.BigEndian.Uint64(k[:8]), uint64(n))
	const w = 2048 // several standard deviations (√n) for any n this cache holds
	lo, hi = max(int(guess)-w, 0), min(int(guess)+w, n)
	if lo > 0 && bytes.Compare(k[:], keyAt(lo)[:16]) < 0 {
		lo = 0
	}
	if hi < n && bytes.Compare(k[:], keyAt(hi - 1)[:16]) > 0 {
		hi = n
	}
	return lo, hi
}

// Len is the number of entries.
func (c *Cache) Len() int {
	if c == nil {
		return 0
	}
	return len(c.data) / recordSize
}
