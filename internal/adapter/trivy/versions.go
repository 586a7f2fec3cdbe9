package trivy

import (
	"fmt"
	"strconv"
	"strings"

	gem "github.com/aquasecurity/go-gem-version"
	npm "github.com/aquasecurity/go-npm-version/pkg"
	pep440 "github.com/aquasecurity/go-pep440-version"
	"github.com/aquasecurity/go-version/pkg/version"
	apk "github.com/knqyf263/go-apk-version"
	deb "github.com/knqyf263/go-deb-version"
	rpm "github.com/knqyf263/go-rpm-version"
	mvn "github.com/masahiro331/go-mvn-version"
)

// versioner is the version logic of one trivy comparer. The language
// versioners wrap the very libraries (and options) trivy v0.74.0's
// comparers use, so that every constraint written into the DB is checked
// with the parser that will read it: a range that does not parse, or does
// not mean what the OSV range means, is never written.
type versioner interface {
	// name is the comparer's name, for messages.
	name() string
	// compare orders two versions (-1, 0, 1); an error when either does
	// not parse as a version of this scheme.
	compare(a, b string) (int, error)
	// compile parses a trivy constraint string once; the matcher reports
	// whether a version satisfies it (for OS versioners: whether the
	// version is lower than the fixed version).
	compile(constraint string) (matcher, error)
	// parsed parses a version once for repeated ordering with cmp
	// (ok false for OS versioners, which do not need it).
	parsed(v string) (p any, ok bool, err error)
	cmp(a, b any) int
}

type matcher func(v string) (bool, error)

// check reports whether v satisfies constraint c.
func check(ver versioner, v, c string) (bool, error) {
	m, err := ver.compile(c)
	if err != nil {
		return false, err
	}
	return m(v)
}

// genericVersioner is trivy's compare.GenericComparer (aquasecurity/go-version),
// used for Go, crates.io, Packagist, NuGet, Pub, Hex, Swift, Conan and Julia.
type genericVersioner struct{}

func (genericVersioner) name() string { return "semver-like (go-version)" }

func (genericVersioner) compare(a, b string) (int, error) {
	va, err := version.Parse(a)
	if err != nil {
		return 0, err
	}
	vb, err := version.Parse(b)
	if err != nil {
		return 0, err
	}
	return va.Compare(vb), nil
}

func (genericVersioner) compile(c string) (matcher, error) {
	cc, err := version.NewConstraints(c)
	if err != nil {
		return nil, err
	}
	return func(v string) (bool, error) {
		vv, err := version.Parse(v)
		if err != nil {
			return false, err
		}
		return cc.Check(vv), nil
	}, nil
}

// npmVersioner is trivy's npm comparer (go-npm-version, pre-releases on).
type npmVersioner struct{}

func (npmVersioner) name() string { return "npm semver" }

func (npmVersioner) compare(a, b string) (int, error) {
	va, err := npm.NewVersion(a)
	if err != nil {
		return 0, err
	}
	vb, err := npm.NewVersion(b)
	if err != nil {
		return 0, err
	}
	return va.Compare(vb), nil
}

func (npmVersioner) compile(c string) (matcher, error) {
	cc, err := npm.NewConstraints(c, npm.WithPreRelease(true))
	if err != nil {
		return nil, err
	}
	return func(v string) (bool, error) {
		vv, err := npm.NewVersion(v)
		if err != nil {
			return false, err
		}
		return cc.Check(vv), nil
	}, nil
}

// pep440Versioner is trivy's pip comparer (go-pep440-version, pre-releases on).
type pep440Versioner struct{}

func (pep440Versioner) name() string { return "PEP 440" }

func (pep440Versioner) compare(a, b string) (int, error) {
	va, err := pep440.Parse(a)
	if err != nil {
		return 0, err
	}
	vb, err := pep440.Parse(b)
	if err != nil {
		return 0, err
	}
	return va.Compare(vb), nil
}

func (pep440Versioner) compile(c string) (matcher, error) {
	cc, err := pep440.NewSpecifiers(c, pep440.WithPreRelease(true))
	if err != nil {
		return nil, err
	}
	return func(v string) (bool, error) {
		vv, err := pep440.Parse(v)
		if err != nil {
			return false, err
		}
		return cc.Check(vv), nil
	}, nil
}

// gemVersioner is trivy's RubyGems comparer (go-gem-version).
type gemVersioner struct{}

func (gemVersioner) name() string { return "RubyGems" }

func (gemVersioner) compare(a, b string) (int, error) {
	va, err := gem.NewVersion(a)
	if err != nil {
		return 0, err
	}
	vb, err := gem.NewVersion(b)
	if err != nil {
		return 0, err
	}
	return va.Compare(vb), nil
}

func (gemVersioner) compile(c string) (matcher, error) {
	cc, err := gem.NewConstraints(c)
	if err != nil {
		return nil, err
	}
	return func(v string) (bool, error) {
		vv, err := gem.NewVersion(v)
		if err != nil {
			return false, err
		}
		return cc.Check(vv), nil
	}, nil
}

// mavenVersioner is trivy's Maven comparer (go-mvn-version NewComparer).
type mavenVersioner struct{}

func (mavenVersioner) name() string { return "Maven" }

