package trivy

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/stellaops/stella/internal/record"
)

// errNoRanges: an affected package with only GIT ranges (commit hashes,
// not versions) and no explicit versions, or with no ranges at all.
var errNoRanges = errors.New("no SEMVER or ECOSYSTEM range and no listed versions (GIT ranges name commits, not versions)")

// inexpressibleError: a valid OSV range that trivy's schema for the
// ecosystem cannot express.
type inexpressibleError struct{ msg string }

func (e *inexpressibleError) Error() string { return e.msg }

func inexpressiblef(format string, args ...any) error {
	return &inexpressibleError{fmt.Sprintf(format, args...)}
}

// interval is one affected version interval [lo, hi) or [lo, hi]; lo == ""
// is "introduced: 0" (every version below), hi == "" is open-ended.
type interval struct {
	lo, hi   string
	hiIncl   bool // hi is a last_affected (inclusive) bound
	hiFromFx bool // hi is a fixed version
}

type event struct {
	kind int // order of events at the same version: introduced, last_affected, fixed, limit
	v    string
}

const (
	evIntroduced = iota
	evLastAffected
	evFixed
	evLimit
)

// intervals evaluates one OSV SEMVER/ECOSYSTEM range the way the OSV
// schema defines it: events are sorted by version with the ecosystem's
// comparison ("introduced: 0" first), then walked: an introduced event
// opens an interval, fixed closes it before and last_affected after the
// version; a limit caps every interval (limit "*" means none).
func intervals(ver versioner, r record.Range) ([]interval, error) {
	var evs []event
	var limits []string
	for _, e := range r.Events {
		switch {
		case e.Introduced != "":
			evs = append(evs, event{evIntroduced, e.Introduced})
		case e.LastAffected != "":
			evs = append(evs, event{evLastAffected, e.LastAffected})
		case e.Fixed != "":
			evs = append(evs, event{evFixed, e.Fixed})
		case e.Limit != "":
			if e.Limit != "*" {
				limits = append(limits, e.Limit)
			}
		}
	}
	// Parse every version once first, so that sorting cannot fail half-way.
	parsed := map[string]any{}
	for _, e := range evs {
		if e.kind == evIntroduced && e.v == "0" {
			continue
		}
		p, ok, err := ver.parsed(e.v)
		if err == nil && !ok {
			_, err = ver.compare(e.v, e.v)
		}
		if err != nil {
			return nil, fmt.Errorf("version %q is not a %s version: %v", e.v, ver.name(), err)
		}
		if ok {
			parsed[e.v] = p
		}
	}
	for _, l := range limits {
		p, ok, err := ver.parsed(l)
		if err == nil && !ok {
			_, err = ver.compare(l, l)
		}
		if err != nil {
			return nil, fmt.Errorf("limit %q is not a %s version: %v", l, ver.name(), err)
		}
		if ok {
			parsed[l] = p
		}
	}
	cmpv := func(a, b string) int {
		pa, oka := parsed[a]
		pb, okb := parsed[b]
		if oka && okb {
			return ver.cmp(pa, pb)
		}
		n, _ := ver.compare(a, b)
		return n
	}
	slices.SortStableFunc(evs, func(a, b event) int {
		az, bz := a.kind == evIntroduced && a.v == "0", b.kind == evIntroduced && b.v == "0"
		switch {
		case az && bz:
			return 0
		case az:
			return -1
		case bz:
			return 1
		}
		if n := cmpv(a.v, b.v); n != 0 {
			return n
		}
		return a.kind - b.kind
	})
	var out []interval
	open, lo := false, ""
	for _, e := range evs {
		switch e.kind {
		case evIntroduced:
			if !open {
				open, lo = true, e.v
				if lo == "0" {
					lo = ""
				}
			}
		case evFixed:
			if open {
				open = false
				if lo == "" || cmpv(lo, e.v) < 0 { // [x, x) is empty
					out = append(out, interval{lo: lo, hi: e.v, hiFromFx: true})
				}
			}
		case evLastAffected:
			if open {
				open = false
				out = append(out, interval{lo: lo, hi: e.v, hiIncl: true})
			}
		}
	}
	if open {
		out = append(out, interval{lo: lo})
	}
	for _, l := range limits {
		var capped []interval
		for _, iv := range out {
			if iv.lo != "" && cmpv(iv.lo, l) >= 0 {
				continue // starts at or above the limit: nothing affected
			}
			if iv.hi == "" || cmpv(iv.hi, l) > 0 || (iv.hiIncl && cmpv(iv.hi, l) == 0) {
				iv.hi, iv.hiIncl, iv.hiFromFx = l, false, false
			}
			capped = append(capped, iv)
		}
		out = capped
	}
	return out, nil
}

