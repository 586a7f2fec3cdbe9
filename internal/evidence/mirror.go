package evidence

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/stellaops/stella/internal/bundle"
	"github.com/stellaops/stella/internal/mirror"
	"github.com/stellaops/stella/internal/record"
)

// An applied mirror is an evidence source (SPEC §6). When a source folder
// is a mirror target (it has mirror-target.json), a mirror root (the
// current generation of a target, or an extracted, unencrypted mirror
// bundle: indexes/ and data/raw/), or a folder holding one "mirror/" root,
// Walk yields the original documents the mirror was made from, each with
// its original source name, path and digest — not the files of the
// folder. So a bundle made from an applied mirror holds the same records
// (and the same source digests) as one made on the connected side:
//
//   - advisories and VEX documents come from the raw lines of
//     data/raw/{advisories,vex}/*.jsonl[.zst|.gz]: each line carries the
//     document's bytes, source, path and digest; the digest is checked;
//   - SBOMs and the policy snapshot are whole files under data/, named by
//     the indexes (indexes/sbom.index.json, indexes/findings.index.json),
//     which give their source, path and digest;
//   - a findings document is rebuilt from data/policy/evaluations.jsonl.*:
//     its lines, in their original order (the findings index records each
//     line's document and position), each ended by "\n". The lines are the
//     original bytes; a document that used CRLF line ends or trailing
//     blank lines comes back with LF ends and none, so its digest differs
//     from the original's (its records do not).
//
// A single raw-lines file (data/raw/advisories/<source>.jsonl.zst) given as
// a source yields its documents the same way.

var mirrorSourceName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// mirrorRootOf returns the mirror root a source folder stands for.
func mirrorRootOf(dir string) (string, bool, error) {
	if mirror.IsTarget(dir) {
		root, err := mirror.CurrentRoot(dir)
		return root, err == nil, err
	}
	if isMirrorRoot(dir) {
		return dir, true, nil
	}
	if sub := filepath.Join(dir, "mirror"); isMirrorRoot(sub) {
		if ents, err := os.ReadDir(dir); err == nil && len(ents) == 1 {
			return sub, true, nil
		}
	}
	return "", false, nil
}

func isMirrorRoot(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(mirror.IndexPath("advisories")))); err != nil {
		return false
	}
	st, err := os.Stat(filepath.Join(dir, "data"))
	return err == nil && st.IsDir()
}

// isRawLinesFile reports whether a file name is a raw-lines data file.
func isRawLinesFile(p string) bool {
	s := filepath.ToSlash(p)
	return strings.Contains(s, "data/raw/") && (strings.HasSuffix(s, ".jsonl.zst") || strings.HasSuffix(s, ".jsonl.gz"))
}

// rawLine is one line of data/raw/{advisories,vex} (see docs/formats.md).
type rawLine struct {
	ContentType string `json:"contentType"`
	Digest      string `json:"digest"`
	Document    string `json:"document"`
	Format      string `json:"format"`
	ID          string `json:"id"`
	Kind        string `json:"kind"`
	Path        string `json:"path"`
	Source      string `json:"source"`
}

func (w *walker) walkMirror(root string) error {
	if raw, err := os.ReadFile(filepath.Join(root, "export.json")); err == nil {
		if m, err := bundle.ParseManifest(raw); err == nil && m.Encryption != nil {
			return w.sourceErr("%q is an encrypted mirror bundle (%s); its data cannot be read as evidence", w.src.Path, m.Encryption.Mode).
				WithHint("apply it with `stella export mirror apply --identity <key> --target <dir>` and use the target as the source")
		}
	}
	var files []string
	for _, kind := range []string{"advisories", "vex"} {
		dir := filepath.Join(root, "data", "raw", kind)
		ents, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return w.sourceErr("mirror %q: %v", root, unwrapPathErr(err))
		}
		for _, e := range ents {
			if e.Type().IsRegular() && isRawLinesFile(path.Join("data/raw", kind, e.Name())) {
				files = append(files, filepath.Join(dir, e.Name()))
			}
		}
	}
	sort.Strings(files)
	for _, f := range files {
		if err := w.walkRawFile(f); err != nil {
			return err
		}
	}
	return w.walkMirrorIndexed(root)
}

