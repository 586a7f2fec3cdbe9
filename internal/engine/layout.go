package engine

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/stellaops/stella/internal/bundle"
	"github.com/stellaops/stella/internal/statcache"
	"github.com/stellaops/stella/internal/xerr"
	"github.com/stellaops/stella/pkg/exportapi"
)

// Adapter turns the sorted record streams of a run into the data files of
// one bundle kind. Record is called stream by stream ("raw/advisories/<src>",
// "normalized/advisories/<src>", "raw/vex/<src>", "normalized/vex/<src>",
// "raw/sboms/<folder>", "policy/snapshot", "policy/evaluations"), and within
// a stream in record-id order. Finish is called once, after the last
// Record, and may run beside the engine's merge of the run's document list
// and file statuses (which touch neither the stage nor the adapter).
type Adapter interface {
	Record(stream, id string, line []byte) error
	Finish() error
}

// AdapterCloser is implemented by adapters (and Extension.Begin states)
// that hold resources (files, mappings, goroutines) to release however the
// run ends: Close is called once the run is over, after Finish or instead
// of it.
type AdapterCloser interface {
	Close()
}

// AdapterFactory makes an adapter for one run.
type AdapterFactory func(ac AdapterContext) (Adapter, error)

// AdapterContext is what an adapter gets to work with.
type AdapterContext struct {
	Ctx     context.Context
	Stage   *bundle.Stage
	Run     exportapi.Run
	Profile exportapi.Profile
	Codec   bundle.Codec
	Level   int
	// State is what the kind:variant's Extension.Begin returned (nil without one).
	State any
	// SourceDateEpoch is SOURCE_DATE_EPOCH when set (nil otherwise): adapters
	// that stamp a time into their output use it before the evidence's dates.
	SourceDateEpoch *time.Time
	// Now is the engine's clock (for checks, never for bundle bytes).
	Now func() time.Time
	// SideFile returns where the adapter writes a file of the run that is
	// not part of the bundle but kept beside it in the run's directory (a
	// cache for the next run, like the mirror state), and the function to
	// call once that file is complete: the engine then renames it to name
	// when the run succeeds. Anything else there is removed.
	SideFile func(name string) (path string, done func())
}

// Skipper is implemented by adapters that leave out records their format
// cannot hold. Skipped lists every such record (it goes to export.json
// skipped[]); Invalid is the part of it that is malformed input, which fails
// the run unless --skip-invalid is given.
type Skipper interface {
	Skipped() []exportapi.Skipped
	Invalid() []exportapi.Skipped
}

// RegisterAdapter makes a kind:variant available to runs.
func RegisterAdapter(kindVariant string, f AdapterFactory) { adapters[kindVariant] = f }

// jsonLayout writes the data/ layout shared by json and mirror bundles.
type jsonLayout struct {
	ac      AdapterContext
	stream  string
	file    *bundle.File
	comp    io.WriteCloser
	buf     bufferedLines
	records int64
}

// NewJSONLayout is the adapter of json:raw and json:policy (and the data part of mirrors).
func NewJSONLayout(ac AdapterContext) (Adapter, error) { return &jsonLayout{ac: ac}, nil }

// DataPath maps a stream to its file inside the bundle.
func DataPath(stream string, codec bundle.Codec) string {
	switch {
	case strings.HasPrefix(stream, "raw/sboms/"):
		return "data/" + stream + "/sbom.json"
	case stream == "policy/snapshot":
		return "data/policy/snapshot.json"
	}
	return "data/" + stream + ".jsonl" + codec.Ext()
}

func contentType(path string) string {
	switch {
	case strings.HasSuffix(path, ".jsonl.zst"):
		return "application/jsonl+zstd"
	case strings.HasSuffix(path, ".jsonl.gz"):
		return "application/jsonl+gzip"
	case strings.HasSuffix(path, ".jsonl"):
		return "application/jsonl"
	case strings.HasSuffix(path, ".json"):
		return "application/json"
	case strings.HasSuffix(path, ".md"):
		return "text/markdown"
	case strings.HasSuffix(path, ".yaml"):
		return "application/yaml"
	}
	return "application/octet-stream"
}

func (l *jsonLayout) Record(stream, id string, line []byte) error {
	if stream != l.stream {
		if err := l.close(); err != nil {
			return err
		}
		if err := l.open(stream); err != nil {
			return err
		}
	}
	if l.comp == nil { // whole-document file (SBOM, policy snapshot): one record
		if l.records > 0 {
			return fmt.Errorf("internal: second record %q in single-document stream %s", id, stream)
		}
		l.records++
		_, err := l.file.Write(line)
		return err
	}
	l.records++
	l.buf.Write(line)
	return l.buf.WriteByte('\n')
}

// lineWriter is where data lines go: a buffered writer, or a compressor
// that buffers by itself.
type lineWriter interface {
	io.Writer
	io.ByteWriter
}

type bufferedLines interface {
	lineWriter
	Flush() error
}

type nopFlush struct{ lineWriter }

func (nopFlush) Flush() error { return nil }

