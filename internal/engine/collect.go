package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stellaops/stella/internal/canon"
	"github.com/stellaops/stella/internal/evidence"
	"github.com/stellaops/stella/internal/extsort"
	"github.com/stellaops/stella/internal/record"
	"github.com/stellaops/stella/internal/statcache"
	"github.com/stellaops/stella/internal/xerr"
	"github.com/stellaops/stella/pkg/exportapi"
)

// Sort-key namespaces. Keys are compared bytewise, so the streams come out
// of the merge in this order: ids (duplicate check), the data streams, then
// source documents (source digests and the document list) and file
// statuses. Once the data streams are through, the adapter finishes its
// files beside the merge of the last two (which do not touch the bundle).
const (
	nsID   = 'A' // kind 0 id 0 source 0 path -> modified
	nsData = 'B' // stream 0 id 0 source 0 path 0 seq -> line
	nsDoc  = 'C' // source 0 path -> digest
	nsStat = 'S' // statcache.Key -> statcache.Record (stat cache runs only)
)

// rawLine is one line of data/raw/{advisories,vex}: the document's bytes as
// a JSON string (so they are recoverable byte for byte) with where they came from.
type rawLine struct {
	ContentType string `json:"contentType"`
	Digest      string `json:"digest"`
	Document    []byte `json:"document"` // written as a JSON string (appendRawLine)
	Format      string `json:"format"`
	ID          string `json:"id"`
	Kind        string `json:"kind"`
	Path        string `json:"path"`
	Source      string `json:"source"`
}

// selection decides which records a run keeps.
type selection struct {
	include map[string]bool
	sel     exportapi.Selectors
	since   time.Time
	until   time.Time
	policy  string // policySnapshotMode
}

func newSelection(spec exportapi.ProfileSpec, sel exportapi.Selectors) selection {
	s := selection{include: map[string]bool{}, sel: sel, policy: spec.PolicySnapshotMode}
	for _, i := range spec.Include {
		s.include[i] = true
	}
	if s.policy == "none" {
		s.include["findings"] = false
	}
	s.since, _ = time.Parse(time.RFC3339, sel.ModifiedSince)
	s.until, _ = time.Parse(time.RFC3339, sel.ModifiedUntil)
	return s
}

func ecoMatch(want []string, have []string) bool {
	for _, h := range have {
		base, _, _ := strings.Cut(h, ":")
		for _, w := range want {
			if strings.EqualFold(w, h) || strings.EqualFold(w, base) {
				return true
			}
		}
	}
	return false
}

func prefixMatch(want []string, have []string) bool {
	for _, h := range have {
		for _, w := range want {
			if strings.HasPrefix(h, w) {
				return true
			}
		}
	}
	return false
}

// keep reports whether a parsed document is selected.
func (s selection) keep(p *record.Parsed) bool {
	if !s.include[p.Kind.IncludeName()] {
		return false
	}
	switch p.Kind {
	case record.KindPolicy, record.KindFindings:
		return true // the policy overlay is selected as a whole
	case record.KindAdvisory:
		if len(s.sel.Ecosystems) > 0 && !ecoMatch(s.sel.Ecosystems, p.Ecosystems) {
			return false
		}
	}
	if len(s.sel.PurlPrefixes) > 0 && !prefixMatch(s.sel.PurlPrefixes, p.Purls) {
		return false
	}
	if len(s.sel.ProductPrefixes) > 0 && p.Kind != record.KindAdvisory &&
		!prefixMatch(s.sel.ProductPrefixes, append(slices.Clone(p.Products), p.Subject)) {
		return false
	}
	if !s.since.IsZero() || !s.until.IsZero() {
		if p.Modified.IsZero() {
			return false // no known modified date: outside any window
		}
		if !s.since.IsZero() && p.Modified.Before(s.since) {
			return false
		}
		if !s.until.IsZero() && !p.Modified.Before(s.until) {
			return false
		}
	}
	return true
}

