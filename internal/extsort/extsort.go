// Package extsort sorts key/value pairs that may not fit in memory: pairs are
// buffered up to a memory budget, sorted, spilled to temporary run files, and
// merged back in key order. Memory stays bounded by the budget whatever the
// number of pairs.
package extsort

import (
	"bufio"
	"bytes"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
)

// Sorter collects pairs; Add is safe for concurrent use.
type Sorter struct {
	dir    string
	budget int

	mu      sync.Mutex
	buf     []pair
	arena   []byte // backing store of the buffered keys and values
	size    int
	runs    []string
	pairs   int64
	spilled int64
	done    bool
}

type pair struct{ k, v []byte }

// New makes a sorter that spills to dir when its buffer passes budget bytes
// (0 = 64 MiB).
func New(dir string, budget int) *Sorter {
	if budget <= 0 {
		budget = 64 << 20
	}
	return &Sorter{dir: dir, budget: budget}
}

// Add adds a pair. key and val are copied.
func (s *Sorter) Add(key, val []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return errors.New("extsort: Add after Merge")
	}
	n := len(key) + len(val)
	if len(s.arena)+n > cap(s.arena) {
		c := 1 << 20
		if n > c {
			c = n
		}
		s.arena = make([]byte, 0, c)
	}
	off := len(s.arena)
	s.arena = append(s.arena, key...)
	s.arena = append(s.arena, val...)
	k := s.arena[off : off+len(key) : off+len(key)]
	v := s.arena[off+len(key) : off+n : off+n]
	s.buf = append(s.buf, pair{k, v})
	s.size += n + 48
	s.pairs++
	if s.size >= s.budget {
		return s.spill()
	}
	return nil
}

// Pairs is the number of pairs added.
func (s *Sorter) Pairs() int64 { return s.pairs }

func (s *Sorter) sortBuf() {
	slices.SortStableFunc(s.buf, func(a, b pair) int { return bytes.Compare(a.k, b.k) })
}

func (s *Sorter) spill() error {
	s.sortBuf()
	f, err := os.CreateTemp(s.dir, "run-*.bin")
	if err != nil {
		return fmt.Errorf("extsort: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var hdr [2 * binary.MaxVarintLen64]byte
	for _, p := range s.buf {
		n := binary.PutUvarint(hdr[:], uint64(len(p.k)))
		n += binary.PutUvarint(hdr[n:], uint64(len(p.v)))
		w.Write(hdr[:n])
		w.Write(p.k)
		if _, err := w.Write(p.v); err != nil {
			f.Close()
			return fmt.Errorf("extsort: spill: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("extsort: spill: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	s.runs = append(s.runs, f.Name())
	s.spilled += int64(len(s.buf))
	clear(s.buf) // drop the references to the old arena chunks
	s.buf = s.buf[:0]
	s.arena = nil
	s.size = 0
	return nil
}

// Merge calls fn for every pair in key order (pairs with equal keys in the
// order they were added when they stayed in one run). The slices passed to
// fn are valid only during the call. Merge removes the run files.
func (s *Sorter) Merge(fn func(key, val []byte) error) error {
	s.mu.Lock()
	s.done = true
	s.mu.Unlock()
	defer s.Close()
	if len(s.runs) == 0 {
		s.sortBuf()
		for _, p := range s.buf {
			if err := fn(p.k, p.v); err != nil {
				return err
			}
		}
		return nil
	}
	if len(s.buf) > 0 {
		if err := s.spill(); err != nil {
			return err
		}
	}
	h := &mergeHeap{}
	for i, name := range s.runs {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		rr := &runReader{f: f, r: bufio.NewReaderSize(f, 256<<10), idx: i}
		ok, err := rr.next()
		if err != nil {
			f.Close()
			return err
		}
		if ok {
			*h = append(*h, rr)
		} else {
			f.Close()
		}
	}
	heap.Init(h)
	defer func() {
		for _, rr := range *h {
			rr.f.Close()
		}
	}()
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
			rr.f.Close()
			heap.Pop(h)
		}
	}
	return nil
}

// Close removes the run files.
func (s *Sorter) Close() error {
	for _, r := range s.runs {
		os.Remove(r)
	}
	s.runs = nil
	s.buf = nil
	s.arena = nil
	return nil
}

type runReader struct {
	f    *os.File
	r    *bufio.Reader
	k, v []byte
	idx  int
}

func (rr *runReader) next() (bool, error) {
	kl, err := binary.ReadUvarint(rr.r)
	if err == io.EOF {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("extsort: run %s: %w", rr.f.Name(), err)
	}
	vl, err := binary.ReadUvarint(rr.r)
	if err != nil {
		return false, fmt.Errorf("extsort: run %s: %w", rr.f.Name(), err)
	}
	need := int(kl + vl)
	if cap(rr.k) < need {
		rr.k = make([]byte, need)
	}
	b := rr.k[:need]
	if _, err := io.ReadFull(rr.r, b); err != nil {
		return false, fmt.Errorf("extsort: run %s: %w", rr.f.Name(), err)
	}
	rr.k = b[:kl:kl]
	rr.v = b[kl:]
	// keep the full buffer for reuse
	rr.k = b[:kl]
	return true, nil
}

type mergeHeap []*runReader

func (h mergeHeap) Len() int { return len(h) }
func (h mergeHeap) Less(i, j int) bool {
	if c := bytes.Compare(h[i].k, h[j].k); c != 0 {
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
