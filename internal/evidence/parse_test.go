package evidence

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stellaops/stella/internal/record"
)

// corpusExcludes are the files of testdata/evidence that are fixtures'
// metadata, not evidence.
var corpusExcludes = []string{"**/snapshots.json", "**/manifest.json"}

// notEvidence lists the real files that must not parse, with their reason.
var notEvidence = map[string]string{
	"csaf/oasis-csaf-examples/csaf_2.0/examples/ROLIE/example-01-category.json":                      "a ROLIE feed, service or category document",
	"csaf/oasis-csaf-examples/csaf_2.0/examples/ROLIE/example-01-feed-tlp-white.json":                "a ROLIE feed, service or category document",
	"csaf/oasis-csaf-examples/csaf_2.0/examples/ROLIE/example-01-service.json":                       "a ROLIE feed, service or category document",
	"csaf/oasis-csaf-examples/csaf_2.0/examples/ROLIE/example-02-service.json":                       "a ROLIE feed, service or category document",
	"csaf/oasis-csaf-examples/csaf_2.0/examples/aggregator/example-01-aggregator.json":               "CSAF aggregator or provider metadata",
	"csaf/oasis-csaf-examples/csaf_2.0/examples/aggregator/example-02-aggregator.json":               "CSAF aggregator or provider metadata",
	"csaf/oasis-csaf-examples/csaf_2.0/examples/aggregator/example-03-aggregator.json":               "CSAF aggregator or provider metadata",
	"csaf/oasis-csaf-examples/csaf_2.0/examples/provider-metadata/example-01-provider-metadata.json": "CSAF aggregator or provider metadata",
	"csaf/oasis-csaf-examples/csaf_2.0/examples/csaf/cisco-sa-20180328-smi2.json":                    `CSAF document category "Cisco Security Advisory" has no product status; only csaf_vex and csaf_security_advisory are read`,
	"csaf/oasis-csaf-examples/csaf_2.0/examples/csaf/rhsa-2019_1862.json":                            `CSAF document category "csaf_informational_advisory" has no product status`,
	"osv/osv-schema-testdata/tools/osv-linter/testdata/nointroduced-CVE-2023-41045.json":             `OSV: affected[0].ranges[0]: no "introduced" event`,
	"sbom/spdx-examples/software/example1/spdx3.0/example1.json":                                     "SPDX 3.0 JSON-LD is not supported (SPDX 2.x JSON is)",
	"sbom/spdx-examples/software/example8/spdx3.0/examplemaven-0.0.1.spdx3.json":                     "SPDX 3.0 JSON-LD is not supported (SPDX 2.x JSON is)",
	"vex/openvex/go-vex-testdata/pkg/vex/testdata/vex.yaml":                                          "not an evidence document: YAML is read for OSV and OpenVEX only",
}

var corpus struct {
	once   sync.Once
	parsed map[string]*record.Parsed
	failed map[string]string
	err    error
}

// parseCorpus parses every candidate of testdata/evidence (once per test
// binary; callers must not modify the results).
func parseCorpus(t *testing.T) (map[string]*record.Parsed, map[string]string) {
	t.Helper()
	corpus.once.Do(func() { corpus.parsed, corpus.failed, corpus.err = parseCorpusOnce() })
	if corpus.err != nil {
		t.Fatal(corpus.err)
	}
	return corpus.parsed, corpus.failed
}

func parseCorpusOnce() (map[string]*record.Parsed, map[string]string, error) {
	parsed := map[string]*record.Parsed{}
	failed := map[string]string{}
	err := Walk(context.Background(), Source{Name: "corpus", Path: evidenceRoot, Exclude: corpusExcludes}, Options{},
		func(doc record.Document, err error) error {
			if err != nil {
				return fmt.Errorf("walk: %w", err)
			}
			p, err := Parse(doc)
			if err != nil {
				var de *DocError
				if !errors.As(err, &de) {
					return fmt.Errorf("%s: %T is not a *DocError", doc.Path, err)
				}
				failed[doc.Path] = de.Reason
				return nil
			}
			parsed[doc.Path] = p
			return nil
		})
	return parsed, failed, err
}

func TestParseCorpus(t *testing.T) {
	parsed, failed := parseCorpus(t)
	for p, reason := range failed {
		want, ok := notEvidence[p]
		if !ok {
			t.Errorf("%s: unexpected error: %s", p, reason)
		} else if !strings.Contains(reason, want) {
			t.Errorf("%s: reason %q, want %q", p, reason, want)
		}
	}
	for p := range notEvidence {
		if _, ok := failed[p]; !ok {
			t.Errorf("%s parsed, but must fail", p)
		}
	}
	formats := map[string]int{}
	for p, r := range parsed {
		formats[string(r.Kind)+"/"+r.Format]++
		checkParsed(t, p, r)
	}
	want := map[string]int{
		"advisory/osv-json":       3234,
		"advisory/osv-yaml":       591,
		"vex/openvex":             19,
		"vex/csaf-vex":            57,
		"vex/cyclonedx-vex":       25,
		"sbom/cyclonedx":          20,
		"sbom/spdx":               8,
		"policy/policy-snapshot":  1,
		"findings/findings-jsonl": 1,
	}
	if !reflect.DeepEqual(formats, want) {
		t.Errorf("formats %v\nwant %v", formats, want)
	}
}

// checkParsed checks what every parsed document must satisfy.
func checkParsed(t *testing.T, p string, r *record.Parsed) {
	t.Helper()
	if r.Kind != record.KindFindings && r.ID == "" {
		t.Errorf("%s: no ID", p)
	}
	if !r.Modified.IsZero() && r.Modified.Location() != time.UTC {
		t.Errorf("%s: Modified %v is not UTC", p, r.Modified)
	}
	switch r.Kind {
	case record.KindAdvisory:
		a := r.Advisory
		if a == nil || a.ID != r.ID || a.Source != "corpus" || a.Path != p || !strings.HasPrefix(a.Digest, "sha256:") {
			t.Errorf("%s: advisory header %+v", p, a)
			return
		}
		if a.Affected == nil || a.Aliases == nil || a.References == nil || a.Severity == nil || a.Ecosystems == nil {
			t.Errorf("%s: nil list in a non-omitempty field", p)
		}
		if a.Modified != record.Time(r.Modified) {
			t.Errorf("%s: advisory modified %q, parsed %v", p, a.Modified, r.Modified)
		}
	case record.KindVEX:
		seen := map[string]bool{}
		for _, s := range r.Statements {
			if seen[s.ID] {
				t.Errorf("%s: statement id %s twice", p, s.ID)
			}
			seen[s.ID] = true
			if !validStatus(s.Status) || s.Product == "" || s.Vulnerability == "" || s.DocumentID != r.ID || s.Format != r.Format ||
				s.Path != p || s.Source != "corpus" || !strings.HasPrefix(s.ID, r.ID+"#"+s.Vulnerability+"#"+s.Product) {
				t.Errorf("%s: bad statement %+v", p, s)
			}
		}
	case record.KindSBOM:
		if r.Subject == "" {
			t.Errorf("%s: no subject", p)
		}
	}
}