// collected is what the read stage learnt.
type collected struct {
	sorter   *extsort.Sorter
	skipped  []exportapi.Skipped
	docs     int64
	bytes    int64
	newest   time.Time
	counts   map[string]int64  // per kind and per "kind/source" and "ecosystem/<eco>", selected records only
	ignored  int64             // documents read but not selected
	policies []string          // "source/path" of policy snapshots seen
	lines    atomic.Int64      // data lines emitted (the write phase's total)
	skip     *skipperCounter   // documents known unchanged (Extension.Begin), or nil
	stats    bool              // record file status for the stat cache (nsStat)
	start    time.Time         // when reading began (racy stat entries are left out)
	statOut  *statcache.Writer // where the merge writes the nsStat entries
	unread   atomic.Int64      // documents taken as unchanged from their status
	// carry marks the entries of the base's stat cache (carryFrom) of
	// documents taken as unchanged: the merge copies them into this run's
	// cache between the entries of the documents read (flushCarry).
	carryFrom *statcache.Cache
	carry     []atomic.Uint64
	carryPos  int
	// docsFrom is the base's document list: the documents taken as
	// unchanged from their status are not sorted (nsDoc) but taken from it
	// in the merge (carriedDocs). docsOut is this run's.
	docsFrom *statcache.DocList
	docsOut  *statcache.DocListWriter
	addErr   atomic.Pointer[error] // the first failure to sort a document taken as unchanged
}

type progressFn func(phase string, done, total, bytes int64)

// key builds a NUL-separated sort key in a slice of its own (appendKey
// writes the format).
func key(ns byte, parts ...string) []byte {
	if len(parts) == 0 {
		return []byte{ns}
	}
	n := 1
	for _, p := range parts {
		n += len(p) + 1
	}
	return appendKey(make([]byte, 0, n+4), ns, parts[0], "", parts[1:]...)
}

// appendKey appends to dst the key ns prefix+first 0 rest[0] 0 … (what
// key(ns, prefix+first, rest...) builds), without making the key or the
// joined first part (the sorter copies what it is given: a scratch buffer
// is enough).
func appendKey(dst []byte, ns byte, prefix, first string, rest ...string) []byte {
	dst = append(append(append(dst, ns), prefix...), first...)
	for _, p := range rest {
		dst = append(append(dst, 0), p...)
	}
	return dst
}

// appendDataKey appends the key of a data line: stream (prefix+first) 0 id
// 0 source 0 path 0 seq (appendSeq).
func appendDataKey(dst []byte, prefix, first, id, source, path string, i int) []byte {
	dst = appendKey(dst, nsData, prefix, first, id, source, path)
	return appendSeq(append(dst, 0), i)
}

// appendSeq appends the sequence number i of a record in its document:
// eight digits, zero-padded (fmt's %08d).
func appendSeq(dst []byte, i int) []byte {
	if i < 0 || i >= 1e8 {
		return fmt.Appendf(dst, "%08d", i)
	}
	var b [8]byte
	for j := 7; j >= 0; j-- {
		b[j] = '0' + byte(i%10)
		i /= 10
	}
	return append(dst, b[:]...)
}

// keyFields splits a key into its NUL-separated fields without copying;
// the slices alias k. Keys have at most len(f) fields.
func keyFields(k []byte, f *[5][]byte) int {
	rest := k[1:]
	n := 0
	for n < len(f) {
		i := bytes.IndexByte(rest, 0)
		if i < 0 || n == len(f)-1 {
			f[n] = rest
			return n + 1
		}
		f[n] = rest[:i]
		rest = rest[i+1:]
		n++
	}
	return n
}

// docJob is one document handed to a parser.
type docJob struct {
	doc record.Document
	err error
}