// walkRawFile yields the documents of one raw-lines file.
func (w *walker) walkRawFile(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return w.sourceErr("cannot open %q: %v", p, unwrapPathErr(err))
	}
	defer f.Close()
	codec := bundle.CodecOf(p)
	dec, err := bundle.Decompressor(bufio.NewReaderSize(f, 1<<16), codec)
	if err != nil {
		return w.corrupt(0, err)
	}
	defer dec.Close()
	br := bufio.NewReaderSize(dec, 1<<20)
	name := filepath.Base(p)
	for n := 1; ; n++ {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		line, err := br.ReadBytes('\n')
		if err == io.EOF && len(line) == 0 {
			return nil
		}
		if err != nil && err != io.EOF {
			return w.sourceErr("mirror file %s is damaged after line %d: %v", name, n-1, err).
				WithHint("verify the mirror (`stella export mirror verify`) or apply it again")
		}
		var rl rawLine
		var raw []byte
		ok := false
		if fastDecode {
			raw, ok = fastRawLine(line, &rl)
		}
		if !ok {
			rl = rawLine{}
			if jerr := json.Unmarshal(line, &rl); jerr != nil {
				return w.sourceErr("mirror file %s line %d is not a raw record line: %v", name, n, jerr)
			}
			raw = append(getRaw(len(rl.Document)), rl.Document...)
		}
		rel := fmt.Sprintf("%s#%d", name, n)
		if reason := mirrorOrigin(rl.Source, rl.Path); reason != "" {
			if ferr := w.docErr(rel, "", "mirror line names %s", reason); ferr != nil {
				return ferr
			}
			continue
		}
		if int64(len(raw)) > w.limit {
			doc := record.Document{Source: rl.Source, Path: rl.Path, Digest: rl.Digest}
			if ferr := w.fn(doc, &DocError{Source: rl.Source, Path: rl.Path, Reason: fmt.Sprintf("document is %s, over the %s document size limit; raise ExportCenter.Limits.MaxDocumentBytes", byteSize(int64(len(raw))), byteSize(w.limit))}); ferr != nil {
				return ferr
			}
			continue
		}
		if err := w.emitOrigin(rl.Source, rl.Path, rl.Digest, raw); err != nil {
			return err
		}
	}
}

// mirrorOrigin checks a source name and path read from a mirror.
func mirrorOrigin(source, p string) string {
	if !mirrorSourceName.MatchString(source) {
		return fmt.Sprintf("an invalid source name %q", source)
	}
	if rel, ok := entryPath(p); !ok || rel != p || p == "" {
		return fmt.Sprintf("an unsafe document path %q", p)
	}
	return ""
}

// emitOrigin hands fn a document with its original source and path,
// checking the digest the mirror recorded.
func (w *walker) emitOrigin(source, p, want string, raw []byte) error {
	digest := record.Digest(raw)
	doc := record.Document{Source: source, Path: p, Digest: digest, Raw: raw}
	if want != digest {
		return w.fn(record.Document{Source: source, Path: p, Digest: digest},
			&DocError{Source: source, Path: p, Reason: fmt.Sprintf("the mirror records digest %s but the document has %s (damaged mirror)", want, digest)})
	}
	if reason := encodingProblem(raw); reason != "" {
		return w.fn(record.Document{Source: source, Path: p, Digest: digest}, &DocError{Source: source, Path: p, Reason: reason})
	}
	return w.fn(doc, nil)
}

type findingLine struct {
	line int64
	raw  []byte
}

