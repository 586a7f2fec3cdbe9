package evidence

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stellaops/stella/internal/record"
)

func benchParse(b *testing.B, rel string) {
	raw, err := os.ReadFile(filepath.Join(evidenceRoot, rel))
	if err != nil {
		b.Fatal(err)
	}
	doc := record.Document{Source: "s", Path: rel, Raw: raw, Digest: record.Digest(raw)}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(doc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseOSVJSON(b *testing.B) {
	benchParse(b, "osv/drupal-advisory-database/t1/advisories/apigee_edge/DRUPAL-CONTRIB-2022-045.json")
}
func BenchmarkParseOSVYAML(b *testing.B) {
	benchParse(b, "osv/pypa-advisory-database/t1/vulns/flask-caching/PYSEC-2021-13.yaml")
}
func BenchmarkParseOpenVEX(b *testing.B) {
	benchParse(b, "vex/openvex/nodejs-security-wg/t1/tools/vex/node.openvex.json")
}
func BenchmarkParseCSAF(b *testing.B) {
	benchParse(b, "csaf/redhat-csaf-samples/tools/redhat/testdata/CSAF/rhsa-2024_4546.json")
}
func BenchmarkParseCycloneDX(b *testing.B) {
	benchParse(b, "sbom/cyclonedx-bom-examples/SBOM/proton-bridge/proton-bridge-v1.6.3.bom.json")
}

// BenchmarkWalkParseGoVulnDB reads and parses one snapshot of the Go vulndb
// fixtures (about 900 documents) per iteration.
func BenchmarkWalkParseGoVulnDB(b *testing.B) {
	src := Source{Name: "go", Path: filepath.Join(evidenceRoot, "osv/golang-vulndb/t1")}
	b.ReportAllocs()
	for b.Loop() {
		var n int64
		err := Walk(context.Background(), src, Options{}, func(doc record.Document, err error) error {
			if err != nil {
				return err
			}
			n += int64(len(doc.Raw))
			_, err = Parse(doc)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(n)
	}
}