func (mavenVersioner) compare(a, b string) (int, error) {
	va, err := mvn.NewVersion(a)
	if err != nil {
		return 0, err
	}
	vb, err := mvn.NewVersion(b)
	if err != nil {
		return 0, err
	}
	return va.Compare(vb), nil
}

func (mavenVersioner) compile(c string) (matcher, error) {
	cc, err := mvn.NewComparer(c)
	if err != nil {
		return nil, err
	}
	return func(v string) (bool, error) {
		vv, err := mvn.NewVersion(v)
		if err != nil {
			return false, err
		}
		return cc.Check(vv), nil
	}, nil
}

// rpmVersioner is the rpm comparison of trivy's AlmaLinux and Rocky
// detectors (go-rpm-version, "epoch:version-release"). go-rpm-version never
// fails, so a version is checked here: an optional numeric epoch, a
// non-empty version, no white space.
type rpmVersioner struct{}

func (rpmVersioner) name() string { return "rpm" }

func validRPM(s string) error {
	if s == "" || strings.ContainsAny(s, " \t\r\n,|") {
		return fmt.Errorf("%q is not an rpm version", s)
	}
	if e, rest, ok := strings.Cut(s, ":"); ok {
		if _, err := strconv.ParseUint(e, 10, 31); err != nil || rest == "" || strings.Contains(rest, ":") {
			return fmt.Errorf("%q is not an rpm version (epoch:version-release)", s)
		}
		s = rest
	}
	if v, _, _ := strings.Cut(s, "-"); v == "" {
		return fmt.Errorf("%q is not an rpm version (empty version part)", s)
	}
	return nil
}

func (rpmVersioner) compare(a, b string) (int, error) {
	if err := validRPM(a); err != nil {
		return 0, err
	}
	if err := validRPM(b); err != nil {
		return 0, err
	}
	return rpm.NewVersion(a).Compare(rpm.NewVersion(b)), nil
}

// compile: a version is affected by an advisory whose FixedVersion is c
// when it is lower.
func (r rpmVersioner) compile(c string) (matcher, error) {
	if _, err := r.compare(c, c); err != nil {
		return nil, err
	}
	return func(v string) (bool, error) {
		n, err := r.compare(v, c)
		return n < 0, err
	}, nil
}

// debVersioner is the dpkg comparison of trivy's Debian and Ubuntu detectors.
type debVersioner struct{}

func (debVersioner) name() string { return "dpkg" }

func (debVersioner) compare(a, b string) (int, error) {
	va, err := deb.NewVersion(a)
	if err != nil {
		return 0, err
	}
	vb, err := deb.NewVersion(b)
	if err != nil {
		return 0, err
	}
	return va.Compare(vb), nil
}

// compile: a version is affected by an advisory whose FixedVersion is c
// when it is lower.
func (d debVersioner) compile(c string) (matcher, error) {
	if _, err := d.compare(c, c); err != nil {
		return nil, err
	}
	return func(v string) (bool, error) {
		n, err := d.compare(v, c)
		return n < 0, err
	}, nil
}

// apkVersioner is the apk comparison of trivy's Alpine detector.
type apkVersioner struct{}

func (apkVersioner) name() string { return "apk" }

func (apkVersioner) compare(a, b string) (int, error) {
	va, err := apk.NewVersion(a)
	if err != nil {
		return 0, err
	}
	vb, err := apk.NewVersion(b)
	if err != nil {
		return 0, err
	}
	return va.Compare(vb), nil
}

// compile: a version is affected by an advisory whose FixedVersion is c
// when it is lower.
func (p apkVersioner) compile(c string) (matcher, error) {
	if _, err := p.compare(c, c); err != nil {
		return nil, err
	}
	return func(v string) (bool, error) {
		n, err := p.compare(v, c)
		return n < 0, err
	}, nil
}

func (genericVersioner) parsed(v string) (any, bool, error) {
	p, err := version.Parse(v)
	return p, true, err
}

func (genericVersioner) cmp(a, b any) int { return a.(version.Version).Compare(b.(version.Version)) }

func (npmVersioner) parsed(v string) (any, bool, error) {
	p, err := npm.NewVersion(v)
	return p, true, err
}

func (npmVersioner) cmp(a, b any) int { return a.(npm.Version).Compare(b.(npm.Version)) }

func (pep440Versioner) parsed(v string) (any, bool, error) {
	p, err := pep440.Parse(v)
	return p, true, err
}

func (pep440Versioner) cmp(a, b any) int { return a.(pep440.Version).Compare(b.(pep440.Version)) }

func (gemVersioner) parsed(v string) (any, bool, error) {
	p, err := gem.NewVersion(v)
	return p, true, err
}

func (gemVersioner) cmp(a, b any) int { return a.(gem.Version).Compare(b.(gem.Version)) }

func (mavenVersioner) parsed(v string) (any, bool, error) {
	p, err := mvn.NewVersion(v)
	return p, true, err
}

func (mavenVersioner) cmp(a, b any) int { return a.(mvn.Version).Compare(b.(mvn.Version)) }

func (rpmVersioner) parsed(string) (any, bool, error) { return nil, false, nil }

func (rpmVersioner) cmp(a, b any) int { return 0 }

func (debVersioner) parsed(string) (any, bool, error) { return nil, false, nil }

func (debVersioner) cmp(a, b any) int { return 0 }

func (apkVersioner) parsed(string) (any, bool, error) { return nil, false, nil }

func (apkVersioner) cmp(a, b any) int { return 0 }
