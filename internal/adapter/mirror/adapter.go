package mirror

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/stellaops/stella/internal/bundle"
	"github.com/stellaops/stella/internal/crypt"
	"github.com/stellaops/stella/internal/engine"
	"github.com/stellaops/stella/internal/extsort"
	"github.com/stellaops/stella/internal/mirror"
	"github.com/stellaops/stella/internal/record"
	"github.com/stellaops/stella/internal/xerr"
	"github.com/stellaops/stella/pkg/exportapi"
)

func init() {
	for _, v := range []string{"full", "delta"} {
		engine.RegisterAdapter("mirror:"+v, newAdapter)
		engine.RegisterExtension("mirror:"+v, engine.Extension{Prepare: prepare, Begin: begin, StatCache: true})
	}
}

// adapter writes a mirror bundle: the json data layout (every record for a
// full bundle, only added and changed ones for a delta), then indexes,
// tombstones (deltas) and the README.
type adapter struct {
	ac     engine.AdapterContext
	st     *runState
	layout engine.Adapter
	idx    *extsort.Sorter
	header mirror.IndexHeader

	// delta: the base's finding entries [baseFind, baseFindEnd) of its
	// state, walked forward as the evaluations stream comes in id order,
	// and its policy entries
	baseFind, baseFindEnd int
	basePolicy            map[string]mirror.Entry
	// the record state after this bundle (the next delta's base), and what
	// to call when it is complete
	state     *mirror.RecordStateWriter
	stateDone func()

	delta *exportapi.Delta
	buf   []byte
	kbuf  []byte // index keys
	// the data file of the last stream seen (dataPath)
	pathStream, pathFile string
	// delta: records are spooled (stream, id, source, path, seq -> line) and
	// written at Finish, once duplicates against unchanged base documents
	// are resolved.
	spool   *extsort.Sorter
	drop    map[string]bool // "source\x00path" of documents left out as duplicates
	skipped []exportapi.Skipped
}

// Index sort-key parts of one record.
const (
	partWithdrawn = 'n' // from the normalised advisory: it is withdrawn
	partEntry     = 'r' // the record was written: its index entry
	partSame      = 'u' // delta: the record is in the evidence and equal to the base's
)

func newAdapter(ac engine.AdapterContext) (engine.Adapter, error) {
	st, ok := ac.State.(*runState)
	if !ok || st == nil {
		return nil, xerr.New(xerr.Internal, "mirror adapter without its run state")
	}
	layout, err := engine.NewJSONLayout(ac)
	if err != nil {
		return nil, err
	}
	budget := st.budget / 4 // the index and spool sorts spill to disk past this
	if budget < 64<<10 {
		budget = 64 << 10
	}
	for _, d := range []string{"index", "spool"} {
		if err := os.MkdirAll(filepath.Join(st.tmp, d), 0o700); err != nil {
			return nil, xerr.Wrap(xerr.Internal, err, "mirror scratch")
		}
	}
	inc := slices.Clone(ac.Profile.Spec.Include)
	sort.Strings(inc)
	a := &adapter{ac: ac, st: st, layout: layout, idx: extsort.New(filepath.Join(st.tmp, "index"), budget),
		header: mirror.IndexHeader{Compression: mirror.Compression{Codec: string(ac.Codec), Level: ac.Level}, Include: inc}}
	var base *mirror.RecordState
	if st.base != nil {
		if err := a.openBase(); err != nil {
			return nil, err
		}
		a.spool = extsort.New(filepath.Join(st.tmp, "spool"), budget)
		a.drop = map[string]bool{}
		base = st.base.state
	}
	if ac.SideFile != nil {
		// The state after this bundle, for the next delta of the chain. Its
		// records are all of this binary's record lines: a full bundle
		// writes every one; a delta keeps the base's only when the base
		// state was of the same lines (skip), and re-sends every record it
		// exports otherwise, so the chain is of one lines version again.
		h := mirror.RecordStateHeader{RunID: ac.Run.ID, Index: a.header, ChainVersion: record.LinesVersion}
		path, done := ac.SideFile(mirror.RecordStateFile)
		w, err := mirror.CreateRecordState(path, filepath.Join(st.tmp, "state"), budget, h, base)
		if err != nil {
			// A cache: the next delta rebuilds the state from the bundles.
			if st.log != nil {
				st.log.Warn("mirror.state_unwritten", "runId", ac.Run.ID, "err", err.Error())
			}
		} else {
			a.state, a.stateDone = w, done
		}
	}
	return a, nil
}

