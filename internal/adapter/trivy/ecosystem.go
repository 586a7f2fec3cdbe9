package trivy

import (
	"fmt"
	"regexp"
	"strings"
)

// target is where the packages of one OSV ecosystem go in a trivy DB.
type target struct {
	eco  string    // trivy ecosystem type: npm, pip, go, ... or alma, rocky, alpine, debian, ubuntu
	os   bool      // OS ecosystem: bucket "<os> <release>", FixedVersion; else "<eco>::<name>", version ranges
	rel  string    // OS release as trivy names its bucket (alma "9", alpine "3.22", ubuntu "22.04")
	ver  versioner // how trivy compares this ecosystem's versions
	ghsa string    // GitHub's name of the ecosystem (data-source names of GHSA advisories)
	// unfixed: trivy's detector for this OS reports an advisory without a
	// fixed version (Debian, Ubuntu, Alpine do; AlmaLinux and Rocky compare
	// against the fixed version only, so an unfixed entry can never match).
	unfixed bool
}

// osBucket is the advisory bucket name of an OS target ("alma 9").
func (t target) osBucket() string { return t.eco + " " + t.rel }

var (
	reMajor     = regexp.MustCompile(`^[0-9]+$`)
	reAlpine    = regexp.MustCompile(`^v?([0-9]+\.[0-9]+)$`)
	reUbuntuRel = regexp.MustCompile(`^[0-9]{2}\.[0-9]{2}$`)
)

// Language ecosystems: OSV name -> trivy ecosystem, comparer, GitHub's name.
var langTargets = map[string]target{
	"Go":          {eco: "go", ver: genericVersioner{}, ghsa: "Go"},
	"npm":         {eco: "npm", ver: npmVersioner{}, ghsa: "npm"},
	"PyPI":        {eco: "pip", ver: pep440Versioner{}, ghsa: "pip"},
	"Maven":       {eco: "maven", ver: mavenVersioner{}, ghsa: "Maven"},
	"crates.io":   {eco: "cargo", ver: genericVersioner{}, ghsa: "Rust"},
	"RubyGems":    {eco: "rubygems", ver: gemVersioner{}, ghsa: "RubyGems"},
	"NuGet":       {eco: "nuget", ver: genericVersioner{}, ghsa: "NuGet"},
	"Packagist":   {eco: "composer", ver: genericVersioner{}, ghsa: "Composer"},
	"Hex":         {eco: "erlang", ver: genericVersioner{}, ghsa: "Erlang"},
	"Pub":         {eco: "pub", ver: genericVersioner{}, ghsa: "Pub"},
	"SwiftURL":    {eco: "swift", ver: genericVersioner{}, ghsa: "Swift"},
	"ConanCenter": {eco: "conan", ver: genericVersioner{}},
	"Julia":       {eco: "julia", ver: genericVersioner{}},
}

// resolveTarget maps an OSV ecosystem string to its trivy target.
func resolveTarget(osvEco string) (target, error) {
	name, suffix, hasSuffix := strings.Cut(osvEco, ":")
	if t, ok := langTargets[name]; ok {
		// A repository suffix names another registry of the same package
		// namespace (Drupal's "Packagist:https://packages.drupal.org/8",
		// "Maven:https://maven.google.com"); trivy scans them alike.
		if hasSuffix && name != "Packagist" && name != "Maven" {
			return target{}, fmt.Errorf("ecosystem %q: trivy has no bucket for the %q variant of %s", osvEco, suffix, name)
		}
		return t, nil
	}
	bad := func(why string) (target, error) {
		return target{}, fmt.Errorf("ecosystem %q: %s", osvEco, why)
	}
	switch name {
	case "AlmaLinux", "Rocky Linux":
		if !reMajor.MatchString(suffix) {
			return bad("needs a major release (\"" + name + ":9\")")
		}
		eco := "alma"
		if name == "Rocky Linux" {
			eco = "rocky"
		}
		return target{eco: eco, os: true, rel: strings.TrimLeft(suffix, "0"), ver: rpmVersioner{}}, nil
	case "Alpine":
		m := reAlpine.FindStringSubmatch(suffix)
		if m == nil {
			return bad("needs a release \"vX.Y\"")
		}
		return target{eco: "alpine", os: true, rel: m[1], ver: apkVersioner{}, unfixed: true}, nil
	case "Debian":
		if !reMajor.MatchString(suffix) {
			return bad("needs a numeric major release (\"Debian:12\")")
		}
		return target{eco: "debian", os: true, rel: suffix, ver: debVersioner{}, unfixed: true}, nil
	case "Ubuntu":
		// "Ubuntu:22.04:LTS" and "Ubuntu:24.10"; the Pro/FIPS streams
		// ("Ubuntu:Pro:18.04:LTS") have no trivy bucket.
		rel, rest, _ := strings.Cut(suffix, ":")
		if !reUbuntuRel.MatchString(rel) || (rest != "" && rest != "LTS") {
			return bad("trivy has Ubuntu buckets for \"Ubuntu:YY.MM[:LTS]\" only")
		}
		return target{eco: "ubuntu", os: true, rel: rel, ver: debVersioner{}, unfixed: true}, nil
	}
	return bad("no trivy bucket for this ecosystem")
}

