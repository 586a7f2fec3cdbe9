package evidence

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"

	"github.com/stellaops/stella/internal/record"
	"github.com/stellaops/stella/internal/statcache"
	"github.com/stellaops/stella/internal/xerr"
)

// Source is one evidence source: a directory or an archive of documents.
type Source struct {
	Name string // source name, kept on every document
	Path string // host path of the directory or archive
	// Exclude holds glob patterns on the slash path relative to the source
	// root (path.Match per segment, "**" for any number of segments); a
	// matching file is passed over and a matching folder is not walked.
	Exclude []string
}

// archiveKind is how a source file is read.
type archiveKind int

const (
	notArchive archiveKind = iota
	archiveZip
	archiveTar
	archiveTarGz
	archiveTarZst
)

// supportedArchives lists the archive name endings, for messages.
const supportedArchives = ".zip, .tar, .tar.gz, .tgz, .tar.zst or .tzst"

func archiveKindOf(name string) archiveKind {
	n := strings.ToLower(name)
	switch {
	case strings.HasSuffix(n, ".zip"):
		return archiveZip
	case strings.HasSuffix(n, ".tar"):
		return archiveTar
	case strings.HasSuffix(n, ".tar.gz"), strings.HasSuffix(n, ".tgz"):
		return archiveTarGz
	case strings.HasSuffix(n, ".tar.zst"), strings.HasSuffix(n, ".tzst"):
		return archiveTarZst
	}
	return notArchive
}

// Walk streams every candidate document of src to fn, in lexical order for a
// directory (and a zip archive) and in archive order for a tar archive.
//
// A readable document comes as (doc, nil) with Source, Path, Digest and Raw
// set. A document-level problem (too big, not UTF-8, unreadable, a link, an
// unsafe archive entry name) comes as (doc, *DocError) with Source and Path
// set (and Digest when the bytes were read), so that fn can fail or skip. When
// fn returns an error the walk stops and Walk returns that error unchanged.
// Files that are not candidates (see IsCandidate) and hidden files and folders
// are passed over without a call.
//
// Source-level problems (no such path, not a folder or supported archive, a
// corrupt archive, a bad exclude pattern) are returned as *xerr.Error with
// code xerr.InvalidInput. Cancelling ctx stops the walk with ctx.Err().
func Walk(ctx context.Context, src Source, opts Options, fn func(doc record.Document, err error) error) error {
	if src.Name == "" {
		return xerr.New(xerr.InvalidInput, "evidence source at %q has no name", src.Path).
			WithHint("give every source a name (--source NAME=PATH)")
	}
	if src.Path == "" {
		return xerr.New(xerr.InvalidInput, "evidence source %q has no path", src.Name).
			WithHint("give the source a folder or archive path (--source %s=PATH)", src.Name)
	}
	ex, err := newExcluder(src.Exclude)
	if err != nil {
		return xerr.New(xerr.InvalidInput, "evidence source %q: %v", src.Name, err).
			WithHint("exclude patterns are slash paths relative to the source root; each segment uses path.Match syntax (*, ?, [a-z]) and ** matches any number of folders")
	}
	w := &walker{ctx: ctx, src: src, limit: opts.maxBytes(), ex: ex, fn: fn, readers: opts.Readers, unchanged: opts.Unchanged}
	fi, err := os.Stat(src.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return w.sourceErr("path %q does not exist", src.Path).
			WithHint("check the source path (--source %s=PATH or the profile's sources)", src.Name)
	case err != nil:
		return w.sourceErr("cannot read %q: %v", src.Path, unwrapPathErr(err)).
			WithHint("check that the path exists and is readable by this user")
	case fi.IsDir():
		if root, ok, err := mirrorRootOf(src.Path); err != nil {
			return w.sourceErr("mirror target %q: %v", src.Path, err)
		} else if ok {
			return w.walkMirror(root) // an applied mirror: its original documents (mirror.go)
		}
		return w.walkDir()
	case fi.Mode().IsRegular() && isRawLinesFile(src.Path):
		return w.walkRawFile(src.Path)
	case fi.Mode().IsRegular() && archiveKindOf(fi.Name()) != notArchive:
		return w.walkArchive(archiveKindOf(fi.Name()))
	}
	return w.sourceErr("%q is neither a folder nor a %s archive", src.Path, supportedArchives).
		WithHint("point the source at a folder of documents or at an archive of them")
}

