package trivy

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/stellaops/stella/internal/record"
)

// advisoryValue is a value in an advisory bucket (trivy-db types.Advisory,
// the fields stella writes, in alphabetical order so the JSON is canonical).
// The vulnerability id is the key, not a field.
type advisoryValue struct {
	FixedVersion       string   `json:"FixedVersion,omitempty"`
	PatchedVersions    []string `json:"PatchedVersions,omitempty"`
	VendorIDs          []string `json:"VendorIDs,omitempty"`
	VulnerableVersions []string `json:"VulnerableVersions,omitempty"`
}

// vulnerabilityValue is a value in the `vulnerability` bucket (trivy-db
// types.Vulnerability, alphabetical field order).
type vulnerabilityValue struct {
	CVSS             map[string]CVSS     `json:"CVSS,omitempty"`
	CweIDs           []string            `json:"CweIDs,omitempty"`
	Description      string              `json:"Description,omitempty"`
	LastModifiedDate string              `json:"LastModifiedDate,omitempty"`
	PublishedDate    string              `json:"PublishedDate,omitempty"`
	References       []string            `json:"References,omitempty"`
	Severity         string              `json:"Severity,omitempty"`
	Title            string              `json:"Title,omitempty"`
	VendorSeverity   map[string]Severity `json:"VendorSeverity,omitempty"`
}

// pkgEntry is one advisory for one package in one advisory bucket.
type pkgEntry struct {
	bucket, pkg string
	ds          DataSource
	value       advisoryValue
	os          target // for merging OS fixed versions
}

// converted is what one advisory becomes in a trivy DB.
type converted struct {
	id      string
	entries []pkgEntry
	vuln    []byte
	omitted []string // affected packages left out (e.g. AlmaLinux modular packages)
	why     []string // why, per kind, in first-seen order
	whyN    map[string][]string
}

func (c *converted) omit(why, what string) {
	if c.whyN == nil {
		c.whyN = map[string][]string{}
	}
	if _, ok := c.whyN[why]; !ok {
		c.why = append(c.why, why)
	}
	c.whyN[why] = append(c.whyN[why], what)
	c.omitted = append(c.omitted, what)
}

