package trivy

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stellaops/stella/internal/record"
)

func TestSeverities(t *testing.T) {
	cases := []struct {
		list []record.Severity
		want Severity
		src  string
	}{
		{[]record.Severity{{Type: "CVSS_V3", Score: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}}, SeverityCritical, "CVSS_V3"},
		{[]record.Severity{{Type: "CVSS_V3", Score: "CVSS:3.0/AV:N/AC:H/PR:N/UI:N/S:U/C:N/I:N/A:L"}}, SeverityLow, "CVSS_V3"},
		{[]record.Severity{{Type: "CVSS_V3", Score: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}, {Type: "ghsa", Score: "MODERATE"}}, SeverityMedium, "word"},
		{[]record.Severity{{Type: "CVSS_V4", Score: "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:L/VI:N/VA:N/SC:N/SI:N/SA:N"}}, SeverityMedium, "CVSS_V4"},
		{[]record.Severity{{Type: "CVSS_V2", Score: "AV:N/AC:L/Au:N/C:P/I:P/A:P"}}, SeverityHigh, "CVSS_V2"},
		{[]record.Severity{{Type: "CVSS_V3", Score: "garbage"}}, SeverityUnknown, ""},
		{nil, SeverityUnknown, ""},
	}
	for i, c := range cases {
		r := parseSeverities(c.list)
		if r.sev != c.want || r.source != c.src {
			t.Errorf("%d: got %v (%s), want %v (%s)", i, r.sev, r.source, c.want, c.src)
		}
	}
	if s := erratumSeverity("ALSA-2024:3178", "Important: linux-firmware security update"); s != SeverityHigh {
		t.Errorf("erratum severity %v", s)
	}
	if s := erratumSeverity("ALBA-2022:2116", "Important: not a security advisory"); s != SeverityUnknown {
		t.Errorf("bug-fix erratum severity %v", s)
	}
}

func TestConvert(t *testing.T) {
	base := func() *record.Advisory {
		return &record.Advisory{ID: "GHSA-aaaa-bbbb-cccc", Aliases: []string{"CVE-2024-1", "GHSA-aaaa-bbbb-cccc"},
			Summary: "t", Details: "d", Modified: "2024-02-01T00:00:00Z", Published: "2024-01-01T00:00:00Z",
			References: []string{"https://example.com"}, CWEs: []string{"CWE-79"},
			Severity: []record.Severity{{Type: "ghsa", Score: "HIGH"}},
			Affected: []record.Affected{{Ecosystem: "PyPI", Package: "Foo_Bar", Ranges: []record.Range{rng("ECOSYSTEM", "i=0", "f=1.2")}}}}
	}
	c, err := convert(base())
	if err != nil {
		t.Fatal(err)
	}
	if len(c.entries) != 1 || c.entries[0].bucket != "pip::GitHub Security Advisory pip" || c.entries[0].pkg != "foo-bar" {
		t.Fatalf("entries %+v", c.entries)
	}
	av, _ := json.Marshal(c.entries[0].value)
	if string(av) != `{"PatchedVersions":["1.2"],"VendorIDs":["CVE-2024-1"],"VulnerableVersions":["\u003c1.2"]}` {
		t.Fatalf("advisory value %s", av)
	}
	if string(c.vuln) != `{"CweIDs":["CWE-79"],"Description":"d","LastModifiedDate":"2024-02-01T00:00:00Z","PublishedDate":"2024-01-01T00:00:00Z","References":["https://example.com"],"Severity":"HIGH","Title":"t","VendorSeverity":{"ghsa":3}}` {
		t.Fatalf("vulnerability value %s", c.vuln)
	}

	a := base()
	a.Withdrawn = "2024-03-01T00:00:00Z"
	if _, err := convert(a); !errors.Is(err, errWithdrawn) {
		t.Fatalf("withdrawn: %v", err)
	}
	skip := func(a *record.Advisory, invalid bool, sub string) {
		t.Helper()
		_, err := convert(a)
		var se *skipError
		if !errors.As(err, &se) || se.Invalid != invalid || !strings.Contains(se.Reason, sub) {
			t.Fatalf("convert = %v, want skip invalid=%v %q", err, invalid, sub)
		}
	}
	a = base()
	a.Affected[0].Ecosystem = "Hackage"
	skip(a, true, "unsupported ecosystem")
	a = base()
	a.Affected[0].Ranges = []record.Range{rng("ECOSYSTEM", "i=0", "f=1.2 beta")}
	skip(a, true, "invalid range")
	a = base()
	a.Affected[0].Ranges = []record.Range{{Type: "GIT", Repo: "r", Events: []record.Event{{Introduced: "0"}, {Fixed: "abc"}}}}
	skip(a, false, "GIT ranges")
	a = base()
	a.Affected = []record.Affected{{Ecosystem: "AlmaLinux:8", Package: "libvirt", Ranges: []record.Range{rng("ECOSYSTEM", "i=0", "f=6.0.0-37.1.module_el8.5.0+2621+39fdc467")}}}
	skip(a, false, "modular")

	// Two affected entries of the same package: the union.
	a = base()
	a.Affected = append(a.Affected, record.Affected{Ecosystem: "PyPI", Package: "foo-bar", Ranges: []record.Range{rng("ECOSYSTEM", "i=2.0", "f=2.3")}})
	c, err = convert(a)
	if err != nil || len(c.entries) != 1 {
		t.Fatalf("merge: %v %+v", err, c)
	}
	if got := c.entries[0].value.VulnerableVersions; strings.Join(got, "|") != "<1.2|>=2.0, <2.3" {
		t.Fatalf("merged %q", got)
	}

	// An erratum with its severity in the title, written under alma.
	a = &record.Advisory{ID: "ALSA-2024:1", Summary: "Moderate: x security update",
		Affected: []record.Affected{{Ecosystem: "AlmaLinux:9", Package: "x", Ranges: []record.Range{rng("ECOSYSTEM", "i=0", "f=1.0-2.el9")}}}}
	c, err = convert(a)
	if err != nil {
		t.Fatal(err)
	}
	if c.entries[0].bucket != "alma 9" || c.entries[0].value.FixedVersion != "1.0-2.el9" || !strings.Contains(string(c.vuln), `"VendorSeverity":{"alma":2}`) {
		t.Fatalf("alma: %+v %s", c.entries, c.vuln)
	}

	// No severity stated: none written (never invented).
	a = base()
	a.Severity = nil
	c, _ = convert(a)
	if strings.Contains(string(c.vuln), "Severity") {
		t.Fatalf("invented severity: %s", c.vuln)
	}
}