// TestParseDeltaMatchesUpstream rebuilds each OSV source's t0 -> t1 delta
// from the parsed records and compares it with delta-t0-t1.tsv.
func TestParseDeltaMatchesUpstream(t *testing.T) {
	parsed, _ := parseCorpus(t)
	for _, src := range []string{"golang-vulndb", "pypa-advisory-database", "rustsec-advisory-db-osv", "almalinux-osv-database", "drupal-advisory-database"} {
		t.Run(src, func(t *testing.T) {
			type rec struct{ digest, withdrawn, path string }
			snap := map[string]map[string]rec{"t0": {}, "t1": {}}
			prefix := "osv/" + src + "/"
			withdrawnT1 := 0
			for p, r := range parsed {
				if !strings.HasPrefix(p, prefix) {
					continue
				}
				tn, rel, _ := strings.Cut(strings.TrimPrefix(p, prefix), "/")
				if _, dup := snap[tn][r.ID]; dup {
					t.Fatalf("%s: id %s twice", tn, r.ID)
				}
				snap[tn][r.ID] = rec{r.Advisory.Digest, r.Advisory.Withdrawn, rel}
				if tn == "t1" && r.Advisory.Withdrawn != "" {
					withdrawnT1++
				}
			}
			var got []string
			for id, b := range snap["t1"] {
				a, ok := snap["t0"][id]
				switch {
				case !ok:
					got = append(got, "added\t"+id+"\t"+b.path)
				case a.digest != b.digest && b.withdrawn != "" && a.withdrawn == "":
					got = append(got, "withdrawn\t"+id+"\t"+b.path)
				case a.digest != b.digest:
					got = append(got, "modified\t"+id+"\t"+b.path)
				}
			}
			for id, a := range snap["t0"] {
				if _, ok := snap["t1"][id]; !ok {
					got = append(got, "removed\t"+id+"\t"+a.path)
				}
			}
			var want []string
			f, err := os.Open(filepath.Join(evidenceRoot, "osv", src, "delta-t0-t1.tsv"))
			must(t, err)
			defer f.Close()
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				cols := strings.Split(sc.Text(), "\t")
				if cols[0] == "status" || !IsCandidate(cols[2]) {
					continue // header, and files that are not evidence (pypa's .id-allocator)
				}
				want = append(want, sc.Text())
			}
			sortStrings(got)
			sortStrings(want)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("delta:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			var meta struct {
				T1 struct {
					Records   int `json:"records"`
					Withdrawn int `json:"withdrawn_records"`
				} `json:"t1"`
			}
			b, err := os.ReadFile(filepath.Join(evidenceRoot, "osv", src, "snapshots.json"))
			must(t, err)
			must(t, json.Unmarshal(b, &meta))
			// The upstream counts include files that are not evidence (pypa's .id-allocator).
			records := meta.T1.Records
			must(t, filepath.WalkDir(filepath.Join(evidenceRoot, "osv", src, "t1"), func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() && !IsCandidate(d.Name()) {
					records--
				}
				return err
			}))
			if len(snap["t1"]) != records || withdrawnT1 != meta.T1.Withdrawn {
				t.Errorf("t1: %d records, %d withdrawn; snapshots.json says %d, %d", len(snap["t1"]), withdrawnT1, records, meta.T1.Withdrawn)
			}
		})
	}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func parseFile(t *testing.T, rel string) *record.Parsed {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(evidenceRoot, rel))
	must(t, err)
	p, err := Parse(record.Document{Source: "src", Path: rel, Raw: raw})
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return p
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	must(t, err)
	return string(b)
}

