package mirror

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/stellaops/stella/internal/bundle"
	"github.com/stellaops/stella/internal/canon"
	"github.com/stellaops/stella/internal/engine"
	"github.com/stellaops/stella/internal/mirror"
	"github.com/stellaops/stella/internal/record"
	"github.com/stellaops/stella/internal/statcache"
	"github.com/stellaops/stella/internal/xerr"
	"github.com/stellaops/stella/pkg/exportapi"
)

// runState is what Begin hands the adapter: the run's place in its chain
// and, for a delta, the state of its base.
type runState struct {
	variant  string
	sequence int64
	validity time.Duration
	tmp      string
	budget   int
	base     *baseState // deltas only
	log      *slog.Logger
}

// baseState is the record state after the base bundle: the folded indexes
// of the chain from its last full bundle up to the base, as a mirror
// record state (the base run's own, or one rebuilt from the chain's
// bundles when it has none).
type baseState struct {
	runID          string
	manifest       *exportapi.Manifest
	manifestDigest string
	header         mirror.IndexHeader
	// skip is set when every bundle of the chain was written with this
	// binary's record.LinesVersion: then a document with the same source,
	// path and digest as a base record gives the same record lines and need
	// not be parsed.
	skip  bool
	state *mirror.RecordState
	// seen marks the entries whose documents were found unchanged.
	seen []atomic.Uint64
}

// SkipUnchanged implements engine.DocSkipper: a document that the base
// holds with the same source, path and digest is unchanged.
func (s *runState) SkipUnchanged(doc engine.DocRef) bool {
	b := s.base
	if b == nil || !b.skip {
		return false
	}
	var i int
	if doc.Sum != nil {
		i = b.state.FindSum(doc.Key, doc.Sum)
	} else {
		i = b.state.Find(doc.Key, doc.Digest)
	}
	if i < 0 {
		return false
	}
	b.seen[i/64].Or(1 << (i % 64))
	return true
}

// PrefetchDocs implements engine.DocPrefetcher: the base state's document
// index is where SkipUnchanged looks.
func (s *runState) PrefetchDocs(keys []statcache.Key) {
	if b := s.base; b != nil && b.skip {
		b.state.Prefetch(keys)
	}
}

// Close implements engine.AdapterCloser: it releases the base's state.
func (s *runState) Close() {
	if s.base != nil {
		s.base.state.Close()
	}
}

// isSeen reports whether base entry i's document was found unchanged.
func (b *baseState) isSeen(i int) bool { return b.seen[i/64].Load()&(1<<(i%64)) != 0 }

// nextUnseen returns the first entry in [i, to) whose document was not
// found unchanged, or to.
func (b *baseState) nextUnseen(i, to int) int {
	for i < to {
		w := ^b.seen[i/64].Load() >> (i % 64)
		if w == 0 {
			i = (i/64 + 1) * 64
			continue
		}
		i += bits.TrailingZeros64(w)
		break
	}
	return min(i, to)
}

// begin runs before the evidence is read.
func begin(ctx context.Context, bc engine.BeginContext) (any, error) {
	v, err := Validity(bc.Profile)
	if err != nil {
		return nil, err
	}
	st := &runState{variant: bc.Profile.Spec.Variant, sequence: Sequence(bc.Run), validity: v,
		tmp: filepath.Join(bc.TempDir, "mirror"), budget: bc.SortBudget, log: bc.Log}
	if st.sequence <= 0 {
		return nil, xerr.New(xerr.Internal, "mirror run %s has no sequence (submitted by an older stella?)", bc.Run.ID).
			WithHint("submit the run again")
	}
	if err := os.MkdirAll(st.tmp, 0o700); err != nil {
		return nil, xerr.Wrap(xerr.Internal, err, "mirror scratch")
	}
	if st.variant != "delta" {
		return st, nil
	}
	b, err := loadBase(ctx, bc, st.tmp)
	if err != nil {
		return nil, err
	}
	if b.manifest.Sequence+1 != st.sequence {
		return nil, xerr.New(xerr.BaseMissing, "base %s has sequence %d, but this run was submitted as sequence %d", b.runID, b.manifest.Sequence, st.sequence).
			WithHint("submit the delta again")
	}
	st.base = b
	return st, nil
}

