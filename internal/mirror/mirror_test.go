package mirror_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	mirroradapter "github.com/stellaops/stella/internal/adapter/mirror"
	"github.com/stellaops/stella/internal/bundle"
	"github.com/stellaops/stella/internal/engine"
	"github.com/stellaops/stella/internal/mirror"
	"github.com/stellaops/stella/internal/statcache"
	"github.com/stellaops/stella/internal/xerr"
	"github.com/stellaops/stella/pkg/exportapi"
)

// Round trip on the real two-snapshot data: full(t0) then delta(t0->t1)
// gives the records of full(t1), file by file, record by record, digest by digest.
func TestRoundTripT0T1(t *testing.T) {
	f := getFixture(t)
	target := filepath.Join(t.TempDir(), "mirror")
	applyOK(t, target, mirror.ApplyOptions{}, f.full0)
	sameAsFull(t, target, f.full0)
	res := applyOK(t, target, mirror.ApplyOptions{}, f.delta01)
	if len(res.Applied) != 1 || res.Head.Sequence != 2 {
		t.Fatalf("applied %+v", res)
	}
	sameAsFull(t, target, f.full1)
}

// Two deltas in a row (t0 -> t1 -> t2), in one command and one by one.
func TestTwoDeltas(t *testing.T) {
	f := getFixture(t)
	one := filepath.Join(t.TempDir(), "one")
	// Any argument order: apply orders by sequence.
	res := applyOK(t, one, mirror.ApplyOptions{}, f.delta12, f.full0, f.delta01)
	if len(res.Applied) != 3 || res.Head.Sequence != 3 {
		t.Fatalf("applied %+v", res.Applied)
	}
	sameAsFull(t, one, f.full2)
	each := filepath.Join(t.TempDir(), "each")
	for _, b := range []string{f.full0, f.delta01, f.delta12} {
		applyOK(t, each, mirror.ApplyOptions{}, b)
	}
	sameAsFull(t, each, f.full2)
	st, err := mirror.ReadState(each)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(st.Chain.Applied); n != 3 || st.Chain.Applied[2].BaseManifestDigest != st.Chain.Applied[1].ManifestDigest {
		t.Fatalf("chain %+v", st.Chain.Applied)
	}
	for _, l := range st.Chain.Applied {
		if _, err := os.Stat(filepath.Join(st.Dir(), "bundles", fmt.Sprintf("%06d", l.Sequence), "export.json")); err != nil {
			t.Errorf("bundles/%06d/export.json: %v", l.Sequence, err)
		}
	}
}

// The delta's lists match the upstream change list of the data (the .tsv
// files next to the snapshots), for the OSV sources.
func TestDeltaListsMatchUpstream(t *testing.T) {
	f := getFixture(t)
	m, d0 := manifestOf(t, f.delta01)
	_, full0 := manifestOf(t, f.full0)
	if m.Sequence != 2 || m.Delta == nil || m.Delta.BaseManifestDigest != full0 || m.Expires == "" {
		t.Fatalf("delta manifest: seq %d delta %+v expires %q", m.Sequence, m.Delta, m.Expires)
	}
	_ = d0
	in := func(l []string, k string) bool { _, ok := slices.BinarySearch(l, k); return ok }
	root := extract(t, f.delta01)
	tf, err := os.Open(filepath.Join(root, mirror.TombstonesPath))
	if err != nil {
		t.Fatal(err)
	}
	tombs, err := mirror.ReadTombstones(tf)
	tf.Close()
	if err != nil {
		t.Fatal(err)
	}
	tomb := map[string]string{}
	for _, x := range tombs {
		tomb[x.Kind+":"+x.ID] = x.Reason
	}
	upstream := 0
	for _, src := range []struct{ dir, tsv string }{
		{"drupal", "osv/drupal-advisory-database/delta-t0-t1.tsv"},
		{"alma", "osv/almalinux-osv-database/delta-t0-t1.tsv"},
		{"pypa", "osv/pypa-advisory-database/delta-t0-t1.tsv"},
	} {
		tsv, err := os.ReadFile(repoPath("testdata/evidence/" + src.tsv))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, line := range strings.Split(strings.TrimSpace(string(tsv)), "\n")[1:] {
			fl := strings.Split(line, "\t")
			status, k := fl[0], "advisory:"+fl[1]
			if !strings.HasSuffix(fl[2], ".json") && !strings.HasSuffix(fl[2], ".yaml") {
				continue // not an advisory (the PyPA id allocator)
			}
			n++
			upstream++
			switch status {
			case "added":
				if !in(m.Delta.Added, k) {
					t.Errorf("%s: %s added upstream, not in delta.added", src.dir, k)
				}
			case "modified":
				if !in(m.Delta.Changed, k) {
					t.Errorf("%s: %s modified upstream, not in delta.changed", src.dir, k)
				}
			case "withdrawn":
				if !in(m.Delta.Changed, k) || tomb[k] != mirror.ReasonWithdrawn {
					t.Errorf("%s: %s withdrawn upstream: changed %v, tombstone %q", src.dir, k, in(m.Delta.Changed, k), tomb[k])
				}
			case "removed":
				if !in(m.Delta.Removed, k) || tomb[k] != mirror.ReasonRemoved {
					t.Errorf("%s: %s removed upstream: removed %v, tombstone %q", src.dir, k, in(m.Delta.Removed, k), tomb[k])
				}
			}
		}
		if n == 0 {
			t.Fatalf("%s: empty tsv", src.tsv)
		}
	}
	// Nothing else: every advisory listed is in some upstream change list.
	var adv int
	for _, l := range [][]string{m.Delta.Added, m.Delta.Changed, m.Delta.Removed} {
		for _, k := range l {
			if strings.HasPrefix(k, "advisory:") {
				adv++
			}
		}
	}
	if adv != upstream {
		t.Errorf("the delta lists %d advisories, the upstream change lists %d", adv, upstream)
	}
	// Delta size scales with the change: it carries only changed records.
	rep := mirror.Verify(f.delta01, mirror.VerifyOptions{Now: now()})
	if !rep.OK {
		t.Fatalf("verify delta: %+v", rep.Failed())
	}
}

// Same evidence + base -> byte-identical delta.
func TestDeltaDeterministic(t *testing.T) {
	f := getFixture(t)
	a, _ := os.ReadFile(f.delta01)
	b, _ := os.ReadFile(f.deltaAgain)
	if !bytes.Equal(a, b) || filepath.Base(f.delta01) != filepath.Base(f.deltaAgain) {
		t.Fatalf("two deltas of the same evidence and base differ: %s vs %s", f.delta01, f.deltaAgain)
	}
	if got := filepath.Base(f.delta01); got != "mirror-acme-20260529-delta-2.tar.zst" {
		t.Errorf("archive name %q", got)
	}
	if got := filepath.Base(f.full0); !strings.HasPrefix(got, "mirror-acme-") || !strings.HasSuffix(got, "-full-1.tar.zst") {
		t.Errorf("archive name %q", got)
	}
}