func TestParseOSVExamples(t *testing.T) {
	cases := []struct {
		file  string
		check func(t *testing.T, p *record.Parsed)
	}{
		{"osv/golang-vulndb/t1/data/osv/GO-2020-0007.json", func(t *testing.T, p *record.Parsed) {
			a := p.Advisory
			// golang/vulndb stores a zero "modified": it means unknown.
			if !p.Modified.IsZero() || a.Modified != "" || a.Published != "2021-04-14T20:04:52Z" {
				t.Errorf("times: %v %q %q", p.Modified, a.Modified, a.Published)
			}
			if p.Format != "osv-json" || mustJSON(t, a.Aliases) != `["CVE-2017-18367","GHSA-58v3-j75h-xr49"]` {
				t.Errorf("format %s aliases %v", p.Format, a.Aliases)
			}
			if mustJSON(t, a.Affected) != `[{"ecosystem":"Go","fixedVersions":["0.9.1-0.20170424173420-06e7a29f36a3"],"package":"github.com/seccomp/libseccomp-golang","ranges":[{"events":[{"introduced":"0"},{"fixed":"0.9.1-0.20170424173420-06e7a29f36a3"}],"type":"SEMVER"}]}]` {
				t.Errorf("affected %s", mustJSON(t, a.Affected))
			}
			// The purl selectors match on is derived when the source gives none.
			if mustJSON(t, p.Purls) != `["pkg:golang/github.com/seccomp/libseccomp-golang"]` || a.Affected[0].Purl != "" {
				t.Errorf("purls %v", p.Purls)
			}
		}},
		{"osv/pypa-advisory-database/t1/vulns/flask-caching/PYSEC-2021-13.yaml", func(t *testing.T, p *record.Parsed) {
			a := p.Advisory
			if p.Format != "osv-yaml" || p.ID != "PYSEC-2021-13" || a.Withdrawn == "" || p.Ecosystems[0] != "PyPI" {
				t.Errorf("%s %s withdrawn=%q %v", p.Format, p.ID, a.Withdrawn, p.Ecosystems)
			}
		}},
		{"osv/almalinux-osv-database/t1/advisories/almalinux8/ALBA-2022:2116.json", func(t *testing.T, p *record.Parsed) {
			if p.ID != "ALBA-2022:2116" || p.Ecosystems[0] != "AlmaLinux:8" || p.Advisory.Affected[0].FixedVersions[0] != "0.6-17.el8" {
				t.Errorf("%s %v %v", p.ID, p.Ecosystems, p.Advisory.Affected)
			}
			if p.Modified.Format(time.RFC3339) != "2022-05-10T08:18:19Z" {
				t.Errorf("modified %v", p.Modified)
			}
		}},
		{"osv/drupal-advisory-database/t1/advisories/apigee_edge/DRUPAL-CONTRIB-2022-045.json", func(t *testing.T, p *record.Parsed) {
			a := p.Advisory
			if a.Modified != "2023-08-10T21:35:00Z" || a.Ecosystems[0] != "Packagist:https://packages.drupal.org/8" {
				t.Errorf("%q %v", a.Modified, a.Ecosystems)
			}
			if mustJSON(t, a.Affected[0].FixedVersions) != `["1.26.0","2.0.3"]` || len(a.Affected[0].Ranges) != 2 {
				t.Errorf("fixed %v", a.Affected[0].FixedVersions)
			}
			if mustJSON(t, p.Purls) != `["pkg:composer/drupal/apigee_edge"]` {
				t.Errorf("purls %v", p.Purls)
			}
		}},
		{"osv/drupal-advisory-database/t1/advisories/profile/DRUPAL-CONTRIB-2020-004.json", func(t *testing.T, p *record.Parsed) {
			found := false
			for _, r := range p.Advisory.Affected[0].Ranges {
				for _, e := range r.Events {
					found = found || e.LastAffected != ""
				}
			}
			if !found {
				t.Error("last_affected event lost")
			}
		}},
		{"osv/rustsec-advisory-db-osv/t1/crates/RUSTSEC-2020-0053.json", func(t *testing.T, p *record.Parsed) {
			if p.Advisory.Withdrawn == "" || p.Advisory.Affected[0].Purl != "pkg:cargo/dirs" {
				t.Errorf("withdrawn %q purl %q", p.Advisory.Withdrawn, p.Advisory.Affected[0].Purl)
			}
		}},
		{"osv/osv-schema-testdata/tools/osv-linter/testdata/GHSA-9v2f-6vcg-3hgv.json", func(t *testing.T, p *record.Parsed) {
			a := p.Advisory
			if mustJSON(t, a.Severity) != `[{"score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H","type":"CVSS_V3"},{"score":"CRITICAL","type":"ghsa"}]` {
				t.Errorf("severity %s", mustJSON(t, a.Severity))
			}
			if mustJSON(t, a.CWEs) != `["CWE-94"]` || mustJSON(t, a.Affected[0].Versions) != `["4.36.1","4.36.-1"]` {
				t.Errorf("cwes %v versions %v", a.CWEs, a.Affected[0].Versions)
			}
		}},
		{"osv/osv-schema-testdata/tools/osv-linter/testdata/CVE-2018-5407.json", func(t *testing.T, p *record.Parsed) {
			var git *record.Range
			for _, af := range p.Advisory.Affected {
				for i, r := range af.Ranges {
					if r.Type == "GIT" {
						git = &af.Ranges[i]
					}
				}
			}
			if git == nil || git.Repo == "" {
				t.Errorf("GIT range or its repo lost")
			}
		}},
		{"osv/osv-schema-testdata/tools/osv-linter/testdata/MAL-2024-10238.json", func(t *testing.T, p *record.Parsed) {
			if mustJSON(t, p.Advisory.Affected) != `[{"ecosystem":"PyPI","fixedVersions":[],"package":"123bla","ranges":[],"versions":["0.0.1"]}]` {
				t.Errorf("affected %s", mustJSON(t, p.Advisory.Affected))
			}
		}},
		{"osv/osv-schema-testdata/tools/ghsa/testdata/npm_greater_than.osv.json", func(t *testing.T, p *record.Parsed) {
			if p.Ecosystems[0] != "npm" || len(p.Purls) == 0 || !strings.HasPrefix(p.Purls[0], "pkg:npm/") {
				t.Errorf("%v %v", p.Ecosystems, p.Purls)
			}
		}},
		{"csaf/redhat-csaf-samples/tools/redhat/testdata/OSV/RHSA-2024_4546.json", func(t *testing.T, p *record.Parsed) {
			if p.Kind != record.KindAdvisory || p.ID != "RHSA-2024:4546" {
				t.Errorf("%s %s", p.Kind, p.ID)
			}
		}},
	}
	for _, c := range cases {
		t.Run(path.Base(c.file), func(t *testing.T) {
			p := parseFile(t, c.file)
			if p.Kind != record.KindAdvisory || p.Advisory == nil {
				t.Fatalf("kind %s", p.Kind)
			}
			c.check(t, p)
		})
	}
}