type walker struct {
	ctx       context.Context
	src       Source
	limit     int64
	ex        *excluder
	fn        func(record.Document, error) error
	readers   int
	unchanged func(q *UnchangedBatch)
}

func (w *walker) sourceErr(format string, args ...any) *xerr.Error {
	return xerr.New(xerr.InvalidInput, "evidence source %q: "+format, append([]any{w.src.Name}, args...)...)
}

func (w *walker) corrupt(entries int, err error) *xerr.Error {
	e := w.sourceErr("archive %q is corrupt or truncated after %d entries: %v", w.src.Path, entries, err).
		WithHint("re-create or re-download the archive (check it with tar -t or unzip -t)")
	e.Err = err
	return e
}

// docErr hands a document-level problem to fn.
func (w *walker) docErr(rel, digest, format string, args ...any) error {
	doc := record.Document{Source: w.src.Name, Path: rel, Digest: digest}
	return w.fn(doc, &DocError{Source: w.src.Name, Path: rel, Reason: fmt.Sprintf(format, args...)})
}

// emit checks raw bytes and hands the document to fn.
func (w *walker) emit(rel string, raw []byte) error {
	return w.emitStat(rel, raw, statcache.Stat{}, false)
}

func (w *walker) emitStat(rel string, raw []byte, st statcache.Stat, hasStat bool) error {
	digest := record.Digest(raw)
	if reason := encodingProblem(raw); reason != "" {
		return w.docErr(rel, digest, "%s", reason)
	}
	return w.fn(record.Document{Source: w.src.Name, Path: rel, Digest: digest, Raw: raw, Stat: st, HasStat: hasStat}, nil)
}

func (w *walker) tooBig(rel string, size int64) error {
	if size > w.limit {
		return w.docErr(rel, "", "document is %s, over the %s document size limit; raise ExportCenter.Limits.MaxDocumentBytes or exclude the document", byteSize(size), byteSize(w.limit))
	}
	return w.docErr(rel, "", "document is over the %s document size limit; raise ExportCenter.Limits.MaxDocumentBytes or exclude the document", byteSize(w.limit))
}

// read reads one document of declared size (or -1) from r and emits it.
func (w *walker) read(rel string, r io.Reader, size int64) error {
	return w.readStat(rel, r, size, statcache.Stat{}, false)
}

// readStat is read for a file whose status is known.
func (w *walker) readStat(rel string, r io.Reader, size int64, st statcache.Stat, hasStat bool) error {
	if size > w.limit {
		return w.tooBig(rel, size)
	}
	raw, big, err := readLimited(r, size, w.limit)
	if err != nil {
		return w.docErr(rel, "", "unreadable: %v", unwrapPathErr(err))
	}
	if big {
		return w.tooBig(rel, -1)
	}
	return w.emitStat(rel, raw, st, hasStat)
}

// fileBatch is a run of candidate files of one folder, in lexical order.
type fileBatch struct {
	dir   string   // the folder (OS path)
	names []string // the files' names in it
	rels  []string // their slash paths relative to the source root
}

// batchFiles is the most files handed to a reader at once.
const batchFiles = 128

func (b fileBatch) read(w *walker) error {
	dfd := openDirFD(b.dir)
	defer closeDirFD(dfd)
	var q *UnchangedBatch
	if w.unchanged != nil {
		q = &UnchangedBatch{Source: w.src.Name, Paths: b.rels, Stats: make([]statcache.Stat, len(b.names)),
			Has: make([]bool, len(b.names)), Digests: make([]string, len(b.names))}
		for i, name := range b.names {
			q.Stats[i], q.Has[i] = lstatRegularAt(dfd, name, b.dir+string(filepath.Separator)+name)
		}
		w.unchanged(q)
	}
	for i, name := range b.names {
		if q != nil && q.Has[i] && q.Digests[i] != "" {
			if err := w.fn(record.Document{Source: w.src.Name, Path: b.rels[i], Digest: q.Digests[i], Stat: q.Stats[i], HasStat: true, Unchanged: true}, nil); err != nil {
				return err
			}
			continue
		}
		if err := w.readFile(dfd, name, b.dir+string(filepath.Separator)+name, b.rels[i]); err != nil {
			return err
		}
	}
	return nil
}