// constraint writes an interval in trivy's constraint syntax (the one
// every language comparer of trivy reads: ">=a, <b", "<=b", "=a"). The
// interval that holds every version is "", which trivy reads as "always
// vulnerable".
func (iv interval) constraint() string {
	var hi string
	switch {
	case iv.hi == "":
	case iv.hiIncl && iv.lo == iv.hi:
		return "=" + iv.lo
	case iv.hiIncl:
		hi = "<=" + iv.hi
	default:
		hi = "<" + iv.hi
	}
	switch {
	case iv.lo == "":
		return hi
	case hi == "":
		return ">=" + iv.lo
	}
	return ">=" + iv.lo + ", " + hi
}

// langVersions turns the ranges and listed versions of one affected
// package into trivy's VulnerableVersions and PatchedVersions, and proves
// each constraint with trivy's own comparer: it must parse, hold its lower
// bound (and inclusive upper bound) and exclude its fixed version.
func langVersions(ver versioner, a record.Affected) (vulnerable, patched []string, err error) {
	var ivs []interval
	ranged := false
	for i, r := range a.Ranges {
		switch r.Type {
		case "GIT":
			continue
		case "SEMVER", "ECOSYSTEM":
		default:
			return nil, nil, fmt.Errorf("ranges[%d]: unknown range type %q", i, r.Type)
		}
		ranged = true
		got, err := intervals(ver, r)
		if err != nil {
			return nil, nil, fmt.Errorf("ranges[%d]: %v", i, err)
		}
		ivs = append(ivs, got...)
	}
	all := false
	for _, iv := range ivs {
		c := iv.constraint()
		if c == "" {
			all = true
			continue
		}
		if err := proveInterval(ver, iv, c); err != nil {
			return nil, nil, err
		}
		vulnerable = appendUnique(vulnerable, c)
	}
	nIntervals := len(vulnerable)
	if all {
		// Every version is affected: one "" says it to trivy, whatever else.
		vulnerable = []string{""}
	}
	// Versions the record lists explicitly are affected too (OSV: the
	// union of ranges and versions). A listed version trivy cannot parse
	// is dropped: trivy could not match an installed package of that
	// version either.
	if !all && len(a.Versions) > 0 {
		var inRanges matcher
		if len(vulnerable) > 0 {
			if inRanges, err = ver.compile(strings.Join(vulnerable, " || ")); err != nil {
				return nil, nil, err
			}
		}
		fast := newOrderCheck(ver, ivs)
		for _, v := range a.Versions {
			if strings.TrimSpace(v) != v || v == "" || strings.ContainsAny(v, ",|") {
				continue
			}
			if inRanges != nil {
				in, known := fast.in(v)
				if !known {
					var err error
					if in, err = inRanges(v); err != nil {
						continue // not a version trivy can parse
					}
				}
				if in {
					continue
				}
			}
			c := "=" + v
			if ok, err := check(ver, v, c); err != nil || !ok {
				continue
			}
			vulnerable = appendUnique(vulnerable, c)
		}
	}
	if len(vulnerable) == 0 {
		if !ranged && len(a.Versions) == 0 {
			return nil, nil, errNoRanges
		}
		if !ranged {
			return nil, nil, inexpressiblef("none of the %d listed versions is a %s version", len(a.Versions), ver.name())
		}
		return nil, nil, nil // ranges that affect nothing (e.g. introduced == fixed)
	}
	// PatchedVersions: the fixed versions, for trivy's "Fixed Version"
	// column. Each is an exact-version constraint for trivy, so one that
	// another range still covers is left out (it would hide that version).
	if vulnerable[0] != "" {
		// The release-number fast path knows the intervals only, not the
		// listed versions added as "=V".
		fast := newOrderCheck(ver, ivs)
		onlyIntervals := len(vulnerable) == nIntervals
		var inAny matcher
		for _, iv := range ivs {
			if !iv.hiFromFx {
				continue
			}
			in, known := fast.in(iv.hi)
			if !known || !onlyIntervals {
				if inAny == nil {
					if inAny, err = ver.compile(strings.Join(vulnerable, " || ")); err != nil {
						return nil, nil, fmt.Errorf("ranges %q: %v", vulnerable, err)
					}
				}
				if in, err = inAny(iv.hi); err != nil {
					return nil, nil, fmt.Errorf("fixed version %q: %v", iv.hi, err)
				}
			}
			if !in {
				patched = appendUnique(patched, iv.hi)
			}
		}
	}
	sortVersions(ver, patched)
	return vulnerable, patched, nil
}

