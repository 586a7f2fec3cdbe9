package mirror

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/stellaops/stella/internal/bundle"
	"github.com/stellaops/stella/internal/xerr"
)

// StreamOf maps a data file path to its record stream and codec:
// "data/raw/advisories/osv.jsonl.zst" -> ("raw/advisories/osv", zstd).
// Whole-document files (SBOMs, the policy snapshot) give ok=false.
func StreamOf(p string) (stream string, codec bundle.Codec, ok bool) {
	s, found := strings.CutPrefix(p, "data/")
	if !found {
		return "", "", false
	}
	for _, c := range []bundle.Codec{bundle.Zstd, bundle.Gzip, bundle.None} {
		if base, ok := strings.CutSuffix(s, ".jsonl"+c.Ext()); ok {
			return base, c, true
		}
	}
	return "", "", false
}

// lineKey is what a merge needs to know of a data line: its position
// (id, source, path — the order the engine writes) and the record it
// belongs to in delta lists ("kind:id").
type lineKey struct {
	id, source, path string
	record           string
	// pos is set when source and path are read: a target line's are read
	// only when its id is the delta line's (a merge of a 1% delta compares
	// ids for nearly every line, and the three look-ups were a fifth of
	// an apply's CPU).
	pos bool
}

func less(a, b lineKey) bool {
	if a.id != b.id {
		return a.id < b.id
	}
	if a.source != b.source {
		return a.source < b.source
	}
	return a.path < b.path
}

// keyFunc reads a line's key, per stream; with idOnly, source and path
// are left for linePos.
func keyFunc(stream string, idOnly bool) (func([]byte) (lineKey, error), error) {
	top := func(kind, recField string) func([]byte) (lineKey, error) {
		return func(line []byte) (lineKey, error) {
			var k lineKey
			var err error
			// id, path and source sort after the lines' big fields (a raw
			// line's document, a normalised record's affected ranges).
			if k.id, err = TopStringNearEnd(line, "id"); err != nil {
				return k, err
			}
			if !idOnly {
				if err := linePos(line, &k); err != nil {
					return k, err
				}
			}
			rec := k.id
			if recField != "id" {
				if rec, err = TopString(line, recField); err != nil {
					return k, err
				}
			}
			k.record = kind + ":" + rec
			return k, nil
		}
	}
	switch {
	case strings.HasPrefix(stream, "raw/advisories/"), strings.HasPrefix(stream, "normalized/advisories/"):
		return top(KindAdvisory, "id"), nil
	case strings.HasPrefix(stream, "raw/vex/"):
		return top(KindVEX, "id"), nil
	case strings.HasPrefix(stream, "normalized/vex/"):
		return top(KindVEX, "document"), nil
	case stream == "policy/evaluations":
		return func(line []byte) (lineKey, error) {
			var f struct {
				FindingID string `json:"findingId"`
			}
			if err := json.Unmarshal(line, &f); err != nil || f.FindingID == "" {
				return lineKey{}, fmt.Errorf("finding line without a findingId")
			}
			return lineKey{id: f.FindingID, record: KindFinding + ":" + f.FindingID, pos: true}, nil
		}, nil
	}
	return nil, fmt.Errorf("unknown data stream %q", stream)
}

// linePos reads the source and path of a line into k.
func linePos(line []byte, k *lineKey) error {
	var err error
	if k.source, err = TopStringNearEnd(line, "source"); err != nil {
		return err
	}
	if k.path, err = TopStringNearEnd(line, "path"); err != nil {
		return err
	}
	k.pos = true
	return nil
}

// lineReader reads the lines of a (compressed) JSONL file.
type lineReader struct {
	f    *os.File
	dec  io.ReadCloser
	br   *bufio.Reader
	key  func([]byte) (lineKey, error)
	cur  []byte // valid until the next call of next
	long []byte
	k    lineKey
	ok   bool
	err  error
	n    int64
}

func openLines(p string, codec bundle.Codec, key func([]byte) (lineKey, error)) (*lineReader, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	dec, err := bundle.Decompressor(bufio.NewReaderSize(f, 1<<16), codec)
	if err != nil {
		f.Close()
		return nil, err
	}
	r := &lineReader{f: f, dec: dec, br: bufio.NewReaderSize(dec, 1<<20), key: key}
	r.next()
	return r, nil
}

func (r *lineReader) next() {
	line, err := r.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull { // a long line: gather it
		r.long = append(r.long[:0], line...)
		for err == bufio.ErrBufferFull {
			line, err = r.br.ReadSlice('\n')
			r.long = append(r.long, line...)
		}
		line = r.long
	}
	if err == io.EOF && len(line) == 0 {
		r.ok = false
		return
	}
	if err != nil && err != io.EOF {
		r.ok, r.err = false, err
		return
	}
	r.n++
	r.cur = line[:len(line)-boolInt(line[len(line)-1] == '\n')]
	r.k, r.err = r.key(r.cur)
	if r.err != nil {
		r.err = fmt.Errorf("line %d: %w", r.n, r.err)
		r.ok = false
		return
	}
	r.ok = true
}