// loadBase opens the record state after the base: the base run's mirror
// state, or, when it has none (or a damaged one), the state rebuilt from
// the indexes of every bundle from the chain's last full bundle up to the
// base, with the chain links checked. Either way the base bundle itself is
// checked against the ledger's sha256 and its export.json read.
func loadBase(ctx context.Context, bc engine.BeginContext, tmp string) (*baseState, error) {
	baseRun, err := bc.Ledger.Run(ctx, bc.Run.BaseRunID)
	if err != nil {
		if xerr.Is(err, xerr.RunNotFound) {
			return nil, baseMissing("base run %s is no longer in the ledger", bc.Run.BaseRunID)
		}
		return nil, err
	}
	art, err := bundleArtifact(baseRun)
	if err != nil {
		return nil, err
	}
	// The base bundle's manifest and digest are read (hashing the whole
	// archive: 25-30 ms at 200,000 records) while the record state is
	// opened (about as long): both are needed, and neither needs the other.
	type bundleRead struct {
		m   *exportapi.Manifest
		raw []byte
		err error
	}
	brc := make(chan bundleRead, 1)
	go func() {
		m, raw, err := readBaseBundle(baseRun, "")
		brc <- bundleRead{m, raw, err}
	}()
	st, err := mirror.OpenRecordState(filepath.Join(filepath.Dir(art.Path), mirror.RecordStateFile))
	if err == nil && st != nil && st.Header().RunID != baseRun.ID {
		st.Close()
		err = fmt.Errorf("it belongs to run %s", st.Header().RunID)
	}
	br := <-brc
	var bs *baseState
	if err == nil && st != nil {
		m, raw, err := br.m, br.raw, br.err
		if err != nil {
			st.Close()
			return nil, err
		}
		h := st.Header()
		bs = &baseState{runID: baseRun.ID, manifest: m, manifestDigest: digestOf(raw), header: h.Index,
			skip: h.ChainVersion == record.LinesVersion, state: st}
	} else {
		if err != nil {
			bc.Log.Warn("mirror.base_state_unreadable", "runId", bc.Run.ID, "base", baseRun.ID, "err", err.Error())
		}
		if bs, err = rebuildBase(ctx, bc, baseRun, tmp); err != nil {
			return nil, err
		}
	}
	bs.seen = make([]atomic.Uint64, (bs.state.Len()+63)/64)
	// A delta must select what its base selected, or its lists would be
	// differences of selection rather than of evidence.
	want := slices.Clone(bc.Profile.Spec.Include)
	sort.Strings(want)
	have := slices.Clone(bs.header.Include)
	sort.Strings(have)
	if !slices.Equal(want, have) {
		bs.state.Close()
		return nil, xerr.New(xerr.InvalidInput, "this delta includes %v but its base chain includes %v", want, have).
			WithHint("use a delta profile with the same include list as the chain's full profile, or start a new chain with mirror:full")
	}
	a, _ := canon.Marshal(bs.manifest.Selectors)
	b, _ := canon.Marshal(bc.Run.Selectors)
	if !bytes.Equal(a, b) {
		bs.state.Close()
		return nil, xerr.New(xerr.InvalidInput, "this delta's selectors %s differ from its base's %s", b, a).
			WithHint("use the same --selector values as the chain's full run, or start a new chain with mirror:full")
	}
	return bs, nil
}