// walkDir reads a folder source: with Readers > 1 the files are read by a
// pool of goroutines, a batch of a folder's files at a time, while this
// one lists the folders.
func (w *walker) walkDir() error {
	if w.readers <= 1 {
		return w.listDir(func(b fileBatch) error { return b.read(w) })
	}
	ctx, cancel := context.WithCancelCause(w.ctx)
	defer cancel(nil)
	jobs := make(chan fileBatch, 2*w.readers)
	var wg sync.WaitGroup
	for i := 0; i < w.readers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range jobs {
				if ctx.Err() != nil {
					continue // drain after a failure
				}
				if err := b.read(w); err != nil {
					cancel(err)
				}
			}
		}()
	}
	err := w.listDir(func(b fileBatch) error {
		select {
		case jobs <- b:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	})
	close(jobs)
	wg.Wait()
	if err != nil {
		return err
	}
	if cause := context.Cause(ctx); cause != nil {
		return cause
	}
	return nil
}

// dirent is a folder entry: its name and type bits.
type dirent struct {
	name string
	typ  fs.FileMode
}

// readDirents lists a folder in lexical order.
func readDirents(dir string) ([]dirent, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ents, err := f.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	out := make([]dirent, len(ents))
	for i, e := range ents {
		out[i] = dirent{name: e.Name(), typ: e.Type()}
	}
	slices.SortFunc(out, func(a, b dirent) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

// listDir walks a folder depth-first in lexical order and hands emit its
// candidate documents in batches; other entries are reported or passed
// over here.
func (w *walker) listDir(emit func(fileBatch) error) error {
	root := w.src.Path
	ents, err := readDirents(root)
	if err != nil {
		return w.sourceErr("cannot read folder %q: %v", root, unwrapPathErr(err)).
			WithHint("check that the folder is readable by this user")
	}
	return w.listEntries(filepath.Clean(root), "", ents, emit)
}

func (w *walker) listEntries(dir, rel string, ents []dirent, emit func(fileBatch) error) error {
	var batch, rels []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := emit(fileBatch{dir: dir, names: batch, rels: rels})
		batch, rels = nil, nil
		return err
	}
	for _, e := range ents {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		erel := e.name
		if rel != "" {
			erel = rel + "/" + e.name
		}
		if hidden(e.name) || w.ex.match(erel) {
			continue
		}
		switch t := e.typ; {
		case t.IsDir():
			if err := flush(); err != nil {
				return err
			}
			sub := dir + string(filepath.Separator) + e.name
			subEnts, err := readDirents(sub)
			if err != nil {
				// A folder that cannot be listed, or that vanished.
				if ferr := w.docErr(erel, "", "unreadable: %v", unwrapPathErr(err)); ferr != nil {
					return ferr
				}
				continue
			}
			if err := w.listEntries(sub, erel, subEnts, emit); err != nil {
				return err
			}
		case t&fs.ModeSymlink != 0:
			if err := w.docErr(erel, "", "symbolic link; links are not followed (replace it with the file, or exclude it)"); err != nil {
				return err
			}
		case !t.IsRegular():
			if err := w.docErr(erel, "", "not a regular file (%s)", fileType(t)); err != nil {
				return err
			}
		case IsCandidate(e.name):
			rels = append(rels, erel)
			if batch = append(batch, e.name); len(batch) == batchFiles {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}

// readFile reads the file p (name in the folder dfd, see openDirFD).
func (w *walker) readFile(dfd int, name, p, rel string) error {
	f, err := openRegularAt(dfd, name, p)
	if err != nil {
		var nr notRegular
		if errors.As(err, &nr) { // replaced since the folder was listed
			return w.docErr(rel, "", "not a regular file (%s)", fileType(fs.FileMode(nr)))
		}
		return w.docErr(rel, "", "unreadable: %v", unwrapPathErr(err))
	}
	defer f.Close()
	st, hasStat := f.stat()
	return w.readStat(rel, f, f.size, st, hasStat)
}

// notRegular is the error of openRegular for a file that is not a regular
// file; it holds the file's type bits.
type notRegular fs.FileMode

func (n notRegular) Error() string { return "not a regular file (" + fileType(fs.FileMode(n)) + ")" }

func (w *walker) walkArchive(kind archiveKind) error {
	if kind == archiveZip {
		return w.walkZip()
	}
	f, err := os.Open(w.src.Path)
	if err != nil {
		return w.sourceErr("cannot open archive %q: %v", w.src.Path, unwrapPathErr(err)).
			WithHint("check that the archive is readable by this user")
	}
	defer f.Close()
	var r io.Reader = bufio.NewReaderSize(f, 1<<16)
	switch kind {
	case archiveTarGz:
		gz, err := gzip.NewReader(r)
		if err != nil {
			return w.corrupt(0, fmt.Errorf("gzip: %w", err))
		}
		defer gz.Close()
		r = gz
	case archiveTarZst:
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(1<<27))
		if err != nil {
			return w.corrupt(0, fmt.Errorf("zstd: %w", err))
		}
		defer zr.Close()
		r = zr
	}
	return w.walkTar(tar.NewReader(r))
}

func (w *walker) walkTar(tr *tar.Reader) error {
	for n := 0; ; n++ {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			if n == 0 {
				return w.sourceErr("archive %q is empty or not a tar archive", w.src.Path).
					WithHint("check the archive (tar -t) and its name ending (%s)", supportedArchives)
			}
			return nil
		}
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
			return w.corrupt(n, err)
		}
		switch h.Typeflag {
		case tar.TypeXGlobalHeader:
			continue
		case tar.TypeDir:
			if _, ok := entryPath(h.Name); ok {
				continue
			}
		}
		rel, ok := entryPath(h.Name)
		if !ok {
			if err := w.unsafeEntry(h.Name); err != nil {
				return err
			}
			continue
		}
		if rel == "" || w.skipEntry(rel) {
			continue
		}
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeGNUSparse:
		case tar.TypeSymlink, tar.TypeLink:
			if err := w.docErr(rel, "", "archive entry is a link to %q; links are not followed", h.Linkname); err != nil {
				return err
			}
			continue
		default:
			if err := w.docErr(rel, "", "archive entry is not a regular file (tar type %q)", string(h.Typeflag)); err != nil {
				return err
			}
			continue
		}
		if !IsCandidate(rel) {
			continue
		}
		if h.Size > w.limit {
			if err := w.tooBig(rel, h.Size); err != nil {
				return err
			}
			continue
		}
		raw, big, err := readLimited(tr, h.Size, w.limit)
		if err != nil {
			return w.corrupt(n, fmt.Errorf("entry %q: %w", h.Name, err))
		}
		if big { // cannot happen for a well-formed tar; keep the guard
			if err := w.tooBig(rel, -1); err != nil {
				return err
			}
			continue
		}
		if err := w.emit(rel, raw); err != nil {
			return err
		}
	}
}

