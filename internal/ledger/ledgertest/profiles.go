package ledgertest

import (
	"strings"
	"testing"

	"github.com/stellaops/stella/internal/xerr"
	"github.com/stellaops/stella/pkg/exportapi"
)

func (s *suite) testProfileRevisions(t *testing.T) {
	l, ctx := s.open(t), ctxT(t)
	p := newProfile("acme", "nightly")
	p.Metadata.Revision = "r9" // the ledger assigns revisions
	p.Archived = true          // and archives only by ArchiveProfile
	got, created, err := l.SaveProfile(ctx, p)
	must(t, err, "SaveProfile")
	if !created || got.Metadata.Revision != "r1" || got.Archived {
		t.Fatalf("first save: created=%v revision=%q archived=%v, want true r1 false", created, got.Metadata.Revision, got.Archived)
	}

	// The same content again: nothing new.
	got, created, err = l.SaveProfile(ctx, newProfile("acme", "nightly"))
	must(t, err, "SaveProfile again")
	if created || got.Metadata.Revision != "r1" {
		t.Fatalf("unchanged save: created=%v revision=%q, want false r1", created, got.Metadata.Revision)
	}

	// Labels change: r2. Spec change: r3.
	p2 := newProfile("acme", "nightly")
	p2.Metadata.Labels["team"] = "platform"
	got, created, err = l.SaveProfile(ctx, p2)
	must(t, err, "SaveProfile labels")
	if !created || got.Metadata.Revision != "r2" {
		t.Fatalf("labels changed: created=%v revision=%q, want true r2", created, got.Metadata.Revision)
	}
	p3 := newProfile("acme", "nightly")
	p3.Metadata.Labels["team"] = "platform"
	p3.Spec.Compression.Codec = "gzip"
	got, created, err = l.SaveProfile(ctx, p3)
	must(t, err, "SaveProfile spec")
	if !created || got.Metadata.Revision != "r3" {
		t.Fatalf("spec changed: created=%v revision=%q, want true r3", created, got.Metadata.Revision)
	}
	// Going back to old content is a change too: r4 (revisions only grow).
	got, created, err = l.SaveProfile(ctx, newProfile("acme", "nightly"))
	must(t, err, "SaveProfile revert")
	if !created || got.Metadata.Revision != "r4" {
		t.Fatalf("reverted content: created=%v revision=%q, want true r4", created, got.Metadata.Revision)
	}

	// BuiltIn alone is not content.
	pb := newProfile("acme", "nightly")
	pb.BuiltIn = true
	if _, created, _ = l.SaveProfile(ctx, pb); created {
		t.Fatal("a change of BuiltIn alone made a new revision; only labels and spec do")
	}

	latest, err := l.Profile(ctx, "acme", "nightly", "")
	must(t, err, "Profile latest")
	want := newProfile("acme", "nightly")
	want.Metadata.Revision = "r4"
	sameJSON(t, latest, want, "latest revision")

	r1, err := l.Profile(ctx, "acme", "nightly", "r1")
	must(t, err, "Profile r1")
	want.Metadata.Revision = "r1"
	sameJSON(t, r1, want, "revision r1")
	r3, err := l.Profile(ctx, "acme", "nightly", "r3")
	must(t, err, "Profile r3")
	if r3.Spec.Compression.Codec != "gzip" || r3.Metadata.Labels["team"] != "platform" {
		t.Fatalf("r3 = %s", jsonOf(t, r3))
	}

	revs, err := l.ProfileRevisions(ctx, "acme", "nightly")
	must(t, err, "ProfileRevisions")
	var names []string
	for _, r := range revs {
		names = append(names, r.Metadata.Revision)
	}
	if strings.Join(names, ",") != "r1,r2,r3,r4" {
		t.Fatalf("revisions %v, want r1,r2,r3,r4 (oldest first)", names)
	}

	// apiVersion and kind default when empty.
	pd := newProfile("acme", "defaults")
	pd.APIVersion, pd.Kind = "", ""
	got, _, err = l.SaveProfile(ctx, pd)
	must(t, err, "SaveProfile without apiVersion")
	if got.APIVersion != exportapi.ProfileAPIVersion || got.Kind != exportapi.ProfileKind {
		t.Fatalf("apiVersion/kind %q/%q not defaulted", got.APIVersion, got.Kind)
	}
}