// A delta needs a base whose bundle still exists, unchanged.
func TestDeltaBaseMissing(t *testing.T) {
	f := getFixture(t)
	e, err := newEngine(filepath.Join(t.TempDir(), "d"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = runEngine(e, engine.SubmitRequest{Profile: "mirror:delta", Sources: sources(f.t1), SkipInvalid: true})
	if !xerr.Is(err, xerr.BaseMissing) || !strings.Contains(xerr.As(err).Hint, "mirror:full") {
		t.Fatalf("no base: want ERR_EXPORT_BASE_MISSING with a mirror:full hint, got %v", err)
	}
	full, err := runEngine(e, engine.SubmitRequest{Profile: "mirror:full", Sources: sources(f.t0), SkipInvalid: true})
	if err != nil {
		t.Fatal(err)
	}
	// A changed base bundle is refused at build time.
	p := archiveOf(full)
	orig, _ := os.ReadFile(p)
	bad := bytes.Clone(orig)
	bad[len(bad)/2] ^= 0x40
	os.WriteFile(p, bad, 0o644)
	r, err := runEngine(e, engine.SubmitRequest{Profile: "mirror:delta", Sources: sources(f.t1), SkipInvalid: true})
	if !xerr.Is(err, xerr.BaseMissing) || r.ErrorType != string(xerr.BaseMissing) {
		t.Fatalf("tampered base: got %v (run %s %s)", err, r.State, r.ErrorType)
	}
	// A pruned one at submission.
	os.Remove(p)
	if _, err := runEngine(e, engine.SubmitRequest{Profile: "mirror:delta", Sources: sources(f.t1), SkipInvalid: true}); !xerr.Is(err, xerr.BaseMissing) || !strings.Contains(err.Error(), "gone") {
		t.Fatalf("pruned base: got %v", err)
	}
	if _, err := runEngine(e, engine.SubmitRequest{Profile: "mirror:delta", BaseRunID: "nope", Sources: sources(f.t1)}); !xerr.Is(err, xerr.BaseMissing) {
		t.Fatalf("unknown --base: got %v", err)
	}
}

// A second run of a chain while one is pending or running would take the
// same sequence and fork the chain: it is refused, naming the live run,
// until that one has ended. Other runs are not held.
func TestChainOneRunAtATime(t *testing.T) {
	f := getFixture(t)
	e, err := newEngine(filepath.Join(t.TempDir(), "d"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := runEngine(e, engine.SubmitRequest{Profile: "mirror:full", Sources: sources(f.t0), SkipInvalid: true}); err != nil {
		t.Fatal(err)
	}
	delta := engine.SubmitRequest{Tenant: "acme", Profile: "mirror:delta", Sources: sources(f.t1), SkipInvalid: true}
	live, err := e.Submit(ctx, delta) // submitted, not started
	if err != nil {
		t.Fatal(err)
	}
	for _, profile := range []string{"mirror:delta", "mirror:full"} {
		req := delta
		req.Profile = profile
		_, err := e.Submit(ctx, req)
		if !xerr.Is(err, xerr.InvalidInput) || !strings.Contains(err.Error(), live.ID) || !strings.Contains(err.Error(), "fork") ||
			!strings.Contains(xerr.As(err).Hint, "run cancel "+live.ID) {
			t.Fatalf("%s while %s is pending: %v (hint %q)", profile, live.ID, err, xerr.As(err).Hint)
		}
	}
	if _, err := e.Plan(ctx, delta); err != nil {
		t.Fatalf("plan (it writes nothing) while the chain is busy: %v", err)
	}
	if _, err := runEngine(e, engine.SubmitRequest{Profile: "json:raw", Sources: sources(f.t1), SkipInvalid: true}); err != nil {
		t.Fatalf("a json run while the chain is busy: %v", err)
	}
	if _, err := runEngine(e, engine.SubmitRequest{Tenant: "other", Profile: "mirror:full", Sources: sources(f.t0), SkipInvalid: true}); err != nil {
		t.Fatalf("another tenant's chain: %v", err)
	}
	done, err := e.Execute(ctx, live.ID)
	if err != nil || done.State != exportapi.StateSucceeded {
		t.Fatalf("the pending delta: %v %s", err, done.State)
	}
	next, err := runEngine(e, delta)
	if err != nil || mirroradapter.Sequence(next) != 3 {
		t.Fatalf("the next delta after it: %v (sequence %s)", err, next.Extra["mirror.sequence"])
	}
}

// Submissions at the same moment from several processes (engines on one
// data directory) make one run of a chain, not several with one sequence.
func TestChainSimultaneousSubmissions(t *testing.T) {
	f := getFixture(t)
	dir := filepath.Join(t.TempDir(), "d")
	const n = 4
	var engines [n]*engine.Engine
	for i := range engines {
		e, err := newEngine(dir)
		if err != nil {
			t.Fatal(err)
		}
		engines[i] = e
	}
	start := make(chan struct{})
	errs := make(chan error, n)
	for _, e := range engines {
		go func() {
			<-start
			_, err := e.Submit(context.Background(), engine.SubmitRequest{Tenant: "acme", Profile: "mirror:full", Sources: sources(f.t0), SkipInvalid: true})
			errs <- err
		}()
	}
	close(start)
	made := 0
	for range engines {
		err := <-errs
		switch {
		case err == nil:
			made++
		case !strings.Contains(err.Error(), "fork"):
			t.Fatalf("a refused submission: %v", err)
		}
	}
	if made != 1 {
		t.Fatalf("%d runs of the chain were submitted at once, want 1", made)
	}
}

// A bundle dated by its evidence (no SOURCE_DATE_EPOCH) whose newest record
// is older than the validity would be expired before it is built, and every
// site would refuse it: the build is refused instead, saying what to set.
// A date the user set is honoured (a replay of an old bundle), and a bundle
// that is still valid is built as before.
func TestBornExpired(t *testing.T) {
	f := getFixture(t)
	build := func(now time.Time, sde *time.Time) (exportapi.Run, error) {
		e, err := newEngineWith(filepath.Join(t.TempDir(), "d"), func(c *engine.Config) {
			c.Now = func() time.Time { return now }
			c.SourceDateEpoch = sde
		})
		if err != nil {
			t.Fatal(err)
		}
		return runEngine(e, engine.SubmitRequest{Profile: "mirror:full", Sources: sources(f.t1), SkipInvalid: true})
	}
	late := fixtureDate.Add(31 * 24 * time.Hour)
	r, err := build(late, nil)
	if err == nil {
		t.Fatalf("a bundle born expired was built: %s", archiveOf(r))
	}
	if !xerr.Is(err, xerr.InvalidInput) || !strings.Contains(err.Error(), "expired") || !strings.Contains(xerr.As(err).Hint, "SOURCE_DATE_EPOCH") ||
		!strings.Contains(xerr.As(err).Hint, mirroradapter.LabelValidity) || archiveOf(r) != "" {
		t.Fatalf("a bundle born expired: %v (hint %q, artifacts %v)", err, xerr.As(err).Hint, r.Artifacts)
	}
	if _, err := build(late, &fixtureDate); err != nil {
		t.Fatalf("the same with SOURCE_DATE_EPOCH set: %v", err)
	}
	r, err = build(fixtureDate.Add(24*time.Hour), nil)
	if err != nil {
		t.Fatalf("a bundle still valid: %v", err)
	}
	if m, _ := manifestOf(t, archiveOf(r)); m.GeneratedAt != fixtureDate.Format(time.RFC3339) {
		t.Fatalf("generatedAt %s, want the evidence's newest date %s", m.GeneratedAt, fixtureDate.Format(time.RFC3339))
	}
}

// A delta run without one of its base's sources (left out of the run, or
// its folder empty) would remove every record of that source: it is
// refused, naming the source. Dropping a source on purpose is a full
// bundle, after which deltas go on without it.
func TestDeltaKeepsItsSources(t *testing.T) {
	f := getFixture(t)
	e, err := newEngine(filepath.Join(t.TempDir(), "d"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runEngine(e, engine.SubmitRequest{Profile: "mirror:full", Sources: sources(f.t0), SkipInvalid: true}); err != nil {
		t.Fatal(err)
	}
	without := []string{"alma", "ctrliq", "pypa", "policy", "sbom", "vexhub"} // no drupal
	empty := sources(f.t1)
	for i := range empty {
		if empty[i].Name == "drupal" {
			empty[i].Path = t.TempDir()
		}
	}
	for name, srcs := range map[string][]exportapi.SourceSpec{"left out": sources(f.t1, without...), "empty folder": empty} {
		r, err := runEngine(e, engine.SubmitRequest{Profile: "mirror:delta", Sources: srcs, SkipInvalid: true})
		if !xerr.Is(err, xerr.InvalidInput) || !strings.Contains(err.Error(), `source "drupal"`) || !strings.Contains(err.Error(), "remove all") || archiveOf(r) != "" {
			t.Fatalf("%s: a delta without the drupal source: %v", name, err)
		}
	}
	if _, err := runEngine(e, engine.SubmitRequest{Profile: "mirror:full", Sources: sources(f.t1, without...), SkipInvalid: true}); err != nil {
		t.Fatalf("a full bundle without the source: %v", err)
	}
	if _, err := runEngine(e, engine.SubmitRequest{Profile: "mirror:delta", Sources: sources(f.t1, without...), SkipInvalid: true}); err != nil {
		t.Fatalf("a delta after it: %v", err)
	}
}

// Sequence comes from the chain: a full after a delta continues it.
func TestSequence(t *testing.T) {
	f := getFixture(t)
	m, _ := manifestOf(t, f.delta12)
	if m.Sequence != 3 {
		t.Fatalf("delta t1->t2 sequence %d", m.Sequence)
	}
	e, err := newEngine(filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	var last int64
	for i, p := range []string{"mirror:full", "mirror:delta", "mirror:full"} {
		r, err := runEngine(e, engine.SubmitRequest{Profile: p, Sources: sources(f.t0, "drupal")})
		if err != nil {
			t.Fatal(err)
		}
		m, _ := manifestOf(t, archiveOf(r))
		if m.Sequence != int64(i+1) || m.Sequence <= last {
			t.Fatalf("run %d (%s): sequence %d", i, p, m.Sequence)
		}
		last = m.Sequence
		exp, _ := time.Parse(time.RFC3339, m.Expires)
		gen, _ := time.Parse(time.RFC3339, m.GeneratedAt)
		if exp.Sub(gen) != 30*24*time.Hour {
			t.Errorf("expires %s, generatedAt %s", m.Expires, m.GeneratedAt)
		}
	}
}

func TestApplyIdempotentAndRollback(t *testing.T) {
	f := getFixture(t)
	target := filepath.Join(t.TempDir(), "m")
	applyOK(t, target, mirror.ApplyOptions{}, f.full0, f.delta01)
	before := treeDigests(t, target)
	res := applyOK(t, target, mirror.ApplyOptions{}, f.full0, f.delta01)
	if !res.NoOp || len(res.Applied) != 0 {
		t.Fatalf("second apply: %+v", res)
	}
	res = applyOK(t, target, mirror.ApplyOptions{}, f.delta01)
	if !res.NoOp {
		t.Fatalf("head again: %+v", res)
	}
	sameTree(t, before, treeDigests(t, target))
	// An older bundle is a rollback.
	log, err := applyLog(t, target, mirror.ApplyOptions{}, f.full0)
	if !xerr.Is(err, xerr.Verify) || !strings.Contains(err.Error(), "roll back") || !strings.Contains(log, `"msg":"mirror.delta.apply_failed"`) {
		t.Fatalf("rollback: %v\n%s", err, log)
	}
	sameTree(t, before, treeDigests(t, target))
	res = applyOK(t, target, mirror.ApplyOptions{AllowRollback: true}, f.full0)
	if res.Head.Sequence != 1 {
		t.Fatalf("allowed rollback: %+v", res.Head)
	}
	sameAsFull(t, target, f.full0)
	// And forward again.
	applyOK(t, target, mirror.ApplyOptions{}, f.delta01, f.delta12)
	sameAsFull(t, target, f.full2)
	// A rollback to the state of the generation kept beside the current one
	// for its readers (its folder has the new generation's name).
	two := filepath.Join(t.TempDir(), "two")
	applyOK(t, two, mirror.ApplyOptions{}, f.full0)
	applyOK(t, two, mirror.ApplyOptions{}, f.delta01)
	applyOK(t, two, mirror.ApplyOptions{AllowRollback: true}, f.full0)
	sameAsFull(t, two, f.full0)
	applyOK(t, two, mirror.ApplyOptions{}, f.delta01)
	sameAsFull(t, two, f.full1)
}

// A folder of unrelated files is not a target: apply refuses it, naming a
// file, and leaves it exactly as it was (no lock file either).
func TestApplyRefusesForeignFolder(t *testing.T) {
	f := getFixture(t)
	target := filepath.Join(t.TempDir(), "notes")
	os.MkdirAll(filepath.Join(target, "sub"), 0o755)
	os.WriteFile(filepath.Join(target, "important.txt"), []byte("keep me"), 0o644)
	before := treeDigests(t, target)
	_, err := applyLog(t, target, mirror.ApplyOptions{}, f.full0)
	if !xerr.Is(err, xerr.InvalidInput) || !strings.Contains(err.Error(), "not a stella mirror target") {
		t.Fatalf("apply into a folder of other files: %v", err)
	}
	sameTree(t, before, treeDigests(t, target))
	if ents, _ := os.ReadDir(target); len(ents) != 2 {
		t.Fatalf("the folder holds %d entries after the refusal, want its 2", len(ents))
	}
}

// Every tamper case fails apply and leaves the target untouched.
func TestTamperCases(t *testing.T) {
	f := getFixture(t)
	dir := t.TempDir()
	ents := readEntries(t, f.delta01)
	mk := func(name string, fn func([]tarEntry) []tarEntry) string {
		p := filepath.Join(dir, name+".tar.zst")
		writeEntries(t, p, fn(slices.Clone(ents)))
		return p
	}
	dataEntry := func(es []tarEntry) int {
		for i, e := range es {
			if strings.HasPrefix(e.hdr.Name, "mirror/data/raw/advisories/") && strings.HasSuffix(e.hdr.Name, ".jsonl.zst") {
				return i
			}
		}
		t.Fatal("no data entry")
		return -1
	}
	whole, _ := os.ReadFile(f.delta01)
	truncated := filepath.Join(dir, "truncated.tar.zst")
	os.WriteFile(truncated, whole[:len(whole)*2/3], 0o644)
	flippedDir := extract(t, f.delta01)
	{
		p := filepath.Join(flippedDir, "data", "raw", "advisories", "drupal.jsonl.zst")
		b, _ := os.ReadFile(p)
		b[len(b)/2] ^= 1
		os.WriteFile(p, b, 0o644)
	}
	cases := []struct {
		name    string
		bundles []string
		code    xerr.Code
		want    string
	}{
		{"flipped byte", []string{mk("flip", func(es []tarEntry) []tarEntry {
			i := dataEntry(es)
			es[i].body = bytes.Clone(es[i].body)
			es[i].body[len(es[i].body)/2] ^= 0x01
			return es
		})}, xerr.Verify, "digest"},
		{"flipped byte (folder)", []string{flippedDir}, xerr.Verify, "digest"},
		{"removed file", []string{mk("removed", func(es []tarEntry) []tarEntry {
			return slices.Delete(es, dataEntry(es), dataEntry(es)+1)
		})}, xerr.Verify, "missing"},
		{"added file", []string{mk("added", func(es []tarEntry) []tarEntry {
			return append(es, tarEntry{hdr: tar.Header{Name: "mirror/data/raw/advisories/zz-evil.jsonl.zst", Mode: 0o644, Typeflag: tar.TypeReg}, body: []byte("x")})
		})}, xerr.Verify, "not in export.json"},
		{"edited export.json", []string{mk("manifest", func(es []tarEntry) []tarEntry {
			for i, e := range es {
				if e.hdr.Name == "mirror/export.json" {
					es[i].body = bytes.Replace(e.body, []byte(`"sequence":2`), []byte(`"sequence":3`), 1)
				}
			}
			return es
		})}, xerr.Verify, "manifest"},
		{"wrong base", []string{f.chainBDelt}, xerr.BaseMissing, "different base"},
		{"out of order (gap)", []string{f.delta12}, xerr.BaseMissing, "missing sequence 2"},
		{"truncated archive", []string{truncated}, xerr.Verify, "truncated"},
		{"path traversal", []string{mk("dotdot", func(es []tarEntry) []tarEntry {
			return append(es, tarEntry{hdr: tar.Header{Name: "mirror/../evil", Mode: 0o644, Typeflag: tar.TypeReg}, body: []byte("x")})
		})}, xerr.Verify, "unsafe"},
		{"symlink", []string{mk("symlink", func(es []tarEntry) []tarEntry {
			return append(es, tarEntry{hdr: tar.Header{Name: "mirror/data/raw/link", Linkname: "/etc/passwd", Mode: 0o777, Typeflag: tar.TypeSymlink}})
		})}, xerr.Verify, "symlink"},
		{"zip bomb", []string{mk("bomb", func(es []tarEntry) []tarEntry {
			return append(es[:1], append([]tarEntry{{hdr: tar.Header{Name: "mirror/data/aaa-bomb.jsonl", Mode: 0o644, Typeflag: tar.TypeReg}, big: 200 << 20}}, es[1:]...)...)
		})}, xerr.Verify, "decompression bomb"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			target := filepath.Join(t.TempDir(), "m")
			applyOK(t, target, mirror.ApplyOptions{}, f.full0)
			before := treeDigests(t, target)
			log, err := applyLog(t, target, mirror.ApplyOptions{}, c.bundles...)
			if err == nil {
				t.Fatal("apply succeeded")
			}
			if !xerr.Is(err, c.code) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("want %s mentioning %q, got %v", c.code, c.want, err)
			}
			if !strings.Contains(log, `"msg":"mirror.delta.apply_failed"`) || !strings.Contains(log, `"reason"`) {
				t.Errorf("log: %s", log)
			}
			sameTree(t, before, treeDigests(t, target))
			sameAsFull(t, target, f.full0)
		})
	}
	t.Run("replayed older delta", func(t *testing.T) {
		target := filepath.Join(t.TempDir(), "m")
		applyOK(t, target, mirror.ApplyOptions{}, f.full0, f.delta01, f.delta12)
		before := treeDigests(t, target)
		_, err := applyLog(t, target, mirror.ApplyOptions{}, f.delta01)
		if !xerr.Is(err, xerr.Verify) || !strings.Contains(err.Error(), "roll back") {
			t.Fatalf("got %v", err)
		}
		sameTree(t, before, treeDigests(t, target))
	})
	t.Run("delta on an empty target", func(t *testing.T) {
		target := filepath.Join(t.TempDir(), "m")
		_, err := applyLog(t, target, mirror.ApplyOptions{}, f.delta01)
		if !xerr.Is(err, xerr.BaseMissing) || !strings.Contains(err.Error(), "sequence 1") {
			t.Fatalf("got %v", err)
		}
		if st, _ := mirror.ReadState(target); st.Chain != nil {
			t.Fatal("target changed")
		}
	})
	t.Run("expired", func(t *testing.T) {
		target := filepath.Join(t.TempDir(), "m")
		late := func() time.Time { return time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC) }
		log, err := applyLog(t, target, mirror.ApplyOptions{Now: late}, f.full0)
		if !xerr.Is(err, xerr.Verify) || !strings.Contains(err.Error(), "expired") || !strings.Contains(log, "expired") {
			t.Fatalf("got %v", err)
		}
		// Another copy would be expired too: the hint says to export anew.
		if h := xerr.As(err).Hint; !strings.Contains(h, "export a fresh one") || strings.Contains(h, "fetch a good copy") {
			t.Fatalf("hint for an expired bundle: %q", h)
		}
	})
	t.Run("not a mirror target", func(t *testing.T) {
		target := t.TempDir()
		os.WriteFile(filepath.Join(target, "notes.txt"), []byte("mine"), 0o644)
		_, err := applyLog(t, target, mirror.ApplyOptions{}, f.full0)
		if !xerr.Is(err, xerr.InvalidInput) {
			t.Fatalf("got %v", err)
		}
	})
}

// The gap error names the missing sequence and the base digest it expects.
func TestGapMessage(t *testing.T) {
	f := getFixture(t)
	target := filepath.Join(t.TempDir(), "m")
	applyOK(t, target, mirror.ApplyOptions{}, f.full0)
	_, d01 := manifestOf(t, f.delta01)
	_, err := applyLog(t, target, mirror.ApplyOptions{}, f.delta12)
	if err == nil || !strings.Contains(err.Error(), "missing sequence 2") || !strings.Contains(err.Error(), d01) {
		t.Fatalf("gap: %v (want sequence 2 and %s)", err, d01)
	}
}

func TestVerify(t *testing.T) {
	f := getFixture(t)
	for _, b := range []string{f.full0, f.delta01, f.delta12, f.full2} {
		rep := mirror.Verify(b, mirror.VerifyOptions{Now: now()})
		if !rep.OK {
			t.Fatalf("%s: %+v", b, rep.Failed())
		}
		names := map[string]bool{}
		for _, c := range rep.Checks {
			names[c.Name] = true
		}
		for _, want := range []string{"digests", "rerun-hash", "mirror-chain", "mirror-expiry", "mirror-indexes", "expiry"} {
			if !names[want] {
				t.Errorf("%s: no %s check", filepath.Base(b), want)
			}
		}
	}
	rep := mirror.Verify(f.full0, mirror.VerifyOptions{Now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)})
	if rep.OK {
		t.Fatal("expired bundle verified")
	}
	// A delta whose tombstones do not cover a removal is invalid.
	d := extract(t, f.delta01)
	tp := filepath.Join(d, mirror.TombstonesPath)
	b, _ := os.ReadFile(tp)
	var kept []string
	for _, l := range strings.SplitAfter(string(b), "\n") {
		if !strings.Contains(l, `"reason":"removed"`) || len(kept) > 100 {
			kept = append(kept, l)
		}
	}
	os.WriteFile(tp, []byte(strings.Join(kept[1:], "")), 0o644)
	rep = mirror.Verify(d, mirror.VerifyOptions{Now: now()})
	var tomb bool
	for _, c := range rep.Failed() {
		tomb = tomb || c.Name == "mirror-tombstones"
	}
	if !tomb {
		t.Fatalf("missing tombstones not caught: %+v", rep.Failed())
	}
}

// An applied target is an evidence source that gives the same records as
// the original evidence.
func TestTargetAsEvidenceSource(t *testing.T) {
	f := getFixture(t)
	target := filepath.Join(t.TempDir(), "m")
	applyOK(t, target, mirror.ApplyOptions{}, f.full0, f.delta01)
	for _, c := range []struct {
		profile string
		names   []string
		whole   bool // no duplicates in the evidence: the whole bundle is the same
	}{
		{"json:policy", []string{"alma", "ctrliq", "drupal", "pypa", "policy", "sbom"}, true},
		{"json:raw", nil, false},
	} {
		t.Run(c.profile, func(t *testing.T) {
			names := c.names
			if names == nil {
				names = sourceNames
			}
			// The connected side: a mirror of just these sources, applied.
			e1, err := newEngine(filepath.Join(t.TempDir(), "a"))
			if err != nil {
				t.Fatal(err)
			}
			tgt := target
			if c.names != nil {
				full, err := runEngine(e1, engine.SubmitRequest{Profile: "mirror:full", Sources: sources(f.t1, names...), SkipInvalid: true})
				if err != nil {
					t.Fatal(err)
				}
				tgt = filepath.Join(t.TempDir(), "sub")
				applyOK(t, tgt, mirror.ApplyOptions{}, archiveOf(full))
			}
			want, err := runEngine(e1, engine.SubmitRequest{Profile: c.profile, Sources: sources(f.t1, names...), SkipInvalid: true})
			if err != nil {
				t.Fatal(err)
			}
			e2, err := newEngine(filepath.Join(t.TempDir(), "b"))
			if err != nil {
				t.Fatal(err)
			}
			got, err := runEngine(e2, engine.SubmitRequest{Profile: c.profile, Sources: sources(filepath.Dir(tgt), filepath.Base(tgt)), SkipInvalid: true})
			if err != nil {
				t.Fatal(err)
			}
			wm, _ := manifestOf(t, archiveOf(want))
			gm, _ := manifestOf(t, archiveOf(got))
			if wm.RerunHash != gm.RerunHash || len(wm.Contents) != len(gm.Contents) {
				t.Fatalf("contents differ: rerunHash %s vs %s", wm.RerunHash, gm.RerunHash)
			}
			for i := range wm.Contents {
				if wm.Contents[i] != gm.Contents[i] {
					t.Errorf("%+v vs %+v", wm.Contents[i], gm.Contents[i])
				}
			}
			if c.whole {
				a, _ := os.ReadFile(archiveOf(want))
				b, _ := os.ReadFile(archiveOf(got))
				if !bytes.Equal(a, b) {
					js1, _ := json.Marshal(wm.Sources)
					js2, _ := json.Marshal(gm.Sources)
					t.Fatalf("bundles differ; sources %s vs %s", js1, js2)
				}
			}
		})
	}
}

// applyChild is the subprocess of the kill tests: it applies the bundles
// named in the environment (and may stop at a failpoint).
func applyChild() int {
	opt := mirror.ApplyOptions{Target: os.Getenv("STELLA_MIRROR_TEST_APPLY"),
		Bundles: strings.Split(os.Getenv("STELLA_MIRROR_TEST_BUNDLES"), ","), Now: now,
		Logger: slog.New(slog.NewJSONHandler(os.Stderr, nil))}
	if _, err := mirror.Apply(context.Background(), opt); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func startChild(t *testing.T, target, failpoint string, bundles ...string) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "STELLA_MIRROR_TEST_APPLY="+target, "STELLA_MIRROR_TEST_BUNDLES="+strings.Join(bundles, ","),
		"STELLA_MIRROR_FAILPOINT="+failpoint)
	pr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, bufio.NewReader(pr)
}

// A real SIGKILL of the applying process, at every step of the switch,
// leaves the target at the old state or at the new one, never between;
// the next apply cleans up and finishes.
func TestKillDuringApply(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocesses")
	}
	f := getFixture(t)
	for _, c := range []struct {
		point string
		after string // full bundle the target must equal after the kill
	}{{"merge", f.full0}, {"built", f.full0}, {"before-swap", f.full0}, {"after-swap", f.full1}} {
		t.Run(c.point, func(t *testing.T) {
			target := filepath.Join(t.TempDir(), "m")
			applyOK(t, target, mirror.ApplyOptions{}, f.full0)
			cmd, stderr := startChild(t, target, c.point, f.delta01)
			done := make(chan string, 1)
			go func() {
				for {
					l, err := stderr.ReadString('\n')
					if strings.Contains(l, "failpoint") || err != nil {
						done <- l
						io.Copy(io.Discard, stderr)
						return
					}
				}
			}()
			select {
			case l := <-done:
				if !strings.Contains(l, "failpoint "+c.point) {
					t.Fatalf("child did not reach %s: %q", c.point, l)
				}
			case <-time.After(60 * time.Second):
				cmd.Process.Kill()
				t.Fatal("child never reached the failpoint")
			}
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			cmd.Wait()
			sameAsFull(t, target, c.after)
			res := applyOK(t, target, mirror.ApplyOptions{}, f.full0, f.delta01)
			sameAsFull(t, target, f.full1)
			if c.after == f.full1 && !res.NoOp {
				t.Errorf("the swap had happened; the re-apply should be a no-op: %+v", res)
			}
			ents, _ := os.ReadDir(target)
			gens := 0
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), ".staging") {
					t.Errorf("leftover %s", e.Name())
				}
				if strings.HasPrefix(e.Name(), "g-") {
					gens++
				}
			}
			if gens > 2 { // the current one and the one before, for readers
				t.Errorf("%d generations left", gens)
			}
		})
	}
	t.Run("random", func(t *testing.T) {
		target := filepath.Join(t.TempDir(), "m")
		applyOK(t, target, mirror.ApplyOptions{}, f.full0)
		for i := 0; i < 8; i++ {
			cmd, stderr := startChild(t, target, "", f.delta01)
			go io.Copy(io.Discard, stderr)
			time.Sleep(time.Duration(5+i*12) * time.Millisecond)
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			st, err := mirror.ReadState(target)
			if err != nil {
				t.Fatal(err)
			}
			if st.Chain.Head().Sequence == 2 {
				sameAsFull(t, target, f.full1)
				applyOK(t, target, mirror.ApplyOptions{AllowRollback: true}, f.full0)
			} else {
				sameAsFull(t, target, f.full0)
			}
		}
	})
}

