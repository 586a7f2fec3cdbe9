package mirror

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/stellaops/stella/internal/bundle"
	"github.com/stellaops/stella/internal/crypt"
	"github.com/stellaops/stella/internal/xerr"
	"github.com/stellaops/stella/pkg/exportapi"
)

// ApplyOptions control Apply.
type ApplyOptions struct {
	Target        string
	Bundles       []string // archives or extracted bundle folders, in any order
	Identities    []age.Identity
	AllowRollback bool
	Now           func() time.Time // expiry and appliedAt (default time.Now)
	Logger        *slog.Logger
	Limits        bundle.ReadLimits
	// Check, when set, adds checks (signatures) on each staged bundle root
	// and its verification report; an error refuses the apply.
	Check func(root string, rep *bundle.Report) error
}

// ApplyResult says what an apply did.
type ApplyResult struct {
	Target         string   `json:"target"`
	Generation     string   `json:"generation"`
	Applied        []Link   `json:"applied"`        // bundles applied by this call, in order
	AlreadyApplied []string `json:"alreadyApplied"` // bundles the target held already
	Head           *Link    `json:"head"`
	NoOp           bool     `json:"noop"` // nothing to do: the target is at the last bundle given
}

var errLocked = errors.New("locked")

// staged is one bundle extracted into the staging folder and verified.
type staged struct {
	src    string // as given
	dir    string // extracted root
	m      *exportapi.Manifest
	digest string // sha256 of export.json
}

func (b *staged) name() string { return filepath.Base(b.src) }