func (a *adapter) openBase() error {
	st := a.st.base.state
	a.basePolicy = map[string]mirror.Entry{}
	from, to := st.Range(mirror.KindPolicy)
	for i := from; i < to; i++ {
		e, err := st.Entry(i)
		if err != nil {
			return baseMissing("base state: %v", err)
		}
		a.basePolicy[e.ID] = e
	}
	a.baseFind, a.baseFindEnd = st.Range(mirror.KindFinding)
	return nil
}

// baseFinding returns the base's entry of a finding id (ids come in order).
func (a *adapter) baseFinding(id string) (mirror.Entry, bool) {
	st := a.st.base.state
	a.baseFind = min(st.Search(mirror.KindFinding, id, a.baseFind), a.baseFindEnd)
	if a.baseFind < a.baseFindEnd && st.Is(a.baseFind, mirror.KindFinding, id) {
		e, err := st.Entry(a.baseFind)
		return e, err == nil
	}
	return mirror.Entry{}, false
}

func sameEntry(x, y mirror.Entry) bool {
	return x.Digest == y.Digest && x.File == y.File && x.Source == y.Source && x.Path == y.Path && x.Line == y.Line &&
		x.Withdrawn == y.Withdrawn
}

func (a *adapter) Record(stream, id string, line []byte) error {
	return fmt.Errorf("internal: mirror adapter needs record origins")
}

func (a *adapter) addIndex(kind, id string, part byte, e *mirror.Entry) error {
	k := a.kbuf[:0] // the sorter copies key and value
	k = append(k, kind...)
	k = append(k, 0)
	k = append(k, id...)
	k = append(k, 0, part)
	var v []byte
	if e != nil {
		a.buf = mirror.AppendEntry(a.buf[:0], *e)
		v = a.buf
	}
	a.kbuf = k
	return a.idx.Add(k, v)
}

// dataPath is engine.DataPath, computed once per stream.
func (a *adapter) dataPath(stream string) string {
	if stream != a.pathStream {
		a.pathStream, a.pathFile = stream, engine.DataPath(stream, a.ac.Codec)
	}
	return a.pathFile
}

var withdrawnKey = []byte(`"withdrawn":"`)