func TestParseVEXExamples(t *testing.T) {
	cases := []struct {
		file, format, id, modified string
		statements                 int
		first                      string // JSON of the first statement, without the fields every statement has
	}{
		{"vex/openvex/go-vex-testdata/pkg/vex/testdata/v0.0.1.json", "openvex", "https://openvex.dev/docs/example/vex-9fb3463de1b57", "2023-01-09T00:02:03.647787998Z", 2,
			`{"id":"https://openvex.dev/docs/example/vex-9fb3463de1b57#CVE-2023-12345#pkg:apk/wolfi/git@2.39.0-r1?arch=armv7","modified":"2023-01-09T00:02:03.647787998Z","product":"pkg:apk/wolfi/git@2.39.0-r1?arch=armv7","status":"fixed","vulnerability":"CVE-2023-12345"}`},
		{"vex/openvex/go-vex-testdata/pkg/vex/testdata/v0.2.0.json", "openvex", "https://openvex.dev/docs/public/vex-d4e9020b6d0d26f131d535e055902dd6ccf3e2088bce3079a8cd3588a4b14c78", "2023-07-18T00:28:47.696004345Z", 10,
			`{"id":"https://openvex.dev/docs/public/vex-d4e9020b6d0d26f131d535e055902dd6ccf3e2088bce3079a8cd3588a4b14c78#CVE-2023-1255#pkg:oci/alpine@sha256%3A124c7d2707904eea7431fffe91522a01e5a861a624ee31d03372cc1d138a3126#pkg:apk/alpine/libssl3@3.0.8-r3","modified":"2023-07-18T00:28:47.696004345Z","product":"pkg:oci/alpine@sha256%3A124c7d2707904eea7431fffe91522a01e5a861a624ee31d03372cc1d138a3126","status":"fixed","vulnerability":"CVE-2023-1255"}`},
		{"vex/openvex/go-vex-testdata/pkg/vex/testdata/v001-1.vex.json", "openvex", "my-vexdoc2", "2022-12-22T21:36:43Z", 1,
			`{"id":"my-vexdoc2#CVE-1234-5678#pkg:apk/wolfi/bash@1.0.0","modified":"2022-12-22T21:36:43Z","product":"pkg:apk/wolfi/bash@1.0.0","status":"under_investigation","vulnerability":"CVE-1234-5678"}`},
		{"vex/openvex/vexhub/t1/pkg/golang/github.com/rancher/fleet/scan.openvex.json", "openvex", "https://openvex.dev/docs/public/vex-448cca1c5fcf94ecb7030d60b08ef39b387f34f5faaa2be0e8e1f61f31124f1b", "2025-03-11T01:33:07.041639021Z", 92,
			`{"aliases":["CVE-2020-8562","GHSA-qh36-44jv-c8xj"],"id":"https://openvex.dev/docs/public/vex-448cca1c5fcf94ecb7030d60b08ef39b387f34f5faaa2be0e8e1f61f31124f1b#GO-2022-0617#pkg:golang/github.com/rancher/fleet#pkg:golang/k8s.io/kubernetes@v1.27.9","justification":"vulnerable_code_not_present","modified":"2025-03-11T01:30:12.696088692Z","product":"pkg:golang/github.com/rancher/fleet","statement":"Govulncheck determined that the vulnerable code isn't called","status":"not_affected","vulnerability":"GO-2022-0617"}`},
		{"vex/csaf-vex/ctrliq-advisories/t1/csaf/vex/cve/2022/cve-2022-2255.json", "csaf-vex", "CVE-2022-2255", "2025-11-20T21:11:02Z", 1,
			`{"id":"CVE-2022-2255#CVE-2022-2255#lts-8.6:mod_wsgi","modified":"2025-11-20T21:11:02Z","product":"lts-8.6:mod_wsgi","statement":"Will not fix","status":"affected","vulnerability":"CVE-2022-2255"}`},
		{"vex/openvex/go-vex-testdata/pkg/vex/testdata/csaf.json", "csaf-vex", "2022-EVD-UC-01-NA-001", "2022-03-03T11:00:00Z", 1,
			`{"id":"2022-EVD-UC-01-NA-001#CVE-2009-4487#pkg:golang/github.com/go-homedir@v1.2.0","modified":"2022-03-03T11:00:00Z","product":"pkg:golang/github.com/go-homedir@v1.2.0","statement":"Class with vulnerable code was removed before shipping.","status":"not_affected","vulnerability":"CVE-2009-4487"}`},
		{"csaf/oasis-csaf-examples/csaf_2.0/examples/csaf/csaf_vex/sec-vex-2022-0001.json", "csaf-vex", "SEC-VEX-2022-0001", "2022-05-27T10:00:00Z", 3,
			`{"id":"SEC-VEX-2022-0001#CVE-2021-44228#CSAFPID-0001","justification":"component_not_present","modified":"2022-05-27T10:00:00Z","product":"CSAFPID-0001","statement":"Secvisogram is written in JavaScript. No Java is included.","status":"not_affected","vulnerability":"CVE-2021-44228"}`},
		{"vex/openvex/go-vex-testdata/pkg/csaf/testdata/csaf.json", "csaf-vex", "2022-EVD-UC-01-NA-001", "2022-03-03T11:00:00Z", 4,
			`{"id":"2022-EVD-UC-01-NA-001#CVE-2009-4487#pkg:maven/@1.3.4","modified":"2022-03-03T11:00:00Z","product":"pkg:maven/@1.3.4","statement":"Class with vulnerable code was removed before shipping.","status":"not_affected","vulnerability":"CVE-2009-4487"}`},
		{"csaf/cisagov-csaf/csaf_files/OT/white/2024/icsa-24-130-03.json", "csaf-vex", "ICSA-24-130-03", "", -1, ""},
		{"sbom/cyclonedx-bom-examples/VEX/CISA-Use-Cases/Case-1/vex-not_affected.json", "cyclonedx-vex", "", "2022-03-03T00:00:00Z", 1,
			`{"id":"#CVE-2021-44228#product-ABC","justification":"code_not_present","modified":"2022-03-03T00:00:00Z","product":"product-ABC","statement":"This version of Product ABC is not affected by the vulnerability. Class with vulnerable code was removed before shipping.","status":"not_affected","vulnerability":"CVE-2021-44228"}`},
		{"sbom/cyclonedx-bom-examples/VEX/Use-Cases/Case-7/vex.json", "cyclonedx-vex", "", "2020-04-13T20:20:39Z", 0, ""},
	}
	for _, c := range cases {
		t.Run(path.Base(c.file), func(t *testing.T) {
			p := parseFile(t, c.file)
			id := c.id
			if id == "" {
				id = "urn:sha256:" + strings.TrimPrefix(record.Digest(mustRead(t, c.file)), "sha256:")
			}
			if p.Kind != record.KindVEX || p.Format != c.format || p.ID != id || record.Time(p.Modified) != c.modified && c.modified != "" {
				t.Errorf("got %s %s %q %v", p.Kind, p.Format, p.ID, p.Modified)
			}
			if c.statements >= 0 && len(p.Statements) != c.statements {
				t.Errorf("%d statements, want %d", len(p.Statements), c.statements)
			}
			if c.statements < 0 && len(p.Statements) == 0 {
				t.Errorf("no statements")
			}
			if c.first == "" {
				return
			}
			s := p.Statements[0]
			if s.Digest != record.Digest(mustRead(t, c.file)) || s.Path != c.file || s.Source != "src" || s.DocumentID != p.ID || s.Format != c.format {
				t.Errorf("statement header %+v", s)
			}
			s.Digest, s.Path, s.Source, s.DocumentID, s.Format = "", "", "", "", ""
			got := strings.NewReplacer(`"digest":"",`, "", `"document":"",`, "", `"format":"",`, "", `"path":"",`, "", `,"source":""`, "").Replace(mustJSON(t, s))
			want := strings.ReplaceAll(c.first, `"id":"#`, `"id":"`+p.ID+`#`)
			if got != want {
				t.Errorf("first statement\n got %s\nwant %s", got, want)
			}
		})
	}
}

func mustRead(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(evidenceRoot, rel))
	must(t, err)
	return b
}

func TestParseSBOMExamples(t *testing.T) {
	cases := []struct {
		file, format, id, subject string
		components, purls         int
		sha1                      string // of the first component that has one
	}{
		{"sbom/cyclonedx-bom-examples/SBOM/proton-bridge/proton-bridge-v1.6.3.bom.json", "cyclonedx", "urn:uuid:2392d49c-ea93-44e0-aa36-5923fcfb5efb", "github.com/ProtonMail/proton-bridge@v1.6.3", 201, 201, ""},
		{"sbom/cyclonedx-bom-examples/SBOM/cern-lhc-vdm-editor-e564943/bom.json", "cyclonedx", "urn:uuid:699b6458-60da-4f52-b1b3-34915dc01eb6", "lhc-vdm-editor@0.0.1", 43, -1, "d09d1f357b443f493382a8eb3ccd183872ae6009"},
		{"sbom/cyclonedx-bom-examples/SBOM/laravel-7.12.0/bom.1.4.json", "cyclonedx", "", "cyclonedx-php-composer-demo@dev-master", 62, 62, ""},
		{"sbom/cyclonedx-bom-examples/VEX/bom.json", "cyclonedx", "", "", 3, -1, "1127c9cf62f2bb3121a3a2a0a1351d251a602117"},
		{"sbom/spdx-examples/software/example8/spdx2.3/examplemaven-0.0.1.spdx.json", "spdx", "http://spdx.org/documents/examplemaven-0.0.1", "examplemaven", 6, -1, ""},
		{"sbom/bom-shelter/in-the-wild/spdx/julia.spdx.json", "spdx", "https://julialang.org/spdxdocs/julia-spdx-7b93ad83-27bf-433f-b769-cde3288fe3a1", "julia-spdx", 34, 0, ""},
	}
	for _, c := range cases {
		t.Run(path.Base(path.Dir(c.file))+"/"+path.Base(c.file), func(t *testing.T) {
			p := parseFile(t, c.file)
			if c.id == "" {
				c.id = p.ID // checked below to be the serial number or the digest urn
				if !strings.HasPrefix(p.ID, "urn:") {
					t.Errorf("id %q", p.ID)
				}
			}
			if p.Kind != record.KindSBOM || p.Format != c.format || p.ID != c.id || (c.subject != "" && p.Subject != c.subject) {
				t.Errorf("got %s %s %q %q", p.Kind, p.Format, p.ID, p.Subject)
			}
			if len(p.Components) != c.components || (c.purls >= 0 && len(p.Purls) != c.purls) {
				t.Errorf("%d components, %d purls", len(p.Components), len(p.Purls))
			}
			if c.sha1 != "" {
				got := ""
				for _, comp := range p.Components {
					if comp.SHA1 != "" {
						got = comp.SHA1
						break
					}
				}
				if got != c.sha1 {
					t.Errorf("sha1 %q, want %q", got, c.sha1)
				}
			}
		})
	}
	// An SBOM without a serial number is named by its digest.
	p := parseFile(t, "sbom/cyclonedx-bom-examples/SBOM/laravel-7.12.0/bom.1.4.json")
	if want := "urn:sha256:" + strings.TrimPrefix(record.Digest(mustRead(t, "sbom/cyclonedx-bom-examples/SBOM/laravel-7.12.0/bom.1.4.json")), "sha256:"); p.ID != want {
		t.Errorf("id %q, want %q", p.ID, want)
	}
	// SPDX packages keep their purl and SHA-1.
	p = parseFile(t, "sbom/spdx-examples/software/example11/spdx2.3/sbom.spdx.json")
	if mustJSON(t, p.Components[0]) == "{}" || p.Subject == "" {
		t.Errorf("components %v", p.Components)
	}
}