func (w *walker) walkZip() error {
	zr, err := zip.OpenReader(w.src.Path)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return w.corrupt(0, err)
	}
	defer zr.Close()
	// The central directory is in memory anyway; visit it in the same
	// order as a folder walk so that both give the same sequence.
	type entry struct {
		f   *zip.File
		rel string
		ok  bool
	}
	files := make([]entry, len(zr.File))
	for i, f := range zr.File {
		files[i].f = f
		files[i].rel, files[i].ok = entryPath(f.Name)
		if !files[i].ok {
			files[i].rel = f.Name
		}
	}
	sort.SliceStable(files, func(i, j int) bool { return walkLess(files[i].rel, files[j].rel) })
	prev := ""
	for _, e := range files {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		f, rel, ok := e.f, e.rel, e.ok
		if !ok {
			if err := w.unsafeEntry(f.Name); err != nil {
				return err
			}
			continue
		}
		if rel == "" || w.skipEntry(rel) {
			continue
		}
		mode := f.Mode()
		if mode.IsDir() {
			continue
		}
		if rel == prev {
			if err := w.docErr(rel, "", "archive has two entries with this name"); err != nil {
				return err
			}
			continue
		}
		prev = rel
		switch {
		case mode&fs.ModeSymlink != 0:
			if err := w.docErr(rel, "", "archive entry is a symbolic link; links are not followed"); err != nil {
				return err
			}
			continue
		case !mode.IsRegular():
			if err := w.docErr(rel, "", "archive entry is not a regular file (%s)", fileType(mode.Type())); err != nil {
				return err
			}
			continue
		}
		if !IsCandidate(rel) {
			continue
		}
		if err := w.readZipEntry(f, rel); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) readZipEntry(f *zip.File, rel string) error {
	if f.UncompressedSize64 > uint64(w.limit) {
		return w.tooBig(rel, int64(min(f.UncompressedSize64, 1<<62)))
	}
	rc, err := f.Open()
	if err != nil {
		return w.docErr(rel, "", "unreadable archive entry: %v", err)
	}
	defer rc.Close()
	return w.read(rel, rc, int64(f.UncompressedSize64))
}