func TestStatusAndBundleFolders(t *testing.T) {
	f := getFixture(t)
	target := filepath.Join(t.TempDir(), "m")
	if st, err := mirror.ReadState(target); err != nil || st.Chain != nil {
		t.Fatalf("empty target: %+v %v", st, err)
	}
	// Apply also takes extracted bundle folders.
	applyOK(t, target, mirror.ApplyOptions{}, extract(t, f.full0), f.delta01)
	st, err := mirror.ReadState(target)
	if err != nil {
		t.Fatal(err)
	}
	h := st.Chain.Head()
	m, d := manifestOf(t, f.delta01)
	if h.Sequence != 2 || h.ManifestDigest != d || h.ExportID != m.ExportID || h.Expires != m.Expires || st.Chain.Tenant != "acme" ||
		h.Added != len(m.Delta.Added) || h.Removed != len(m.Delta.Removed) {
		t.Fatalf("head %+v", h)
	}
	root, _ := mirror.CurrentRoot(target)
	if _, err := os.Stat(filepath.Join(root, "README.md")); err != nil {
		t.Fatal(err)
	}
	// The generation before the current one stays for readers that started
	// before the switch; older ones go.
	first := st.Generation
	applyOK(t, target, mirror.ApplyOptions{}, f.delta12)
	st2, _ := mirror.ReadState(target)
	if _, err := os.Stat(filepath.Join(target, first)); err != nil {
		t.Errorf("previous generation %s removed: %v", first, err)
	}
	applyOK(t, target, mirror.ApplyOptions{AllowRollback: true}, f.full0)
	if _, err := os.Stat(filepath.Join(target, first)); err == nil {
		t.Errorf("generation %s outlived two applies", first)
	}
	if _, err := os.Stat(filepath.Join(target, st2.Generation)); err != nil {
		t.Errorf("previous generation %s removed: %v", st2.Generation, err)
	}
	// The same bundle twice in one command counts once.
	other := filepath.Join(t.TempDir(), "o")
	if res := applyOK(t, other, mirror.ApplyOptions{}, f.full0, f.full0, f.delta01); len(res.Applied) != 2 {
		t.Fatalf("applied %+v", res.Applied)
	}
	_ = bundle.IsMeta
}