// normalizePkg names a package the way trivy looks it up: trivy-db's
// NormalizePkgName for language ecosystems (pip lower-case with "_" -> "-";
// Go, Julia case kept; Swift without "https://" and ".git"; every other
// language lower-case); OS packages as the advisory names them.
func normalizePkg(t target, name string) string {
	if t.os {
		return name
	}
	switch t.eco {
	case "pip":
		return strings.ReplaceAll(strings.ToLower(name), "_", "-")
	case "go", "julia":
		return name
	case "swift":
		return strings.TrimSuffix(strings.TrimPrefix(name, "https://"), ".git")
	}
	return strings.ToLower(name)
}

// DataSource is a `data-source` bucket value (trivy-db types.DataSource);
// field order is alphabetical so that the JSON is canonical.
type DataSource struct {
	ID   string `json:"ID"`
	Name string `json:"Name"`
	URL  string `json:"URL"`
}

// dataSourceFor names the data source of an advisory bucket. The ID is the
// trivy source id of the advisory's publisher, taken from the record id's
// namespace for language ecosystems (GHSA- -> ghsa, GO- -> govulndb, any
// other OSV database -> osv) and from the OS for OS ecosystems; trivy
// shows the severity stored under that id (VendorSeverity[ID]).
func dataSourceFor(t target, recordID string) DataSource {
	if t.os {
		switch t.eco {
		case "alma":
			return DataSource{ID: "alma", Name: "AlmaLinux Product Errata", URL: "https://errata.almalinux.org/"}
		case "rocky":
			return DataSource{ID: "rocky", Name: "Rocky Linux updateinfo", URL: "https://download.rockylinux.org/pub/rocky/"}
		case "alpine":
			return DataSource{ID: "alpine", Name: "Alpine Secdb", URL: "https://secdb.alpinelinux.org/"}
		case "debian":
			return DataSource{ID: "debian", Name: "Debian Security Tracker", URL: "https://security-tracker.debian.org/tracker/"}
		case "ubuntu":
			return DataSource{ID: "ubuntu", Name: "Ubuntu CVE Tracker", URL: "https://ubuntu.com/security/cves"}
		}
	}
	prefix, _, _ := strings.Cut(recordID, "-")
	switch strings.ToUpper(prefix) {
	case "GHSA":
		if t.ghsa != "" {
			return DataSource{ID: "ghsa", Name: "GitHub Security Advisory " + t.ghsa,
				URL: "https://github.com/advisories?query=type%3Areviewed+ecosystem%3A" + strings.ToLower(t.ghsa)}
		}
	case "GO":
		if t.eco == "go" {
			return DataSource{ID: "govulndb", Name: "The Go Vulnerability Database", URL: "https://pkg.go.dev/vuln/"}
		}
	case "PYSEC":
		return DataSource{ID: "osv", Name: "Python Packaging Advisory Database", URL: "https://github.com/pypa/advisory-database"}
	case "RUSTSEC":
		return DataSource{ID: "osv", Name: "RustSec Advisory Database", URL: "https://rustsec.org/advisories/"}
	case "DRUPAL":
		return DataSource{ID: "osv", Name: "Drupal Security Advisories", URL: "https://www.drupal.org/security"}
	}
	return DataSource{ID: "osv", Name: "Open Source Vulnerabilities", URL: "https://osv.dev/"}
}

// bucketFor is the top-level advisory bucket of a target and data source.
func bucketFor(t target, ds DataSource) string {
	if t.os {
		return t.osBucket()
	}
	return t.eco + "::" + ds.Name
}
