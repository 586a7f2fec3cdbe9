package trivy

// Oracle tests: the DB this package writes is loaded into the real trivy
// (v0.74.0, built by tools/install.sh trivy) and used for fully offline
// scans of projects and a root filesystem that the test writes, pinned
// inside and at the fixed version of real advisories.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stellaops/stella/internal/bundle"
	"github.com/stellaops/stella/internal/record"
)

// trivyBin finds the oracle: $STELLA_TRIVY, else bin/trivy at the module
// root. Without it the test skips, unless STELLA_REQUIRE_ORACLES is set.
func trivyBin(t testing.TB) string {
	t.Helper()
	p := os.Getenv("STELLA_TRIVY")
	if p == "" {
		p = filepath.Join(moduleRoot(t), "bin", "trivy")
	}
	if st, err := os.Stat(p); err != nil || st.IsDir() {
		if os.Getenv("STELLA_REQUIRE_ORACLES") != "" {
			t.Fatalf("trivy oracle not found at %s (STELLA_REQUIRE_ORACLES is set; run tools/install.sh trivy or set STELLA_TRIVY)", p)
		}
		t.Skipf("trivy oracle not found at %s (run tools/install.sh trivy, or set STELLA_TRIVY)", p)
	}
	return p
}

// offlineFlags are the flags of a fully offline trivy scan.
var offlineFlags = []string{"--skip-db-update", "--skip-java-db-update", "--offline-scan", "--skip-version-check",
	"--disable-telemetry", "--scanners", "vuln", "--format", "json", "--quiet"}

type trivyVuln struct {
	VulnerabilityID  string
	VendorIDs        []string
	PkgName          string
	InstalledVersion string
	FixedVersion     string
	Status           string
	Severity         string
	SeveritySource   string
	Title            string
	DataSource       *DataSource
}

type trivyReport struct {
	Results []struct {
		Target          string
		Class           string
		Type            string
		Vulnerabilities []trivyVuln
	}
}

// runTrivy runs trivy with HOME and TMPDIR in temporary directories and
// returns the findings by target.
func runTrivy(t testing.TB, bin, cache string, args ...string) map[string][]trivyVuln {
	t.Helper()
	home, tmp := t.TempDir(), t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	all := append([]string{args[0], "--cache-dir", cache}, offlineFlags...)
	all = append(all, args[1:]...)
	cmd := exec.CommandContext(ctx, bin, all...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "TMPDIR=" + tmp, "XDG_CACHE_HOME=" + filepath.Join(home, ".cache")}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("trivy %s: %v\n%s", strings.Join(all, " "), err, stderr.String())
	}
	var rep trivyReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("trivy output: %v\n%s", err, stdout.String())
	}
	out := map[string][]trivyVuln{}
	for _, r := range rep.Results {
		out[filepath.ToSlash(r.Target)] = append(out[filepath.ToSlash(r.Target)], r.Vulnerabilities...)
	}
	return out
}

// oracleCase is one advisory checked against trivy: a project pinned at
// Inside must be reported with ID, one pinned at Fixed must not.
type oracleCase struct {
	Eco, Pkg, ID  string
	Inside, Fixed string // Fixed "" when the advisory has no fix (no negative project)
	WantFixed     string // FixedVersion trivy must show for Inside ("" = none)
	WantSeverity  string // "" = not checked
	Withdrawn     bool   // must not be reported at Inside either
}

var reGoMajor = regexp.MustCompile(`/v[0-9]+$`)

// synthBelow makes a version just below v for ranges "introduced 0":
// the last non-zero numeric component is lowered by one.
func synthBelow(v string) (string, bool) {
	if strings.ContainsAny(v, "-+") {
		return "", false
	}
	parts := strings.Split(v, ".")
	for i := len(parts) - 1; i >= 0; i-- {
		n, err := strconv.Atoi(parts[i])
		if err != nil {
			return "", false
		}
		if n > 0 {
			parts[i] = strconv.Itoa(n - 1)
			return strings.Join(parts, "."), true
		}
	}
	return "", false
}