// A delta over unchanged evidence is empty but valid, and applies as a no-change step.
func TestNoChangeDelta(t *testing.T) {
	f := getFixture(t)
	r, err := runEngine(f.eng, engine.SubmitRequest{Profile: "mirror:delta", BaseRunID: f.run01.ID, Sources: sources(f.t1), SkipInvalid: true})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := manifestOf(t, archiveOf(r))
	if len(m.Delta.Added)+len(m.Delta.Changed)+len(m.Delta.Removed) != 0 || m.Sequence != 3 {
		t.Fatalf("delta of unchanged evidence: seq %d, %+v", m.Sequence, m.Delta)
	}
	for _, c := range m.Contents {
		if strings.HasPrefix(c.Path, "data/") {
			t.Errorf("unexpected %s", c.Path)
		}
	}
	target := filepath.Join(t.TempDir(), "m")
	applyOK(t, target, mirror.ApplyOptions{}, f.full0, f.delta01, archiveOf(r))
	sameAsFull(t, target, f.full1)
}

// A delta over a source folder updated in place takes the documents whose
// file status is unchanged since the full run as unchanged without reading
// them (the stat cache), finds every edited one — also an edit that keeps
// the size and puts the old modification time back, which only the change
// time (ctime) betrays — and writes the same bytes as a delta that reads
// every document.
func TestDeltaStatCache(t *testing.T) {
	old := statcache.RacyWindow
	statcache.RacyWindow = 0 // the test's files are seconds old, not hours
	defer func() { statcache.RacyWindow = old }()
	work := filepath.Join(t.TempDir(), "work")
	if err := copyDir(repoPath("testdata/mirror/t0"), work); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	trusting, err := newEngine(filepath.Join(t.TempDir(), "trust"))
	if err != nil {
		t.Fatal(err)
	}
	reading, err := newEngineWith(filepath.Join(t.TempDir(), "read"), func(c *engine.Config) { c.DistrustFileStat = true })
	if err != nil {
		t.Fatal(err)
	}
	// A third: its full run's document list is taken away, so the delta
	// sorts the unchanged documents' source-digest lines again.
	nolist, err := newEngine(filepath.Join(t.TempDir(), "nolist"))
	if err != nil {
		t.Fatal(err)
	}
	req := func(p string) engine.SubmitRequest {
		return engine.SubmitRequest{Profile: p, Sources: sources(work), SkipInvalid: true}
	}
	for _, e := range []*engine.Engine{trusting, reading, nolist} {
		r, err := runEngine(e, req("mirror:full"))
		if err != nil {
			t.Fatal(err)
		}
		list := filepath.Join(filepath.Dir(archiveOf(r)), ".doclist")
		if _, err := os.Stat(list); (err == nil) == (e == reading) {
			t.Fatalf("document list of the full run: %v (reading engine: %v)", err, e == reading)
		}
		if e == nolist {
			os.Remove(list)
		}
	}
	// Update the folder in place to t1: only the files that differ are
	// written (some in place, some replaced), removed ones are deleted.
	changed, removed := syncTree(t, repoPath("testdata/mirror/t1"), work)
	if changed == 0 || removed == 0 {
		t.Fatal("t0 and t1 do not differ")
	}
	// The sneaky edit: same size, old mtime put back.
	sneaky := sneakyEdit(t, work)
	time.Sleep(10 * time.Millisecond)
	var runs [3]exportapi.Run
	for i, e := range []*engine.Engine{trusting, reading, nolist} {
		if runs[i], err = runEngine(e, req("mirror:delta")); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := os.ReadFile(archiveOf(runs[0]))
	b, _ := os.ReadFile(archiveOf(runs[1]))
	if !bytes.Equal(a, b) {
		t.Fatal("the delta built with the stat cache differs from the one that read every document")
	}
	if c, _ := os.ReadFile(archiveOf(runs[2])); !bytes.Equal(a, c) {
		t.Fatal("the delta built without the base's document list differs from the one that read every document")
	}
	if runs[2].Counts["documentsUnread"] != runs[0].Counts["documentsUnread"] {
		t.Fatalf("documentsUnread without the list %d, with it %d", runs[2].Counts["documentsUnread"], runs[0].Counts["documentsUnread"])
	}
	unread := runs[0].Counts["documentsUnread"]
	if unread == 0 || runs[1].Counts["documentsUnread"] != 0 {
		t.Fatalf("documentsUnread: stat cache %d, reading %d", unread, runs[1].Counts["documentsUnread"])
	}
	if unread+int64(changed)+1 > runs[0].Counts["documents"] {
		t.Fatalf("%d documents unread of %d, with %d written and one sneaky edit", unread, runs[0].Counts["documents"], changed)
	}
	m := bundle.Verify(archiveOf(runs[0]), bundle.VerifyOptions{}).Manifest
	if m == nil || m.Delta == nil || !slices.ContainsFunc(m.Delta.Changed, func(id string) bool { return strings.Contains(id, sneaky) }) {
		t.Fatalf("the sneaky edit of %s is not in delta.changed", sneaky)
	}
	// A second delta, nothing changed: the first delta's cache holds the
	// entries it carried over from the full run's and those of the files it
	// read, so now every advisory/VEX/SBOM document is known by its status.
	time.Sleep(10 * time.Millisecond)
	for i, e := range []*engine.Engine{trusting, reading} {
		if runs[i], err = runEngine(e, req("mirror:delta")); err != nil {
			t.Fatal(err)
		}
	}
	a, _ = os.ReadFile(archiveOf(runs[0]))
	b, _ = os.ReadFile(archiveOf(runs[1]))
	if !bytes.Equal(a, b) {
		t.Fatal("second delta: the stat cache's differs from the reading one's")
	}
	if again := runs[0].Counts["documentsUnread"]; again <= unread {
		t.Fatalf("second delta: %d documents unread, the first had %d", again, unread)
	}
}

// syncTree makes dst hold src's files: differing files written (every
// other one in place, the others through a new file renamed over), missing
// ones added, extra ones removed. It returns how many files it wrote and
// how many it removed.
func syncTree(t *testing.T, src, dst string) (written, removed int) {
	t.Helper()
	n := 0
	want := map[string]bool{}
	filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		want[rel] = true
		b, _ := os.ReadFile(p)
		out := filepath.Join(dst, rel)
		if cur, err := os.ReadFile(out); err == nil && bytes.Equal(cur, b) {
			return nil
		}
		os.MkdirAll(filepath.Dir(out), 0o755)
		if n%2 == 0 {
			os.WriteFile(out, b, 0o644)
		} else {
			os.WriteFile(out+".new", b, 0o644)
			os.Rename(out+".new", out)
		}
		n++
		return nil
	})
	filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dst, p)
		if !want[rel] {
			os.Remove(p)
			removed++
		}
		return nil
	})
	return n, removed
}

