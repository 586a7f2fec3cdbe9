package trivy

import (
	"errors"
	"sort"
	"testing"
)

// TestSurveyCorpus converts every real advisory of the fixtures and
// reports what is written and why anything is not (run with -v).
func TestSurveyCorpus(t *testing.T) {
	for _, src := range []string{"golang-vulndb/t1", "pypa-advisory-database/t1", "rustsec-advisory-db-osv/t1",
		"almalinux-osv-database/t1", "drupal-advisory-database/t1", "osv-schema-testdata"} {
		advs, bad := loadAdvisories(t, src, evidenceDir(t, src))
		var written, withdrawn, omitted int
		reasons := map[string]int{}
		for _, a := range advs {
			c, err := convert(a)
			var se *skipError
			switch {
			case errors.Is(err, errWithdrawn):
				withdrawn++
			case errors.As(err, &se):
				reasons[se.Reason]++
			case err != nil:
				t.Errorf("%s: %v", a.ID, err)
			default:
				written++
				omitted += len(c.omitted)
			}
		}
		t.Logf("%s: %d parsed (%d refused by the parser), %d written, %d withdrawn, %d skipped, %d packages omitted", src, len(advs), len(bad), written, withdrawn, len(advs)-written-withdrawn, omitted)
		var rs []string
		for r := range reasons {
			rs = append(rs, r)
		}
		sort.Strings(rs)
		for _, r := range rs {
			t.Logf("   skip x%d: %s", reasons[r], r)
		}
	}
}