func TestParsePolicyOverlay(t *testing.T) {
	p := parseFile(t, "policy/snapshot.json")
	if p.Kind != record.KindPolicy || p.Format != "policy-snapshot" || p.ID != "default-gate@r3" || record.Time(p.Modified) != "2026-05-29T12:00:00Z" {
		t.Errorf("snapshot %+v", p)
	}
	raw := mustRead(t, "policy/findings.jsonl")
	p = parseFile(t, "policy/findings.jsonl")
	if p.Kind != record.KindFindings || p.Format != "findings-jsonl" || p.ID != "" || len(p.Lines) != 6 {
		t.Fatalf("findings %s %s %q %d", p.Kind, p.Format, p.ID, len(p.Lines))
	}
	lines := bytes.Split(bytes.TrimSuffix(raw, []byte("\n")), []byte("\n"))
	for i, l := range p.Lines {
		if !bytes.Equal(l.Raw, lines[i]) {
			t.Errorf("line %d raw differs", i+1)
		}
	}
	if p.Lines[0].ID != "default-gate/r3/0001" || record.Time(p.Modified) != "2026-05-29T12:00:00Z" {
		t.Errorf("line 1 id %q modified %v", p.Lines[0].ID, p.Modified)
	}
	if len(p.Purls) != 5 || len(p.Products) != 6 {
		t.Errorf("purls %v products %v", p.Purls, p.Products)
	}
}

