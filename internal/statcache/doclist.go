package statcache

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"

	"github.com/stellaops/stella/internal/mmapfile"
)

// A document list is the companion of a stat cache: every document a run
// counted towards its sources' digests (source, path, digest and key), in
// the order of the digests (by source, then path). The next run of the
// chain takes the documents it finds unchanged by their status from it,
// in order, instead of sorting them again.
//
// Layout: magic; records (uvarint len(source), source, uvarint len(path),
// path, the 32-byte sha256 of the document, its 16-byte Key); a trailer of
// the record count (uint64) and the CRC-32C of everything before it
// (uint32), both little-endian.
const docListMagic = "STELLA-DOCLIST-1\n"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// DocListWriter writes a document list; Add in (source, path) order.
type DocListWriter struct {
	f      *os.File
	crc    hash.Hash32
	w      *bufio.Writer
	n      uint64
	buf    []byte
	err    error
	closed bool
}

// CreateDocList starts a document list at path (written in place; callers
// write to a temporary name and rename).
func CreateDocList(path string) (*DocListWriter, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	w := &DocListWriter{f: f, crc: crc32.New(castagnoli)}
	w.w = bufio.NewWriterSize(io.MultiWriter(f, w.crc), 256<<10)
	w.w.WriteString(docListMagic)
	return w, nil
}

// Add appends a document.
func (w *DocListWriter) Add(source, path []byte, sum *[32]byte, key *Key) error {
	if w.err != nil {
		return w.err
	}
	b := binary.AppendUvarint(w.buf[:0], uint64(len(source)))
	b = append(b, source...)
	b = binary.AppendUvarint(b, uint64(len(path)))
	b = append(b, path...)
	b = append(b, sum[:]...)
	b = append(b, key[:]...)
	w.buf = b
	w.n++
	_, w.err = w.w.Write(b)
	return w.err
}

// Close finishes the file (again: a no-op).
func (w *DocListWriter) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	var t [12]byte
	binary.LittleEndian.PutUint64(t[:8], w.n)
	if w.err == nil {
		w.w.Write(t[:8])
		w.err = w.w.Flush()
	}
	if w.err == nil {
		binary.LittleEndian.PutUint32(t[8:], w.crc.Sum32())
		_, w.err = w.f.Write(t[8:])
	}
	if err := w.f.Close(); w.err == nil {
		w.err = err
	}
	return w.err
}

// DocList reads a document list in order.
type DocList struct {
	data    []byte // the records
	left    uint64
	release func() error
	trim    *mmapfile.Trimmer // drops the pages read
}

// OpenDocList opens the document list at path: (nil, nil) when there is
// none; an error when it is damaged.
func OpenDocList(path string) (*DocList, error) {
	data, release, sum, err := mmapfile.MapPathSum(path)
	if err != nil || release == nil {
		return nil, err
	}
	if len(data) < len(docListMagic)+12 || string(data[:len(docListMagic)]) != docListMagic ||
		sum != binary.LittleEndian.Uint32(data[len(data)-4:]) {
		release()
		return nil, fmt.Errorf("statcache: %s is not a document list, or is damaged", path)
	}
	d := &DocList{data: data[len(docListMagic) : len(data)-12], left: binary.LittleEndian.Uint64(data[len(data)-12:]),
		release: release, trim: mmapfile.NewTrimmer(data, trimEvery)}
	return d, nil
}

// Next returns the next document; ok is false at the end, err set when
// the list is malformed.
func (d *DocList) Next() (source, path []byte, sum *[32]byte, key *Key, ok bool, err error) {
	if d.left == 0 {
		if len(d.data) != 0 {
			return nil, nil, nil, nil, false, errors.New("statcache: document list: bytes after the last record")
		}
		return nil, nil, nil, nil, false, nil
	}
	b := d.data
	field := func() []byte {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil
		}
		f := b[k : k+int(n)]
		b = b[k+int(n):]
		return f
	}
	if source = field(); source == nil {
		return nil, nil, nil, nil, false, errors.New("statcache: document list: malformed record")
	}
	if path = field(); path == nil || len(b) < 48 {
		return nil, nil, nil, nil, false, errors.New("statcache: document list: malformed record")
	}
	sum, key = (*[32]byte)(b[:32]), (*Key)(b[32:48])
	d.data = b[48:]
	d.left--
	d.trim.Tick()
	return source, path, sum, key, true, nil
}

// Close releases the file.
func (d *DocList) Close() error {
	if d == nil || d.release == nil {
		return nil
	}
	return d.release()
}

// IndexOf returns the number of the entry of key k, or -1.
func (c *Cache) IndexOf(k Key) int {
	if c == nil {
		return -1
	}
	if m := c.search(k); m < c.Len() && bytes.Equal(c.data[m*recordSize:m*recordSize+16], k[:]) {
		return m
	}
	return -1
}