// Apply applies a full mirror bundle and/or deltas to a target folder.
//
// Every bundle is extracted into a staging folder inside the target (with
// the archive safety limits), verified (digests, unlisted files, rerun
// hash, mirror rules, expiry), decrypted when needed; the bundles are
// ordered by sequence, checked against the target's chain (a delta's
// baseManifestDigest must be the sha256 of the export.json the target is
// at), and the new state is built as a new generation folder. Only then is
// the pointer file replaced (write, fsync, rename), which switches the
// target in one step; a crash before that leaves the old state, after it
// the new one. Applying what the target already holds is a no-op. A failure
// logs mirror.delta.apply_failed and leaves the target as it was.
func Apply(ctx context.Context, opt ApplyOptions) (res *ApplyResult, err error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	current := ""
	defer func() {
		if err != nil {
			xe := xerr.As(err)
			opt.Logger.Error("mirror.delta.apply_failed", "target", opt.Target, "bundle", current,
				"errorCode", xe.Code.Label(), "code", string(xe.Code), "reason", xe.Message)
		}
	}()
	if len(opt.Bundles) == 0 {
		return nil, xerr.New(xerr.InvalidInput, "no bundle to apply").WithHint("pass the full bundle and/or deltas")
	}
	if opt.Target == "" {
		return nil, xerr.New(xerr.InvalidInput, "no --target folder given")
	}
	target, err := filepath.Abs(opt.Target)
	if err != nil {
		return nil, xerr.Wrap(xerr.InvalidInput, err, "--target")
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return nil, xerr.Wrap(xerr.InvalidInput, err, "--target %s", target)
	}
	// A folder of unrelated files is refused before the lock file would be
	// put in it (and checked again under the lock).
	if err := checkTargetDir(target); err != nil {
		return nil, err
	}
	lock, err := lockTarget(filepath.Join(target, lockFile))
	if errors.Is(err, errLocked) {
		return nil, xerr.New(xerr.InvalidInput, "another apply is running on %s", target).WithHint("wait for it to finish, then retry")
	}
	if err != nil {
		return nil, xerr.Wrap(xerr.Internal, err, "lock %s", target)
	}
	defer lock.Close()
	if err := checkTargetDir(target); err != nil {
		return nil, err
	}
	st, err := ReadState(target)
	if err != nil {
		return nil, err
	}
	if err := cleanLeftovers(target, st.Generation, st.previous); err != nil {
		return nil, xerr.Wrap(xerr.Internal, err, "clean %s", target)
	}
	staging, err := os.MkdirTemp(target, stagingPfx)
	if err != nil {
		return nil, xerr.Wrap(xerr.Internal, err, "staging")
	}
	defer os.RemoveAll(staging)

	// 1. Extract and verify every bundle.
	var bs []*staged
	for i, p := range opt.Bundles {
		current = p
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		b, err := stageBundle(ctx, p, filepath.Join(staging, fmt.Sprintf("in-%d", i)), opt)
		if err != nil {
			return nil, err
		}
		bs = append(bs, b)
	}
	current = ""
	seen := map[string]bool{} // the same bundle given twice counts once
	bs = slices.DeleteFunc(bs, func(b *staged) bool {
		dup := seen[b.digest]
		seen[b.digest] = true
		return dup
	})
	slices.SortStableFunc(bs, func(x, y *staged) int {
		if x.m.Sequence != y.m.Sequence {
			if x.m.Sequence < y.m.Sequence {
				return -1
			}
			return 1
		}
		return strings.Compare(x.m.Profile.Variant, y.m.Profile.Variant) * -1 // full before delta
	})

	// 2. Plan: which bundles are new, and do they chain onto the target?
	res = &ApplyResult{Target: target, Applied: []Link{}, AlreadyApplied: []string{}}
	var head *Link
	lineage := map[string]bool{}
	if st.Chain != nil {
		head = st.Chain.Head()
		for _, l := range st.Chain.Applied {
			lineage[l.ManifestDigest] = true
		}
	}
	rollback := opt.AllowRollback && bs[0].m.Profile.Variant == "full" && head != nil && bs[0].m.Sequence <= head.Sequence
	var todo []*staged
	for _, b := range bs {
		if !rollback && lineage[b.digest] {
			res.AlreadyApplied = append(res.AlreadyApplied, b.src)
			continue
		}
		todo = append(todo, b)
	}
	if len(todo) == 0 {
		last := bs[len(bs)-1]
		if head != nil && last.digest == head.ManifestDigest {
			res.NoOp, res.Head, res.Generation = true, head, st.Generation
			return res, nil
		}
		current = last.src
		return nil, xerr.New(xerr.Verify, "%s (sequence %d) is older than what %s holds (sequence %d, %s); refusing to roll back",
			last.name(), last.m.Sequence, target, head.Sequence, head.ExportID).
			WithHint("apply newer bundles only; to really go back, apply a full bundle with --allow-rollback")
	}
	prev, tenant := head, ""
	if st.Chain != nil {
		tenant = st.Chain.Tenant
	}
	for _, b := range todo {
		current = b.src
		m := b.m
		if tenant != "" && m.Tenant != tenant && !(m.Profile.Variant == "full" && opt.AllowRollback) {
			return nil, xerr.New(xerr.Verify, "%s is a mirror of tenant %q; %s holds tenant %q", b.name(), m.Tenant, target, tenant).
				WithHint("apply into another --target folder")
		}
		if m.Profile.Variant == "full" {
			if prev != nil && m.Sequence <= prev.Sequence && !opt.AllowRollback {
				return nil, xerr.New(xerr.Verify, "%s is a full bundle of sequence %d, but %s is at sequence %d; refusing to roll back",
					b.name(), m.Sequence, target, prev.Sequence).
					WithHint("pass --allow-rollback to replace the target's state with this older bundle")
			}
		} else {
			if err := checkLink(b, prev, target); err != nil {
				return nil, err
			}
		}
		l := linkOf(b, opt.Now())
		prev, tenant = &l, m.Tenant
	}

	// 3. Build the new generation in staging.
	cur := st.Dir()
	var chain Chain
	if st.Chain != nil && !rollback {
		chain = *st.Chain
		chain.Applied = slices.Clone(chain.Applied)
	}
	for k, b := range todo {
		current = b.src
		out := filepath.Join(staging, fmt.Sprintf("gen-%d", k))
		if err := os.MkdirAll(out, 0o755); err != nil {
			return nil, xerr.Wrap(xerr.Internal, err, "staging")
		}
		if b.m.Profile.Variant == "full" {
			if err := buildFull(out, b); err != nil {
				return nil, err
			}
			chain = Chain{Schema: ChainSchema, Tenant: b.m.Tenant}
		} else {
			if err := mergeDelta(ctx, out, cur, b); err != nil {
				return nil, err
			}
			if err := copyTree(filepath.Join(cur, "bundles"), filepath.Join(out, "bundles")); err != nil {
				return nil, xerr.Wrap(xerr.Internal, err, "carry bundles/")
			}
		}
		if err := keepMeta(out, b); err != nil {
			return nil, xerr.Wrap(xerr.Internal, err, "bundles/")
		}
		l := linkOf(b, opt.Now())
		chain.Applied = append(chain.Applied, l)
		res.Applied = append(res.Applied, l)
		if err := writeJSON(filepath.Join(out, ChainFile), chain); err != nil {
			return nil, xerr.Wrap(xerr.Internal, err, "chain.json")
		}
		if strings.HasPrefix(cur, staging) {
			os.RemoveAll(cur)
		}
		cur = out
	}
	current = ""
	failpoint("built")

	// 4. Switch: durable new generation, then the pointer in one rename.
	newHead := chain.Head()
	gen := genDirName(newHead.Sequence, newHead.ManifestDigest)
	if gen == st.Generation {
		return nil, xerr.New(xerr.Internal, "new generation %s has the name of the current one", gen)
	}
	if err := syncTree(cur); err != nil {
		return nil, xerr.Wrap(xerr.Internal, err, "sync")
	}
	final := filepath.Join(target, gen)
	if gen == st.previous {
		// A rollback to the state of the generation before the current one
		// (kept for readers of the last swap): the new one takes its name.
		if err := os.RemoveAll(final); err != nil {
			return nil, xerr.Wrap(xerr.Internal, err, "replace %s", final)
		}
	}
	if err := os.Rename(cur, final); err != nil {
		return nil, xerr.Wrap(xerr.Internal, err, "move the new generation into place")
	}
	syncDir(target)
	failpoint("before-swap")
	tmp := filepath.Join(target, PointerFile+".tmp")
	if err := writeJSON(tmp, Pointer{Current: gen, Previous: st.Generation, Schema: TargetSchema}); err != nil {
		os.RemoveAll(final)
		return nil, xerr.Wrap(xerr.Internal, err, "pointer")
	}
	if err := os.Rename(tmp, filepath.Join(target, PointerFile)); err != nil {
		os.RemoveAll(final)
		return nil, xerr.Wrap(xerr.Internal, err, "pointer")
	}
	syncDir(target)
	failpoint("after-swap")
	// The generation before the previous one has no reader left to serve.
	cleanLeftovers(target, gen, st.Generation)
	res.Head, res.Generation = newHead, gen
	return res, nil
}