// TestParseErrors checks every rejection and its reason.
func TestParseErrors(t *testing.T) {
	osvOK := `{"id":"X-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.0.0"}]}]}]}`
	finding := func(id, extra string) string {
		return `{"schema":"stella.policy.finding/v1","findingId":"` + id + `","policyId":"p","subject":"pkg:npm/a@1","vulnerabilityId":"CVE-1","status":"affected","verdict":"fail","evaluatedAt":"2026-01-01T00:00:00Z"` + extra + `}`
	}
	cases := []struct {
		name, path, raw, want string
	}{
		{"empty", "a.json", "", "empty document"},
		{"blank", "a.json", " \n\t", "empty document"},
		{"bom only", "a.json", "\xEF\xBB\xBF", "empty document"},
		{"not utf-8", "a.json", "{\"id\":\"\xff\"}", "not valid UTF-8 (first bad byte 0xff at offset 7)"},
		{"truncated", "a.json", osvOK[:40], "truncated JSON at offset 40"},
		{"trailing garbage", "a.json", osvOK + " x", "trailing data after the JSON value at offset " + itoa(len(osvOK)+1)},
		{"two objects", "a.json", osvOK + "\n" + osvOK, "trailing data after the JSON value"},
		{"bad char", "a.json", "{\n  \"id\": nope}", "invalid JSON at offset 11 (line 2, column 10): invalid character 'o' in literal null (expecting 'u')"},
		{"array", "a.json", `[{"id":"x"}]`, "top-level JSON value is an array"},
		{"scalar", "a.json", `"x"`, `not JSON: the document starts with "\"x\""`},
		{"yaml in json", "a.json", "id: X\nmodified: 2024-01-01T00:00:00Z\n", "not JSON: the document starts with"},
		{"arbitrary json", "a.json", `{"name":"x","value":1}`, noKeysReason},
		{"empty object", "a.json", `{}`, noKeysReason},
		{"only id", "a.json", `{"id":"x"}`, noKeysReason},
		{"osv no id", "a.json", `{"modified":"2024-01-01T00:00:00Z","affected":[]  , "schema_version":"1.6.0"}`, `OSV: missing "id"`},
		{"osv no modified", "a.json", `{"id":"X-1","affected":[{"package":{"ecosystem":"Go","name":"m"}}]}`, `OSV: missing "modified"`},
		{"osv id number", "a.json", `{"id":5,"modified":"2024-01-01T00:00:00Z"}`, `OSV: "id" must be a non-empty string`},
		{"osv bad time", "a.json", `{"id":"X","modified":"yesterday"}`, `OSV: "modified" is not an RFC 3339 time: "yesterday"`},
		{"osv affected wrong type", "a.json", `{"id":"X","modified":"2024-01-01T00:00:00Z","affected":{"a":1}}`, `OSV: "affected" is a JSON object, expected an array`},
		{"osv aliases wrong type", "a.json", `{"id":"X","modified":"2024-01-01T00:00:00Z","aliases":[1]}`, `OSV: "aliases" is a JSON number, expected a string`},
		{"osv range type", "a.json", strings.Replace(osvOK, "SEMVER", "DATE", 1), `OSV: affected[0].ranges[0]: unknown range type "DATE"`},
		{"osv git no repo", "a.json", strings.Replace(osvOK, "SEMVER", "GIT", 1), `OSV: affected[0].ranges[0]: a GIT range needs "repo"`},
		{"osv no introduced", "a.json", strings.Replace(osvOK, `{"introduced":"0"},`, "", 1), `OSV: affected[0].ranges[0]: no "introduced" event`},
		{"osv two keys", "a.json", strings.Replace(osvOK, `{"introduced":"0"}`, `{"introduced":"0","fixed":"2"}`, 1), `events[0] must have exactly one of introduced, fixed, last_affected or limit (has 2)`},
		{"osv empty event", "a.json", strings.Replace(osvOK, `{"fixed":"1.0.0"}`, `{"fixed":""}`, 1), `events[1] has an empty version`},
		{"osv no events", "a.json", strings.Replace(osvOK, `"events":[{"introduced":"0"},{"fixed":"1.0.0"}]`, `"events":[]`, 1), `OSV: affected[0].ranges[0]: no events`},
		{"vexhub manifest", "manifest.json", `{"ID":"pkg:golang/x","Sources":[{"Path":"a.json"}]}`, "VEX Hub manifest.json"},
		{"openvex no id", "a.json", `{"@context":"https://openvex.dev/ns/v0.2.0","statements":[]}`, `OpenVEX: missing "@id"`},
		{"openvex bad status", "a.json", `{"@context":"https://openvex.dev/ns/v0.2.0","@id":"d","statements":[{"vulnerability":{"name":"CVE-1"},"products":[{"@id":"p"}],"status":"maybe"}]}`, `OpenVEX: statements[0] (CVE-1): unknown status "maybe"`},
		{"openvex no products", "a.json", `{"@context":"https://openvex.dev/ns/v0.2.0","@id":"d","statements":[{"vulnerability":"CVE-1","status":"fixed"}]}`, `OpenVEX: statements[0] (CVE-1) has no products`},
		{"openvex no vuln", "a.json", `{"@context":"https://openvex.dev/ns/v0.2.0","@id":"d","statements":[{"products":["p"],"status":"fixed"}]}`, `OpenVEX: statements[0] has no vulnerability name`},
		{"openvex product no id", "a.json", `{"@context":"https://openvex.dev/ns/v0.2.0","@id":"d","statements":[{"vulnerability":"CVE-1","products":[{}],"status":"fixed"}]}`, `statements[0].products[0] has no @id or identifiers`},
		{"openvex vuln number", "a.json", `{"@context":"https://openvex.dev/ns/v0.2.0","@id":"d","statements":[{"vulnerability":7,"products":["p"],"status":"fixed"}]}`, `OpenVEX: vulnerability must be a string or an object`},
		{"openvex bad time", "a.json", `{"@context":"https://openvex.dev/ns","@id":"d","timestamp":"2023-13-01","statements":[]}`, `OpenVEX: "timestamp" is not an RFC 3339 time`},
		{"other json-ld", "a.json", `{"@context":"https://schema.org","@type":"Thing"}`, `JSON-LD @context "https://schema.org" is not OpenVEX`},
		{"spdx 3", "a.json", `{"@context":"https://spdx.org/rdf/3.0.1/spdx-context.jsonld","@graph":[]}`, "SPDX 3.0 JSON-LD is not supported (SPDX 2.x JSON is)"},
		{"spdx 1", "a.json", `{"spdxVersion":"SPDX-1.2"}`, `SPDX version "SPDX-1.2" is not supported (SPDX 2.x JSON is)`},
		{"spdx no namespace", "a.json", `{"spdxVersion":"SPDX-2.3","name":"x"}`, `SPDX: missing "documentNamespace"`},
		{"spdx packages wrong", "a.json", `{"spdxVersion":"SPDX-2.3","documentNamespace":"n","packages":{}}`, `SPDX: "packages" is a JSON object, expected an array`},
		{"csaf base", "a.json", `{"document":{"category":"csaf_base","csaf_version":"2.0"}}`, `CSAF document category "csaf_base" has no product status; only csaf_vex and csaf_security_advisory are read`},
		{"csaf 2.1", "a.json", `{"document":{"category":"csaf_vex","csaf_version":"2.1"}}`, `CSAF version "2.1" is not supported (CSAF 2.0 is)`},
		{"csaf no tracking id", "a.json", `{"document":{"category":"csaf_vex","csaf_version":"2.0","tracking":{}}}`, `CSAF: missing document.tracking.id`},
		{"csaf vuln no id", "a.json", `{"document":{"category":"csaf_vex","csaf_version":"2.0","tracking":{"id":"T"}},"vulnerabilities":[{"product_status":{"fixed":["a"]}}]}`, `CSAF: vulnerabilities[0] has neither "cve" nor "ids"`},
		{"not csaf", "a.json", `{"document":"x"}`, `has a "document" object without "csaf_version"`},
		{"cdx not cdx", "a.json", `{"bomFormat":"SWID"}`, `bomFormat "SWID" is not CycloneDX`},
		{"cdx vex state", "a.json", `{"bomFormat":"CycloneDX","vulnerabilities":[{"id":"CVE-1","analysis":{"state":"wontfix"},"affects":[{"ref":"r"}]}]}`, `CycloneDX VEX: vulnerabilities[0] (CVE-1): unknown analysis state "wontfix"`},
		{"cdx vex no state", "a.json", `{"bomFormat":"CycloneDX","vulnerabilities":[{"id":"CVE-1","analysis":{},"affects":[{"ref":"r"}]}]}`, `analysis has no "state"`},
		{"cdx components wrong", "a.json", `{"bomFormat":"CycloneDX","components":"x"}`, `CycloneDX: "components" is a JSON string, expected an array`},
		{"policy unknown schema", "a.json", `{"schema":"acme/v9"}`, `unknown schema "acme/v9"`},
		{"policy no rules", "a.json", `{"schema":"stella.policy.snapshot/v1","policyId":"p","revision":"r1","generatedAt":"2026-01-01T00:00:00Z"}`, `policy snapshot: missing "rules"`},
		{"policy no revision", "a.json", `{"schema":"stella.policy.snapshot/v1","policyId":"p","generatedAt":"2026-01-01T00:00:00Z","rules":[]}`, `policy snapshot: "revision" must be a non-empty string`},
		{"policy dup rule", "a.json", `{"schema":"stella.policy.snapshot/v1","policyId":"p","revision":"r1","generatedAt":"2026-01-01T00:00:00Z","rules":[{"id":"a","verdict":"pass"},{"id":"a","verdict":"fail"}]}`, `rules[1]: id "a" is already used by rules[0]`},
		{"policy bad verdict", "a.json", `{"schema":"stella.policy.snapshot/v1","policyId":"p","revision":"r1","generatedAt":"2026-01-01T00:00:00Z","rules":[{"id":"a","verdict":"block"}]}`, `rules[0] (a): "verdict" must be pass, warn or fail`},
		{"finding in json", "a.json", finding("f1", ""), "findings are read from JSON lines documents"},
		{"jsonl unknown", "a.jsonl", `{"id":"GO-1","modified":"x"}` + "\n", `not an evidence document: JSON lines are read for policy findings (stella.policy.finding/v1) only, and line 1 has no "schema"`},
		{"jsonl other schema", "a.ndjson", `{"schema":"stella.mirror.raw/v1"}`, `line 1 has schema "stella.mirror.raw/v1"`},
		{"jsonl array line", "a.jsonl", "[1]\n", "line 1 of a JSON lines document is not a JSON object"},
		{"jsonl bad line", "a.jsonl", finding("f1", "") + "\n" + `{"schema":` + "\n", "line 2: truncated JSON at offset 10"},
		{"jsonl dup id", "a.jsonl", finding("f1", "") + "\n" + finding("f2", "") + "\n" + finding("f1", "") + "\n", `line 3: findingId "f1" is already used on line 1`},
		{"jsonl blank middle", "a.jsonl", finding("f1", "") + "\n\n" + finding("f2", "") + "\n", "line 2 is blank; blank lines are allowed only at the end"},
		{"jsonl bad status", "a.jsonl", strings.Replace(finding("f1", ""), `"affected"`, `"vulnerable"`, 1), `line 1: "status" "vulnerable" is not affected`},
		{"jsonl bad verdict", "a.jsonl", strings.Replace(finding("f1", ""), `"fail"`, `"block"`, 1), `line 1: "verdict" "block" is not pass, warn or fail`},
		{"jsonl missing subject", "a.jsonl", strings.Replace(finding("f1", ""), `"subject":"pkg:npm/a@1",`, "", 1), `line 1: missing "subject"`},
		{"jsonl bad time", "a.jsonl", strings.Replace(finding("f1", ""), `2026-01-01T00:00:00Z`, `today`, 1), `line 1: "evaluatedAt" is not an RFC 3339 time`},
		{"jsonl field type", "a.jsonl", finding("f1", `,"severity":9`), `line 1: "severity" is a JSON number, expected a string`},
		{"jsonl other line schema", "a.jsonl", finding("f1", "") + "\n" + `{"schema":"x"}`, `line 2: schema "x", expected "stella.policy.finding/v1"`},
		{"yaml sequence", "a.yaml", "- id: x\n", "the top-level YAML value is a sequence, not a mapping"},
		{"yaml scalar", "a.yml", "hello\n", "the top-level YAML value is a scalar, not a mapping"},
		{"yaml two docs", "a.yaml", "id: A\nmodified: '2024-01-01T00:00:00Z'\n---\nid: B\n", "YAML stream holds more than one document"},
		{"yaml syntax", "a.yaml", "id: [x\n", "invalid YAML: line 1"},
		{"yaml dup key", "a.yaml", "id: A\nid: B\n", `invalid YAML: duplicate key "id" at line 2`},
		{"yaml merge", "a.yaml", "base: &b {x: 1}\nother:\n  <<: *b\n", `merge key "<<" at line 3 is not supported`},
		{"yaml not evidence", "a.yaml", "name: ci\non: push\n", "YAML is read for OSV and OpenVEX only"},
		{"yaml cdx", "a.yaml", "bomFormat: CycloneDX\n", "YAML is read for OSV and OpenVEX only"},
		{"yaml osv no modified", "a.yaml", "id: PYSEC-1\naffected:\n- package: {ecosystem: PyPI, name: x}\n", `OSV: missing "modified"`},
		{"yaml alias bomb", "a.yaml", "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n", "invalid YAML: aliases expand the document beyond"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc := record.Document{Source: "ghsa", Path: c.path, Raw: []byte(c.raw)}
			p, err := Parse(doc)
			if err == nil {
				t.Fatalf("parsed as %s/%s, want error %q", p.Kind, p.Format, c.want)
			}
			var de *DocError
			if !errors.As(err, &de) {
				t.Fatalf("%T is not a *DocError", err)
			}
			if de.Source != "ghsa" || de.Path != c.path {
				t.Errorf("names %q %q", de.Source, de.Path)
			}
			if !strings.Contains(de.Reason, c.want) {
				t.Errorf("reason %q\nwant    %q", de.Reason, c.want)
			}
			if want := `source "ghsa": ` + c.path + ": " + de.Reason; err.Error() != want {
				t.Errorf("Error() = %q", err.Error())
			}
		})
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestDocErrorAsXerr(t *testing.T) {
	de := &DocError{Source: "ghsa", Path: "advisories/GHSA-x.json", Reason: "truncated JSON at offset 12"}
	xe := de.AsXerr()
	if xe.Code != "ERR_EXPORT_INVALID_INPUT" || xe.Message != `source "ghsa": advisories/GHSA-x.json: truncated JSON at offset 12` {
		t.Errorf("%+v", xe)
	}
	if xe.Hint != "fix or remove the document, or rerun with --skip-invalid to list it in skipped[]" {
		t.Errorf("hint %q", xe.Hint)
	}
	var back *DocError
	if !errors.As(xe, &back) || back != de {
		t.Error("AsXerr does not wrap the DocError")
	}
}

func TestParseAccepts(t *testing.T) {
	finding := `{"schema":"stella.policy.finding/v1","findingId":"f1","policyId":"p","subject":"img","vulnerabilityId":"CVE-1","status":"fixed","verdict":"pass","evaluatedAt":"2026-01-01T00:00:00Z"}`
	cases := []struct {
		name, path, raw, kind, format string
	}{
		{"bom", "a.json", "\xEF\xBB\xBF" + `{"id":"X","modified":"2024-01-01T00:00:00Z"}`, "advisory", "osv-json"},
		{"osv id only modified", "a.json", `{"id":"X","modified":"2024-01-01T00:00:00Z"}`, "advisory", "osv-json"},
		{"osv yaml numbers stay text", "a.yaml", "id: X\nmodified: 2024-01-01T00:00:00Z\naffected:\n- package: {ecosystem: PyPI, name: x}\n  versions: [1.10, 2.0]\n", "advisory", "osv-yaml"},
		{"openvex yaml", "a.yml", "'@context': https://openvex.dev/ns/v0.2.0\n'@id': doc-1\nstatements:\n- vulnerability: {name: CVE-1}\n  products: [{'@id': 'pkg:npm/a@1'}]\n  status: fixed\n", "vex", "openvex"},
		{"openvex identifiers", "a.json", `{"@context":"https://openvex.dev/ns/v0.2.0","@id":"d","statements":[{"vulnerability":{"@id":"https://x/CVE-1"},"products":[{"identifiers":{"purl":"pkg:npm/a@1"}}],"status":"fixed"}]}`, "vex", "openvex"},
		{"jsonl crlf and trailing blanks", "a.jsonl", finding + "\r\n\r\n\n", "findings", "findings-jsonl"},
		{"jsonl no final newline", "a.NDJSON", finding, "findings", "findings-jsonl"},
		{"cdx empty", "a.json", `{"bomFormat":"CycloneDX","specVersion":"1.6"}`, "sbom", "cyclonedx"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw := []byte(c.raw)
			keep := append([]byte(nil), raw...)
			p, err := Parse(record.Document{Source: "s", Path: c.path, Raw: raw})
			if err != nil {
				t.Fatal(err)
			}
			if string(p.Kind) != c.kind || p.Format != c.format {
				t.Errorf("%s/%s", p.Kind, p.Format)
			}
			if !bytes.Equal(raw, keep) {
				t.Error("Parse changed Raw")
			}
			switch c.name {
			case "osv yaml numbers stay text":
				if v := p.Advisory.Affected[0].Versions; mustJSON(t, v) != `["1.10","2.0"]` {
					t.Errorf("versions %v", v)
				}
			case "openvex identifiers":
				if s := p.Statements[0]; s.Product != "pkg:npm/a@1" || s.Vulnerability != "https://x/CVE-1" {
					t.Errorf("%+v", s)
				}
			case "jsonl crlf and trailing blanks":
				if len(p.Lines) != 1 || string(p.Lines[0].Raw) != finding {
					t.Errorf("lines %q", p.Lines)
				}
			case "cdx empty":
				if p.Subject != "unnamed" || p.Components != nil {
					t.Errorf("subject %q components %v", p.Subject, p.Components)
				}
			}
		})
	}
}