// RecordOrigin implements engine.OriginAdapter.
func (a *adapter) RecordOrigin(stream, id, source, path, seq string, line []byte) error {
	codec := a.ac.Codec
	switch {
	case strings.HasPrefix(stream, "normalized/advisories/"):
		// "withdrawn" is the last member of a normalised advisory (keys are
		// sorted) and its value a time: look at the line's end only.
		if bytes.Contains(line[max(0, len(line)-80):], withdrawnKey) {
			if err := a.addIndex(mirror.KindAdvisory, id, partWithdrawn, nil); err != nil {
				return err
			}
		}
	case strings.HasPrefix(stream, "raw/advisories/"), strings.HasPrefix(stream, "raw/vex/"):
		kind := mirror.KindAdvisory
		if strings.HasPrefix(stream, "raw/vex/") {
			kind = mirror.KindVEX
		}
		d, err := mirror.TopString(line, "digest")
		if err != nil {
			return fmt.Errorf("mirror index: %s %s: %w", stream, id, err)
		}
		e := mirror.Entry{Kind: kind, ID: id, Digest: d, File: a.dataPath(stream), Source: source, Path: path}
		if err := a.addIndex(kind, id, partEntry, &e); err != nil {
			return err
		}
	case strings.HasPrefix(stream, "raw/sboms/"):
		e := mirror.Entry{Kind: mirror.KindSBOM, ID: id, Digest: digestOf(line), File: engine.DataPath(stream, codec), Source: source, Path: path}
		if err := a.addIndex(mirror.KindSBOM, id, partEntry, &e); err != nil {
			return err
		}
	case stream == "policy/snapshot":
		e := mirror.Entry{Kind: mirror.KindPolicy, ID: id, Digest: digestOf(line), File: engine.DataPath(stream, codec), Source: source, Path: path}
		if a.st.base != nil {
			if b, ok := a.basePolicy[id]; ok && sameEntry(b, e) {
				return a.addIndex(mirror.KindPolicy, id, partSame, nil)
			}
		}
		if err := a.addIndex(mirror.KindPolicy, id, partEntry, &e); err != nil {
			return err
		}
	case stream == "policy/evaluations":
		var n int64
		fmt.Sscan(seq, &n)
		e := mirror.Entry{Kind: mirror.KindFinding, ID: id, Digest: digestOf(line), File: engine.DataPath(stream, codec),
			Source: source, Path: path, Line: n + 1}
		if a.st.base != nil {
			if b, ok := a.baseFinding(id); ok && sameEntry(b, e) {
				return a.addIndex(mirror.KindFinding, id, partSame, nil)
			}
		}
		if err := a.addIndex(mirror.KindFinding, id, partEntry, &e); err != nil {
			return err
		}
	}
	if a.spool != nil {
		return a.spool.Add(spoolKey(stream, id, source, path, seq), line)
	}
	return a.layout.Record(stream, id, line)
}

func spoolKey(parts ...string) []byte {
	return []byte(strings.Join(parts, "\x00"))
}

// replay writes the spooled records of a delta, leaving out dropped documents.
func (a *adapter) replay() error {
	defer a.spool.Close()
	return a.spool.Merge(func(k, v []byte) error {
		f := strings.Split(string(k), "\x00")
		if len(f) != 5 {
			return fmt.Errorf("internal: spool key %q", k)
		}
		if a.drop[f[2]+"\x00"+f[3]] {
			return nil
		}
		return a.layout.Record(f[0], f[1], v)
	})
}

// current is one record of this run, grouped from the index sort.
type current struct {
	kind, id  string
	entry     mirror.Entry
	written   bool
	same      bool
	withdrawn bool
}

// currentIter groups the index sorter's pairs by record.
type currentIter struct {
	ch   chan current
	errc chan error
	stop chan struct{}
	done chan struct{}
}