// sneakyEdit changes one OSV advisory in place without changing its size,
// then puts its modification time back; it returns the advisory's id.
func sneakyEdit(t *testing.T, root string) string {
	t.Helper()
	var path, id string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if path != "" || err != nil || d.IsDir() || !strings.HasSuffix(p, ".json") {
			return err
		}
		var doc struct {
			ID      string `json:"id"`
			Summary string `json:"summary"`
		}
		if b, _ := os.ReadFile(p); json.Unmarshal(b, &doc) == nil && doc.ID != "" && len(doc.Summary) > 3 {
			path, id = p, doc.ID
		}
		return nil
	})
	if path == "" {
		t.Fatal("no advisory with a summary to edit")
	}
	fi, _ := os.Stat(path)
	b, _ := os.ReadFile(path)
	i := bytes.Index(b, []byte(`"summary"`))
	j := bytes.IndexByte(b[i+len(`"summary"`):], '"') + i + len(`"summary"`) + 1
	if b[j] == 'X' {
		b[j] = 'Y'
	} else {
		b[j] = 'X'
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if fi2, _ := os.Stat(path); fi2.Size() != fi.Size() || !fi2.ModTime().Equal(fi.ModTime()) {
		t.Fatal("the sneaky edit changed size or mtime")
	}
	return id
}