// testProfileCanonical: content is compared as canonical JSON, so map order,
// nil versus empty lists and maps make no new revision.
func (s *suite) testProfileCanonical(t *testing.T) {
	l, ctx := s.open(t), ctxT(t)
	p := newProfile("acme", "canon")
	p.Metadata.Labels = map[string]string{"a": "1", "b": "2", "c": "3"}
	p.Spec.Distribution = nil
	_, _, err := l.SaveProfile(ctx, p)
	must(t, err, "SaveProfile")
	q := newProfile("acme", "canon")
	q.Metadata.Labels = map[string]string{"c": "3", "b": "2", "a": "1"}
	q.Spec.Distribution = []exportapi.DistTarget{}
	q.Spec.Selectors.Ecosystems = []string{}
	got, created, err := l.SaveProfile(ctx, q)
	must(t, err, "SaveProfile equivalent")
	if created || got.Metadata.Revision != "r1" {
		t.Fatalf("equivalent content made revision %q", got.Metadata.Revision)
	}
	e := newProfile("acme", "empty-labels")
	e.Metadata.Labels = nil
	_, _, err = l.SaveProfile(ctx, e)
	must(t, err, "SaveProfile")
	e.Metadata.Labels = map[string]string{}
	if _, created, _ := l.SaveProfile(ctx, e); created {
		t.Fatal("nil and empty labels are the same content")
	}
}

func (s *suite) testProfileNotFound(t *testing.T) {
	l, ctx := s.open(t), ctxT(t)
	_, _, err := l.SaveProfile(ctx, newProfile("acme", "nightly"))
	must(t, err, "SaveProfile")
	hint := func(err error, what string) {
		t.Helper()
		e := wantCode(t, err, xerr.ProfileNotFound, what)
		if !strings.Contains(e.Hint, "stella export profile list") {
			t.Fatalf("%s: hint %q does not point at `stella export profile list`", what, e.Hint)
		}
	}
	_, err = l.Profile(ctx, "acme", "missing", "")
	hint(err, "Profile of a missing name")
	_, err = l.Profile(ctx, "other", "nightly", "")
	hint(err, "Profile of another tenant")
	_, err = l.Profile(ctx, "acme", "nightly", "r2")
	hint(err, "Profile of a missing revision")
	_, err = l.Profile(ctx, "acme", "nightly", "latest")
	hint(err, "Profile of a malformed revision")
	_, err = l.Profile(ctx, "acme", "json:raw", "")
	hint(err, "Profile of a built-in style name") // the engine falls back to built-ins on this
	_, err = l.ProfileRevisions(ctx, "acme", "missing")
	hint(err, "ProfileRevisions of a missing profile")
	err = l.ArchiveProfile(ctx, "acme", "missing")
	wantCode(t, err, xerr.ProfileNotFound, "ArchiveProfile of a missing profile")
}

func (s *suite) testProfileList(t *testing.T) {
	l, ctx := s.open(t), ctxT(t)
	ps, err := l.Profiles(ctx, "acme")
	must(t, err, "Profiles of an empty ledger")
	if len(ps) != 0 {
		t.Fatalf("empty ledger lists %d profiles", len(ps))
	}
	for _, n := range []string{"zulu", "alpha", "mike"} {
		_, _, err := l.SaveProfile(ctx, newProfile("acme", n))
		must(t, err, "SaveProfile "+n)
	}
	m := newProfile("acme", "mike")
	m.Spec.Variant = "policy"
	_, _, err = l.SaveProfile(ctx, m)
	must(t, err, "SaveProfile mike r2")
	_, _, err = l.SaveProfile(ctx, newProfile("globex", "beta"))
	must(t, err, "SaveProfile globex")

	ps, err = l.Profiles(ctx, "acme")
	must(t, err, "Profiles")
	var got []string
	for _, p := range ps {
		got = append(got, p.Metadata.Name+"@"+p.Metadata.Revision)
		if p.Metadata.Tenant != "acme" {
			t.Fatalf("Profiles(acme) returned tenant %q", p.Metadata.Tenant)
		}
	}
	if strings.Join(got, ",") != "alpha@r1,mike@r2,zulu@r1" {
		t.Fatalf("Profiles = %v, want alpha@r1,mike@r2,zulu@r1 (latest revisions, by name)", got)
	}
	_, err = l.Profiles(ctx, "")
	wantCode(t, err, xerr.InvalidInput, "Profiles without a tenant")
}

