package evidence

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/stellaops/stella/internal/record"
)

// osvDoc holds the OSV fields that are read (OSV schema 1.x). Only the
// fields needed are decoded; free-form database_specific and
// ecosystem_specific objects are read tolerantly.
type osvDoc struct {
	Affected         []osvAffected  `json:"affected"`
	Aliases          []string       `json:"aliases"`
	DatabaseSpecific specific       `json:"database_specific"`
	Details          string         `json:"details"`
	ID               jsonText       `json:"id"`
	Modified         jsonText       `json:"modified"`
	Published        jsonText       `json:"published"`
	References       []osvReference `json:"references"`
	Related          []string       `json:"related"`
	SchemaVersion    jsonText       `json:"schema_version"`
	Severity         []osvSeverity  `json:"severity"`
	Summary          string         `json:"summary"`
	Withdrawn        jsonText       `json:"withdrawn"`
}

type osvAffected struct {
	EcosystemSpecific specific      `json:"ecosystem_specific"`
	Package           osvPackage    `json:"package"`
	Ranges            []osvRange    `json:"ranges"`
	Severity          []osvSeverity `json:"severity"`
	Versions          []string      `json:"versions"`
}

type osvPackage struct {
	Ecosystem string `json:"ecosystem"`
	Name      string `json:"name"`
	Purl      string `json:"purl"`
}

type osvRange struct {
	Events []osvEvent `json:"events"`
	Repo   string     `json:"repo"`
	Type   string     `json:"type"`
}

type osvEvent struct {
	Fixed        *string `json:"fixed"`
	Introduced   *string `json:"introduced"`
	LastAffected *string `json:"last_affected"`
	Limit        *string `json:"limit"`
}

type osvReference struct {
	Type string `json:"type"`
	URL  string `json:"url"`
}

type osvSeverity struct {
	Score string `json:"score"`
	Type  string `json:"type"`
}

// specific reads the two things taken from a free-form database_specific or
// ecosystem_specific object: a "severity" string and "cwe_ids" strings.
// Anything else, or other shapes, is ignored.
type specific struct {
	severity string
	cweIDs   []string
}

func (s *specific) UnmarshalJSON(b []byte) error {
	if firstByte(b) != '{' {
		return nil
	}
	var v struct {
		CWEIDs   json.RawMessage `json:"cwe_ids"`
		Severity jsonText        `json:"severity"`
	}
	if json.Unmarshal(b, &v) != nil {
		return nil
	}
	if v.Severity.IsStr {
		s.severity = v.Severity.Str
	}
	if len(v.CWEIDs) > 0 {
		var ids []string
		if json.Unmarshal(v.CWEIDs, &ids) == nil {
			s.cweIDs = ids
		}
	}
	return nil
}