// positioned reads the current line's source and path if they are not yet.
func (r *lineReader) positioned() error {
	if r.k.pos {
		return nil
	}
	if err := linePos(r.cur, &r.k); err != nil {
		return fmt.Errorf("line %d: %w", r.n, err)
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (r *lineReader) close() {
	if r == nil {
		return
	}
	r.dec.Close()
	r.f.Close()
}

// lineWriter writes a JSONL file the way the bundle writer does (same
// codec, level and buffering), so a merged file has the bytes a full
// export of the same records has.
type lineWriter struct {
	f    *os.File
	comp io.WriteCloser
	bw   *bufio.Writer
	n    int64
}

func createLines(p string, c Compression) (*lineWriter, error) {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, err
	}
	f, err := createTargetFile(p)
	if err != nil {
		return nil, err
	}
	comp, err := bundle.Compressor(f, bundle.Codec(c.Codec), c.Level)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &lineWriter{f: f, comp: comp, bw: bufio.NewWriterSize(comp, 256<<10)}, nil
}

func (w *lineWriter) write(line []byte) error {
	w.n++
	w.bw.Write(line)
	return w.bw.WriteByte('\n')
}

func (w *lineWriter) close() error {
	err := w.bw.Flush()
	if err == nil {
		err = w.comp.Close()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// mergeDelta builds the generation out from the generation cur and the
// extracted, verified and decrypted delta b: every record the delta names
// (added, changed, removed) is taken out of cur, the delta's records are
// put in, streams keep their order; files the delta does not touch are
// hard-linked (or copied); the indexes are folded the same way.
func mergeDelta(ctx context.Context, out, cur string, b *staged) error {
	d := b.m.Delta
	change := map[string]bool{}
	carried := map[string]bool{} // added or changed: the delta carries these
	for _, l := range [][]string{d.Added, d.Changed} {
		for _, k := range l {
			change[k], carried[k] = true, true
		}
	}
	removed := map[string]bool{}
	for _, k := range d.Removed {
		change[k], removed[k] = true, true
	}
	h, err := ReadHeader(filepath.Join(cur, filepath.FromSlash(IndexPath("advisories"))))
	if err != nil {
		return xerr.New(xerr.Internal, "target generation: %v", err)
	}
	// Which files of cur hold records the delta replaces or removes?
	touched := map[string]bool{}
	it := OpenIndexes(cur)
	for {
		e, ok, err := it.Next()
		if err != nil {
			it.Close()
			return xerr.New(xerr.Internal, "target generation: %v", err)
		}
		if !ok {
			break
		}
		if !change[e.Key()] {
			continue
		}
		touched[e.File] = true
		if strings.HasPrefix(e.File, "data/raw/advisories/") || strings.HasPrefix(e.File, "data/raw/vex/") {
			touched["data/normalized/"+strings.TrimPrefix(e.File, "data/raw/")] = true
		}
	}
	it.Close()
	// The delta's data files, by stream.
	deltaStreams := map[string]string{} // stream -> path in b.dir
	var deltaDocs []string              // whole-document files
	for _, c := range b.m.Contents {
		if !strings.HasPrefix(c.Path, "data/") {
			continue
		}
		if s, _, ok := StreamOf(c.Path); ok {
			deltaStreams[s] = c.Path
		} else {
			deltaDocs = append(deltaDocs, c.Path)
		}
	}
	// Walk cur's data files.
	curStreams := map[string]string{}
	err = filepath.WalkDir(filepath.Join(cur, "data"), func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if de.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(cur, p)
		rel = filepath.ToSlash(rel)
		if s, _, ok := StreamOf(rel); ok {
			if _, inDelta := deltaStreams[s]; inDelta || touched[rel] {
				curStreams[s] = rel
				return nil
			}
		} else if touched[rel] {
			return nil // a replaced or removed SBOM or policy snapshot
		}
		return linkOrCopy(p, filepath.Join(out, filepath.FromSlash(rel)))
	})
	if err != nil && !os.IsNotExist(err) {
		return xerr.Wrap(xerr.Internal, err, "carry data files")
	}
	streams := map[string]bool{}
	for s := range curStreams {
		streams[s] = true
	}
	for s := range deltaStreams {
		streams[s] = true
	}
	names := make([]string, 0, len(streams))
	for s := range streams {
		names = append(names, s)
	}
	sort.Strings(names)
	// Streams are independent files: merge two at a time.
	jobs := make(chan string)
	errs := make(chan error, len(names))
	var wg sync.WaitGroup
	for w := 0; w < min(2, len(names)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range jobs {
				var cp, dp string
				if r, ok := curStreams[s]; ok {
					cp = filepath.Join(cur, filepath.FromSlash(r))
				}
				if r, ok := deltaStreams[s]; ok {
					dp = filepath.Join(b.dir, filepath.FromSlash(r))
				}
				dst := filepath.Join(out, "data", filepath.FromSlash(s)+".jsonl"+bundle.Codec(h.Compression.Codec).Ext())
				if err := mergeStream(ctx, s, dst, h.Compression, cp, dp, change, carried); err != nil {
					if ctx.Err() != nil { // interrupted
						errs <- context.Cause(ctx)
					} else if we := (targetWriteError{}); errors.As(err, &we) { // the target's disk, not the delta
						errs <- xerr.Wrap(xerr.Internal, we.err, "%s: stream %s: cannot write the merged stream", b.name(), s).
							WithHint(targetWriteHint)
					} else {
						errs <- xerr.New(xerr.Verify, "%s: stream %s: %v", b.name(), s, err)
					}
				}
			}
		}()
	}
	for _, s := range names {
		if ctx.Err() != nil || len(errs) > 0 {
			break
		}
		failpoint("merge")
		jobs <- s
	}
	close(jobs)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, rel := range deltaDocs {
		dst := filepath.Join(out, filepath.FromSlash(rel))
		if _, err := os.Stat(dst); err == nil {
			return xerr.New(xerr.Verify, "%s: %s replaces a file of the target that the delta does not name as changed", b.name(), rel)
		}
		if err := linkOrCopy(filepath.Join(b.dir, filepath.FromSlash(rel)), dst); err != nil {
			return xerr.Wrap(xerr.Internal, err, "%s", rel)
		}
	}
	if err := FoldDir(out, cur, b.dir, removed, h); err != nil {
		return xerr.New(xerr.Verify, "%s: indexes: %v", b.name(), err)
	}
	if err := linkOrCopy(filepath.Join(b.dir, "README.md"), filepath.Join(out, "README.md")); err != nil {
		return xerr.Wrap(xerr.Internal, err, "README.md")
	}
	return nil
}

// mergeStream writes dst from the current file cp (lines of records not in
// change) and the delta's file dp (every line; each must belong to a
// record the delta carries), in order. An empty result writes no file.
func mergeStream(ctx context.Context, stream, dst string, comp Compression, cp, dp string, change, carried map[string]bool) error {
	// The target's lines are placed by id, and by source and path only
	// when the id ties; the delta's lines (few) are read whole.
	curKey, err := keyFunc(stream, true)
	if err != nil {
		return err
	}
	key, err := keyFunc(stream, false)
	if err != nil {
		return err
	}
	var a, b *lineReader
	if cp != "" {
		if a, err = openLines(cp, codecOfPath(cp, bundle.None), curKey); err != nil {
			return err
		}
		defer a.close()
	}
	if dp != "" {
		if b, err = openLines(dp, codecOfPath(dp, bundle.None), key); err != nil {
			return err
		}
		defer b.close()
	}
	skipDropped := func() error {
		for a != nil && a.ok && change[a.k.record] {
			a.next()
		}
		if a != nil && a.err != nil {
			return fmt.Errorf("target file: %w", a.err)
		}
		return nil
	}
	var w *lineWriter
	emit := func(line []byte) error {
		if w == nil {
			if w, err = createLines(dst, comp); err != nil {
				return targetWriteError{err}
			}
		}
		if err := w.write(line); err != nil {
			return targetWriteError{err}
		}
		return nil
	}
	for n := 0; ; n++ {
		if n&1023 == 0 && ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if err := skipDropped(); err != nil {
			return err
		}
		if b != nil && b.err != nil {
			return fmt.Errorf("delta file: %w", b.err)
		}
		aok := a != nil && a.ok
		bok := b != nil && b.ok
		if !aok && !bok {
			break
		}
		if bok && !carried[b.k.record] {
			return fmt.Errorf("delta line of %s, which delta.added/changed do not list", b.k.record)
		}
		aFirst := !bok
		if aok && bok {
			if a.k.id != b.k.id {
				aFirst = a.k.id < b.k.id
			} else {
				if err := a.positioned(); err != nil {
					return fmt.Errorf("target file: %w", err)
				}
				aFirst = less(a.k, b.k)
			}
		}
		if aok && aFirst {
			if err := emit(a.cur); err != nil {
				return err
			}
			a.next()
		} else {
			if err := emit(b.cur); err != nil {
				return err
			}
			b.next()
		}
	}
	if w != nil {
		if err := w.close(); err != nil {
			return targetWriteError{err}
		}
	}
	return nil
}

func codecOfPath(p string, def bundle.Codec) bundle.Codec {
	switch {
	case strings.HasSuffix(p, ".jsonl.zst"):
		return bundle.Zstd
	case strings.HasSuffix(p, ".jsonl.gz"):
		return bundle.Gzip
	case strings.HasSuffix(p, ".jsonl"):
		return bundle.None
	}
	return def
}
