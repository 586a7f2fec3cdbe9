package trivy

import (
	"regexp"
	"strings"

	gocvss20 "github.com/pandatix/go-cvss/20"
	gocvss30 "github.com/pandatix/go-cvss/30"
	gocvss31 "github.com/pandatix/go-cvss/31"
	gocvss40 "github.com/pandatix/go-cvss/40"

	"github.com/stellaops/stella/internal/record"
)

// Severity is trivy-db's severity scale, stored as an integer in
// VendorSeverity.
type Severity int

// trivy-db severities.
const (
	SeverityUnknown Severity = iota
	SeverityLow
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

var severityNames = [...]string{"UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"}

func (s Severity) String() string {
	if s < 0 || int(s) >= len(severityNames) {
		return "UNKNOWN"
	}
	return severityNames[s]
}

// CVSS is one source's CVSS data (trivy-db types.CVSS; alphabetical fields).
type CVSS struct {
	V2Score   float64 `json:"V2Score,omitempty"`
	V2Vector  string  `json:"V2Vector,omitempty"`
	V3Score   float64 `json:"V3Score,omitempty"`
	V3Vector  string  `json:"V3Vector,omitempty"`
	V40Score  float64 `json:"V40Score,omitempty"`
	V40Vector string  `json:"V40Vector,omitempty"`
}

func (c CVSS) empty() bool { return c.V2Vector == "" && c.V3Vector == "" && c.V40Vector == "" }

// severityOfWord maps a source's own severity word to trivy's scale: the
// CVSS words, Red Hat's (and AlmaLinux/Rocky's) "Important"/"Moderate",
// Debian's "unimportant" and Ubuntu's "negligible" (both LOW, as trivy-db
// maps them). Anything else ("none", "unknown", free text) is no severity.
func severityOfWord(w string) Severity {
	switch strings.ToLower(strings.TrimSpace(w)) {
	case "critical":
		return SeverityCritical
	case "high", "important":
		return SeverityHigh
	case "medium", "moderate":
		return SeverityMedium
	case "low", "negligible", "unimportant":
		return SeverityLow
	}
	return SeverityUnknown
}

// severityOfRating maps a CVSS v3/v4 qualitative rating.
func severityOfRating(r string) Severity {
	switch r {
	case "CRITICAL":
		return SeverityCritical
	case "HIGH":
		return SeverityHigh
	case "MEDIUM":
		return SeverityMedium
	case "LOW":
		return SeverityLow
	}
	return SeverityUnknown // NONE
}

// severityOfV2 is NVD's CVSS v2 rating (LOW < 4.0 <= MEDIUM < 7.0 <= HIGH).
func severityOfV2(score float64) Severity {
	switch {
	case score >= 7.0:
		return SeverityHigh
	case score >= 4.0:
		return SeverityMedium
	case score > 0:
		return SeverityLow
	}
	return SeverityUnknown
}

// sevResult is what the severities of a record say.
type sevResult struct {
	sev    Severity // the source's severity (UNKNOWN when it states none)
	cvss   CVSS
	notes  []string // vectors that did not parse (ignored)
	source string   // where sev came from: "word", "CVSS_V4", "CVSS_V3", "CVSS_V2"
}

// parseSeverities reads severities as the source states them. The source's
// own word wins, then the CVSS v4, v3, v2 base score of its vector rated
// with the CVSS specification's qualitative scale. A vector that does not
// parse is ignored and noted; nothing is ever guessed.
func parseSeverities(list []record.Severity) sevResult {
	var r sevResult
	var word, v4, v3, v2 Severity
	for _, s := range list {
		score := strings.TrimSpace(s.Score)
		if score == "" {
			continue
		}
		switch s.Type {
		case "CVSS_V4":
			vec := strings.TrimSuffix(score, "/")
			c, err := gocvss40.ParseVector(vec)
			if err != nil {
				r.notes = append(r.notes, "CVSS_V4 "+vec+": "+err.Error())
				continue
			}
			sc := c.Score()
			rt, err := gocvss40.Rating(sc)
			if err != nil {
				continue
			}
			if r.cvss.V40Vector == "" {
				r.cvss.V40Vector, r.cvss.V40Score = vec, sc
				v4 = severityOfRating(rt)
			}
		case "CVSS_V3":
			vec := strings.TrimSuffix(score, "/")
			var sc float64
			var rt string
			var err error
			switch {
			case strings.HasPrefix(vec, "CVSS:3.1/"):
				var c *gocvss31.CVSS31
				if c, err = gocvss31.ParseVector(vec); err == nil {
					sc = c.BaseScore()
					rt, err = gocvss31.Rating(sc)
				}
			case strings.HasPrefix(vec, "CVSS:3.0/"):
				var c *gocvss30.CVSS30
				if c, err = gocvss30.ParseVector(vec); err == nil {
					sc = c.BaseScore()
					rt, err = gocvss30.Rating(sc)
				}
			default:
				r.notes = append(r.notes, "CVSS_V3 "+vec+": not a CVSS:3.0/ or CVSS:3.1/ vector")
				continue
			}
			if err != nil {
				r.notes = append(r.notes, "CVSS_V3 "+vec+": "+err.Error())
				continue
			}
			if r.cvss.V3Vector == "" {
				r.cvss.V3Vector, r.cvss.V3Score = vec, sc
				v3 = severityOfRating(rt)
			}
		case "CVSS_V2":
			vec := strings.TrimSuffix(score, "/")
			c, err := gocvss20.ParseVector(vec)
			if err != nil {
				r.notes = append(r.notes, "CVSS_V2 "+vec+": "+err.Error())
				continue
			}
			if r.cvss.V2Vector == "" {
				r.cvss.V2Vector, r.cvss.V2Score = vec, c.BaseScore()
				v2 = severityOfV2(r.cvss.V2Score)
			}
		default: // the source's own word (GHSA "HIGH", Ubuntu "medium", ...)
			if w := severityOfWord(score); w != SeverityUnknown && word == SeverityUnknown {
				word = w
			}
		}
	}
	switch {
	case word != SeverityUnknown:
		r.sev, r.source = word, "word"
	case v4 != SeverityUnknown:
		r.sev, r.source = v4, "CVSS_V4"
	case v3 != SeverityUnknown:
		r.sev, r.source = v3, "CVSS_V3"
	case v2 != SeverityUnknown:
		r.sev, r.source = v2, "CVSS_V2"
	}
	return r
}

// reErratumSeverity: Red Hat-family errata (AlmaLinux ALSA, Rocky RLSA)
// state their severity as the first word of the title, "Important: openssl
// security update"; their OSV records carry no other severity.
var reErratumSeverity = regexp.MustCompile(`^(Critical|Important|Moderate|Low): `)

func erratumSeverity(id, summary string) Severity {
	prefix, _, _ := strings.Cut(id, "-")
	switch strings.ToUpper(prefix) {
	case "ALSA", "RLSA", "RXSA":
	default:
		return SeverityUnknown
	}
	m := reErratumSeverity.FindStringSubmatch(summary)
	if m == nil {
		return SeverityUnknown
	}
	return severityOfWord(m[1])
}

// recordSeverity is the severity a record states: its own severities, else
// the erratum title word, else the highest per-package severity.
func recordSeverity(a *record.Advisory) sevResult {
	r := parseSeverities(a.Severity)
	if r.sev != SeverityUnknown {
		return r
	}
	if s := erratumSeverity(a.ID, a.Summary); s != SeverityUnknown {
		r.sev, r.source = s, "word"
		return r
	}
	var best sevResult
	for _, af := range a.Affected {
		p := parseSeverities(af.Severity)
		r.notes = append(r.notes, p.notes...)
		if p.sev > best.sev {
			best = p
		}
	}
	if best.sev != SeverityUnknown {
		best.notes = r.notes
		if r.cvss.empty() {
			return best
		}
		r.sev, r.source = best.sev, best.source
	}
	return r
}