// collect reads every source, parses and selects documents, and feeds the
// sorter. With emit=false (plan) only counts are kept.
func (e *Engine) collect(ctx context.Context, run exportapi.Run, spec exportapi.ProfileSpec, sorter *extsort.Sorter,
	progress progressFn) (*collected, error) {
	sel := newSelection(spec, run.Selectors)
	c := &collected{sorter: sorter, counts: map[string]int64{}, skip: skipperFrom(ctx), start: time.Now()}
	var unchanged func(q *evidence.UnchangedBatch)
	if sc := statCacheFrom(ctx); sc != nil && sorter != nil {
		c.stats = sc.record
		if sc.base != nil && c.skip != nil {
			c.carryFrom = sc.base
			c.carry = make([]atomic.Uint64, (sc.base.Len()+63)/64)
			c.docsFrom = sc.docs
			prefetch, _ := c.skip.s.(DocPrefetcher)
			unchanged = func(q *evidence.UnchangedBatch) {
				keys := make([]statcache.Key, len(q.Paths))
				for i, p := range q.Paths {
					if q.Has[i] {
						keys[i] = statcache.KeyOf(q.Source, p)
					}
				}
				// The look-ups land at random in the base's caches (keys
				// are hashes): touch them all first, so that the processor
				// overlaps the cache and TLB misses of the batch instead of
				// taking them one after another.
				sc.base.Prefetch(keys)
				if prefetch != nil {
					prefetch.PrefetchDocs(keys)
				}
				// Look up the batch, then build the digests of the entries
				// found ("sha256:<hex>" each) in one string.
				const dlen = len("sha256:") + 64
				sums := make([]*[32]byte, len(q.Paths))
				idxs := make([]int, len(q.Paths))
				digests := make([]byte, dlen*len(q.Paths))
				for i := range q.Paths {
					if !q.Has[i] {
						continue
					}
					sum, idx, ok := sc.base.LookupSum(keys[i], q.Stats[i])
					if !ok {
						continue
					}
					sums[i], idxs[i] = sum, idx
					d := digests[i*dlen : (i+1)*dlen]
					copy(d, "sha256:")
					hex.Encode(d[7:], sum[:])
				}
				all := string(digests)
				for i, p := range q.Paths {
					if sums[i] == nil {
						continue
					}
					k, d, idx := keys[i], all[i*dlen:(i+1)*dlen], idxs[i]
					if !c.skip.skip(DocRef{Source: q.Source, Path: p, Digest: d, Key: k, Sum: sums[i]}) {
						continue
					}
					c.carry[idx/64].Or(1 << (idx % 64)) // its entries go into this run's cache and list as they are
					if c.docsFrom == nil {
						// No list to take it from in the merge: sort it.
						if err := c.sorter.Add(key(nsDoc, q.Source, p), append(k[:], d...)); err != nil {
							c.addErr.CompareAndSwap(nil, &err)
						}
					}
					q.Digests[i] = d
				}
			}
		}
	}
	// The progress total is counted beside the read (a second listing of
	// the folders); until it is known, progress shows no total. A run that
	// knows most documents from their status does little more per document
	// than that listing, so it goes without the total.
	var total atomic.Int64
	countCtx, stopCount := context.WithCancel(ctx)
	defer stopCount()
	if unchanged == nil {
		go func() {
			var n int64
			for _, s := range run.Sources {
				n += countCandidates(countCtx, s.Path)
			}
			total.Store(n)
		}()
	}
	workers := e.cfg.Workers
	if workers <= 0 {
		// Twice the cores: the walker blocks in file reads, so extra
		// parsers keep the CPUs busy. Output does not depend on it.
		workers = 2 * runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan docJob, workers*4)
	var mu sync.Mutex
	var done, nbytes atomic.Int64
	var newest atomic.Int64
	fail := func(err error) { cancel(err) }
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if ctx.Err() != nil {
					continue
				}
				if err := e.handleDoc(j, run, sel, c, &mu, &newest); err != nil {
					fail(err)
				}
				d := done.Add(1)
				nbytes.Add(int64(len(j.doc.Raw)))
				evidence.Release(j.doc.Raw) // copied into the sorter; nothing aliases it now
				if progress != nil && d%64 == 0 {
					progress("read", d, total.Load(), nbytes.Load())
				}
			}
		}()
	}
	var walkErr error
	for _, s := range run.Sources {
		src := evidence.Source{Name: s.Name, Path: s.Path, Exclude: e.excludeOf(s.Name)}
		walkErr = evidence.Walk(ctx, src, evidence.Options{MaxDocumentBytes: e.cfg.MaxDocumentBytes, Readers: workers, Unchanged: unchanged}, func(doc record.Document, err error) error {
			if doc.Unchanged && err == nil {
				// Unchanged since the base (its status said so): the skipper
				// has counted it, and its source-digest line is sorted or
				// carried already. Nothing for a parser to do.
				c.unread.Add(1)
				if d := done.Add(1); progress != nil && d%64 == 0 {
					progress("read", d, total.Load(), nbytes.Load())
				}
				return nil
			}
			select {
			case jobs <- docJob{doc: doc, err: err}:
				return nil
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		})
		if walkErr != nil {
			break
		}
	}
	close(jobs)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	if walkErr != nil {
		return nil, walkErr
	}
	if err := c.addErr.Load(); err != nil {
		return nil, *err
	}
	c.docs = done.Load()
	c.bytes = nbytes.Load()
	if n := newest.Load(); n != 0 {
		c.newest = time.Unix(0, n).UTC()
	}
	if progress != nil {
		progress("read", c.docs, c.docs, c.bytes)
	}
	sort.Slice(c.skipped, func(i, j int) bool {
		a, b := c.skipped[i], c.skipped[j]
		if a.Source != b.Source {
			return a.Source < b.Source
		}
		return a.Path < b.Path
	})
	sort.Strings(c.policies)
	return c, nil
}