// omittedSummary says what was left out, one clause per reason, with the
// first example and a count.
func (c *converted) omittedSummary() string {
	var parts []string
	for _, w := range c.why {
		l := c.whyN[w]
		s := fmt.Sprintf("%d %s, e.g. %s", len(l), w, l[0])
		if len(l) == 1 {
			s = fmt.Sprintf("%s: %s", w, l[0])
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// skipError says why an advisory is not written. Invalid marks input that
// is malformed (an unparsable range or version, an unknown ecosystem or
// range type, a package without a name); otherwise the advisory is valid
// OSV that trivy's schema cannot express (only GIT ranges, only modular
// packages, an OS range with a lower bound, ...).
type skipError struct {
	Invalid bool
	Reason  string
}

func (e *skipError) Error() string { return e.Reason }

func invalidf(format string, args ...any) *skipError {
	return &skipError{Invalid: true, Reason: fmt.Sprintf(format, args...)}
}

func unsupportedf(format string, args ...any) *skipError {
	return &skipError{Reason: fmt.Sprintf(format, args...)}
}

// errWithdrawn: a withdrawn advisory is never written.
var errWithdrawn = errors.New("withdrawn")

// convert maps one normalised advisory to its trivy DB entries. It either
// returns everything that advisory becomes, or an error: errWithdrawn, or
// a *skipError when any part of it cannot be written correctly (so an
// advisory is never half-written with a wrong range).
func convert(a *record.Advisory) (*converted, error) {
	if a.Withdrawn != "" {
		return nil, errWithdrawn
	}
	if a.ID == "" || strings.ContainsRune(a.ID, 0) {
		return nil, invalidf("advisory has no usable id")
	}
	if len(a.Affected) == 0 {
		return nil, unsupportedf("trivy: advisory %s lists no affected package", a.ID)
	}
	c := &converted{id: a.ID}
	idx := map[[2]string]int{}
	vendorIDs := vendorIDsOf(a)
	for i, af := range a.Affected {
		if af.Package == "" && af.Ecosystem == "" {
			// A repository-only entry (GIT ranges of a source repository).
			c.omit("repository-only entries without a package", "affected["+fmt.Sprint(i)+"]")
			continue
		}
		t, err := resolveTarget(af.Ecosystem)
		if err != nil {
			return nil, invalidf("trivy: %s affected[%d]: unsupported %v", a.ID, i, err)
		}
		if af.Package == "" || strings.ContainsRune(af.Package, 0) {
			return nil, invalidf("trivy: %s affected[%d]: no package name", a.ID, i)
		}
		ds := dataSourceFor(t, a.ID)
		e := pkgEntry{bucket: bucketFor(t, ds), pkg: normalizePkg(t, af.Package), ds: ds, os: t}
		if t.os {
			fixed, err := osFixed(t, af)
			if err != nil {
				return nil, rangeSkip(a.ID, i, af, err)
			}
			if (t.eco == "alma" || t.eco == "rocky") && strings.Contains(fixed, ".module") {
				// trivy keys modular packages as "<module>:<stream>::<name>",
				// which the OSV record does not state; under the plain name
				// the fixed version would be compared with non-modular builds.
				c.omit("modular packages (trivy keys them by a module stream the OSV record does not state)", af.Ecosystem+" "+af.Package+" "+fixed)
				continue
			}
			e.value.FixedVersion = fixed
		} else {
			vuln, patched, err := langVersions(t.ver, af)
			if err != nil {
				return nil, rangeSkip(a.ID, i, af, err)
			}
			if len(vuln) == 0 {
				c.omit("packages whose ranges affect no version", af.Ecosystem+" "+af.Package)
				continue
			}
			e.value.VulnerableVersions, e.value.PatchedVersions = vuln, patched
		}
		k := [2]string{e.bucket, e.pkg}
		if j, ok := idx[k]; ok {
			if err := mergeEntry(&c.entries[j], e); err != nil {
				return nil, unsupportedf("trivy: %s affected[%d] %s %s: %v", a.ID, i, af.Ecosystem, af.Package, err)
			}
			continue
		}
		idx[k] = len(c.entries)
		c.entries = append(c.entries, e)
	}
	if len(c.entries) == 0 {
		return nil, unsupportedf("trivy: %s: nothing trivy can match: %s", a.ID, c.omittedSummary())
	}
	for i := range c.entries {
		c.entries[i].value.VendorIDs = vendorIDs
	}
	slices.SortFunc(c.entries, func(x, y pkgEntry) int {
		if n := strings.Compare(x.bucket, y.bucket); n != 0 {
			return n
		}
		return strings.Compare(x.pkg, y.pkg)
	})
	v, err := vulnerabilityOf(a, c.entries)
	if err != nil {
		return nil, err
	}
	c.vuln = v
	return c, nil
}

// rangeSkip classifies a range error of affected[i].
func rangeSkip(id string, i int, af record.Affected, err error) *skipError {
	if errors.Is(err, errNoRanges) {
		return unsupportedf("trivy: %s affected[%d] %s %s: %v", id, i, af.Ecosystem, af.Package, err)
	}
	var ie *inexpressibleError
	if errors.As(err, &ie) {
		return unsupportedf("trivy: %s affected[%d] %s %s: %v", id, i, af.Ecosystem, af.Package, err)
	}
	return invalidf("trivy: %s affected[%d] %s %s: invalid range: %v", id, i, af.Ecosystem, af.Package, err)
}

// mergeEntry joins a second affected entry for the same package: the
// union of the ranges (OSV semantics), or for an OS package the higher
// fixed version (affected below either = affected below the higher).
func mergeEntry(dst *pkgEntry, e pkgEntry) error {
	if dst.os.os {
		n, err := dst.os.ver.compare(dst.value.FixedVersion, e.value.FixedVersion)
		switch {
		case dst.value.FixedVersion == "" || e.value.FixedVersion == "":
			dst.value.FixedVersion = "" // unfixed wins: affected at every version
		case err != nil:
			return err
		case n < 0:
			dst.value.FixedVersion = e.value.FixedVersion
		}
		return nil
	}
	if slices.Contains(dst.value.VulnerableVersions, "") || slices.Contains(e.value.VulnerableVersions, "") {
		dst.value.VulnerableVersions, dst.value.PatchedVersions = []string{""}, nil
		return nil
	}
	for _, v := range e.value.VulnerableVersions {
		dst.value.VulnerableVersions = appendUnique(dst.value.VulnerableVersions, v)
	}
	// Keep only fixed versions that no merged range still covers.
	inAny, err := dst.os.ver.compile(strings.Join(dst.value.VulnerableVersions, " || "))
	if err != nil {
		return err
	}
	var patched []string
	for _, p := range append(slices.Clone(dst.value.PatchedVersions), e.value.PatchedVersions...) {
		in, err := inAny(p)
		if err != nil {
			return err
		}
		if !in {
			patched = appendUnique(patched, p)
		}
	}
	sortVersions(dst.os.ver, patched)
	dst.value.PatchedVersions = patched
	return nil
}

// vendorIDsOf lists the record's aliases (CVE, GHSA, ... ids of the same
// vulnerability), sorted, without the record id itself, which is the key.
func vendorIDsOf(a *record.Advisory) []string {
	var out []string
	for _, s := range a.Aliases {
		if s != "" && s != a.ID {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// vulnerabilityOf is the `vulnerability` bucket value of an advisory.
func vulnerabilityOf(a *record.Advisory, entries []pkgEntry) ([]byte, error) {
	v := vulnerabilityValue{
		CweIDs:           a.CWEs,
		Description:      a.Details,
		LastModifiedDate: a.Modified,
		PublishedDate:    a.Published,
		References:       a.References,
		Title:            a.Summary,
	}
	sr := recordSeverity(a)
	var ids []string
	for _, e := range entries {
		ids = appendUnique(ids, e.ds.ID)
	}
	if sr.sev != SeverityUnknown {
		v.Severity = sr.sev.String()
		v.VendorSeverity = map[string]Severity{}
		for _, id := range ids {
			v.VendorSeverity[id] = sr.sev
		}
	}
	if !sr.cvss.empty() {
		v.CVSS = map[string]CVSS{}
		for _, id := range ids {
			v.CVSS[id] = sr.cvss
		}
	}
	return json.Marshal(v)
}