// pickCases samples advisories of one ecosystem: every advisory whose
// first package has one interval "introduced X (, fixed F)" and appears
// once, taken evenly over the sorted ids, n at most.
func pickCases(t testing.TB, advs []*record.Advisory, eco string, n int) []oracleCase {
	var cands []oracleCase
	for _, a := range advs {
		if a.Withdrawn != "" || len(a.Affected) == 0 {
			continue
		}
		if _, err := convert(a); err != nil {
			continue
		}
		af := a.Affected[0]
		if af.Ecosystem != eco && !(eco == "Packagist" && strings.HasPrefix(af.Ecosystem, "Packagist")) {
			continue
		}
		same := 0
		for _, o := range a.Affected {
			if o.Package == af.Package {
				same++
			}
		}
		var evs []record.Event
		nr := 0
		for _, r := range af.Ranges {
			if r.Type != "GIT" {
				nr++
				evs = r.Events
			}
		}
		if same != 1 || nr != 1 || len(evs) != 2 || evs[0].Introduced == "" || evs[1].Fixed == "" {
			continue
		}
		intro, fixed := evs[0].Introduced, evs[1].Fixed
		if eco == "Go" {
			if af.Package == "stdlib" || af.Package == "toolchain" || reGoMajor.MatchString(af.Package) ||
				!strings.HasPrefix(fixed, "0.") && !strings.HasPrefix(fixed, "1.") || strings.Contains(fixed, "-") {
				continue
			}
		}
		inside := intro
		if intro == "0" || intro == "0.0.0-0" { // RustSec writes "0.0.0-0" for "every version below"
			if v, ok := synthBelow(fixed); ok {
				inside = v
			} else if intro == "0" {
				continue
			}
		}
		cands = append(cands, oracleCase{Eco: eco, Pkg: af.Package, ID: a.ID, Inside: inside, Fixed: fixed, WantFixed: fixed})
	}
	if len(cands) == 0 {
		t.Fatalf("no sample for %s", eco)
	}
	// Half of the sample (at least) from advisories that state a severity,
	// when the source has them, so that the severity trivy shows is checked.
	var sev, rest []oracleCase
	for _, c := range cands {
		if s := recordSeverity(findIn(advs, c.ID)).sev; s != SeverityUnknown {
			sev = append(sev, c)
		} else {
			rest = append(rest, c)
		}
	}
	var out []oracleCase
	seenPkg := map[string]bool{}
	take := func(l []oracleCase, k int) {
		step := max(1, len(l)/max(1, k))
		for i, got := 0, 0; i < len(l) && got < k; i += step {
			if !seenPkg[l[i].Pkg] {
				seenPkg[l[i].Pkg] = true
				out = append(out, l[i])
				got++
			}
		}
	}
	take(sev, (n+1)/2)
	take(rest, n-len(out))
	take(sev, n-len(out))
	return out
}

func findIn(advs []*record.Advisory, id string) *record.Advisory {
	for _, a := range advs {
		if a.ID == id {
			return a
		}
	}
	return nil
}