func (a *adapter) iterate() *currentIter {
	it := &currentIter{ch: make(chan current, 256), errc: make(chan error, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(it.done)
		defer close(it.ch)
		var cur *current
		flush := func() bool {
			if cur == nil {
				return true
			}
			if cur.written {
				cur.entry.Withdrawn = cur.withdrawn
			}
			select {
			case it.ch <- *cur:
				return true
			case <-it.stop:
				return false
			}
		}
		errStop := fmt.Errorf("stopped")
		err := a.idx.Merge(func(k, v []byte) error {
			parts := bytes.SplitN(k, []byte{0}, 3)
			if len(parts) != 3 || len(parts[2]) != 1 {
				return fmt.Errorf("internal: index key %q", k)
			}
			kind, id := string(parts[0]), string(parts[1])
			if cur == nil || cur.kind != kind || cur.id != id {
				if !flush() {
					return errStop
				}
				cur = &current{kind: kind, id: id}
			}
			switch parts[2][0] {
			case partWithdrawn:
				cur.withdrawn = true
			case partSame:
				cur.same = true
			case partEntry:
				e, err := mirror.ParseEntry(v)
				if err != nil {
					return err
				}
				cur.entry = e
				cur.written = true
			}
			return nil
		})
		if err == nil {
			flush()
		}
		if err == errStop {
			err = nil
		}
		it.errc <- err
	}()
	return it
}

// Close implements engine.AdapterCloser: the state writer (removing an
// unfinished state) and the sorters. (The base's state is the run
// state's to close.)
func (a *adapter) Close() {
	if a.state != nil {
		a.state.Abort() // a no-op after a successful Close
	}
	a.idx.Close()
	if a.spool != nil {
		a.spool.Close()
	}
}

// close stops the merge (if it still runs) and waits for it to return.
func (it *currentIter) close() {
	close(it.stop)
	<-it.done
}

// Finish closes the data files and writes the indexes (and, for a delta,
// the tombstones), then the README.
func (a *adapter) Finish() error {
	if a.spool == nil {
		if err := a.layout.Finish(); err != nil {
			return err
		}
	}
	iw, err := a.newIndexes()
	if err != nil {
		return err
	}
	it := a.iterate()
	defer it.close()
	if a.st.base == nil {
		for c := range it.ch {
			if !c.written {
				if c.withdrawn {
					return fmt.Errorf("internal: withdrawn mark without a raw record for advisory %q", c.id)
				}
				continue
			}
			if err := iw.add(c.entry); err != nil {
				return err
			}
			if a.state != nil {
				if err := a.state.Add(c.entry); err != nil {
					return err
				}
			}
		}
	} else if err := a.classify(it.ch, iw); err != nil {
		return err
	}
	if err := <-it.errc; err != nil {
		return err
	}
	if err := iw.close(); err != nil {
		return err
	}
	stateClosed := make(chan struct{})
	go func() {
		// A cache for the next delta: without it that delta rebuilds the
		// state from the bundles; this bundle is not affected. Written
		// beside the bundle's own files, which do not depend on it.
		defer close(stateClosed)
		if a.state == nil {
			return
		}
		if err := a.state.Close(); err != nil {
			if a.st.log != nil {
				a.st.log.Warn("mirror.state_unwritten", "runId", a.ac.Run.ID, "err", err.Error())
			}
		} else {
			a.stateDone()
		}
	}()
	defer func() { <-stateClosed }() // Close (on a failure) aborts the state: not before it is written
	if a.spool != nil {
		if err := a.replay(); err != nil {
			return err
		}
		if err := a.layout.Finish(); err != nil {
			return err
		}
	}
	return a.ac.Stage.Put("README.md", "text/markdown", []byte(mirror.Readme), 0)
}

// classify compares the records of this run with the base state: added,
// changed, unchanged, removed. Both come in (kind, id) order. Base entries
// whose documents were found unchanged are passed over without being
// decoded; the others are this run's records, or removed. The state after
// this bundle is written as it goes: runs of base entries that stay are
// copied, and this run's added and changed entries put in between.
func (a *adapter) classify(cur <-chan current, iw *indexSet) error {
	b := a.st.base
	st := b.state
	n := st.Len()
	d := &exportapi.Delta{Added: []string{}, Changed: []string{}, Removed: []string{}}
	var tombs []mirror.Tombstone
	withdrawnNow := func(e mirror.Entry, base *mirror.Entry) {
		if e.Kind == mirror.KindAdvisory && e.Withdrawn && (base == nil || !base.Withdrawn) {
			t := mirror.Tombstone{Kind: e.Kind, ID: e.ID, Reason: mirror.ReasonWithdrawn, Digest: e.Digest, File: e.File, Source: e.Source, Path: e.Path}
			if base != nil {
				t.Digest, t.File, t.Source, t.Path = base.Digest, base.File, base.Source, base.Path
			}
			tombs = append(tombs, t)
		}
	}
	pos := 0  // the next base entry to classify
	keep := 0 // base entries from keep on stay in the state after this bundle, so far
	// upTo copies the base entries [keep, i) into the new state.
	upTo := func(i int) error {
		from := keep
		keep = i
		if a.state == nil {
			return nil
		}
		return a.state.Copy(from, i)
	}
	// put adds one of this run's entries to the new state.
	put := func(e mirror.Entry) error {
		if a.state == nil {
			return nil
		}
		return a.state.Add(e)
	}
	// baseOnly classifies the base entries before to that this run has no
	// record for: unchanged when their documents were, removed otherwise.
	baseOnly := func(to int) error {
		for i := b.nextUnseen(pos, to); i < to; i = b.nextUnseen(i+1, to) {
			be, err := st.Entry(i)
			if err != nil {
				return baseMissing("base state: %v", err)
			}
			d.Removed = append(d.Removed, be.Key())
			tombs = append(tombs, mirror.Tombstone{Kind: be.Kind, ID: be.ID, Reason: mirror.ReasonRemoved, Digest: be.Digest,
				File: be.File, Source: be.Source, Path: be.Path})
			if err := upTo(i); err != nil {
				return err
			}
			keep = i + 1 // removed: not in the new state
		}
		pos = to
		return nil
	}
	for c := range cur {
		j := st.Search(c.kind, c.id, pos)
		if err := baseOnly(j); err != nil {
			return err
		}
		if !st.Is(j, c.kind, c.id) { // only in this run
			if c.written {
				d.Added = append(d.Added, c.entry.Key())
				withdrawnNow(c.entry, nil)
				if err := iw.add(c.entry); err != nil {
					return err
				}
				if err := upTo(j); err != nil { // the new entry goes before base entry j
					return err
				}
				if err := put(c.entry); err != nil {
					return err
				}
			} else if c.same {
				return fmt.Errorf("internal: %s:%s marked unchanged but not in the base", c.kind, c.id)
			}
			continue
		}
		// In both.
		be, err := st.Entry(j)
		if err != nil {
			return baseMissing("base state: %v", err)
		}
		pos = j + 1
		dup := c.written && b.isSeen(j)
		if dup {
			// The base's unchanged document and a new one share the id: as
			// in a full run, the first by source and path is kept.
			keepNew := c.entry.Source < be.Source || (c.entry.Source == be.Source && c.entry.Path < be.Path)
			kept, left := be, c.entry
			if keepNew {
				kept, left = c.entry, be
			}
			reason := fmt.Sprintf("duplicate %s id %q: also in source %q at %s (kept)", c.kind, c.id, kept.Source, kept.Path)
			if !a.ac.Run.SkipInvalid {
				return xerr.New(xerr.InvalidInput, "source %q: %s: %s", left.Source, left.Path, reason).
					WithHint("remove one of the two documents, narrow the run with --selector source=…, or rerun with --skip-invalid to keep the first")
			}
			a.skipped = append(a.skipped, exportapi.Skipped{Source: left.Source, Path: left.Path, Reason: reason})
			if !keepNew {
				a.drop[c.entry.Source+"\x00"+c.entry.Path] = true
			}
			dup = !keepNew
		}
		if !dup && c.written { // changed (otherwise the base's record stays)
			d.Changed = append(d.Changed, c.entry.Key())
			withdrawnNow(c.entry, &be)
			if err := iw.add(c.entry); err != nil {
				return err
			}
			if err := upTo(j); err != nil {
				return err
			}
			keep = j + 1 // replaced by this run's entry
			if err := put(c.entry); err != nil {
				return err
			}
		}
	}
	if err := baseOnly(n); err != nil {
		return err
	}
	if err := upTo(n); err != nil {
		return err
	}
	for _, l := range [][]string{d.Added, d.Changed, d.Removed} {
		sort.Strings(l)
	}
	slices.SortFunc(tombs, func(x, y mirror.Tombstone) int { return mirror.Compare(x.Kind, x.ID, y.Kind, y.ID) })
	f, err := a.ac.Stage.Create(mirror.TombstonesPath, "application/jsonl")
	if err != nil {
		return err
	}
	if err := mirror.WriteTombstones(f, tombs); err != nil {
		f.Abort()
		return err
	}
	f.AddRecords(int64(len(tombs)))
	if err := f.Close(); err != nil {
		return err
	}
	d.BaseExportID, d.BaseManifestDigest = b.manifest.ExportID, b.manifestDigest
	a.delta = d
	return nil
}

// indexSet writes the four index files of a bundle, in order.
type indexSet struct {
	a *adapter
	i int
	f *bundle.File
	w *mirror.IndexWriter
}

func (a *adapter) newIndexes() (*indexSet, error) { return &indexSet{a: a, i: -1}, nil }

func (s *indexSet) advanceTo(name string) error {
	for s.i < 0 || mirror.IndexNames[s.i] != name {
		if err := s.closeCurrent(); err != nil {
			return err
		}
		s.i++
		if s.i >= len(mirror.IndexNames) {
			return fmt.Errorf("internal: index %q out of order", name)
		}
		f, err := s.a.ac.Stage.Create(mirror.IndexPath(mirror.IndexNames[s.i]), "application/json")
		if err != nil {
			return err
		}
		h := s.a.header
		h.Index = mirror.IndexNames[s.i]
		w, err := mirror.NewIndexWriter(f, h)
		if err != nil {
			f.Abort()
			return err
		}
		s.f, s.w = f, w
	}
	return nil
}

func (s *indexSet) closeCurrent() error {
	if s.w == nil {
		return nil
	}
	if err := s.w.Close(); err != nil {
		return err
	}
	s.f.AddRecords(s.w.Count())
	err := s.f.Close()
	s.f, s.w = nil, nil
	return err
}

func (s *indexSet) add(e mirror.Entry) error {
	if err := s.advanceTo(mirror.IndexOf(e.Kind)); err != nil {
		return err
	}
	return s.w.Add(e)
}

func (s *indexSet) close() error {
	if err := s.advanceTo(mirror.IndexNames[len(mirror.IndexNames)-1]); err != nil {
		return err
	}
	return s.closeCurrent()
}

// FillManifest implements engine.ManifestFiller: sequence, delta, expiry,
// and encryption of data/.
func (a *adapter) FillManifest(m *exportapi.Manifest) error {
	m.Sequence = a.st.sequence
	if len(a.skipped) > 0 {
		m.Skipped = append(m.Skipped, a.skipped...)
		slices.SortFunc(m.Skipped, func(x, y exportapi.Skipped) int {
			if c := strings.Compare(x.Source, y.Source); c != 0 {
				return c
			}
			return strings.Compare(x.Path, y.Path)
		})
	}
	if a.delta != nil {
		// A source of the base with no document in this run (left out of
		// the run's sources, or its folder empty or not mounted) would
		// have every one of its records removed by this delta: a mistake
		// far more often than a wish, and one the receiving side cannot
		// undo but by a new full bundle. Refuse it; dropping a source on
		// purpose is a new full bundle.
		have := map[string]bool{}
		for _, s := range m.Sources {
			have[s.Name] = true
		}
		for _, s := range a.st.base.manifest.Sources {
			if s.Documents > 0 && !have[s.Name] {
				return xerr.New(xerr.InvalidInput, "source %q had %d documents in the base bundle (%s) and has none in this delta, which would remove all of its records",
					s.Name, s.Documents, a.st.base.manifest.ExportID).
					WithHint("pass --source %s=<its folder> as the chain's earlier runs did (check that the folder is there and mounted); to drop the source on purpose, export mirror:full without it", s.Name)
			}
		}
		m.Delta = a.delta
		// A delta stands for the state base + changes: it is never older than its base.
		if a.st.base.manifest.GeneratedAt > m.GeneratedAt {
			bg, err1 := time.Parse(time.RFC3339, a.st.base.manifest.GeneratedAt)
			mg, err2 := time.Parse(time.RFC3339, m.GeneratedAt)
			if err1 == nil && err2 == nil && bg.After(mg) {
				m.GeneratedAt = a.st.base.manifest.GeneratedAt
			}
		}
	}
	g, err := time.Parse(time.RFC3339, m.GeneratedAt)
	if err != nil {
		return xerr.Wrap(xerr.Internal, err, "generatedAt")
	}
	if g.Unix() <= 0 {
		// No date anywhere in the evidence (golang/vulndb's repository keeps
		// zero dates) and no SOURCE_DATE_EPOCH: expires would be 1970 and no
		// site could apply the bundle. Refuse rather than ship it.
		return xerr.New(xerr.InvalidInput, "the evidence carries no modified dates, so this mirror bundle would be dated %s and already expired", m.GeneratedAt).
			WithHint("set SOURCE_DATE_EPOCH to the time of the evidence snapshot (e.g. its commit time: SOURCE_DATE_EPOCH=$(git -C <source> log -1 --format=%%ct)); the bundle expires %s after it", validityText(a.st.validity))
	}
	exp := g.Add(a.st.validity).UTC()
	if now := a.now(); !now.Before(exp) {
		// Dated by its evidence, whose newest record is older than the
		// validity: every site would refuse it. Refuse rather than ship it.
		// A date the user set (SOURCE_DATE_EPOCH: a replay of an old
		// bundle, say) is theirs: the bundle is built, and the log says so.
		if a.ac.SourceDateEpoch == nil {
			return xerr.New(xerr.InvalidInput, "this mirror bundle would be dated %s (the newest modified date in the evidence) and so have expired at %s, before it is built",
				m.GeneratedAt, exp.Format(time.RFC3339)).
				WithHint("set SOURCE_DATE_EPOCH to the time of the export (SOURCE_DATE_EPOCH=$(date +%%s)) or of the evidence snapshot, or give the profile a longer %s label (now %s)", LabelValidity, validityText(a.st.validity))
		}
		if a.st.log != nil {
			a.st.log.Warn("mirror.expired_on_arrival", "runId", a.ac.Run.ID, "generatedAt", m.GeneratedAt, "expires", exp.Format(time.RFC3339))
		}
	}
	m.Expires = exp.Format(time.RFC3339)
	if enc := a.ac.Profile.Spec.Encryption; enc.Enabled {
		return a.encrypt(m, enc)
	}
	return nil
}

// validityText writes a validity as the label would: "30d", else "36h0m0s".
func validityText(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// now is the engine's clock.
func (a *adapter) now() time.Time {
	if a.ac.Now != nil {
		return a.ac.Now()
	}
	return time.Now()
}

// encrypt encrypts every staged file under data/. The export id (and the
// rerun hash) are computed over plaintext digests, so they are known now.
func (a *adapter) encrypt(m *exportapi.Manifest, enc exportapi.Encryption) error {
	contents := a.ac.Stage.Entries()
	exportID := bundle.ExportID(m.Tenant, m.Profile.Name, bundle.RerunHash(contents))
	s, err := crypt.NewSealer(enc.Mode, enc.RecipientKeys, exportID)
	if err != nil {
		return err
	}
	for _, c := range contents {
		if !strings.HasPrefix(c.Path, "data/") {
			continue
		}
		rel := c.Path
		if err := a.ac.Stage.Transform(rel, func(dst io.Writer, src io.Reader) error { return s.Seal(dst, src, rel) }); err != nil {
			return xerr.Wrap(xerr.Internal, err, "encrypt %s", rel)
		}
	}
	m.Encryption = s.Manifest()
	return nil
}

// ArchiveName implements engine.ArchiveNamer:
// mirror-<tenant>-<yyyymmdd>-<full|delta>-<sequence>.tar.zst.
func (a *adapter) ArchiveName(m *exportapi.Manifest) string {
	date := "19700101"
	if t, err := time.Parse(time.RFC3339, m.GeneratedAt); err == nil {
		date = t.UTC().Format("20060102")
	}
	return fmt.Sprintf("mirror-%s-%s-%s-%d.tar.zst", m.Tenant, date, a.st.variant, m.Sequence)
}