// checkLink checks that delta b applies on the state prev.
func checkLink(b *staged, prev *Link, target string) error {
	m := b.m
	d := m.Delta
	if prev == nil {
		return xerr.New(xerr.BaseMissing, "%s is a delta (sequence %d) and %s holds no mirror yet: its base, sequence %d with export.json %s, is missing",
			b.name(), m.Sequence, target, m.Sequence-1, d.BaseManifestDigest).
			WithHint("apply the chain's full bundle first (with the deltas after it, in one command if you like)")
	}
	if d.BaseManifestDigest == prev.ManifestDigest {
		if m.Sequence != prev.Sequence+1 {
			return xerr.New(xerr.Verify, "%s has sequence %d but applies on sequence %d", b.name(), m.Sequence, prev.Sequence)
		}
		return nil
	}
	switch {
	case m.Sequence <= prev.Sequence:
		return xerr.New(xerr.Verify, "%s (delta, sequence %d) is older than the state it would apply to (sequence %d, %s); refusing to roll back",
			b.name(), m.Sequence, prev.Sequence, prev.ExportID).
			WithHint("this delta is already behind; apply only newer deltas, or a full bundle with --allow-rollback")
	case m.Sequence > prev.Sequence+1:
		missing := fmt.Sprintf("sequence %d", prev.Sequence+1)
		if m.Sequence-1 > prev.Sequence+1 {
			missing = fmt.Sprintf("sequences %d to %d", prev.Sequence+1, m.Sequence-1)
		}
		return xerr.New(xerr.BaseMissing, "gap before %s (sequence %d): missing %s; the target is at sequence %d (export.json %s), and %s needs as base the bundle of sequence %d whose export.json is %s",
			b.name(), m.Sequence, missing, prev.Sequence, prev.ManifestDigest, b.name(), m.Sequence-1, d.BaseManifestDigest).
			WithHint("apply the missing bundle(s) first, or all of them in one command")
	default:
		return xerr.New(xerr.BaseMissing, "%s (sequence %d) was made on a different base (export.json %s, %s) than the target holds (sequence %d, export.json %s, %s)",
			b.name(), m.Sequence, d.BaseManifestDigest, d.BaseExportID, prev.Sequence, prev.ManifestDigest, prev.ExportID).
			WithHint("use the deltas of the chain this target follows, or apply that chain's newest full bundle (with --allow-rollback if its sequence is lower)")
	}
}

