package mirror

import (
	"fmt"
	"os"
	"path/filepath"
)

// EntryIter yields index entries in (kind, id) order.
type EntryIter interface {
	Next() (Entry, bool, error)
}

// peek wraps an EntryIter with one entry of look-ahead.
type peek struct {
	it   EntryIter
	cur  Entry
	ok   bool
	err  error
	done bool
}

func newPeek(it EntryIter) *peek {
	p := &peek{it: it}
	if it == nil {
		p.done = true
		return p
	}
	p.advance()
	return p
}

func (p *peek) advance() {
	if p.done {
		p.ok = false
		return
	}
	p.cur, p.ok, p.err = p.it.Next()
	if !p.ok {
		p.done = true
	}
}

// FoldIndex writes to w the index that results from applying a delta to a
// current index: an entry of the delta (added or changed) replaces the
// current entry of the same kind and id; an id in removed ("kind:id", from
// the delta's "removed" tombstones) is dropped. cur or delta may be nil.
func FoldIndex(w *IndexWriter, cur, delta EntryIter, removed map[string]bool) error {
	a, b := newPeek(cur), newPeek(delta)
	for {
		if a.err != nil {
			return a.err
		}
		if b.err != nil {
			return b.err
		}
		if !a.ok && !b.ok {
			return nil
		}
		var e Entry
		switch {
		case !b.ok:
			e = a.cur
			a.advance()
		case !a.ok:
			e = b.cur
			b.advance()
		default:
			c := Compare(a.cur.Kind, a.cur.ID, b.cur.Kind, b.cur.ID)
			switch {
			case c < 0:
				e = a.cur
				a.advance()
			case c > 0:
				e = b.cur
				b.advance()
			default:
				e = b.cur
				a.advance()
				b.advance()
			}
		}
		if removed[e.Key()] {
			continue
		}
		if err := w.Add(e); err != nil {
			return err
		}
	}
}

// MultiIndex reads the index files of a mirror root (a bundle root or a
// generation) in order, so that entries come in global (kind, id) order.
type MultiIndex struct {
	dir   string
	i     int
	cur   *IndexReader
	f     *os.File
	heads []IndexHeader
}

// OpenIndexes reads the indexes of dir (a mirror root); a missing index
// file counts as empty.
func OpenIndexes(dir string) *MultiIndex { return &MultiIndex{dir: dir, i: -1} }

// Headers are the headers of the index files read so far.
func (m *MultiIndex) Headers() []IndexHeader { return m.heads }

// Next returns the next entry of all indexes.
func (m *MultiIndex) Next() (Entry, bool, error) {
	for {
		if m.cur != nil {
			e, ok, err := m.cur.Next()
			if err != nil {
				return e, false, fmt.Errorf("%s: %w", IndexPath(IndexNames[m.i]), err)
			}
			if ok {
				return e, true, nil
			}
			m.f.Close()
			m.cur, m.f = nil, nil
		}
		m.i++
		if m.i >= len(IndexNames) {
			return Entry{}, false, nil
		}
		p := filepath.Join(m.dir, filepath.FromSlash(IndexPath(IndexNames[m.i])))
		f, err := os.Open(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return Entry{}, false, err
		}
		ir, err := OpenIndex(f)
		if err != nil {
			f.Close()
			return Entry{}, false, fmt.Errorf("%s: %w", IndexPath(IndexNames[m.i]), err)
		}
		if ir.Header.Index != IndexNames[m.i] {
			f.Close()
			return Entry{}, false, fmt.Errorf("%s: header names index %q", IndexPath(IndexNames[m.i]), ir.Header.Index)
		}
		m.heads = append(m.heads, ir.Header)
		m.cur, m.f = ir, f
	}
}

// Close releases an unfinished reader.
func (m *MultiIndex) Close() {
	if m.f != nil {
		m.f.Close()
		m.f = nil
	}
}

// ReadHeader reads the header of one index file.
func ReadHeader(path string) (IndexHeader, error) {
	f, err := os.Open(path)
	if err != nil {
		return IndexHeader{}, err
	}
	defer f.Close()
	ir, err := OpenIndex(f)
	if err != nil {
		return IndexHeader{}, err
	}
	return ir.Header, nil
}

// FoldDir writes into out (a folder) the four index files that result from
// applying the delta bundle root delta (its indexes and tombstones) to the
// mirror root cur.
func FoldDir(out, cur, delta string, removed map[string]bool, h IndexHeader) error {
	for _, name := range IndexNames {
		var ci, di EntryIter
		cp := filepath.Join(cur, filepath.FromSlash(IndexPath(name)))
		if f, err := os.Open(cp); err == nil {
			defer f.Close()
			r, err := OpenIndex(f)
			if err != nil {
				return fmt.Errorf("%s: %w", cp, err)
			}
			ci = r
		}
		dp := filepath.Join(delta, filepath.FromSlash(IndexPath(name)))
		if f, err := os.Open(dp); err == nil {
			defer f.Close()
			r, err := OpenIndex(f)
			if err != nil {
				return fmt.Errorf("%s: %w", dp, err)
			}
			di = r
		}
		if err := writeIndexFile(filepath.Join(out, filepath.FromSlash(IndexPath(name))), name, h, func(w *IndexWriter) error {
			return FoldIndex(w, ci, di, removed)
		}); err != nil {
			return err
		}
	}
	return nil
}

func writeIndexFile(path, name string, h IndexHeader, fill func(*IndexWriter) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	h.Index = name
	w, err := NewIndexWriter(f, h)
	if err == nil {
		err = fill(w)
	}
	if err == nil {
		err = w.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