func (l *jsonLayout) open(stream string) error {
	codec := l.ac.Codec
	p := DataPath(stream, codec)
	f, err := l.ac.Stage.Create(p, contentType(p))
	if err != nil {
		return err
	}
	l.stream, l.file, l.records = stream, f, 0
	l.comp, l.buf = nil, nil
	if strings.HasSuffix(p, ".jsonl"+codec.Ext()) {
		c, err := bundle.Compressor(f, codec, l.ac.Level)
		if err != nil {
			f.Abort()
			return xerr.Wrap(xerr.InvalidInput, err, "profile %q spec.compression", l.ac.Profile.Metadata.Name)
		}
		l.comp = c
		if lw, ok := c.(lineWriter); ok { // buffers already (zstd frames)
			l.buf = nopFlush{lw}
		} else {
			l.buf = bufio.NewWriterSize(c, 256<<10)
		}
	}
	return nil
}

func (l *jsonLayout) close() error {
	if l.file == nil {
		return nil
	}
	if l.buf != nil {
		if err := l.buf.Flush(); err != nil {
			return err
		}
		if err := l.comp.Close(); err != nil {
			return err
		}
	}
	l.file.AddRecords(l.records)
	err := l.file.Close()
	l.file = nil
	return err
}

func (l *jsonLayout) Finish() error { return l.close() }

// layoutResult is what the merge learnt besides the files.
type layoutResult struct {
	sources []exportapi.ManifestSource
	skipped []exportapi.Skipped
	records int64 // selected records written (ids)
}