func (e *Engine) excludeOf(name string) []string {
	for _, s := range e.cfg.Sources {
		if s.Name == name {
			return s.Exclude
		}
	}
	return nil
}

// docError turns a document problem into a run failure, or a skipped[] entry.
func docError(run exportapi.Run, c *collected, mu *sync.Mutex, doc record.Document, err error) error {
	reason := err.Error()
	var de *evidence.DocError
	if ok := asDocErr(err, &de); ok {
		reason = de.Reason
		if !run.SkipInvalid {
			return de.AsXerr()
		}
	} else if !run.SkipInvalid {
		return xerr.Wrap(xerr.InvalidInput, err, "source %q: %s", doc.Source, doc.Path).
			WithHint("fix or remove the document, or rerun with --skip-invalid to list it in skipped[]")
	}
	mu.Lock()
	c.skipped = append(c.skipped, exportapi.Skipped{Source: doc.Source, Path: doc.Path, Digest: doc.Digest, Reason: reason})
	mu.Unlock()
	return nil
}

func (e *Engine) handleDoc(j docJob, run exportapi.Run, sel selection, c *collected, mu *sync.Mutex, newest *atomic.Int64) error {
	doc := j.doc
	if j.err != nil {
		return docError(run, c, mu, doc, j.err)
	}
	var ref DocRef
	if c.skip != nil || c.stats {
		ref = DocRef{Source: doc.Source, Path: doc.Path, Digest: doc.Digest, Key: statcache.KeyOf(doc.Source, doc.Path)}
	}
	// Every readable document counts towards its source's digest (with
	// its key, for this run's document list, when it records one).
	if c.sorter != nil {
		ks := keyScratch.Get().(*pairScratch)
		defer keyScratch.Put(ks)
		ks.k = appendKey(ks.k[:0], nsDoc, doc.Source, "", doc.Path)
		ks.v = ks.v[:0]
		if c.stats {
			ks.v = append(ks.v, ref.Key[:]...)
		}
		ks.v = append(ks.v, doc.Digest...)
		if err := c.sorter.Add(ks.k, ks.v); err != nil {
			return err
		}
		if c.stats && doc.HasStat && !statcache.Racy(doc.Stat, c.start) {
			rec, err := statcache.Record(doc.Stat, doc.Digest)
			if err != nil {
				return err
			}
			ks.k = append(append(ks.k[:0], nsStat), ref.Key[:]...)
			if err := c.sorter.Add(ks.k, rec); err != nil {
				return err
			}
		}
	}
	if c.skip.skip(ref) {
		return nil // known unchanged (delta base): not parsed, not re-exported
	}
	p, err := evidence.Parse(doc)
	if err != nil {
		return docError(run, c, mu, doc, err)
	}
	if !sel.keep(p) {
		mu.Lock()
		c.ignored++
		mu.Unlock()
		return nil
	}
	if !p.Modified.IsZero() {
		n := p.Modified.UnixNano()
		for {
			old := newest.Load()
			if n <= old || newest.CompareAndSwap(old, n) {
				break
			}
		}
	}
	mu.Lock()
	c.counts[string(p.Kind)]++
	c.counts[string(p.Kind)+"/"+doc.Source]++
	for _, eco := range p.Ecosystems {
		c.counts["ecosystem/"+eco]++
	}
	if p.Kind == record.KindVEX {
		c.counts["vex-statements"] += int64(len(p.Statements))
	}
	if p.Kind == record.KindFindings {
		c.counts["finding-lines"] += int64(len(p.Lines))
	}
	if p.Kind == record.KindPolicy {
		c.policies = append(c.policies, doc.Source+"/"+doc.Path)
	}
	mu.Unlock()
	if c.sorter == nil {
		return nil
	}
	return emit(c.sorter, &c.lines, doc, p)
}