// TestVEXLaterStatementWins checks the rule for a document that states the
// same vulnerability x product twice.
func TestVEXLaterStatementWins(t *testing.T) {
	doc := `{"@context":"https://openvex.dev/ns/v0.2.0","@id":"d","timestamp":"2024-01-01T00:00:00Z","statements":[
	{"vulnerability":"CVE-1","products":["p"],"status":"under_investigation","timestamp":"2024-02-01T00:00:00Z"},
	{"vulnerability":"CVE-1","products":["p"],"status":"not_affected","timestamp":"2024-03-01T00:00:00Z"},
	{"vulnerability":"CVE-1","products":["p"],"status":"affected","timestamp":"2024-01-15T00:00:00Z"},
	{"vulnerability":"CVE-2","products":["p"],"status":"affected"},
	{"vulnerability":"CVE-2","products":["p"],"status":"fixed"}]}`
	p, err := Parse(record.Document{Source: "s", Path: "d.json", Raw: []byte(doc)})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Statements) != 2 || p.Statements[0].Status != "not_affected" || p.Statements[1].Status != "fixed" {
		t.Errorf("%+v", p.Statements)
	}
	if p.Statements[1].Modified != "2024-01-01T00:00:00Z" {
		t.Errorf("a statement without a time takes the document's: %q", p.Statements[1].Modified)
	}
}