// skipEntry reports whether an archive entry is passed over: it is hidden,
// inside a hidden folder, or excluded.
func (w *walker) skipEntry(rel string) bool {
	for _, seg := range strings.Split(rel, "/") {
		if hidden(seg) {
			return true
		}
	}
	return w.ex.matchTree(rel)
}

func (w *walker) unsafeEntry(name string) error {
	return w.docErr(name, "", "unsafe archive entry name (absolute, with a .. segment, a backslash or a NUL); it is not read")
}

// entryPath cleans an archive entry name into a slash path relative to the
// source root. ok is false for names that could escape the root: absolute
// paths, ".." segments, backslashes, NUL bytes. A bare root ("", ".", "./")
// gives "" and ok.
func entryPath(name string) (rel string, ok bool) {
	if strings.ContainsAny(name, "\\\x00") || strings.HasPrefix(name, "/") {
		return "", false
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == ".." {
			return "", false
		}
	}
	rel = path.Clean(name)
	if rel == "." {
		return "", true
	}
	return rel, true
}

// walkLess orders slash paths the way filepath.WalkDir visits them: segment
// by segment, each segment in byte order.
func walkLess(a, b string) bool {
	for {
		as, arest, amore := strings.Cut(a, "/")
		bs, brest, bmore := strings.Cut(b, "/")
		if as != bs {
			return as < bs
		}
		if !amore || !bmore {
			return !amore && bmore
		}
		a, b = arest, brest
	}
}

// readLimited reads r to its end, at most limit bytes. big reports that r
// holds more than limit bytes (then data is incomplete). size is the expected
// size, or -1 when unknown.
// Document buffers come from size-classed pools. A consumer that is done
// with a document's Raw (after Parse, and after copying whatever it keeps:
// parsed records never alias Raw except findings lines) may hand it back
// with Release; a document that is not released is left to the collector.
const (
	rawMinClass = 4 << 10
	rawClasses  = 9 // 4 KiB .. 1 MiB
)

var rawPools [rawClasses]sync.Pool

func rawClass(n int) int {
	c, size := 0, rawMinClass
	for size < n {
		c++
		size <<= 1
	}
	return c
}

func getRaw(n int) []byte {
	c := rawClass(n)
	if c >= rawClasses {
		return make([]byte, 0, n)
	}
	if b, ok := rawPools[c].Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, rawMinClass<<c)
}

// Release hands a document's Raw back for reuse; the caller must not touch
// it (or anything aliasing it) afterwards.
func Release(raw []byte) {
	c := rawClass(cap(raw))
	if c < rawClasses && cap(raw) == rawMinClass<<c {
		b := raw[:0]
		rawPools[c].Put(&b)
	}
}

func readLimited(r io.Reader, size, limit int64) (data []byte, big bool, err error) {
	if size < 0 || size > limit {
		size = 0
	}
	// A regular file's size is its status's: once a read (asking for one
	// byte more) stops exactly there, the file ended there — a second read
	// to see EOF would cost a system call per document. A file that grew
	// since its status was taken returns that extra byte and is read on.
	_, exact := r.(*regularFile)
	exact = exact && size > 0
	lr := io.LimitReader(r, limit+1)
	b := getRaw(int(size) + 1) // +1: reach EOF without growing
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := lr.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF || (exact && err == nil && n > 0 && int64(len(b)) == size) {
			break
		}
		if err != nil {
			return nil, false, err
		}
	}
	if int64(len(b)) > limit {
		return nil, true, nil
	}
	return b, false, nil
}

// encodingProblem returns why raw is not UTF-8 text, or "".
func encodingProblem(raw []byte) string {
	if len(raw) >= 2 && (raw[0] == 0xFE && raw[1] == 0xFF || raw[0] == 0xFF && raw[1] == 0xFE) {
		return "UTF-16 text; evidence documents must be UTF-8"
	}
	if utf8.Valid(raw) {
		return ""
	}
	for i := 0; i < len(raw); {
		r, n := utf8.DecodeRune(raw[i:])
		if r == utf8.RuneError && n <= 1 {
			return fmt.Sprintf("not valid UTF-8 (first bad byte 0x%02x at offset %d)", raw[i], i)
		}
		i += n
	}
	return "not valid UTF-8"
}

// unwrapPathErr drops the host path from os errors: messages name the
// document by its source-relative path already.
func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func fileType(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	case m&fs.ModeIrregular != 0:
		return "irregular file"
	}
	return "special file"
}

// byteSize formats n bytes for messages.
func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