// flushCarry writes the carried base entries whose keys sort before upTo
// (all of them when upTo is nil) into this run's stat cache.
func (c *collected) flushCarry(upTo []byte) error {
	if c.carryFrom == nil || c.statOut == nil {
		return nil
	}
	for n := c.carryFrom.Len(); c.carryPos < n; c.carryPos++ {
		i := c.carryPos
		if c.carry[i/64].Load()&(1<<(i%64)) == 0 {
			continue
		}
		k, rec := c.carryFrom.Entry(i)
		if upTo != nil && bytes.Compare(k, upTo) >= 0 {
			return nil
		}
		if c.statOut.Add(k, rec) != nil {
			return nil // a cache: the writer keeps the failure for its Close
		}
	}
	return nil
}

// scratch buffers for the lines emit builds (the sorter copies them).
var scratch = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// pairScratch holds the key (and a small value) of a pair being built.
type pairScratch struct{ k, v []byte }

var keyScratch = sync.Pool{New: func() any { return &pairScratch{k: make([]byte, 0, 256), v: make([]byte, 0, 128)} }}

// appendRawLine appends the rawLine of a document, as canon.Fast writes it
// with Document as a string (a test checks), without reflection or a copy of
// the document.
func appendRawLine(dst []byte, l *rawLine) []byte {
	dst = canon.AppendString(append(dst, `{"contentType":`...), l.ContentType)
	dst = canon.AppendString(append(dst, `,"digest":`...), l.Digest)
	dst = canon.AppendString(append(dst, `,"document":`...), l.Document)
	dst = canon.AppendString(append(dst, `,"format":`...), l.Format)
	dst = canon.AppendString(append(dst, `,"id":`...), l.ID)
	dst = canon.AppendString(append(dst, `,"kind":`...), l.Kind)
	dst = canon.AppendString(append(dst, `,"path":`...), l.Path)
	dst = canon.AppendString(append(dst, `,"source":`...), l.Source)
	return append(dst, '}')
}