// sortVersions orders versions ascending (trivy shows PatchedVersions in
// stored order as the Fixed Version); versions that do not compare keep
// their place.
func sortVersions(ver versioner, vs []string) {
	slices.SortStableFunc(vs, func(a, b string) int {
		n, err := ver.compare(a, b)
		if err != nil {
			return 0
		}
		return n
	})
}

// proveInterval checks a written constraint against its interval with the
// comparer trivy will use.
func proveInterval(ver versioner, iv interval, c string) error {
	m, err := ver.compile(c)
	if err != nil {
		return fmt.Errorf("range %q cannot be written in trivy's %s constraint syntax: %v", c, ver.name(), err)
	}
	must := func(v string, want bool) error {
		got, err := m(v)
		if err != nil {
			return fmt.Errorf("range %q cannot be written in trivy's %s constraint syntax: %v", c, ver.name(), err)
		}
		if got != want {
			return fmt.Errorf("range %q does not hold in trivy's %s comparer (version %q: got %v, want %v)", c, ver.name(), v, got, want)
		}
		return nil
	}
	if iv.lo != "" {
		if err := must(iv.lo, true); err != nil {
			return err
		}
	}
	if iv.hi != "" {
		if err := must(iv.hi, iv.hiIncl); err != nil {
			return err
		}
	}
	return nil
}

// osFixed reads the single fixed version of an OS package: trivy's OS
// detectors know one FixedVersion per advisory and package (affected iff
// installed < fixed), so only ranges "introduced 0 [, fixed X]" can be
// written; anything else (a lower bound, last_affected, several disjoint
// intervals) is not expressible and is refused.
func osFixed(t target, a record.Affected) (fixed string, err error) {
	var ivs []interval
	for i, r := range a.Ranges {
		switch r.Type {
		case "ECOSYSTEM", "SEMVER":
		case "GIT":
			continue
		default:
			return "", fmt.Errorf("ranges[%d]: unknown range type %q", i, r.Type)
		}
		got, err := intervals(t.ver, r)
		if err != nil {
			return "", fmt.Errorf("ranges[%d]: %v", i, err)
		}
		ivs = append(ivs, got...)
	}
	if len(ivs) == 0 {
		if len(a.Ranges) == 0 && len(a.Versions) > 0 {
			return "", inexpressiblef("only listed versions, which trivy's %s detector cannot use (it compares with one fixed version)", t.eco)
		}
		return "", errNoRanges
	}
	if len(ivs) > 1 {
		return "", inexpressiblef("%d disjoint affected intervals; trivy's %s detector holds one fixed version per package", len(ivs), t.eco)
	}
	iv := ivs[0]
	switch {
	case iv.lo != "":
		return "", inexpressiblef("affected from %q on; trivy's %s detector cannot express a lower bound", iv.lo, t.eco)
	case iv.hiIncl:
		return "", inexpressiblef("last_affected %q without a fixed version; trivy's %s detector needs a fixed version", iv.hi, t.eco)
	case iv.hi == "" && !t.unfixed:
		return "", inexpressiblef("no fixed version; trivy's %s detector reports fixed advisories only", t.eco)
	}
	return iv.hi, nil
}