// walkMirrorIndexed yields SBOMs, policy snapshots and rebuilt findings documents.
func (w *walker) walkMirrorIndexed(root string) error {
	it := mirror.OpenIndexes(root)
	defer it.Close()
	type docKey struct{ source, path string }
	findings := map[docKey][]findingLine{}
	var evals *bufio.Reader
	var evalsFile string
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	for {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		e, ok, err := it.Next()
		if err != nil {
			return w.sourceErr("mirror %q: %v", root, err)
		}
		if !ok {
			break
		}
		switch e.Kind {
		case mirror.KindSBOM, mirror.KindPolicy:
			if reason := mirrorOrigin(e.Source, e.Path); reason != "" {
				if ferr := w.docErr(e.File, "", "mirror index names %s", reason); ferr != nil {
					return ferr
				}
				continue
			}
			if err := bundle.CheckPath(e.File); err != nil || !strings.HasPrefix(e.File, "data/") {
				return w.sourceErr("mirror index entry %s:%s names file %q", e.Kind, e.ID, e.File)
			}
			fp := filepath.Join(root, filepath.FromSlash(e.File))
			st, err := os.Stat(fp)
			if err != nil {
				if ferr := w.docErr(e.Path, "", "the mirror lacks %s: %v", e.File, unwrapPathErr(err)); ferr != nil {
					return ferr
				}
				continue
			}
			if st.Size() > w.limit {
				if ferr := w.tooBig(e.Path, st.Size()); ferr != nil {
					return ferr
				}
				continue
			}
			raw, err := os.ReadFile(fp)
			if err != nil {
				return w.sourceErr("mirror %q: %v", root, unwrapPathErr(err))
			}
			if err := w.emitOrigin(e.Source, e.Path, e.Digest, raw); err != nil {
				return err
			}
		case mirror.KindFinding:
			if reason := mirrorOrigin(e.Source, e.Path); reason != "" {
				return w.sourceErr("mirror findings index names %s", reason)
			}
			if evals == nil || evalsFile != e.File {
				if evals != nil {
					return w.sourceErr("mirror findings index names two evaluation files")
				}
				if err := bundle.CheckPath(e.File); err != nil || !strings.HasPrefix(e.File, "data/policy/") {
					return w.sourceErr("mirror findings index names file %q", e.File)
				}
				f, err := os.Open(filepath.Join(root, filepath.FromSlash(e.File)))
				if err != nil {
					return w.sourceErr("mirror %q: %v", root, unwrapPathErr(err))
				}
				closers = append(closers, f)
				dec, err := bundle.Decompressor(bufio.NewReaderSize(f, 1<<16), bundle.CodecOf(e.File))
				if err != nil {
					return w.corrupt(0, err)
				}
				closers = append(closers, dec)
				evals, evalsFile = bufio.NewReaderSize(dec, 1<<20), e.File
			}
			// Evaluation lines are sorted by finding id, like the index entries.
			line, err := evals.ReadBytes('\n')
			if err != nil && !(err == io.EOF && len(line) > 0) {
				return w.sourceErr("mirror %s has fewer lines than its index lists", e.File)
			}
			line = bytes.TrimSuffix(line, []byte{'\n'})
			if d := record.Digest(line); d != e.Digest {
				return w.sourceErr("mirror %s: the line of finding %q has digest %s, the index says %s (damaged mirror)", e.File, e.ID, d, e.Digest)
			}
			k := docKey{e.Source, e.Path}
			findings[k] = append(findings[k], findingLine{line: e.Line, raw: line})
		}
	}
	keys := make([]docKey, 0, len(findings))
	for k := range findings {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].source != keys[j].source {
			return keys[i].source < keys[j].source
		}
		return keys[i].path < keys[j].path
	})
	for _, k := range keys {
		ls := findings[k]
		sort.Slice(ls, func(i, j int) bool { return ls[i].line < ls[j].line })
		var buf bytes.Buffer
		for _, l := range ls {
			buf.Write(l.raw)
			buf.WriteByte('\n')
		}
		raw := buf.Bytes()
		if err := w.emitOrigin(k.source, k.path, record.Digest(raw), raw); err != nil {
			return err
		}
	}
	return nil
}