func linkOf(b *staged, now time.Time) Link {
	m := b.m
	l := Link{Bundle: b.name(), Sequence: m.Sequence, Variant: m.Profile.Variant, ExportID: m.ExportID, ManifestDigest: b.digest,
		GeneratedAt: m.GeneratedAt, Expires: m.Expires, Profile: m.Profile.Name + "@" + m.Profile.Revision,
		AppliedAt: now.UTC().Format(time.RFC3339)}
	if m.Delta != nil {
		l.BaseManifestDigest = m.Delta.BaseManifestDigest
		l.Added, l.Changed, l.Removed = len(m.Delta.Added), len(m.Delta.Changed), len(m.Delta.Removed)
	}
	return l
}

// targetWriteError is a failure to write into the target's staging
// folder: the target's disk, not the bundle.
type targetWriteError struct{ err error }

func (e targetWriteError) Error() string { return e.err.Error() }
func (e targetWriteError) Unwrap() error { return e.err }

const targetWriteHint = "the target's file system refused the write (full, over quota or read-only): " +
	"free space or fix it there and apply again; the target was left as it was"

// createTargetFile creates a new file under the target's staging folder
// (tests make it fail as a full disk does).
var createTargetFile = func(p string) (*os.File, error) {
	return os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
}

// ctxReader stops a copy when ctx ends (an interrupt): staging a big
// bundle does not run on to its end.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, context.Cause(c.ctx)
	}
	return c.r.Read(p)
}

// stageWriter marks the errors of writing a staged file.
type stageWriter struct{ f *os.File }

func (w stageWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if err != nil {
		err = targetWriteError{err}
	}
	return n, err
}