func (s *suite) testProfileArchive(t *testing.T) {
	l, ctx := s.open(t), ctxT(t)
	_, _, err := l.SaveProfile(ctx, newProfile("acme", "nightly"))
	must(t, err, "SaveProfile")
	_, _, err = l.SaveProfile(ctx, newProfile("globex", "nightly"))
	must(t, err, "SaveProfile globex")
	must(t, l.ArchiveProfile(ctx, "acme", "nightly"), "ArchiveProfile")
	must(t, l.ArchiveProfile(ctx, "acme", "nightly"), "ArchiveProfile twice")

	p, err := l.Profile(ctx, "acme", "nightly", "")
	must(t, err, "Profile of an archived profile")
	if !p.Archived {
		t.Fatal("Profile does not say archived")
	}
	p, err = l.Profile(ctx, "acme", "nightly", "r1")
	must(t, err, "Profile r1 of an archived profile")
	if !p.Archived {
		t.Fatal("Profile r1 does not say archived")
	}
	ps, err := l.Profiles(ctx, "acme")
	must(t, err, "Profiles")
	if len(ps) != 1 || !ps[0].Archived {
		t.Fatalf("Profiles = %s, want the archived profile listed with archived set", jsonOf(t, ps))
	}
	for _, what := range []string{"same content", "new content"} {
		q := newProfile("acme", "nightly")
		if what == "new content" {
			q.Spec.Variant = "policy"
		}
		_, _, err = l.SaveProfile(ctx, q)
		e := wantCode(t, err, xerr.InvalidInput, "SaveProfile of an archived profile ("+what+")")
		if !strings.Contains(e.Message, "nightly") || !strings.Contains(e.Message, "archived") {
			t.Fatalf("message %q should name the profile and say it is archived", e.Message)
		}
	}
	revs, err := l.ProfileRevisions(ctx, "acme", "nightly")
	must(t, err, "ProfileRevisions")
	if len(revs) != 1 {
		t.Fatalf("%d revisions after refused saves, want 1", len(revs))
	}
	g, err := l.Profile(ctx, "globex", "nightly", "")
	must(t, err, "Profile globex")
	if g.Archived {
		t.Fatal("archiving acme/nightly archived globex/nightly")
	}
}

func (s *suite) testProfileInvalid(t *testing.T) {
	l, ctx := s.open(t), ctxT(t)
	for _, c := range []struct{ tenant, name, why string }{
		{"", "nightly", "no tenant"},
		{"Acme", "nightly", "uppercase tenant"},
		{"acme", "", "no name"},
		{"acme", "ab", "name too short"},
		{"acme", strings.Repeat("a", 65), "name too long"},
		{"acme", "Nightly", "uppercase name"},
		{"acme", "night/ly", "slash in name"},
		{"acme", "-nightly", "leading dash"},
	} {
		_, _, err := l.SaveProfile(ctx, newProfile(c.tenant, c.name))
		wantCode(t, err, xerr.InvalidInput, "SaveProfile with "+c.why)
	}
	p := newProfile("acme", "nightly")
	p.APIVersion = "stellaops.io/export.v9"
	_, _, err := l.SaveProfile(ctx, p)
	wantCode(t, err, xerr.InvalidInput, "SaveProfile of another apiVersion")
}