// writeProject writes a manifest or lock file that pins pkg at version.
func writeProject(t testing.TB, dir, eco, pkg, version string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var name, body string
	switch {
	case eco == "Go" && pkg == "stdlib":
		// trivy takes the standard library version from the toolchain line.
		name = "go.mod"
		body = fmt.Sprintf("module example.com/oracle\n\ngo 1.21\n\ntoolchain go%s\n", version)
	case eco == "Go":
		name = "go.mod"
		body = fmt.Sprintf("module example.com/oracle\n\ngo 1.21\n\nrequire %s v%s\n", pkg, version)
	case eco == "PyPI":
		name = "requirements.txt"
		body = fmt.Sprintf("%s==%s\n", pkg, version)
	case eco == "crates.io":
		name = "Cargo.lock"
		body = fmt.Sprintf("version = 3\n\n[[package]]\nname = \"oracle\"\nversion = \"0.1.0\"\ndependencies = [\n \"%s\",\n]\n\n[[package]]\nname = %q\nversion = %q\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n", pkg, pkg, version)
	case eco == "npm":
		name = "package-lock.json"
		lock := map[string]any{"name": "oracle", "version": "1.0.0", "lockfileVersion": 3, "requires": true,
			"packages": map[string]any{
				"":                    map[string]any{"name": "oracle", "version": "1.0.0", "dependencies": map[string]string{pkg: version}},
				"node_modules/" + pkg: map[string]any{"version": version, "resolved": "https://registry.npmjs.org/" + pkg + "/-/" + pkg + "-" + version + ".tgz"},
			}}
		b, _ := json.MarshalIndent(lock, "", "  ")
		body = string(b)
	case eco == "Maven":
		name = "pom.xml"
		g, a, _ := strings.Cut(pkg, ":")
		body = fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>com.example</groupId>
  <artifactId>oracle</artifactId>
  <version>1.0.0</version>
  <dependencies>
    <dependency>
      <groupId>%s</groupId>
      <artifactId>%s</artifactId>
      <version>%s</version>
    </dependency>
  </dependencies>
</project>
`, g, a, version)
	case strings.HasPrefix(eco, "Packagist"):
		name = "composer.lock"
		lock := map[string]any{"packages": []any{map[string]any{"name": pkg, "version": version, "type": "drupal-module"}}, "packages-dev": []any{}}
		b, _ := json.MarshalIndent(lock, "", "  ")
		body = string(b)
		cj, _ := json.Marshal(map[string]any{"name": "example/oracle", "require": map[string]string{pkg: version}})
		if err := os.WriteFile(filepath.Join(dir, "composer.json"), cj, 0o644); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("no project writer for %s", eco)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return filepath.ToSlash(filepath.Join(filepath.Base(dir), name))
}

// buildAndImport runs the adapter as the engine would (record lines of
// normalised advisory streams), then imports the staged db.bundle into a
// new trivy cache.
func buildAndImport(t testing.TB, bySource map[string][]*record.Advisory) (cache string, ad *Adapter) {
	t.Helper()
	stage, err := bundle.NewStage(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ad, err = NewAdapter(context.Background(), stage, "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	var srcs []string
	for s := range bySource {
		srcs = append(srcs, s)
	}
	sort.Strings(srcs)
	ad.Record("raw/advisories/x", "ignored", []byte("not json")) // other streams are ignored
	for _, s := range srcs {
		for _, a := range bySource[s] {
			line, err := json.Marshal(a)
			if err != nil {
				t.Fatal(err)
			}
			if err := ad.Record(AdvisoryStreamPrefix+s, a.ID, line); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := ad.Finish(); err != nil {
		t.Fatal(err)
	}
	e, ok := stage.Entry(DefaultBundlePath)
	if !ok || e.ContentType != BundleMediaType || e.Records != ad.Stats().Advisories {
		t.Fatalf("staged entry %+v (stats %+v)", e, ad.Stats())
	}
	bundlePath := filepath.Join(t.TempDir(), "db.bundle")
	f, _ := os.Create(bundlePath)
	if _, err := stage.CopyTo(f, DefaultBundlePath); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cache = t.TempDir()
	if err := Import(bundlePath, cache); err != nil {
		t.Fatal(err)
	}
	return cache, ad
}

// oracleCorpus is every advisory the oracle DB holds, by source.
func oracleCorpus(t testing.TB) map[string][]*record.Advisory {
	by := map[string][]*record.Advisory{}
	seen := map[string]bool{}
	for _, src := range []string{"golang-vulndb/t1", "pypa-advisory-database/t1", "rustsec-advisory-db-osv/t1",
		"almalinux-osv-database/t1", "drupal-advisory-database/t1", "osv-schema-testdata"} {
		advs, _ := loadAdvisories(t, src, evidenceDir(t, src))
		name := strings.SplitN(src, "/", 2)[0]
		for _, a := range advs {
			if !seen[a.ID] {
				seen[a.ID] = true
				by[name] = append(by[name], a)
			}
		}
	}
	hand, _ := loadAdvisories(t, "hand-checked", filepath.Join(moduleRoot(t), "testdata", "trivy", "advisories"))
	for _, a := range hand {
		if !seen[a.ID] {
			seen[a.ID] = true
			by["hand-checked"] = append(by["hand-checked"], a)
		}
	}
	return by
}

func findAdvisory(by map[string][]*record.Advisory, id string) *record.Advisory {
	for _, l := range by {
		for _, a := range l {
			if a.ID == id {
				return a
			}
		}
	}
	return nil
}

// TestTrivyOracleLanguages: for a sample of real advisories per language
// ecosystem, a project pinned inside the affected range is reported by
// stock trivy with the advisory's id (and its fixed version and the
// source's severity), and one pinned at the first fixed version is not.
func TestTrivyOracleLanguages(t *testing.T) {
	bin := trivyBin(t)
	by := oracleCorpus(t)
	cache, ad := buildAndImport(t, by)
	t.Logf("DB: %+v", ad.Stats())

	var cases []oracleCase
	cases = append(cases, pickCases(t, by["golang-vulndb"], "Go", 6)...)
	cases = append(cases, pickCases(t, by["pypa-advisory-database"], "PyPI", 6)...)
	cases = append(cases, pickCases(t, by["rustsec-advisory-db-osv"], "crates.io", 6)...)
	cases = append(cases, pickCases(t, by["drupal-advisory-database"], "Packagist", 4)...)
	cases = append(cases, pickCases(t, by["osv-schema-testdata"], "npm", 2)...)
	cases = append(cases, pickCases(t, by["osv-schema-testdata"], "Maven", 1)...)
	// Hand-checked cases (ranges and severities read from the advisories).
	cases = append(cases,
		oracleCase{Eco: "npm", Pkg: "lodash", ID: "GHSA-35jh-r3h4-6jhm", Inside: "4.17.20", Fixed: "4.17.21", WantFixed: "4.17.21", WantSeverity: "HIGH"},
		oracleCase{Eco: "npm", Pkg: "lodash", ID: "GHSA-p6mc-m468-83gw", Inside: "4.17.15", Fixed: "4.17.19", WantFixed: "4.17.19", WantSeverity: "HIGH"},
		oracleCase{Eco: "Maven", Pkg: "org.apache.logging.log4j:log4j-core", ID: "GHSA-jfh8-c2jp-5v3q", Inside: "2.14.1", Fixed: "2.15.0", WantFixed: "2.3.1, 2.12.2, 2.15.0", WantSeverity: "CRITICAL"},
		oracleCase{Eco: "Maven", Pkg: "org.apache.logging.log4j:log4j-core", ID: "GHSA-jfh8-c2jp-5v3q", Inside: "2.0-beta9", Fixed: "2.3.1", WantFixed: "2.3.1, 2.12.2, 2.15.0", WantSeverity: "CRITICAL"},
		oracleCase{Eco: "Maven", Pkg: "com.fasterxml.jackson.core:jackson-databind", ID: "GHSA-57j2-w4cx-62h2", Inside: "2.13.2", Fixed: "2.13.2.1", WantFixed: "2.12.6.1, 2.13.2.1", WantSeverity: "HIGH"},
		// No fixed version: reported without one (npm, real GHSA sample).
		oracleCase{Eco: "npm", Pkg: "marky-markdown", ID: "GHSA-pxmp-fwjc-4x7q", Inside: "11.3.2"},
		// Two ranges with unsorted events (real GHSA sample): both intervals, not the gap between.
		oracleCase{Eco: "npm", Pkg: "mixin-deep", ID: "GHSA-fhjf-83wg-r2j9", Inside: "1.3.1", Fixed: "1.3.2", WantFixed: "1.3.2, 2.0.1"},
		oracleCase{Eco: "npm", Pkg: "mixin-deep", ID: "GHSA-fhjf-83wg-r2j9", Inside: "2.0.0", Fixed: "2.0.1", WantFixed: "1.3.2, 2.0.1"},
		// The Go standard library (trivy: go.mod toolchain line), two intervals.
		oracleCase{Eco: "Go", Pkg: "stdlib", ID: "GO-2024-2963", Inside: "1.22.4", Fixed: "1.22.5", WantFixed: "1.21.12, 1.22.5"},
		oracleCase{Eco: "Go", Pkg: "stdlib", ID: "GO-2024-2963", Inside: "1.21.11", Fixed: "1.21.12", WantFixed: "1.21.12, 1.22.5"},
		// PyPI names are normalised as trivy looks them up (lower case, "_" -> "-";
		// trivy keeps "." as is, so "Products.PluggableAuthService" would not match
		// the advisory's "products-pluggableauthservice", upstream's DB alike).
		oracleCase{Eco: "PyPI", Pkg: "Products_PluggableAuthService", ID: "GHSA-p44j-xrqg-4xrr", Inside: "2.6.0", Fixed: "2.6.1", WantFixed: "2.6.1"},
	)
	// Withdrawn advisories: never reported, even inside their old range
	// (which a copy without "withdrawn" would be written with).
	for _, src := range []string{"golang-vulndb", "rustsec-advisory-db-osv", "pypa-advisory-database"} {
		eco := map[string]string{"golang-vulndb": "Go", "rustsec-advisory-db-osv": "crates.io", "pypa-advisory-database": "PyPI"}[src]
		advs, _ := loadAdvisories(t, src, evidenceDir(t, src+"/t1"))
		for _, a := range advs {
			if a.Withdrawn == "" || len(a.Affected) == 0 || a.Affected[0].Ecosystem != eco ||
				(eco == "Go" && reGoMajor.MatchString(a.Affected[0].Package)) {
				continue
			}
			cp := *a
			cp.Withdrawn = ""
			c, err := convert(&cp)
			if err != nil || len(c.entries[0].value.VulnerableVersions) == 0 {
				continue
			}
			inside := ""
			for _, r := range a.Affected[0].Ranges {
				if r.Type == "GIT" || len(r.Events) == 0 {
					continue
				}
				switch {
				case r.Events[0].Introduced != "0" && r.Events[0].Introduced != "":
					inside = r.Events[0].Introduced
				case len(r.Events) > 1 && r.Events[1].Fixed != "":
					inside, _ = synthBelow(r.Events[1].Fixed)
				case len(r.Events) == 1:
					inside = "1.0.0" // introduced 0, no end: every version
				}
				break
			}
			if inside == "" {
				continue
			}
			cases = append(cases, oracleCase{Eco: eco, Pkg: a.Affected[0].Package, ID: a.ID, Inside: inside, Withdrawn: true})
			break // one per source
		}
	}
	for _, c := range cases {
		t.Logf("case %s %s %s inside %s fixed %q withdrawn=%v", c.ID, c.Eco, c.Pkg, c.Inside, c.Fixed, c.Withdrawn)
	}
	root, stdRoot := t.TempDir(), t.TempDir()
	type target struct {
		c      oracleCase
		inside bool
	}
	targets := map[string]target{}
	for i, c := range cases {
		if c.WantSeverity == "" && !c.Withdrawn {
			if a := findAdvisory(by, c.ID); a != nil {
				if s := recordSeverity(a).sev; s != SeverityUnknown {
					cases[i].WantSeverity = s.String()
				}
			}
		}
		c = cases[i]
		r := root
		if c.Pkg == "stdlib" {
			r = stdRoot
		}
		targets[writeProject(t, filepath.Join(r, fmt.Sprintf("%02d-inside", i)), c.Eco, c.Pkg, c.Inside)] = target{c, true}
		if c.Fixed != "" {
			targets[writeProject(t, filepath.Join(r, fmt.Sprintf("%02d-fixed", i)), c.Eco, c.Pkg, c.Fixed)] = target{c, false}
		}
	}
	found := runTrivy(t, bin, cache, "fs", root)
	// trivy reports the Go standard library of a go.mod (its toolchain
	// line) only with --detection-priority comprehensive.
	for tgt, v := range runTrivy(t, bin, cache, "fs", "--detection-priority", "comprehensive", stdRoot) {
		found[tgt] = v
	}
	ecos := map[string]int{}
	var withSeverity int
	for tgt, tc := range targets {
		c := tc.c
		var hit *trivyVuln
		for i, v := range found[tgt] {
			if v.VulnerabilityID == c.ID {
				hit = &found[tgt][i]
			}
		}
		label := fmt.Sprintf("%s %s %s@%s (%s)", c.ID, c.Eco, c.Pkg, map[bool]string{true: c.Inside, false: c.Fixed}[tc.inside], tgt)
		switch {
		case c.Withdrawn:
			if hit != nil {
				t.Errorf("withdrawn advisory reported: %s", label)
			}
		case !tc.inside:
			if hit != nil {
				t.Errorf("reported at the fixed version: %s: %+v", label, *hit)
			}
		case hit == nil:
			t.Errorf("not reported inside the affected range: %s; trivy found %d: %v", label, len(found[tgt]), ids(found[tgt]))
		default:
			ecos[c.Eco]++
			if hit.FixedVersion != c.WantFixed {
				t.Errorf("%s: FixedVersion %q, want %q", label, hit.FixedVersion, c.WantFixed)
			}
			if c.WantFixed == "" && hit.Status != "affected" {
				t.Errorf("%s: status %q, want affected", label, hit.Status)
			}
			if hit.DataSource == nil || hit.DataSource.ID == "" {
				t.Errorf("%s: no data source", label)
			}
			if c.WantSeverity != "" {
				withSeverity++
				if hit.Severity != c.WantSeverity || hit.DataSource == nil || hit.SeveritySource != hit.DataSource.ID {
					t.Errorf("%s: severity %s from %q, want %s from the data source %+v", label, hit.Severity, hit.SeveritySource, c.WantSeverity, hit.DataSource)
				}
			} else if hit.Severity != "UNKNOWN" {
				t.Errorf("%s: severity %s, but the source states none", label, hit.Severity)
			}
			if a := findAdvisory(by, c.ID); a != nil && len(a.Aliases) > 0 {
				for _, al := range vendorIDsOf(a) {
					if !slices.Contains(hit.VendorIDs, al) {
						t.Errorf("%s: alias %s not among VendorIDs %v", label, al, hit.VendorIDs)
					}
				}
				if a.Summary != "" && hit.Title != a.Summary {
					t.Errorf("%s: title %q, want %q", label, hit.Title, a.Summary)
				}
			}
		}
	}
	t.Logf("%d projects scanned; reported inside the range per ecosystem: %v; %d with the source's severity checked", len(targets), ecos, withSeverity)
	for _, eco := range []string{"Go", "PyPI", "crates.io", "npm", "Maven", "Packagist"} {
		if ecos[eco] == 0 {
			t.Errorf("no %s advisory was checked", eco)
		}
	}
}

func ids(vs []trivyVuln) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.VulnerabilityID+"@"+v.PkgName+" "+v.InstalledVersion)
	}
	return out
}

// writeAlmaRootfs writes a minimal AlmaLinux root filesystem. Its installed
// packages are an rpm database (var/lib/rpm/Packages.db, rpm's ndb format)
// when ndb is set, else the rpm manifest trivy also reads
// (var/lib/rpmmanifest/container-manifest-2, `rpm -qa` output); see
// docs/trivy.md.
func writeAlmaRootfs(t testing.TB, dir, major string, pkgs map[string]string, ndb bool) {
	t.Helper()
	ver := major + ".5"
	files := map[string]string{
		"etc/os-release":        fmt.Sprintf("NAME=\"AlmaLinux\"\nVERSION=\"%s\"\nID=\"almalinux\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"%s\"\nPLATFORM_ID=\"platform:el%s\"\nPRETTY_NAME=\"AlmaLinux %s\"\n", ver, ver, major, ver),
		"etc/almalinux-release": fmt.Sprintf("AlmaLinux release %s\n", ver),
		"etc/redhat-release":    fmt.Sprintf("AlmaLinux release %s\n", ver),
	}
	var lines []string
	var names []string
	for n := range pkgs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		evr := pkgs[n]
		epoch := "0"
		if e, rest, ok := strings.Cut(evr, ":"); ok {
			epoch, evr = e, rest
		}
		// NAME VERSION-RELEASE INSTALLTIME BUILDTIME VENDOR (none) SIZE ARCH EPOCHNUM SOURCERPM
		lines = append(lines, strings.Join([]string{n, evr, "1700000000", "1700000000", "AlmaLinux", "(none)", "1024", "x86_64", epoch, n + "-" + evr + ".src.rpm"}, "\t"))
	}
	if ndb {
		if err := os.MkdirAll(filepath.Join(dir, "var", "lib", "rpm"), 0o755); err != nil {
			t.Fatal(err)
		}
		writeRPMNDB(t, filepath.Join(dir, "var", "lib", "rpm", "Packages.db"), pkgs)
	} else {
		files["var/lib/rpmmanifest/container-manifest-2"] = strings.Join(lines, "\n") + "\n"
	}
	for p, body := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTrivyOracleAlmaLinux: AlmaLinux errata scanned with `trivy rootfs`:
// packages installed below the fixed version are reported with the ALSA id,
// the fixed version (with its epoch) and the erratum's own severity;
// packages at the fixed version are not.
func TestTrivyOracleAlmaLinux(t *testing.T) {
	bin := trivyBin(t)
	by := oracleCorpus(t)
	cache, _ := buildAndImport(t, by)
	type almaCase struct{ id, pkg, fixed, sev string }
	perMajor := map[string][]almaCase{}
	usedPkg := map[string]bool{}
	// Hand-checked first: ALSA-2024:3178 is "Important: linux-firmware
	// security update" (HIGH), its packages carry epoch 1 fixed versions.
	almas := slices.Clone(by["almalinux-osv-database"])
	slices.SortStableFunc(almas, func(x, y *record.Advisory) int {
		return boolInt(y.ID == "ALSA-2024:3178") - boolInt(x.ID == "ALSA-2024:3178")
	})
	for _, a := range almas {
		c, err := convert(a)
		if err != nil || !strings.HasPrefix(a.ID, "ALSA-") {
			continue
		}
		if a.ID == "ALSA-2024:3178" && erratumSeverity(a.ID, a.Summary) != SeverityHigh {
			t.Fatalf("ALSA-2024:3178 severity %v", erratumSeverity(a.ID, a.Summary))
		}
		e := c.entries[0]
		major := strings.TrimPrefix(e.bucket, "alma ")
		if major != "8" && major != "9" || len(perMajor[major]) >= 4 || usedPkg[major+e.pkg] || e.value.FixedVersion == "" {
			continue
		}
		// The first package must be named once in the advisory.
		n := 0
		for _, x := range c.entries {
			if x.pkg == e.pkg {
				n++
			}
		}
		if n != 1 {
			continue
		}
		usedPkg[major+e.pkg] = true
		perMajor[major] = append(perMajor[major], almaCase{a.ID, e.pkg, e.value.FixedVersion, erratumSeverity(a.ID, a.Summary).String()})
	}
	checked := 0
	for major, cs := range perMajor {
		inside, fixed := map[string]string{}, map[string]string{}
		for _, c := range cs {
			fv := c.fixed
			epoch := ""
			if e, rest, ok := strings.Cut(fv, ":"); ok {
				epoch, fv = e+":", rest
			}
			v, _, _ := strings.Cut(fv, "-")
			inside[c.pkg] = epoch + v + "-0"
			fixed[c.pkg] = c.fixed
		}
		in, fx := t.TempDir(), t.TempDir()
		// AlmaLinux 8 with an rpm database, 9 with the rpm manifest.
		writeAlmaRootfs(t, in, major, inside, major == "8")
		writeAlmaRootfs(t, fx, major, fixed, major == "8")
		fIn := runTrivy(t, bin, cache, "rootfs", in)
		fFx := runTrivy(t, bin, cache, "rootfs", fx)
		var all, allFx []trivyVuln
		for _, v := range fIn {
			all = append(all, v...)
		}
		for _, v := range fFx {
			allFx = append(allFx, v...)
		}
		for _, c := range cs {
			var hit *trivyVuln
			for i, v := range all {
				if v.VulnerabilityID == c.id && v.PkgName == c.pkg {
					hit = &all[i]
				}
			}
			if hit == nil {
				t.Errorf("alma %s: %s %s not reported below %s; found %v", major, c.id, c.pkg, c.fixed, ids(all))
				continue
			}
			checked++
			if hit.FixedVersion != c.fixed || hit.Severity != c.sev || hit.DataSource == nil || hit.DataSource.ID != "alma" {
				t.Errorf("alma %s: %s %s: fixed %q severity %s source %+v; want %q %s alma", major, c.id, c.pkg, hit.FixedVersion, hit.Severity, hit.DataSource, c.fixed, c.sev)
			}
			for _, v := range allFx {
				if v.VulnerabilityID == c.id && v.PkgName == c.pkg {
					t.Errorf("alma %s: %s reported at the fixed version %s", major, c.id, c.fixed)
				}
			}
		}
		t.Logf("alma %s: %d errata checked: %v", major, len(cs), cs)
	}
	if checked < 4 {
		t.Errorf("only %d AlmaLinux errata checked", checked)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
