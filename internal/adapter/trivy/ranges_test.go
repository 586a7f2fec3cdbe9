package trivy

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/stellaops/stella/internal/record"
)

func rng(typ string, evs ...string) record.Range {
	r := record.Range{Type: typ}
	for _, e := range evs {
		k, v, _ := strings.Cut(e, "=")
		var ev record.Event
		switch k {
		case "i":
			ev.Introduced = v
		case "f":
			ev.Fixed = v
		case "l":
			ev.LastAffected = v
		case "lim":
			ev.Limit = v
		}
		r.Events = append(r.Events, ev)
	}
	return r
}

func TestLangVersions(t *testing.T) {
	cases := []struct {
		name      string
		ver       versioner
		ranges    []record.Range
		versions  []string
		vuln, fix []string
		errSub    string
	}{
		{"introduced 0, fixed", genericVersioner{}, []record.Range{rng("SEMVER", "i=0", "f=1.6.0")}, nil,
			[]string{"<1.6.0"}, []string{"1.6.0"}, ""},
		{"two intervals (Go stdlib)", genericVersioner{}, []record.Range{rng("SEMVER", "i=0", "f=1.21.12", "i=1.22.0-0", "f=1.22.5")}, nil,
			[]string{"<1.21.12", ">=1.22.0-0, <1.22.5"}, []string{"1.21.12", "1.22.5"}, ""},
		{"unsorted events are sorted", genericVersioner{}, []record.Range{rng("SEMVER", "f=1.22.5", "i=1.22.0", "f=1.21.12", "i=0")}, nil,
			[]string{"<1.21.12", ">=1.22.0, <1.22.5"}, []string{"1.21.12", "1.22.5"}, ""},
		{"last_affected", pep440Versioner{}, []record.Range{rng("ECOSYSTEM", "i=1.0", "l=1.4.2")}, nil,
			[]string{">=1.0, <=1.4.2"}, nil, ""},
		{"single last_affected == introduced", npmVersioner{}, []record.Range{rng("SEMVER", "i=2.0.0", "l=2.0.0")}, nil,
			[]string{"=2.0.0"}, nil, ""},
		{"no fix", gemVersioner{}, []record.Range{rng("ECOSYSTEM", "i=2.1")}, nil,
			[]string{">=2.1"}, nil, ""},
		{"every version", mavenVersioner{}, []record.Range{rng("ECOSYSTEM", "i=0")}, nil,
			[]string{""}, nil, ""},
		{"limit caps", genericVersioner{}, []record.Range{rng("SEMVER", "i=1.0.0", "lim=2.0.0")}, nil,
			[]string{">=1.0.0, <2.0.0"}, nil, ""},
		{"limit * is none", genericVersioner{}, []record.Range{rng("SEMVER", "i=1.0.0", "lim=*")}, nil,
			[]string{">=1.0.0"}, nil, ""},
		{"listed versions only", pep440Versioner{}, nil, []string{"0.1", "0.2"},
			[]string{"=0.1", "=0.2"}, nil, ""},
		{"listed versions inside ranges are not repeated", genericVersioner{}, []record.Range{rng("SEMVER", "i=0", "f=1.0.0")}, []string{"0.9.0", "1.2.0"},
			[]string{"<1.0.0", "=1.2.0"}, []string{"1.0.0"}, ""},
		{"GIT only", genericVersioner{}, []record.Range{{Type: "GIT", Repo: "https://x", Events: []record.Event{{Introduced: "0"}, {Fixed: "abc"}}}}, nil,
			nil, nil, "no SEMVER or ECOSYSTEM range"},
		{"GIT next to ECOSYSTEM is ignored", pep440Versioner{}, []record.Range{{Type: "GIT", Repo: "https://x", Events: []record.Event{{Introduced: "0"}, {Fixed: "abc"}}}, rng("ECOSYSTEM", "i=0", "f=2.0")}, nil,
			[]string{"<2.0"}, []string{"2.0"}, ""},
		{"unparsable version", pep440Versioner{}, []record.Range{rng("ECOSYSTEM", "i=0", "f=not a version")}, nil,
			nil, nil, "is not a PEP 440 version"},
		{"overlapping fixed stays out of patched", genericVersioner{}, []record.Range{rng("SEMVER", "i=0", "f=1.5.0"), rng("SEMVER", "i=1.2.0", "f=2.0.0")}, nil,
			[]string{"<1.5.0", ">=1.2.0, <2.0.0"}, []string{"2.0.0"}, ""},
		{"empty interval", genericVersioner{}, []record.Range{rng("SEMVER", "i=1.0.0", "f=1.0.0")}, nil,
			nil, nil, ""},
		{"maven qualifiers", mavenVersioner{}, []record.Range{rng("ECOSYSTEM", "i=5.0.0.RELEASE", "f=5.2.20.RELEASE")}, nil,
			[]string{">=5.0.0.RELEASE, <5.2.20.RELEASE"}, []string{"5.2.20.RELEASE"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vuln, fix, err := langVersions(c.ver, record.Affected{Ranges: c.ranges, Versions: c.versions})
			if c.errSub != "" {
				if err == nil || !strings.Contains(err.Error(), c.errSub) {
					t.Fatalf("err = %v, want %q", err, c.errSub)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(vuln, c.vuln) || !reflect.DeepEqual(fix, c.fix) {
				t.Fatalf("got %q / %q, want %q / %q", vuln, fix, c.vuln, c.fix)
			}
		})
	}
}

func TestOSFixed(t *testing.T) {
	alma, _ := resolveTarget("AlmaLinux:9")
	deb, _ := resolveTarget("Debian:12")
	ok := func(tg target, r record.Range, want string) {
		t.Helper()
		got, err := osFixed(tg, record.Affected{Ranges: []record.Range{r}})
		if err != nil || got != want {
			t.Fatalf("osFixed = %q, %v; want %q", got, err, want)
		}
	}
	bad := func(tg target, r record.Range, sub string) {
		t.Helper()
		_, err := osFixed(tg, record.Affected{Ranges: []record.Range{r}})
		var ie *inexpressibleError
		if err == nil || !strings.Contains(err.Error(), sub) || !errors.As(err, &ie) {
			t.Fatalf("osFixed err = %v, want inexpressible %q", err, sub)
		}
	}
	ok(alma, rng("ECOSYSTEM", "i=0", "f=1:2.4.57-5.el9"), "1:2.4.57-5.el9")
	ok(deb, rng("ECOSYSTEM", "i=0"), "")
	bad(alma, rng("ECOSYSTEM", "i=0"), "fixed advisories only")
	bad(alma, rng("ECOSYSTEM", "i=1.0-1", "f=1.2-1"), "lower bound")
	bad(deb, rng("ECOSYSTEM", "i=0", "l=1.0-1"), "last_affected")
	if _, err := osFixed(alma, record.Affected{Ranges: []record.Range{rng("ECOSYSTEM", "i=0", "f=x:1")}}); err == nil {
		t.Fatal("bad epoch accepted")
	}
}

func TestResolveTarget(t *testing.T) {
	for eco, want := range map[string]string{
		"AlmaLinux:8": "alma 8", "Rocky Linux:9": "rocky 9", "Alpine:v3.22": "alpine 3.22",
		"Debian:12": "debian 12", "Ubuntu:22.04:LTS": "ubuntu 22.04", "Ubuntu:24.10": "ubuntu 24.10",
	} {
		tg, err := resolveTarget(eco)
		if err != nil || tg.osBucket() != want {
			t.Errorf("%s -> %q, %v; want %q", eco, tg.osBucket(), err, want)
		}
	}
	for eco, want := range map[string]string{"Go": "go", "PyPI": "pip", "npm": "npm", "Maven": "maven", "crates.io": "cargo",
		"RubyGems": "rubygems", "NuGet": "nuget", "Packagist": "composer", "Packagist:https://packages.drupal.org/8": "composer",
		"Hex": "erlang", "Pub": "pub"} {
		tg, err := resolveTarget(eco)
		if err != nil || tg.eco != want || tg.os {
			t.Errorf("%s -> %+v, %v; want %s", eco, tg, err, want)
		}
	}
	for _, eco := range []string{"", "Linux", "AlmaLinux", "Ubuntu:Pro:18.04:LTS", "Debian:sid", "PyPI:foo", "GIT", "OSS-Fuzz"} {
		if _, err := resolveTarget(eco); err == nil {
			t.Errorf("%q accepted", eco)
		}
	}
	pip, _ := resolveTarget("PyPI")
	golang, _ := resolveTarget("Go")
	mvn, _ := resolveTarget("Maven")
	if got := normalizePkg(pip, "Django_Rest"); got != "django-rest" {
		t.Errorf("pip name %q", got)
	}
	if got := normalizePkg(golang, "github.com/BurntSushi/toml"); got != "github.com/BurntSushi/toml" {
		t.Errorf("go name %q", got)
	}
	if got := normalizePkg(mvn, "org.Apache:Foo"); got != "org.apache:foo" {
		t.Errorf("maven name %q", got)
	}
}

// TestOrderCheckAgreesWithComparers: wherever the release-number fast path
// decides whether a listed version is inside the ranges, trivy's own
// constraint parser (the one the DB is read with) agrees, for every listed
// version of every real advisory of the fixtures.
func TestOrderCheckAgreesWithComparers(t *testing.T) {
	var decided, fallback int
	for _, a := range corpus(t) {
		for _, af := range a.Affected {
			tg, err := resolveTarget(af.Ecosystem)
			if err != nil || tg.os || len(af.Versions) == 0 {
				continue
			}
			var ivs []interval
			var cs []string
			for _, r := range af.Ranges {
				if r.Type == "GIT" {
					continue
				}
				got, err := intervals(tg.ver, r)
				if err != nil {
					t.Fatalf("%s: %v", a.ID, err)
				}
				ivs = append(ivs, got...)
			}
			for _, iv := range ivs {
				cs = append(cs, iv.constraint())
			}
			if len(cs) == 0 || slices.Contains(cs, "") {
				continue
			}
			m, err := tg.ver.compile(strings.Join(cs, " || "))
			if err != nil {
				t.Fatalf("%s: %v", a.ID, err)
			}
			oc := newOrderCheck(tg.ver, ivs)
			for _, v := range af.Versions {
				in, known := oc.in(v)
				if !known {
					fallback++
					continue
				}
				decided++
				want, err := m(v)
				if err != nil {
					continue // trivy cannot parse it: it can never match either way
				}
				if in != want {
					t.Errorf("%s %s %s: fast path says %v, trivy's comparer %v (ranges %q)", a.ID, af.Ecosystem, v, in, want, cs)
				}
			}
		}
	}
	t.Logf("%d listed versions decided by release numbers, %d by the comparer", decided, fallback)
	cases := map[string][]uint64{"1.2.3": {1, 2, 3}, "10": {10}, "1.5rc1": {1, 5}, "2.0.post1": {2, 0}, "1.0.RELEASE": {1, 0}}
	for v, want := range cases {
		if got, _, ok := releaseOf(v); !ok || !slices.Equal(got, want) {
			t.Errorf("releaseOf(%q) = %v, %v", v, got, ok)
		}
	}
	for _, v := range []string{"1!2.0", "1.0+local", "v1.0", ""} {
		if _, _, ok := releaseOf(v); ok {
			t.Errorf("releaseOf(%q) accepted", v)
		}
	}
}