// stageBundle extracts a bundle into dir, verifies it and decrypts its data.
func stageBundle(ctx context.Context, p, dir string, opt ApplyOptions) (*staged, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, xerr.Wrap(xerr.Internal, err, "staging")
	}
	err := bundle.Walk(p, opt.Limits, func(rel string, size int64, r io.Reader) error {
		if err := bundle.CheckPath(rel); err != nil {
			return fmt.Errorf("%w: %v", bundle.ErrUnsafe, err)
		}
		dst := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return targetWriteError{err}
		}
		f, err := createTargetFile(dst)
		if err != nil {
			return targetWriteError{err}
		}
		_, err = io.Copy(stageWriter{f}, ctxReader{ctx, r})
		if cerr := f.Close(); err == nil && cerr != nil {
			err = targetWriteError{cerr}
		}
		return err
	})
	if err != nil {
		if ctx.Err() != nil { // interrupted, not a bad bundle
			return nil, context.Cause(ctx)
		}
		var we targetWriteError
		if errors.As(err, &we) { // the target's disk, not the bundle
			return nil, xerr.Wrap(xerr.Internal, we.err, "%s: cannot stage it beside the target", filepath.Base(p)).
				WithHint(targetWriteHint)
		}
		if os.IsNotExist(err) {
			return nil, xerr.New(xerr.InvalidInput, "%s: no such bundle", p)
		}
		return nil, xerr.New(xerr.Verify, "%s: %v", filepath.Base(p), err).
			WithHint("the bundle is damaged, truncated or unsafe; fetch it again and check it with `stella export mirror verify`")
	}
	rep := Verify(dir, VerifyOptions{Now: opt.Now(), Limits: opt.Limits})
	if rep.Manifest != nil && opt.Check != nil && rep.OK {
		if err := opt.Check(dir, rep); err != nil {
			return nil, err
		}
		rep.Finish()
	}
	if !rep.OK {
		var fails []string
		expiredOnly := true
		for _, c := range rep.Failed() {
			fails = append(fails, c.Name+": "+c.Detail)
			expiredOnly = expiredOnly && c.Name == "expiry"
		}
		e := xerr.New(xerr.Verify, "%s failed verification: %s", filepath.Base(p), strings.Join(fails, "; "))
		if expiredOnly {
			// Another copy of an expired bundle is expired too.
			return nil, e.WithHint("the bundle is intact but past its expiry: export a fresh one on the connected side (a feed that has not changed for longer than the validity needs SOURCE_DATE_EPOCH at export; see docs/mirror.md, Sequence and expiry)")
		}
		return nil, e.WithHint("the bundle is damaged, tampered with or expired; fetch a good copy (`stella export mirror verify` shows every check)")
	}
	m := rep.Manifest
	b := &staged{src: p, dir: dir, m: m, digest: digestBytes(rep.Meta["export.json"])}
	if m.Encryption != nil {
		if err := decryptDir(dir, m, opt.Identities); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// decryptDir replaces every encrypted file of an extracted bundle with its
// plaintext, checking the plaintext digest.
func decryptDir(dir string, m *exportapi.Manifest, ids []age.Identity) error {
	op, err := crypt.NewOpener(m.Encryption, m.ExportID, ids)
	if err != nil {
		return err
	}
	for _, c := range m.Contents {
		if c.PlainDigest == "" {
			continue
		}
		p := filepath.Join(dir, filepath.FromSlash(c.Path))
		in, err := os.Open(p)
		if err != nil {
			return xerr.Wrap(xerr.Internal, err, "decrypt %s", c.Path)
		}
		out, err := os.Create(p + ".plain")
		if err != nil {
			in.Close()
			return xerr.Wrap(xerr.Internal, err, "decrypt %s", c.Path)
		}
		d := newDigester()
		err = op.Open(io.MultiWriter(out, d), in, c.Path)
		in.Close()
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		if got := d.digest(); got != c.PlainDigest {
			return xerr.New(xerr.Verify, "%s decrypts to %s, export.json says %s", c.Path, got, c.PlainDigest)
		}
		if err := os.Rename(p+".plain", p); err != nil {
			return xerr.Wrap(xerr.Internal, err, "decrypt %s", c.Path)
		}
	}
	return nil
}

// buildFull makes a generation from a full bundle.
func buildFull(out string, b *staged) error {
	for _, n := range []string{"data", "indexes", "README.md"} {
		src := filepath.Join(b.dir, n)
		if _, err := os.Stat(src); os.IsNotExist(err) {
			continue
		}
		if err := os.Rename(src, filepath.Join(out, n)); err != nil {
			return xerr.Wrap(xerr.Internal, err, "move %s", n)
		}
	}
	for _, n := range IndexNames {
		if _, err := os.Stat(filepath.Join(out, filepath.FromSlash(IndexPath(n)))); err != nil {
			return xerr.New(xerr.Verify, "%s has no %s", b.name(), IndexPath(n))
		}
	}
	return nil
}

// keepMeta copies a bundle's manifests and signatures to bundles/<sequence>/.
func keepMeta(out string, b *staged) error {
	dst := filepath.Join(out, "bundles", fmt.Sprintf("%06d", b.m.Sequence))
	os.RemoveAll(dst)
	for _, n := range []string{"export.json", "manifest.yaml", "provenance.json", "provenance.dsse.json", "signatures"} {
		src := filepath.Join(b.dir, n)
		if _, err := os.Stat(src); err != nil {
			continue
		}
		if err := copyTree(src, filepath.Join(dst, n)); err != nil {
			return err
		}
	}
	return nil
}

// copyTree hard-links (or copies) a file or folder tree.
func copyTree(src, dst string) error {
	st, err := os.Stat(src)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return linkOrCopy(src, dst)
	}
	return filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		d := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(d, 0o755)
		}
		return linkOrCopy(p, d)
	})
}

func linkOrCopy(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// failpoint blocks forever when STELLA_MIRROR_FAILPOINT names this point,
// after saying so on stderr: crash tests kill the process there.
func failpoint(name string) {
	if v := os.Getenv("STELLA_MIRROR_FAILPOINT"); v != "" && v == name {
		fmt.Fprintf(os.Stderr, "failpoint %s reached\n", name)
		select {}
	}
}