// Every mirror run keeps the record state after its bundle beside it (the
// next delta's starting point): it holds exactly the records of the chain
// applied up to that bundle. A delta whose base has no state, or a damaged
// one, rebuilds it from the chain's bundles and writes the same bytes.
func TestDeltaRecordState(t *testing.T) {
	f := getFixture(t)
	target := filepath.Join(t.TempDir(), "target")
	for _, r := range []exportapi.Run{f.run0, f.run01, f.runDelta12} {
		applyOK(t, target, mirror.ApplyOptions{}, archiveOf(r))
		ts, err := mirror.ReadState(target)
		if err != nil {
			t.Fatal(err)
		}
		want := entries(t, ts.Dir())
		st, err := mirror.OpenRecordState(filepath.Join(filepath.Dir(archiveOf(r)), mirror.RecordStateFile))
		if err != nil || st == nil {
			t.Fatalf("run %s: no record state: %v", r.ID, err)
		}
		if st.Header().RunID != r.ID || st.Len() != len(want) {
			t.Fatalf("run %s: state of %s with %d entries, the applied chain has %d", r.ID, st.Header().RunID, st.Len(), len(want))
		}
		for i, w := range want {
			if e, err := st.Entry(i); err != nil || e != w {
				t.Fatalf("run %s: state entry %d = %+v (%v), applied %+v", r.ID, i, e, err, w)
			}
		}
		st.Close()
	}

	// The same chain in another ledger, with the states taken away or
	// damaged before each delta.
	e, err := newEngine(filepath.Join(t.TempDir(), "d"))
	if err != nil {
		t.Fatal(err)
	}
	req := func(p, snap string) engine.SubmitRequest {
		return engine.SubmitRequest{Profile: p, Sources: sources(snap), SkipInvalid: true}
	}
	full, err := runEngine(e, req("mirror:full", f.t0))
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(filepath.Dir(archiveOf(full)), mirror.RecordStateFile))
	d1, err := runEngine(e, req("mirror:delta", f.t1))
	if err != nil {
		t.Fatal(err)
	}
	sp := filepath.Join(filepath.Dir(archiveOf(d1)), mirror.RecordStateFile)
	b, err := os.ReadFile(sp)
	if err != nil {
		t.Fatalf("a delta built without its base's state wrote none: %v", err)
	}
	b[len(b)/3] ^= 0x10
	os.WriteFile(sp, b, 0o644)
	d2, err := runEngine(e, req("mirror:delta", f.t2))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range [][2]string{{archiveOf(d1), f.delta01}, {archiveOf(d2), f.delta12}} {
		x, _ := os.ReadFile(c[0])
		y, _ := os.ReadFile(c[1])
		if !bytes.Equal(x, y) {
			t.Fatalf("%s built from the bundles differs from %s built from the record state", filepath.Base(c[0]), filepath.Base(c[1]))
		}
	}
}