// UnmarshalJSONFrom is UnmarshalJSON for the fast decoder, with the same
// result. (The fast decoder rejects duplicate keys, so the first match of a
// name is the only one; encoding/json decodes such documents.)
func (s *specific) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	if dec.PeekKind() != '{' {
		return dec.SkipValue()
	}
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	var sev jsonText
	var cwe []string
	for dec.PeekKind() != '}' {
		name, err := dec.ReadToken()
		if err != nil {
			return err
		}
		switch n := name.String(); {
		case n == "severity" || strings.EqualFold(n, "severity"):
			if err := sev.UnmarshalJSONFrom(dec); err != nil {
				return err
			}
		case n == "cwe_ids" || strings.EqualFold(n, "cwe_ids"):
			if cwe, err = stringsOrNil(dec); err != nil {
				return err
			}
		default:
			if err := dec.SkipValue(); err != nil {
				return err
			}
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	if sev.IsStr {
		s.severity = sev.Str
	}
	if cwe != nil {
		s.cweIDs = cwe
	}
	return nil
}

// stringsOrNil reads an array of strings (an empty one is non-nil, as
// encoding/json makes it); any other value (or an array holding something
// else) is skipped and gives nil.
func stringsOrNil(dec *jsontext.Decoder) ([]string, error) {
	if dec.PeekKind() != '[' {
		return nil, dec.SkipValue()
	}
	if _, err := dec.ReadToken(); err != nil {
		return nil, err
	}
	out := []string{}
	ok := true
	for dec.PeekKind() != ']' {
		switch dec.PeekKind() {
		case '"':
			tok, err := dec.ReadToken()
			if err != nil {
				return nil, err
			}
			out = append(out, tok.String())
		case 'n': // encoding/json reads null into a string as ""
			if _, err := dec.ReadToken(); err != nil {
				return nil, err
			}
			out = append(out, "")
		default:
			ok = false
			if err := dec.SkipValue(); err != nil {
				return nil, err
			}
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return nil, err
	}
	if !ok {
		return nil, nil
	}
	return out, nil
}

// osv turns a decoded OSV record into an advisory.
func (d *docCtx) osv(o *osvDoc) (*record.Parsed, *DocError) {
	fail := func(format string, args ...any) (*record.Parsed, *DocError) {
		return nil, d.fail("OSV: "+format, args...)
	}
	switch {
	case !o.ID.Set:
		return fail("missing \"id\"")
	case !o.ID.IsStr || strings.TrimSpace(o.ID.Str) == "":
		return fail("\"id\" must be a non-empty string")
	case !o.Modified.Set:
		return fail("missing \"modified\"")
	}
	id := o.ID.Str
	modified, err := osvTime(o.Modified, "modified")
	if err != nil {
		return fail("%v", err)
	}
	published, err := osvTime(o.Published, "published")
	if err != nil {
		return fail("%v", err)
	}
	withdrawn, err := osvTime(o.Withdrawn, "withdrawn")
	if err != nil {
		return fail("%v", err)
	}
	word := severityWord(id)
	adv := &record.Advisory{
		Affected:   make([]record.Affected, 0, len(o.Affected)),
		Aliases:    sortedUnique(o.Aliases),
		CWEs:       nilIfEmpty(sortedUnique(o.DatabaseSpecific.cweIDs)),
		Details:    o.Details,
		Digest:     d.doc.Digest,
		ID:         id,
		Modified:   record.Time(modified),
		Path:       d.doc.Path,
		Published:  record.Time(published),
		References: []string{},
		Related:    nilIfEmpty(uniqueInOrder(o.Related)),
		Severity:   severities(o.Severity, o.DatabaseSpecific.severity, word),
		Source:     d.doc.Source,
		Summary:    o.Summary,
		Withdrawn:  record.Time(withdrawn),
	}
	var ecosystems, purls []string
	for i, a := range o.Affected {
		af := record.Affected{
			Ecosystem:     a.Package.Ecosystem,
			FixedVersions: []string{},
			Package:       a.Package.Name,
			Purl:          a.Package.Purl,
			Ranges:        make([]record.Range, 0, len(a.Ranges)),
			Severity:      nilIfEmpty(severities(a.Severity, a.EcosystemSpecific.severity, word)),
			Versions:      nilIfEmpty(a.Versions),
		}
		for j, r := range a.Ranges {
			rr, err := osvRangeOf(r)
			if err != nil {
				return fail("affected[%d].ranges[%d]: %v", i, j, err)
			}
			for _, e := range rr.Events {
				if e.Fixed != "" {
					af.FixedVersions = append(af.FixedVersions, e.Fixed)
				}
			}
			af.Ranges = append(af.Ranges, rr)
		}
		af.FixedVersions = uniqueInOrder(af.FixedVersions)
		if af.Ecosystem != "" {
			ecosystems = append(ecosystems, af.Ecosystem)
		}
		if af.Purl != "" {
			purls = append(purls, af.Purl)
		} else if p := PurlFor(af.Ecosystem, af.Package); p != "" {
			purls = append(purls, p)
		}
		adv.Affected = append(adv.Affected, af)
	}
	for _, r := range o.References {
		if r.URL != "" {
			adv.References = append(adv.References, r.URL)
		}
	}
	adv.References = uniqueInOrder(adv.References)
	adv.Ecosystems = sortedUnique(ecosystems)
	format := "osv-json"
	if d.yaml {
		format = "osv-yaml"
	}
	return &record.Parsed{
		Kind:       record.KindAdvisory,
		Format:     format,
		ID:         id,
		Modified:   modified,
		Ecosystems: adv.Ecosystems,
		Purls:      nilIfEmpty(sortedUnique(purls)),
		Advisory:   adv,
	}, nil
}

// osvRangeOf validates one OSV range: a known type, a repo for GIT, events
// with exactly one field each, and at least one "introduced" event.
func osvRangeOf(r osvRange) (record.Range, error) {
	switch r.Type {
	case "SEMVER", "ECOSYSTEM":
	case "GIT":
		if r.Repo == "" {
			return record.Range{}, fmt.Errorf("a GIT range needs \"repo\"")
		}
	case "":
		return record.Range{}, fmt.Errorf("missing \"type\"")
	default:
		return record.Range{}, fmt.Errorf("unknown range type %q (SEMVER, ECOSYSTEM or GIT)", r.Type)
	}
	if len(r.Events) == 0 {
		return record.Range{}, fmt.Errorf("no events")
	}
	out := record.Range{Events: make([]record.Event, 0, len(r.Events)), Repo: r.Repo, Type: r.Type}
	introduced := false
	for k, e := range r.Events {
		var ev record.Event
		n := 0
		for _, f := range []struct {
			v   *string
			dst *string
		}{{e.Introduced, &ev.Introduced}, {e.Fixed, &ev.Fixed}, {e.LastAffected, &ev.LastAffected}, {e.Limit, &ev.Limit}} {
			if f.v != nil {
				n++
				*f.dst = *f.v
			}
		}
		if n != 1 {
			return record.Range{}, fmt.Errorf("events[%d] must have exactly one of introduced, fixed, last_affected or limit (has %d)", k, n)
		}
		if ev == (record.Event{}) {
			return record.Range{}, fmt.Errorf("events[%d] has an empty version", k)
		}
		introduced = introduced || e.Introduced != nil
		out.Events = append(out.Events, ev)
	}
	if !introduced {
		return record.Range{}, fmt.Errorf("no \"introduced\" event (every range needs one; use \"0\" for all versions)")
	}
	return out, nil
}

// severities lists severities as the source gives them: the CVSS-style list,
// then the source's own word (database_specific or ecosystem_specific
// "severity") typed with the source word.
func severities(list []osvSeverity, own, word string) []record.Severity {
	out := make([]record.Severity, 0, len(list)+1)
	for _, s := range list {
		if s.Type == "" && s.Score == "" {
			continue
		}
		out = append(out, record.Severity{Score: s.Score, Type: s.Type})
	}
	if own != "" {
		out = append(out, record.Severity{Score: own, Type: word})
	}
	return out
}

// severityWord is the Type given to a severity that a source states in its
// own words (e.g. GHSA's database_specific.severity "HIGH"): a short name of
// the source, from the record id prefix.
func severityWord(id string) string {
	prefix, _, _ := strings.Cut(id, "-")
	switch p := strings.ToUpper(prefix); p {
	case "GHSA":
		return "ghsa"
	case "ALSA", "ALBA", "ALEA":
		return "alma"
	case "RLSA", "RLBA", "RLEA", "RXSA":
		return "rocky"
	case "RHSA", "RHBA", "RHEA":
		return "redhat"
	case "":
		return "source"
	}
	return strings.ToLower(prefix)
}

// osvTime reads an OSV timestamp. An absent value and the zero date
// (0001-01-01T00:00:00Z, as the Go vulndb repository stores) are the zero
// time.
func osvTime(t jsonText, name string) (time.Time, error) {
	if !t.Set {
		return time.Time{}, nil
	}
	if !t.IsStr {
		return time.Time{}, fmt.Errorf("%q must be a string (RFC 3339 time)", name)
	}
	return parseTime(t.Str, name)
}

// parseTime parses an RFC 3339 time; the zero date is the zero time.
func parseTime(s, name string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time: %q", name, s)
	}
	if v.Year() <= 1 {
		return time.Time{}, nil
	}
	return v.UTC(), nil
}

// PurlFor derives a package URL (without version) from an OSV ecosystem and
// package name, for ecosystems whose purl type is unambiguous; "" otherwise.
// Parse adds it to Parsed.Purls (what selectors match on) for affected
// packages that state no purl; the normalised record keeps only the purl the
// source wrote.
func PurlFor(ecosystem, name string) string {
	if name == "" {
		return ""
	}
	eco, _, _ := strings.Cut(ecosystem, ":")
	switch eco {
	case "Go":
		return "pkg:golang/" + name
	case "PyPI":
		return "pkg:pypi/" + strings.ReplaceAll(strings.ToLower(name), "_", "-")
	case "crates.io":
		return "pkg:cargo/" + name
	case "npm":
		if strings.HasPrefix(name, "@") {
			return "pkg:npm/%40" + name[1:]
		}
		return "pkg:npm/" + name
	case "Maven":
		if g, a, ok := strings.Cut(name, ":"); ok {
			return "pkg:maven/" + g + "/" + a
		}
	case "Packagist":
		return "pkg:composer/" + name
	case "RubyGems":
		return "pkg:gem/" + name
	case "NuGet":
		return "pkg:nuget/" + name
	case "Hex":
		return "pkg:hex/" + name
	case "Pub":
		return "pkg:pub/" + name
	case "AlmaLinux":
		return "pkg:rpm/almalinux/" + name
	case "Rocky Linux":
		return "pkg:rpm/rocky-linux/" + name
	}
	return ""
}