// merge drains the sorter: it finds duplicate ids (failing, or skipping the
// later document with --skip-invalid), computes source digests, and feeds
// the data streams to the adapter.
func (e *Engine) merge(ctx context.Context, run exportapi.Run, spec exportapi.ProfileSpec, c *collected, ad Adapter,
	progress progressFn) (*layoutResult, error) {
	res := &layoutResult{skipped: c.skipped}
	drop := map[string]string{} // source\0path -> reason
	var srcName string
	var srcHash hash.Hash
	var srcDocs int64
	policies := 0
	flushSource := func() {
		if srcHash != nil {
			res.sources = append(res.sources, exportapi.ManifestSource{Name: srcName, Documents: srcDocs,
				Digest: "sha256:" + hex.EncodeToString(srcHash.Sum(nil))})
		}
		srcHash = nil
	}
	// addDoc counts a document towards its source's digest and this
	// run's document list (sum is the digest's bytes, when known).
	var sumBuf [32]byte
	addDoc := func(source, path, digest []byte, sum *[32]byte, k *statcache.Key) error {
		if srcHash == nil || string(source) != srcName {
			flushSource()
			srcName, srcHash, srcDocs = string(source), sha256.New(), 0
		}
		srcHash.Write(path)
		srcHash.Write([]byte{' '})
		srcHash.Write(digest)
		srcHash.Write([]byte{'\n'})
		srcDocs++
		if c.docsOut == nil || k == nil {
			return nil
		}
		if sum == nil {
			if len(digest) != 71 || string(digest[:7]) != "sha256:" {
				return fmt.Errorf("internal: document digest %q", digest)
			}
			if _, err := hex.Decode(sumBuf[:], digest[7:]); err != nil {
				return fmt.Errorf("internal: document digest %q", digest)
			}
			sum = &sumBuf
		}
		c.docsOut.Add(source, path, sum, k) // a cache: a failure is the writer's, reported at its Close
		return nil
	}
	// The documents taken as unchanged from their status come from the
	// base's document list, in order, between those read.
	carried := newCarriedDocs(c)
	defer carried.close()
	docsDone := false
	endDocs := func() error {
		if docsDone {
			return nil
		}
		docsDone = true
		if err := carried.until(nil, nil, addDoc); err != nil {
			return err
		}
		return carried.check()
	}
	var written int64
	// The policy snapshot count is known once the ids are through: checked
	// before the first data line, or at the end when there is none.
	var checkedPolicy bool
	policyOnce := func() error {
		if checkedPolicy {
			return nil
		}
		checkedPolicy = true
		return checkPolicy(spec, policies)
	}
	origin, _ := ad.(OriginAdapter)
	var f [5][]byte
	var prevID []byte // kind 0 id 0 source 0 path of the last id kept
	var stream string // the current data stream (one string per stream)
	var source string // the current source, likewise
	// The adapter finishes its files (closing data files, indexes, a
	// mirror's record state: a tenth of a second and more at 200,000
	// records) in a goroutine of its own once the data streams are
	// through, while this one merges the documents and file statuses.
	var finished chan error
	startFinish := func() {
		if finished == nil {
			finished = make(chan error, 1)
			go func() { finished <- ad.Finish() }()
		}
	}
	waitFinish := func() error {
		if finished == nil {
			return nil
		}
		err := <-finished
		finished = nil
		return err
	}
	defer waitFinish() // on a failure: the adapter's files are closed after it returns
	err := c.sorter.Merge(func(k, v []byte) error {
		if k[0] > nsData && finished == nil {
			if err := policyOnce(); err != nil {
				return err
			}
			startFinish()
		}
		if k[0] > nsDoc && !docsDone {
			if err := endDocs(); err != nil {
				return err
			}
		}
		switch k[0] {
		case nsID:
			keyFields(k, &f)
			if len(drop) > 0 {
				if _, dropped := drop[string(f[2])+"\x00"+string(f[3])]; dropped {
					return nil
				}
			}
			// The key without its namespace is kind 0 id 0 source 0 path.
			if prevID != nil {
				var pf [5][]byte
				keyFields(prevID, &pf)
				if bytes.Equal(f[0], pf[0]) && bytes.Equal(f[1], pf[1]) {
					if bytes.Equal(f[2], pf[2]) && bytes.Equal(f[3], pf[3]) {
						return nil // e.g. one document listing the same finding twice is caught by its parser
					}
					kind, id, src, path := string(f[0]), string(f[1]), string(f[2]), string(f[3])
					reason := fmt.Sprintf("duplicate %s id %q: also in source %q at %s (kept)", kind, id, pf[2], pf[3])
					if !run.SkipInvalid {
						return xerr.New(xerr.InvalidInput, "source %q: %s: %s", src, path, reason).
							WithHint("remove one of the two documents, narrow the run with --selector source=…, or rerun with --skip-invalid to keep the first")
					}
					drop[src+"\x00"+path] = reason
					return nil
				}
			}
			prevID = append(prevID[:0], k...)
			if string(f[0]) == "policy" {
				policies++
			}
			res.records++
		case nsDoc:
			keyFields(k, &f)
			if err := carried.until(f[0], f[1], addDoc); err != nil {
				return err
			}
			if c.stats { // value: key, digest
				return addDoc(f[0], f[1], v[len(statcache.Key{}):], nil, (*statcache.Key)(v[:len(statcache.Key{})]))
			}
			return addDoc(f[0], f[1], v, nil, nil)
		case nsData:
			if err := policyOnce(); err != nil {
				return err
			}
			keyFields(k, &f)
			if len(drop) > 0 {
				if _, dropped := drop[string(f[2])+"\x00"+string(f[3])]; dropped {
					return nil
				}
			}
			written++
			if progress != nil && written%256 == 0 {
				progress("write", written, c.lines.Load(), 0)
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if string(f[0]) != stream {
				stream = string(f[0])
			}
			if origin != nil {
				if string(f[2]) != source {
					source = string(f[2])
				}
				seq := firstSeq
				if string(f[4]) != firstSeq {
					seq = string(f[4])
				}
				return origin.RecordOrigin(stream, string(f[1]), source, string(f[3]), seq, v)
			}
			return ad.Record(stream, string(f[1]), v)
		case nsStat:
			if c.statOut != nil {
				if err := c.flushCarry(k[1:]); err != nil {
					return err
				}
				c.statOut.Add(k[1:], v) // a cache: a failure is the writer's, reported at its Close
				return nil
			}
		}
		return nil
	})
	if err == nil {
		err = policyOnce()
	}
	if err == nil {
		startFinish() // if the merge had no documents or statuses
		err = endDocs()
	}
	if err == nil {
		err = c.flushCarry(nil)
	}
	if ferr := waitFinish(); err == nil {
		err = ferr
	}
	if err != nil {
		return nil, err
	}
	flushSource()
	if sk, ok := ad.(Skipper); ok {
		if bad := sk.Invalid(); len(bad) > 0 && !run.SkipInvalid {
			first := bad[0]
			return nil, &xerr.Error{Code: xerr.InvalidInput,
				Message: fmt.Sprintf("%d record(s) cannot be written as %s:%s; first: source %q: %s: %s", len(bad), spec.Kind, spec.Variant, first.Source, first.Path, first.Reason),
				Hint:    "fix the records, or rerun with --skip-invalid to list them in skipped[]"}
		}
		res.skipped = append(res.skipped, sk.Skipped()...)
	}
	for sp, reason := range drop {
		src, path, _ := strings.Cut(sp, "\x00")
		res.skipped = append(res.skipped, exportapi.Skipped{Source: src, Path: path, Reason: reason})
	}
	sortSkipped(res.skipped)
	return res, nil
}

// firstSeq is the sequence number of a document's first (usually only) record.
const firstSeq = "00000000"

func checkPolicy(spec exportapi.ProfileSpec, n int) error {
	if n > 1 {
		return xerr.New(xerr.InvalidInput, "the evidence holds %d policy snapshots; a bundle carries one", n).
			WithHint("narrow the run to one policy source with --selector source=<name>")
	}
	if n == 0 && spec.PolicySnapshotMode == "required" {
		return xerr.New(xerr.InvalidInput, "profile %s:%s requires a policy snapshot and the evidence has none", spec.Kind, spec.Variant).
			WithHint("add a source with a policy snapshot (docs/policy-overlay.md), or use json:raw")
	}
	return nil
}

func sortSkipped(s []exportapi.Skipped) {
	slices.SortFunc(s, func(a, b exportapi.Skipped) int {
		if c := strings.Compare(a.Source, b.Source); c != 0 {
			return c
		}
		return strings.Compare(a.Path, b.Path)
	})
}