// emit adds a selected document's pairs to the sorter.
func emit(s *extsort.Sorter, lines *atomic.Int64, doc record.Document, p *record.Parsed) error {
	bp := scratch.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 1<<20 { // do not keep a huge document's buffer
			scratch.Put(bp)
		}
	}()
	ks := keyScratch.Get().(*pairScratch)
	defer keyScratch.Put(ks)
	add := func(k []byte, v []byte) error {
		if k[0] == nsData {
			lines.Add(1)
		}
		return s.Add(k, v)
	}
	// idKey is the key of a record's id pair (kind 0 id 0 source 0 path),
	// dataKey that of one of its lines; both reuse ks.k.
	idKey := func(kind, id string) []byte {
		ks.k = appendKey(ks.k[:0], nsID, kind, "", id, doc.Source, doc.Path)
		return ks.k
	}
	dataKey := func(prefix, first, id string, i int) []byte {
		ks.k = appendDataKey(ks.k[:0], prefix, first, id, doc.Source, doc.Path, i)
		return ks.k
	}
	mod := func(t time.Time) []byte {
		ks.v = append(ks.v[:0], make([]byte, 8)...)
		if !t.IsZero() {
			binary.BigEndian.PutUint64(ks.v, uint64(t.UnixNano()))
		}
		return ks.v
	}
	contentType := "application/json"
	if strings.HasSuffix(p.Format, "yaml") {
		contentType = "application/yaml"
	}
	raw := func() []byte {
		*bp = appendRawLine((*bp)[:0], &rawLine{ContentType: contentType, Digest: doc.Digest, Document: doc.Raw,
			Format: p.Format, ID: p.ID, Kind: string(p.Kind), Path: doc.Path, Source: doc.Source})
		return *bp
	}
	switch p.Kind {
	case record.KindAdvisory:
		if err := add(idKey(string(p.Kind), p.ID), mod(p.Modified)); err != nil {
			return err
		}
		if err := add(dataKey("raw/advisories/", doc.Source, p.ID, 0), raw()); err != nil {
			return err
		}
		*bp = canon.AppendAdvisory((*bp)[:0], p.Advisory)
		return add(dataKey("normalized/advisories/", doc.Source, p.ID, 0), *bp)
	case record.KindVEX:
		if err := add(idKey(string(p.Kind), p.ID), mod(p.Modified)); err != nil {
			return err
		}
		if err := add(dataKey("raw/vex/", doc.Source, p.ID, 0), raw()); err != nil {
			return err
		}
		for i := range p.Statements {
			*bp = canon.AppendVEXStatement((*bp)[:0], &p.Statements[i])
			if err := add(dataKey("normalized/vex/", doc.Source, p.Statements[i].ID, i), *bp); err != nil {
				return err
			}
		}
		return nil
	case record.KindSBOM:
		if err := add(idKey(string(p.Kind), p.ID), mod(p.Modified)); err != nil {
			return err
		}
		return add(dataKey("raw/sboms/", sbomFolder(p.Subject, doc.Digest), p.ID, 0), doc.Raw)
	case record.KindPolicy:
		if err := add(idKey(string(p.Kind), p.ID), mod(p.Modified)); err != nil {
			return err
		}
		return add(dataKey("policy/snapshot", "", p.ID, 0), doc.Raw)
	case record.KindFindings:
		for i, l := range p.Lines {
			if err := add(idKey(string(p.Kind), l.ID), mod(time.Time{})); err != nil {
				return err
			}
			if err := add(dataKey("policy/evaluations", "", l.ID, i), l.Raw); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("internal: unknown record kind %q", p.Kind)
}

// sbomFolder names an SBOM's folder: a slug of its subject plus a digest
// prefix, so that two SBOMs of one subject never collide.
func sbomFolder(subject, digest string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(subject) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
		if b.Len() >= 80 {
			break
		}
	}
	s := strings.Trim(b.String(), "-.")
	if s == "" {
		s = "sbom"
	}
	return s + "-" + strings.TrimPrefix(digest, "sha256:")[:12]
}

// countCandidates counts the candidate documents of a directory source, for
// progress totals; archives count as unknown (0).
// Folders are read in chunks and not sorted (the count does not depend on
// the order), and hidden folders are passed over as the walk passes them.
func countCandidates(ctx context.Context, root string) int64 {
	var n int64
	var count func(dir string)
	count = func(dir string) {
		f, err := os.Open(dir)
		if err != nil {
			return
		}
		defer f.Close()
		for ctx.Err() == nil {
			ents, err := f.ReadDir(1024)
			for _, e := range ents {
				switch name := e.Name(); {
				case e.IsDir():
					if name[0] != '.' {
						count(filepath.Join(dir, name))
					}
				case e.Type().IsRegular() && evidence.IsCandidate(name):
					n++
				}
			}
			if err != nil {
				return
			}
		}
	}
	if st, err := os.Stat(root); err == nil && st.IsDir() {
		count(root)
	}
	return n
}