func appendUnique(s []string, v string) []string {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

// orderCheck decides "is v inside one of the intervals" from the release
// numbers alone where that is exactly what trivy's constraints mean, so
// that the listed versions of an advisory (hundreds for PyPI) do not each
// go through a constraint parser:
//
//   - a plain release (digits and dots) against plain bounds: numeric order
//     with zero padding, which every trivy comparer agrees with;
//   - otherwise, a version whose release numbers differ from a bound's
//     (either may have a pre/post/dev or other suffix: "1.5rc1",
//     "2.0.post1", "1.2.3-beta.1"): a suffix cannot move a version across
//     another release (PEP 440's "<2.0 excludes 2.0rc1" and similar rules
//     only concern the bound's own release).
//
// Anything else (an epoch, a local label, a release equal to a bound's)
// is left to trivy's constraint parser.
type orderCheck struct {
	bounds []relInterval
	ok     bool
}

type relInterval struct {
	lo, hi           []uint64
	loPlain, hiPlain bool
	incl             bool
}

// releaseOf splits a version into its leading release numbers and the
// rest; ok is false when it does not start with a number or has an epoch
// ("1!2.0") or a local/build label ("+...").
func releaseOf(v string) (rel []uint64, plain, ok bool) {
	if strings.ContainsAny(v, "!+") {
		return nil, false, false
	}
	i := 0
	for {
		j := i
		for j < len(v) && v[j] >= '0' && v[j] <= '9' {
			j++
		}
		if j == i || j-i > 18 {
			return nil, false, false
		}
		n, err := strconv.ParseUint(v[i:j], 10, 64)
		if err != nil {
			return nil, false, false
		}
		rel = append(rel, n)
		if j == len(v) {
			return rel, true, true
		}
		if v[j] == '.' && j+1 < len(v) && v[j+1] >= '0' && v[j+1] <= '9' {
			i = j + 1
			continue
		}
		// A suffix must not start with a digit or a dot before a digit
		// (that would be part of the release).
		return rel, false, true
	}
}

func cmpRelease(a, b []uint64) int {
	for i := 0; i < max(len(a), len(b)); i++ {
		var x, y uint64
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

func newOrderCheck(_ versioner, ivs []interval) orderCheck {
	oc := orderCheck{ok: true}
	for _, iv := range ivs {
		var ri relInterval
		ri.incl = iv.hiIncl
		for _, b := range []struct {
			v     string
			dst   *[]uint64
			plain *bool
		}{{iv.lo, &ri.lo, &ri.loPlain}, {iv.hi, &ri.hi, &ri.hiPlain}} {
			if b.v == "" {
				continue
			}
			rel, plain, ok := releaseOf(b.v)
			if !ok {
				oc.ok = false
				return oc
			}
			*b.dst, *b.plain = rel, plain
		}
		oc.bounds = append(oc.bounds, ri)
	}
	return oc
}

// in reports whether v is inside the intervals; known is false when the
// release numbers alone do not decide it.
func (oc orderCheck) in(v string) (in, known bool) {
	if !oc.ok {
		return false, false
	}
	rel, plain, ok := releaseOf(v)
	if !ok {
		return false, false
	}
	for _, b := range oc.bounds {
		if b.lo != nil {
			n := cmpRelease(rel, b.lo)
			if n == 0 && !(plain && b.loPlain) {
				return false, false
			}
			if n < 0 {
				continue
			}
		}
		if b.hi != nil {
			n := cmpRelease(rel, b.hi)
			if n == 0 && !(plain && b.hiPlain) {
				return false, false
			}
			if n > 0 || (n == 0 && !b.incl) {
				continue
			}
		}
		return true, true
	}
	return false, true
}