// A new document with the id of an unchanged base document: as in a full
// run the first by (source, path) is kept — the base's (the new one is
// skipped) or the new one (a change). Without --skip-invalid the delta
// fails and leaves no record state behind; with it, the chain applied
// equals a full bundle of the same evidence.
func TestDeltaDuplicateOfUnchangedDocument(t *testing.T) {
	work := filepath.Join(t.TempDir(), "work")
	if err := copyDir(repoPath("testdata/mirror/t0"), work); err != nil {
		t.Fatal(err)
	}
	e, err := newEngine(filepath.Join(t.TempDir(), "d"))
	if err != nil {
		t.Fatal(err)
	}
	req := func(p string, skip bool) engine.SubmitRequest {
		return engine.SubmitRequest{Profile: p, Sources: sources(work, "pypa", "alma"), SkipInvalid: skip}
	}
	full, err := runEngine(e, req("mirror:full", false))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(work, "pypa/vulns/planet/PYSEC-2023-71.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// Later by path than the base's document: the base's stays.
	if err := os.WriteFile(filepath.Join(work, "pypa/vulns/zzz-copy.yaml"), doc, 0o644); err != nil {
		t.Fatal(err)
	}
	failed, err := runEngine(e, req("mirror:delta", false))
	if !xerr.Is(err, xerr.InvalidInput) || !strings.Contains(err.Error(), "zzz-copy.yaml") {
		t.Fatalf("delta with a duplicate, without --skip-invalid: %v", err)
	}
	dir := e.RunDir(failed.ID)
	for _, name := range []string{mirror.RecordStateFile, mirror.RecordStateFile + ".partial"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Fatalf("failed delta left %s: %v", name, err)
		}
	}
	d1, err := runEngine(e, req("mirror:delta", true))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := manifestOf(t, archiveOf(d1))
	if len(m.Delta.Changed)+len(m.Delta.Added)+len(m.Delta.Removed) != 0 || !slices.ContainsFunc(m.Skipped, func(s exportapi.Skipped) bool {
		return s.Path == "vulns/zzz-copy.yaml"
	}) {
		t.Fatalf("base document kept: delta %+v, skipped %+v", m.Delta, m.Skipped)
	}
	// Earlier by path than the base's document: the new one is kept.
	os.Remove(filepath.Join(work, "pypa/vulns/zzz-copy.yaml"))
	if err := os.WriteFile(filepath.Join(work, "pypa/vulns/aaa-copy.yaml"), doc, 0o644); err != nil {
		t.Fatal(err)
	}
	d2, err := runEngine(e, req("mirror:delta", true))
	if err != nil {
		t.Fatal(err)
	}
	m, _ = manifestOf(t, archiveOf(d2))
	if !slices.Equal(m.Delta.Changed, []string{"advisory:PYSEC-2023-71"}) || !slices.ContainsFunc(m.Skipped, func(s exportapi.Skipped) bool {
		return s.Path == "vulns/planet/PYSEC-2023-71.yaml"
	}) {
		t.Fatalf("new document kept: delta %+v, skipped %+v", m.Delta, m.Skipped)
	}
	target := filepath.Join(t.TempDir(), "target")
	dated := func() time.Time { return time.Date(2026, 5, 2, 0, 0, 0, 0, time.UTC) } // these sources' newest date is 2026-04-30
	applyOK(t, target, mirror.ApplyOptions{Now: dated}, archiveOf(full), archiveOf(d1), archiveOf(d2))
	root, err := mirror.CurrentRoot(target)
	if err != nil {
		t.Fatal(err)
	}
	st, err := mirror.OpenRecordState(filepath.Join(e.RunDir(d2.ID), mirror.RecordStateFile))
	if err != nil || st == nil {
		t.Fatalf("record state of the last delta: %v", err)
	}
	defer st.Close()
	applied := entries(t, root)
	if st.Len() != len(applied) {
		t.Fatalf("record state has %d entries, the applied chain %d", st.Len(), len(applied))
	}
	for i, w := range applied {
		if got, err := st.Entry(i); err != nil || got != w {
			t.Fatalf("state entry %d = %+v (%v), applied %+v", i, got, err, w)
		}
	}
	other, err := newEngine(filepath.Join(t.TempDir(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := runEngine(other, req("mirror:full", true))
	if err != nil {
		t.Fatal(err)
	}
	sameAsFull(t, target, archiveOf(want))
}

// The caches a run keeps for the next one (record state, stat cache,
// document list) are caches: a run that cannot write them still succeeds,
// with the same bundle, and the next delta, without them, too.
func TestCachesUnwritable(t *testing.T) {
	f := getFixture(t)
	e, err := newEngine(filepath.Join(t.TempDir(), "d"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	run, err := e.Submit(ctx, engine.SubmitRequest{Tenant: "acme", Profile: "mirror:full", Sources: sources(f.t0), SkipInvalid: true})
	if err != nil {
		t.Fatal(err)
	}
	dir := e.RunDir(run.ID)
	for _, name := range []string{".statcache", ".doclist"} {
		if err := os.MkdirAll(filepath.Join(dir, name+".partial", "x"), 0o755); err != nil { // a folder where the file would go
			t.Fatal(err)
		}
	}
	// A file where the state writer's scratch folder would go.
	if err := os.MkdirAll(filepath.Join(dir, ".work", "mirror"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".work", "mirror", "state"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	full, err := e.Execute(ctx, run.ID)
	if err != nil {
		t.Fatalf("a full run that cannot write its caches: %v", err)
	}
	for _, name := range []string{mirror.RecordStateFile, ".statcache", ".doclist"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("%s: %v", name, err)
		}
	}
	a, _ := os.ReadFile(archiveOf(full))
	b, _ := os.ReadFile(f.full0)
	if !bytes.Equal(a, b) {
		t.Fatal("the full bundle differs when its caches cannot be written")
	}
	d, err := runEngine(e, engine.SubmitRequest{Profile: "mirror:delta", Sources: sources(f.t1), SkipInvalid: true})
	if err != nil {
		t.Fatal(err)
	}
	a, _ = os.ReadFile(archiveOf(d))
	b, _ = os.ReadFile(f.delta01)
	if !bytes.Equal(a, b) {
		t.Fatal("the delta over a base without caches differs")
	}
}

// A target whose disk is full (writes into /dev/full: the real ENOSPC)
// fails apply as an environment error, not as a bad bundle, with a hint
// that says so, and leaves the target as it was: while staging a full
// bundle into a new target, and while merging a delta's streams.
func TestApplyOnFullDisk(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full here")
	}
	f := getFixture(t)
	fullDisk := func(match string) func() {
		return mirror.SetCreateTargetFile(func(p string) (*os.File, error) {
			if strings.Contains(filepath.ToSlash(p), match) {
				return os.OpenFile("/dev/full", os.O_WRONLY, 0)
			}
			return os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		})
	}
	check := func(t *testing.T, err error, log string) {
		t.Helper()
		if err == nil {
			t.Fatal("apply onto a full disk succeeded")
		}
		e := xerr.As(err)
		if e.Code != xerr.Internal || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(e.Hint, "file system") {
			t.Errorf("code %s, hint %q: %v", e.Code, e.Hint, err)
		}
		if !strings.Contains(log, `"errorCode":"internal"`) {
			t.Errorf("mirror.delta.apply_failed does not log an internal error: %s", log)
		}
	}
	t.Run("staging", func(t *testing.T) {
		target := filepath.Join(t.TempDir(), "m")
		restore := fullDisk("/indexes/")
		log, err := applyLog(t, target, mirror.ApplyOptions{}, f.full0)
		restore()
		check(t, err, log)
		ents, _ := os.ReadDir(target)
		for _, e := range ents {
			if e.Name() != ".lock" {
				t.Errorf("the failed apply left %s in the new target", e.Name())
			}
		}
		applyOK(t, target, mirror.ApplyOptions{}, f.full0)
		sameAsFull(t, target, f.full0)
	})
	t.Run("merge", func(t *testing.T) {
		target := filepath.Join(t.TempDir(), "m")
		applyOK(t, target, mirror.ApplyOptions{}, f.full0)
		restore := fullDisk("/gen-")
		log, err := applyLog(t, target, mirror.ApplyOptions{}, f.delta01)
		restore()
		check(t, err, log)
		sameAsFull(t, target, f.full0)
		applyOK(t, target, mirror.ApplyOptions{}, f.delta01)
		sameAsFull(t, target, f.full1)
	})
}

// An apply interrupted while it stages a bundle (Ctrl-C: the command's
// context ends) returns the interrupt, not a verification failure, and
// leaves the target as it was.
func TestApplyInterrupted(t *testing.T) {
	f := getFixture(t)
	target := filepath.Join(t.TempDir(), "m")
	applyOK(t, target, mirror.ApplyOptions{}, f.full0)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	stop := errors.New("interrupt signal received")
	restore := mirror.SetCreateTargetFile(func(p string) (*os.File, error) {
		cancel(stop) // the first staged file: the interrupt comes now
		return os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	})
	defer restore()
	_, err := mirror.Apply(ctx, mirror.ApplyOptions{Target: target, Bundles: []string{f.delta01}, Now: now,
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if !errors.Is(err, stop) || xerr.Is(err, xerr.Verify) {
		t.Fatalf("interrupted apply: %v", err)
	}
	restore()
	sameAsFull(t, target, f.full0)
	applyOK(t, target, mirror.ApplyOptions{}, f.delta01)
	sameAsFull(t, target, f.full1)
}