// rebuildBase reads the indexes of every bundle from the chain's last full
// bundle up to the base, checks the chain links, and folds them into a
// record state in tmp.
func rebuildBase(ctx context.Context, bc engine.BeginContext, baseRun exportapi.Run, tmp string) (*baseState, error) {
	runs, err := chainRuns(ctx, bc.Ledger, baseRun)
	if err != nil {
		return nil, err
	}
	var (
		dirs      []string
		manifests []*exportapi.Manifest
		digests   []string
	)
	// Bundles name the stella version that wrote them, not its record
	// lines version: a chain written wholly by this binary's version is of
	// its lines; any other is taken as of unknown lines.
	sameBinary := true
	for i, r := range runs {
		dir := filepath.Join(tmp, fmt.Sprintf("base-%d", i))
		m, raw, err := readBaseBundle(r, dir)
		if err != nil {
			return nil, err
		}
		d := digestOf(raw)
		if i == 0 && (m.Profile.Variant != "full" || m.Delta != nil) {
			return nil, baseMissing("the chain of %s does not start with a full bundle (run %s is %s)", baseRun.ID, r.ID, m.Profile.Variant)
		}
		if i > 0 {
			if m.Delta == nil || m.Delta.BaseManifestDigest != digests[i-1] || m.Sequence != manifests[i-1].Sequence+1 {
				return nil, baseMissing("the mirror chain is broken at run %s: its base is not run %s (sequence/baseManifestDigest differ)", r.ID, runs[i-1].ID)
			}
		}
		sameBinary = sameBinary && m.Version == bc.Version
		dirs, manifests, digests = append(dirs, dir), append(manifests, m), append(digests, d)
	}
	h, err := mirror.ReadHeader(filepath.Join(dirs[0], filepath.FromSlash(mirror.IndexPath("advisories"))))
	if err != nil {
		return nil, baseMissing("base bundle of run %s has no readable advisories index: %v", runs[0].ID, err)
	}
	cur := dirs[0]
	for i := 1; i < len(dirs); i++ {
		removed, err := removedSet(dirs[i])
		if err != nil {
			return nil, baseMissing("bundle of run %s: %v", runs[i].ID, err)
		}
		out := filepath.Join(tmp, fmt.Sprintf("fold-%d", i))
		if err := mirror.FoldDir(out, cur, dirs[i], removed, h); err != nil {
			return nil, baseMissing("folding the chain at run %s: %v", runs[i].ID, err)
		}
		cur = out
	}
	h.Index = ""
	chainLines := ""
	if sameBinary {
		chainLines = record.LinesVersion
	}
	path := filepath.Join(tmp, "base"+mirror.RecordStateFile)
	w, err := mirror.CreateRecordState(path, filepath.Join(tmp, "base-state"), bc.SortBudget/4,
		mirror.RecordStateHeader{RunID: baseRun.ID, Index: h, ChainVersion: chainLines}, nil)
	if err != nil {
		return nil, xerr.Wrap(xerr.Internal, err, "mirror base state")
	}
	it := mirror.OpenIndexes(cur)
	defer it.Close()
	for {
		e, ok, err := it.Next()
		if err != nil {
			w.Abort()
			return nil, baseMissing("base state: %v", err)
		}
		if !ok {
			break
		}
		if err := w.Add(e); err != nil {
			w.Abort()
			return nil, baseMissing("base state: %v", err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, xerr.Wrap(xerr.Internal, err, "mirror base state")
	}
	st, err := mirror.OpenRecordState(path)
	if err != nil || st == nil {
		return nil, xerr.Wrap(xerr.Internal, err, "mirror base state")
	}
	last := len(runs) - 1
	return &baseState{runID: baseRun.ID, manifest: manifests[last], manifestDigest: digests[last], header: h,
		skip: sameBinary, state: st}, nil
}

func removedSet(dir string) (map[string]bool, error) {
	f, err := os.Open(filepath.Join(dir, filepath.FromSlash(mirror.TombstonesPath)))
	if err != nil {
		return nil, fmt.Errorf("tombstones: %w", err)
	}
	defer f.Close()
	ts, err := mirror.ReadTombstones(f)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, t := range ts {
		if t.Reason == mirror.ReasonRemoved {
			out[t.Kind+":"+t.ID] = true
		}
	}
	return out, nil
}

// readBaseBundle reads export.json of a run's bundle and, when dir is set,
// extracts its indexes and tombstones into dir, checking the archive
// against the ledger's sha256.
func readBaseBundle(r exportapi.Run, dir string) (*exportapi.Manifest, []byte, error) {
	art, err := bundleArtifact(r)
	if err != nil {
		return nil, nil, err
	}
	f, err := os.Open(art.Path)
	if err != nil {
		return nil, nil, baseMissing("the bundle of mirror run %s: %v", r.ID, unwrap(err))
	}
	defer f.Close()
	// The whole archive is hashed beside the walk, which stops after
	// export.json when nothing else is wanted.
	type hashed struct {
		sum string
		err error
	}
	hc := make(chan hashed, 1)
	go func() {
		sum, _, err := bundle.FileSHA256(art.Path)
		hc <- hashed{sum, err}
	}()
	errEnough := errors.New("enough")
	var raw []byte
	_, err = bundle.WalkArchive(f, bundle.ReadLimits{}, func(rel string, size int64, body io.Reader) error {
		switch {
		case rel == "export.json":
			b, err := io.ReadAll(io.LimitReader(body, 64<<20))
			raw = b
			if err == nil && dir == "" {
				return errEnough
			}
			return err
		case dir != "" && strings.HasPrefix(rel, "indexes/"):
			p := filepath.Join(dir, filepath.FromSlash(rel))
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				return err
			}
			out, err := os.Create(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, body)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			return err
		}
		return nil
	})
	if errors.Is(err, errEnough) {
		err = nil
	}
	h := <-hc
	if h.err != nil {
		return nil, nil, baseMissing("the bundle of mirror run %s (%s) cannot be read: %v", r.ID, art.Name, unwrap(h.err))
	}
	if h.sum != art.SHA256 {
		return nil, nil, baseMissing("the bundle of mirror run %s (%s) changed since the run (sha256 %s, the ledger recorded %s)", r.ID, art.Name, h.sum, art.SHA256)
	}
	if err != nil {
		return nil, nil, baseMissing("the bundle of mirror run %s (%s) cannot be read: %v", r.ID, art.Name, err)
	}
	if raw == nil {
		return nil, nil, baseMissing("the bundle of mirror run %s has no export.json", r.ID)
	}
	m, err := bundle.ParseManifest(raw)
	if err != nil {
		return nil, nil, baseMissing("the bundle of mirror run %s: export.json: %v", r.ID, err)
	}
	if m.Profile.Kind != "mirror" {
		return nil, nil, baseMissing("run %s's bundle is a %s bundle, not a mirror", r.ID, m.Profile.Kind)
	}
	return m, raw, nil
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}