// carriedDocs yields, in order, the documents of the base's document list
// that this run took as unchanged from their status (their stat cache
// entries are marked carried). A goroutine picks them out of the list
// (a stat cache look-up each) ahead of the merge that consumes them.
type carriedDocs struct {
	c       *collected
	batches chan []carriedDoc
	errc    chan error
	stop    chan struct{}
	batch   []carriedDoc
	i       int
	cur     *carriedDoc
	n       int64
	digest  [71]byte
}

type carriedDoc struct {
	src, path []byte // alias the mapped list
	sum       *[32]byte
	key       *statcache.Key
}

func newCarriedDocs(c *collected) *carriedDocs {
	d := &carriedDocs{c: c}
	if c.docsFrom == nil {
		return d
	}
	d.batches, d.errc, d.stop = make(chan []carriedDoc, 4), make(chan error, 1), make(chan struct{})
	go d.fill()
	return d
}

func (d *carriedDocs) fill() {
	defer close(d.batches)
	var batch []carriedDoc
	for {
		src, path, sum, k, ok, err := d.c.docsFrom.Next()
		if err != nil || !ok {
			if len(batch) > 0 && err == nil {
				select {
				case d.batches <- batch:
				case <-d.stop:
				}
			}
			d.errc <- err
			return
		}
		if i := d.c.carryFrom.IndexOf(*k); i >= 0 && d.c.carry[i/64].Load()&(1<<(i%64)) != 0 {
			if batch = append(batch, carriedDoc{src, path, sum, k}); len(batch) == 512 {
				select {
				case d.batches <- batch:
				case <-d.stop:
					d.errc <- nil
					return
				}
				batch = nil
			}
		}
	}
}

// next makes cur the next carried document (nil at the end).
func (d *carriedDocs) next() error {
	for d.i >= len(d.batch) {
		b, ok := <-d.batches
		if !ok {
			d.cur, d.batches = nil, nil
			if err := <-d.errc; err != nil {
				return err
			}
			return nil
		}
		d.batch, d.i = b, 0
	}
	d.cur = &d.batch[d.i]
	d.i++
	return nil
}

// close stops the goroutine (if it still runs) and waits for it: the
// documents alias the list, which is unmapped after the merge.
func (d *carriedDocs) close() {
	if d.stop == nil {
		return
	}
	close(d.stop)
	if d.batches != nil {
		for range d.batches {
		}
		<-d.errc
	}
	d.stop = nil
}

// until passes the carried documents before (source, path) — all of the
// rest when source is nil — to add.
func (d *carriedDocs) until(source, path []byte, add func(source, path, digest []byte, sum *[32]byte, k *statcache.Key) error) error {
	if d.c.docsFrom == nil {
		return nil
	}
	if d.cur == nil {
		if d.batches == nil {
			return nil // ended
		}
		if err := d.next(); err != nil {
			return err
		}
	}
	for d.cur != nil {
		x := d.cur
		if source != nil {
			if c := bytes.Compare(x.src, source); c > 0 || (c == 0 && bytes.Compare(x.path, path) >= 0) {
				return nil
			}
		}
		copy(d.digest[:], "sha256:")
		hex.Encode(d.digest[7:], x.sum[:])
		if err := add(x.src, x.path, d.digest[:], x.sum, x.key); err != nil {
			return err
		}
		d.n++
		if err := d.next(); err != nil {
			return err
		}
	}
	return nil
}

// check makes sure that every document taken as unchanged was found in the
// base's list: a list that does not match its stat cache would otherwise
// leave documents out of the source digests.
func (d *carriedDocs) check() error {
	if d.c.docsFrom == nil {
		return nil
	}
	if want := d.c.unread.Load(); d.n != want {
		return xerr.New(xerr.Internal, "the base run's document list holds %d of the %d documents taken as unchanged from their status", d.n, want).
			WithHint("set ExportCenter.Limits.TrustFileStat to false for this run (every document is read), and report the problem")
	}
	return nil
}
