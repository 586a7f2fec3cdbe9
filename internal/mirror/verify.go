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
	"sync"
	"time"

	"filippo.io/age"

	"github.com/stellaops/stella/internal/bundle"
	"github.com/stellaops/stella/internal/crypt"
	"github.com/stellaops/stella/pkg/exportapi"
)

// VerifyOptions control Verify.
type VerifyOptions struct {
	Now        time.Time // expiry is checked against it (zero: not checked)
	Identities []age.Identity
	Limits     bundle.ReadLimits
}

// Verify checks a mirror bundle (archive or directory) fully offline: the
// common checks of bundle.Verify (archive safety, every digest, unlisted
// entries, rerun hash, export id, manifest summary, expiry) and the mirror
// rules: kind and sequence, the delta chain fields, tombstones for every
// removal, indexes (sorted, files listed, a delta's indexes naming exactly
// its added and changed records), encryption metadata, and with identities
// the plaintext digest of every encrypted file. It reads the bundle once
// (twice with identities, to decrypt).
func Verify(p string, opt VerifyOptions) *bundle.Report {
	ic := newIndexCheck()
	rep := bundle.Verify(p, bundle.VerifyOptions{Limits: opt.Limits, Now: opt.Now,
		KeepMeta: func(rel string) bool { return rel == TombstonesPath || rel == "README.md" },
		Tap:      ic.tap})
	if rep.Manifest == nil {
		return rep.Finish()
	}
	checkMirror(rep, ic, opt)
	if m := rep.Manifest; m.Encryption != nil && len(opt.Identities) > 0 && rep.OK {
		checkDecrypt(rep, p, opt)
	}
	return rep.Finish()
}

// indexCheck reads the index files as Verify streams them.
type indexCheck struct {
	mu       sync.Mutex
	manifest *exportapi.Manifest
	errs     []string
	files    map[string]bool  // files the entries refer to
	ids      map[string]bool  // kind:id of every entry (deltas; fulls when read before export.json)
	counts   map[string]int64 // entries per index
	headers  map[string]IndexHeader
	present  map[string]bool
	raw      []byte // export.json
}

func newIndexCheck() *indexCheck {
	return &indexCheck{files: map[string]bool{}, ids: map[string]bool{}, counts: map[string]int64{},
		headers: map[string]IndexHeader{}, present: map[string]bool{}}
}

type tapWriter struct {
	pw   *io.PipeWriter
	done chan struct{}
}

func (t *tapWriter) Write(p []byte) (int, error) { return t.pw.Write(p) }
func (t *tapWriter) Close() error {
	t.pw.Close()
	<-t.done
	return nil
}

func (ic *indexCheck) tap(rel string) io.WriteCloser {
	if rel == "export.json" {
		return &bufTap{ic: ic}
	}
	name, ok := strings.CutSuffix(strings.TrimPrefix(rel, "indexes/"), ".index.json")
	if !ok || !strings.HasPrefix(rel, "indexes/") || !slices.Contains(IndexNames, name) {
		return nil
	}
	pr, pw := io.Pipe()
	t := &tapWriter{pw: pw, done: make(chan struct{})}
	ic.present[name] = true
	go func() {
		defer close(t.done)
		err := ic.readIndex(name, pr)
		if err != nil {
			ic.fail("%s: %v", rel, err)
		}
		io.Copy(io.Discard, pr)
	}()
	return t
}

type bufTap struct {
	ic  *indexCheck
	buf bytes.Buffer
}

func (b *bufTap) Write(p []byte) (int, error) {
	if b.buf.Len() < 64<<20 {
		b.buf.Write(p)
	}
	return len(p), nil
}

func (b *bufTap) Close() error {
	b.ic.mu.Lock()
	defer b.ic.mu.Unlock()
	b.ic.raw = bytes.Clone(b.buf.Bytes())
	if m, err := bundle.ParseManifest(b.ic.raw); err == nil {
		b.ic.manifest = m
	}
	return nil
}

func (ic *indexCheck) fail(format string, args ...any) {
	ic.mu.Lock()
	ic.errs = append(ic.errs, fmt.Sprintf(format, args...))
	ic.mu.Unlock()
}