// TestRecordJSONIsCanonical checks that the normalised records marshal with
// sorted keys (the field order of package record), so that encoding/json
// output is canonical JSON.
func TestRecordJSONIsCanonical(t *testing.T) {
	adv := record.Advisory{
		Affected: []record.Affected{{Ecosystem: "Go", FixedVersions: []string{"1"}, Package: "m", Purl: "pkg:golang/m",
			Ranges:   []record.Range{{Events: []record.Event{{Introduced: "0"}, {Fixed: "1"}, {LastAffected: "2"}, {Limit: "3"}}, Repo: "r", Type: "GIT"}},
			Severity: []record.Severity{{Score: "HIGH", Type: "ghsa"}}, Versions: []string{"0.1"}}},
		Aliases: []string{"a"}, CWEs: []string{"CWE-1"}, Details: "d", Digest: "sha256:x", Ecosystems: []string{"Go"}, ID: "i",
		Modified: "m", Path: "p", Published: "p", References: []string{"u"}, Related: []string{"r"},
		Severity: []record.Severity{{Score: "s", Type: "t"}}, Source: "s", Summary: "s", Withdrawn: "w",
	}
	st := record.VEXStatement{Aliases: []string{"a"}, Digest: "d", DocumentID: "doc", Format: "openvex", ID: "i", Justification: "j",
		Modified: "m", Path: "p", Product: "p", Source: "s", Status: "fixed", Statement: "x", Vulnerability: "v"}
	comp := record.Component{Name: "n", Purl: "p", SHA1: "s", Version: "v"}
	for _, v := range []any{adv, st, comp} {
		b, err := json.Marshal(v)
		must(t, err)
		var m any
		must(t, json.Unmarshal(b, &m))
		again, err := json.Marshal(m) // maps marshal with sorted keys
		must(t, err)
		if !bytes.Equal(b, again) {
			t.Errorf("%T keys are not in sorted order:\n%s\n%s", v, b, again)
		}
	}
	// And on real records, all of them.
	parsed, _ := parseCorpus(t)
	for p, r := range parsed {
		var vals []any
		if r.Advisory != nil {
			vals = append(vals, r.Advisory)
		}
		for _, s := range r.Statements {
			vals = append(vals, s)
		}
		for _, v := range vals {
			b, _ := json.Marshal(v)
			var m any
			must(t, json.Unmarshal(b, &m))
			again, _ := json.Marshal(m)
			if !bytes.Equal(b, again) {
				t.Fatalf("%s: record JSON is not canonical:\n%s", p, b)
			}
		}
	}
}

// TestParseIsDeterministic parses the corpus twice, from the folder and from
// a zip of it, and compares the normalised JSON.
func TestParseIsDeterministic(t *testing.T) {
	render := func(src Source) map[string]string {
		out := map[string]string{}
		err := Walk(context.Background(), src, Options{}, func(doc record.Document, err error) error {
			if err != nil {
				return nil
			}
			p, err := Parse(doc)
			if err != nil {
				out[doc.Path] = err.Error()
				return nil
			}
			b, err := json.Marshal(p)
			must(t, err)
			out[doc.Path] = string(b)
			return nil
		})
		must(t, err)
		return out
	}
	sub := Source{Name: "s", Path: filepath.Join(evidenceRoot, "vex"), Exclude: corpusExcludes}
	a, b := render(sub), render(sub)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two parses of the same folder differ")
	}
	zipPath := goArchives(t, sub.Path)["go.zip"]
	c := render(Source{Name: "s", Path: zipPath, Exclude: corpusExcludes})
	if !reflect.DeepEqual(a, c) {
		t.Fatal("folder and zip parses differ")
	}
	if len(a) < 50 {
		t.Fatalf("only %d documents", len(a))
	}
}

func TestPurlFor(t *testing.T) {
	for _, c := range [][3]string{
		{"Go", "golang.org/x/net", "pkg:golang/golang.org/x/net"},
		{"PyPI", "Flask_Caching", "pkg:pypi/flask-caching"},
		{"crates.io", "rocksdb", "pkg:cargo/rocksdb"},
		{"npm", "@babel/core", "pkg:npm/%40babel/core"},
		{"Maven", "org.apache:log4j", "pkg:maven/org.apache/log4j"},
		{"Maven", "nocolon", ""},
		{"Packagist:https://packages.drupal.org/8", "drupal/ai", "pkg:composer/drupal/ai"},
		{"AlmaLinux:9", "kernel", "pkg:rpm/almalinux/kernel"},
		{"Debian:12", "openssl", ""},
		{"Go", "", ""},
	} {
		if got := PurlFor(c[0], c[1]); got != c[2] {
			t.Errorf("PurlFor(%q, %q) = %q, want %q", c[0], c[1], got, c[2])
		}
	}
}

// TestSampleSourceParses guards testdata/sample, the source `make demo` uses:
// every document parses, and every kind is there.
func TestSampleSourceParses(t *testing.T) {
	kinds := map[record.Kind]int{}
	err := Walk(context.Background(), Source{Name: "sample", Path: "../../testdata/sample"}, Options{}, func(doc record.Document, err error) error {
		if err != nil {
			return err
		}
		p, err := Parse(doc)
		if err != nil {
			return err
		}
		kinds[p.Kind]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[record.Kind]int{record.KindAdvisory: 7, record.KindVEX: 2, record.KindSBOM: 2, record.KindPolicy: 1, record.KindFindings: 1}
	if !reflect.DeepEqual(kinds, want) {
		t.Errorf("kinds %v, want %v", kinds, want)
	}
}
