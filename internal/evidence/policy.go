package evidence

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/stellaops/stella/internal/record"
)

// Schemas of the policy overlay (docs/policy-overlay.md).
const (
	SnapshotSchema = "stella.policy.snapshot/v1"
	FindingSchema  = "stella.policy.finding/v1"
)

// Verdicts of policy rules and findings.
const (
	VerdictPass = "pass"
	VerdictWarn = "warn"
	VerdictFail = "fail"
)

func validVerdict(s string) bool { return s == VerdictPass || s == VerdictWarn || s == VerdictFail }

type policySnapshot struct {
	GeneratedAt jsonText `json:"generatedAt"`
	PolicyID    jsonText `json:"policyId"`
	Revision    jsonText `json:"revision"`
	Rules       *[]struct {
		ID      jsonText `json:"id"`
		Verdict jsonText `json:"verdict"`
	} `json:"rules"`
}

func (d *docCtx) policySnapshot(js []byte) (*record.Parsed, *DocError) {
	var s policySnapshot
	if err := d.decode(js, &s, "policy snapshot"); err != nil {
		return nil, err
	}
	fail := func(format string, args ...any) (*record.Parsed, *DocError) {
		return nil, d.fail("policy snapshot: "+format, args...)
	}
	for _, f := range []struct {
		name string
		v    jsonText
	}{{"policyId", s.PolicyID}, {"revision", s.Revision}, {"generatedAt", s.GeneratedAt}} {
		if !f.v.IsStr || strings.TrimSpace(f.v.Str) == "" {
			return fail("%q must be a non-empty string", f.name)
		}
	}
	generated, err := parseTime(s.GeneratedAt.Str, "generatedAt")
	if err != nil {
		return fail("%v", err)
	}
	if s.Rules == nil {
		return fail("missing \"rules\" (an array, possibly empty)")
	}
	seen := map[string]int{}
	for i, r := range *s.Rules {
		switch {
		case !r.ID.IsStr || r.ID.Str == "":
			return fail("rules[%d] has no \"id\"", i)
		case !r.Verdict.IsStr || !validVerdict(r.Verdict.Str):
			return fail("rules[%d] (%s): \"verdict\" must be pass, warn or fail", i, r.ID.Str)
		}
		if j, dup := seen[r.ID.Str]; dup {
			return fail("rules[%d]: id %q is already used by rules[%d]", i, r.ID.Str, j)
		}
		seen[r.ID.Str] = i
	}
	return &record.Parsed{
		Kind:     record.KindPolicy,
		Format:   "policy-snapshot",
		ID:       s.PolicyID.Str + "@" + s.Revision.Str,
		Modified: generated,
	}, nil
}

// finding is one line of a findings JSON lines document.
type finding struct {
	EvaluatedAt     string `json:"evaluatedAt"`
	FindingID       string `json:"findingId"`
	PolicyID        string `json:"policyId"`
	Reason          string `json:"reason"`
	Schema          string `json:"schema"`
	Severity        string `json:"severity"`
	Status          string `json:"status"`
	Subject         string `json:"subject"`
	Verdict         string `json:"verdict"`
	VulnerabilityID string `json:"vulnerabilityId"`
}

// parseLines reads a JSON lines document. Policy findings are the only JSON
// lines evidence: every line is one stella.policy.finding/v1 object. Lines
// end with \n (or \r\n); blank lines are allowed only at the end.
func (d *docCtx) parseLines(body []byte) (*record.Parsed, *DocError) {
	var (
		lines    []record.FindingLine
		seen     = map[string]int{}
		products []string
		modified time.Time
		blank    int // number of the first blank line after the last finding
	)
	for n, rest := 1, body; len(rest) > 0; n++ {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i:i], rest[i+1:]
		} else {
			rest = nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(bytes.TrimSpace(line)) == 0 {
			if blank == 0 {
				blank = n
			}
			continue
		}
		if blank != 0 {
			return nil, d.fail("line %d is blank; blank lines are allowed only at the end", blank)
		}
		f, derr := d.findingLine(line, n, len(lines) == 0)
		if derr != nil {
			return nil, derr
		}
		if prev, dup := seen[f.FindingID]; dup {
			return nil, d.fail("line %d: findingId %q is already used on line %d", n, f.FindingID, prev)
		}
		seen[f.FindingID] = n
		t, err := parseTime(f.EvaluatedAt, "evaluatedAt")
		if err != nil {
			return nil, d.fail("line %d: %v", n, err)
		}
		modified = later(modified, t)
		products = append(products, f.Subject)
		lines = append(lines, record.FindingLine{ID: f.FindingID, Raw: line[:len(line):len(line)]})
	}
	if len(lines) == 0 {
		return nil, d.fail("empty document")
	}
	products = sortedUnique(products)
	var purls []string
	for _, p := range products {
		if strings.HasPrefix(p, "pkg:") {
			purls = append(purls, p)
		}
	}
	return &record.Parsed{
		Kind:     record.KindFindings,
		Format:   "findings-jsonl",
		Modified: modified,
		Purls:    purls,
		Products: products,
		Lines:    lines,
	}, nil
}

func (d *docCtx) findingLine(line []byte, n int, first bool) (*finding, *DocError) {
	if firstByte(line) != '{' {
		if first {
			return nil, d.fail("not an evidence document: line 1 of a JSON lines document is not a JSON object")
		}
		return nil, d.fail("line %d is not a JSON object", n)
	}
	var f finding
	if err := json.Unmarshal(line, &f); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, d.fail("line %d: %s", n, typeProblem(te))
		}
		return nil, d.fail("line %d: %s", n, jsonProblem(err, line))
	}
	if f.Schema != FindingSchema {
		if first {
			what := "has no \"schema\""
			if f.Schema != "" {
				what = "has schema " + quote(f.Schema)
			}
			return nil, d.fail("not an evidence document: JSON lines are read for policy findings (%s) only, and line 1 %s", FindingSchema, what)
		}
		return nil, d.fail("line %d: schema %s, expected %q", n, quote(f.Schema), FindingSchema)
	}
	for _, fl := range []struct{ name, v string }{
		{"findingId", f.FindingID}, {"policyId", f.PolicyID}, {"subject", f.Subject},
		{"vulnerabilityId", f.VulnerabilityID}, {"evaluatedAt", f.EvaluatedAt},
	} {
		if fl.v == "" {
			return nil, d.fail("line %d: missing %q", n, fl.name)
		}
	}
	if !validStatus(f.Status) {
		return nil, d.fail("line %d: \"status\" %s is not affected, not_affected, fixed or under_investigation", n, quote(f.Status))
	}
	if !validVerdict(f.Verdict) {
		return nil, d.fail("line %d: \"verdict\" %s is not pass, warn or fail", n, quote(f.Verdict))
	}
	return &f, nil
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