const maxCollectedIDs = 5_000_000

func (ic *indexCheck) readIndex(name string, r io.Reader) error {
	ir, err := OpenIndex(r)
	if err != nil {
		return err
	}
	if ir.Header.Index != name {
		return fmt.Errorf("header names index %q", ir.Header.Index)
	}
	ic.mu.Lock()
	ic.headers[name] = ir.Header
	collect := ic.manifest == nil || ic.manifest.Delta != nil
	ic.mu.Unlock()
	var n int64
	var file string // the last file recorded (entries of one file come in long runs)
	for {
		e, ok, err := ir.NextView() // nothing of e is kept but copies
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		n++
		if e.File == file && !collect {
			continue
		}
		file = strings.Clone(e.File)
		ic.mu.Lock()
		ic.files[file] = true
		if collect {
			if len(ic.ids) >= maxCollectedIDs {
				ic.mu.Unlock()
				return fmt.Errorf("more than %d entries before export.json", maxCollectedIDs)
			}
			ic.ids[e.Key()] = true
		}
		ic.mu.Unlock()
	}
	ic.mu.Lock()
	ic.counts[name] = n
	ic.mu.Unlock()
	return nil
}

// checkMirror adds the mirror rules to a report.
func checkMirror(rep *bundle.Report, ic *indexCheck, opt VerifyOptions) {
	m := rep.Manifest
	add := func(name string, ok bool, format string, args ...any) {
		rep.Add(bundle.Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
	}
	if m.Profile.Kind != "mirror" || (m.Profile.Variant != "full" && m.Profile.Variant != "delta") {
		add("mirror-kind", false, "a %s:%s bundle, not a mirror", m.Profile.Kind, m.Profile.Variant)
		return
	}
	add("mirror-kind", true, "mirror:%s, sequence %d", m.Profile.Variant, m.Sequence)
	if probs := ChainProblems(m); len(probs) > 0 {
		add("mirror-chain", false, "%s", strings.Join(probs, "; "))
	} else if m.Delta != nil {
		add("mirror-chain", true, "sequence %d on base %s (export.json %s): %d added, %d changed, %d removed",
			m.Sequence, m.Delta.BaseExportID, m.Delta.BaseManifestDigest, len(m.Delta.Added), len(m.Delta.Changed), len(m.Delta.Removed))
	} else {
		add("mirror-chain", true, "full bundle, sequence %d", m.Sequence)
	}
	if exp, err := time.Parse(time.RFC3339, m.Expires); err != nil {
		add("mirror-expiry", false, "expires %q is missing or not RFC 3339; mirror bundles must carry one", m.Expires)
	} else if gen, _ := time.Parse(time.RFC3339, m.GeneratedAt); !exp.After(gen) {
		add("mirror-expiry", false, "expires %s is not after generatedAt %s", m.Expires, m.GeneratedAt)
	} else {
		add("mirror-expiry", true, "valid %s after generatedAt", exp.Sub(gen))
	}

	// Tombstones.
	if m.Delta != nil {
		raw, ok := rep.Meta[TombstonesPath]
		if !ok {
			add("mirror-tombstones", false, "%s is missing; a delta must list a tombstone for every removed record", TombstonesPath)
		} else if ts, err := ReadTombstones(bytes.NewReader(raw)); err != nil {
			add("mirror-tombstones", false, "%v", err)
		} else if probs := tombstoneProblems(m.Delta, ts); len(probs) > 0 {
			add("mirror-tombstones", false, "%s", strings.Join(probs, "; "))
		} else {
			add("mirror-tombstones", true, "%d tombstones cover the %d removed records", len(ts), len(m.Delta.Removed))
		}
	} else if _, ok := rep.Digests[TombstonesPath]; ok {
		add("mirror-tombstones", false, "a full bundle has no tombstones, but %s is present", TombstonesPath)
	}

	// Indexes (every tap has finished: Verify closed them).
	var probs []string
	probs = append(probs, ic.errs...)
	listed := map[string]bool{}
	for _, c := range m.Contents {
		listed[c.Path] = true
	}
	for _, n := range IndexNames {
		if !ic.present[n] {
			probs = append(probs, IndexPath(n)+" is missing")
		}
	}
	var missing []string
	for f := range ic.files {
		if !listed[f] {
			missing = append(missing, f)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		probs = append(probs, fmt.Sprintf("index entries point at files not in the bundle: %s", strings.Join(missing, ", ")))
	}
	if m.Delta != nil {
		want := map[string]bool{}
		for _, l := range [][]string{m.Delta.Added, m.Delta.Changed} {
			for _, k := range l {
				want[k] = true
			}
		}
		var extra, lack []string
		for k := range ic.ids {
			if !want[k] {
				extra = append(extra, k)
			}
		}
		for k := range want {
			if !ic.ids[k] {
				lack = append(lack, k)
			}
		}
		sort.Strings(extra)
		sort.Strings(lack)
		if len(extra) > 0 {
			probs = append(probs, fmt.Sprintf("index entries not in delta.added/changed: %s", first(extra, 5)))
		}
		if len(lack) > 0 {
			probs = append(probs, fmt.Sprintf("delta.added/changed without an index entry: %s", first(lack, 5)))
		}
	}
	if len(probs) > 0 {
		add("mirror-indexes", false, "%s", strings.Join(probs, "; "))
	} else {
		var parts []string
		for _, n := range IndexNames {
			parts = append(parts, fmt.Sprintf("%s %d", n, ic.counts[n]))
		}
		add("mirror-indexes", true, "%s", strings.Join(parts, ", "))
	}

	// Encryption metadata.
	if enc := m.Encryption; enc != nil {
		var ep []string
		if crypt.CheckMode(enc.Mode) != nil {
			ep = append(ep, fmt.Sprintf("mode %q", enc.Mode))
		}
		if len(enc.Recipients) == 0 || !slices.IsSorted(enc.Recipients) {
			ep = append(ep, "recipients are empty or not sorted")
		}
		if enc.Mode == crypt.ModeAESGCM && len(enc.Keys) != len(enc.Recipients) {
			ep = append(ep, "aes-gcm needs one wrapped key per recipient")
		}
		for _, c := range m.Contents {
			isData := strings.HasPrefix(c.Path, "data/")
			if isData && c.PlainDigest == "" {
				ep = append(ep, c.Path+" has no plainDigest")
			}
			if !isData && c.PlainDigest != "" {
				ep = append(ep, c.Path+" is outside data/ but marked encrypted")
			}
		}
		switch {
		case len(ep) > 0:
			add("mirror-encryption", false, "%s", strings.Join(ep, "; "))
		case len(opt.Identities) == 0:
			add("mirror-encryption", true, "data/ is %s-encrypted to %s (pass --identity to check the plaintext digests)", enc.Mode, strings.Join(enc.Recipients, ", "))
		default:
			add("mirror-encryption", true, "data/ is %s-encrypted to %s", enc.Mode, strings.Join(enc.Recipients, ", "))
		}
	} else {
		for _, c := range m.Contents {
			if c.PlainDigest != "" {
				add("mirror-encryption", false, "%s has a plainDigest but the bundle declares no encryption", c.Path)
				break
			}
		}
	}
}

func first(s []string, n int) string {
	if len(s) <= n {
		return strings.Join(s, ", ")
	}
	return strings.Join(s[:n], ", ") + fmt.Sprintf(" and %d more", len(s)-n)
}

// ChainProblems checks the chain fields of a mirror manifest.
func ChainProblems(m *exportapi.Manifest) []string {
	var probs []string
	if m.Sequence < 1 {
		probs = append(probs, fmt.Sprintf("sequence %d; mirror bundles start at 1", m.Sequence))
	}
	switch m.Profile.Variant {
	case "full":
		if m.Delta != nil {
			probs = append(probs, "a full bundle carries a delta field")
		}
	case "delta":
		d := m.Delta
		if d == nil {
			return append(probs, "a delta bundle without a delta field")
		}
		if m.Sequence < 2 {
			probs = append(probs, fmt.Sprintf("delta sequence %d; a delta follows at least one bundle", m.Sequence))
		}
		if !strings.HasPrefix(d.BaseManifestDigest, "sha256:") || len(d.BaseManifestDigest) != 71 {
			probs = append(probs, fmt.Sprintf("baseManifestDigest %q is not sha256:<hex>", d.BaseManifestDigest))
		}
		if d.BaseExportID == "" {
			probs = append(probs, "baseExportId is empty")
		}
		seen := map[string]string{}
		for _, l := range []struct {
			name string
			ids  []string
		}{{"added", d.Added}, {"changed", d.Changed}, {"removed", d.Removed}} {
			if !slices.IsSorted(l.ids) {
				probs = append(probs, "delta."+l.name+" is not sorted")
			}
			for _, k := range l.ids {
				kind, id, ok := strings.Cut(k, ":")
				if !ok || id == "" || IndexOf(kind) == "" {
					probs = append(probs, fmt.Sprintf("delta.%s: %q is not kind:id", l.name, k))
					continue
				}
				if prev, dup := seen[k]; dup {
					probs = append(probs, fmt.Sprintf("%s is in delta.%s and delta.%s", k, prev, l.name))
				}
				seen[k] = l.name
			}
		}
	}
	return probs
}

func tombstoneProblems(d *exportapi.Delta, ts []Tombstone) []string {
	var probs []string
	removed := map[string]bool{}
	for _, k := range d.Removed {
		removed[k] = true
	}
	kept := map[string]bool{}
	for _, l := range [][]string{d.Added, d.Changed} {
		for _, k := range l {
			kept[k] = true
		}
	}
	have := map[string]bool{}
	for _, t := range ts {
		k := t.Kind + ":" + t.ID
		switch t.Reason {
		case ReasonRemoved:
			if !removed[k] {
				probs = append(probs, fmt.Sprintf("tombstone for %s, which delta.removed does not list", k))
			}
			have[k] = true
		case ReasonWithdrawn:
			if !kept[k] {
				probs = append(probs, fmt.Sprintf("withdrawn tombstone for %s, which the delta does not carry", k))
			}
		}
	}
	var lack []string
	for _, k := range d.Removed {
		if !have[k] {
			lack = append(lack, k)
		}
	}
	if len(lack) > 0 {
		probs = append(probs, fmt.Sprintf("removed without a tombstone: %s", first(lack, 5)))
	}
	return probs
}

// checkDecrypt decrypts every data file and compares its plaintext digest.
func checkDecrypt(rep *bundle.Report, p string, opt VerifyOptions) {
	m := rep.Manifest
	op, err := crypt.NewOpener(m.Encryption, m.ExportID, opt.Identities)
	if err != nil {
		rep.Add(bundle.Check{Name: "mirror-decrypt", OK: false, Detail: err.Error()})
		return
	}
	want := map[string]string{}
	for _, c := range m.Contents {
		if c.PlainDigest != "" {
			want[c.Path] = c.PlainDigest
		}
	}
	var bad []string
	n := 0
	err = bundle.Walk(p, opt.Limits, func(rel string, size int64, r io.Reader) error {
		d, ok := want[rel]
		if !ok {
			return nil
		}
		h := newDigester()
		if err := op.Open(h, r, rel); err != nil {
			bad = append(bad, err.Error())
			return nil
		}
		if got := h.digest(); got != d {
			bad = append(bad, fmt.Sprintf("%s: plaintext %s, export.json says %s", rel, got, d))
		}
		n++
		return nil
	})
	if err != nil {
		bad = append(bad, err.Error())
	}
	if len(bad) > 0 {
		rep.Add(bundle.Check{Name: "mirror-decrypt", OK: false, Detail: first(bad, 3)})
		return
	}
	rep.Add(bundle.Check{Name: "mirror-decrypt", OK: true, Detail: fmt.Sprintf("%d data files decrypt to their plainDigest", n)})
}

// ReadManifestFile reads export.json of an extracted mirror root.
func ReadManifestFile(dir string) (*exportapi.Manifest, []byte, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "export.json"))
	if err != nil {
		return nil, nil, err
	}
	m, err := bundle.ParseManifest(raw)
	return m, raw, err
}
