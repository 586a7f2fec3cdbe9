package trivy

import (
	"strings"
	"testing"

	"github.com/stellaops/stella/internal/record"
)

// FuzzLangVersions: whatever the events, converting a range never panics,
// and whatever it writes parses with the comparer trivy reads it with and
// holds every fixed version outside the vulnerable set.
func FuzzLangVersions(f *testing.F) {
	f.Add(uint8(0), "0", "1.2.3", "", "1.0.0")
	f.Add(uint8(1), "1.0", "2.0", "1.5", "2.0rc1")
	f.Add(uint8(2), "2.1.1-0", "3.0.0", "", "2.5.0")
	f.Add(uint8(3), "2.0-beta9", "2.3.1", "", "2.1")
	f.Add(uint8(4), "0", "", "1.0", "0.9")
	f.Add(uint8(5), "1 0", "2,0", "||", "")
	vers := []versioner{genericVersioner{}, pep440Versioner{}, npmVersioner{}, mavenVersioner{}, gemVersioner{}}
	f.Fuzz(func(t *testing.T, which uint8, intro, fixed, last, listed string) {
		ver := vers[int(which)%len(vers)]
		r := record.Range{Type: "ECOSYSTEM"}
		if intro != "" {
			r.Events = append(r.Events, record.Event{Introduced: intro})
		}
		if fixed != "" {
			r.Events = append(r.Events, record.Event{Fixed: fixed})
		}
		if last != "" {
			r.Events = append(r.Events, record.Event{LastAffected: last})
		}
		a := record.Affected{Ranges: []record.Range{r}}
		if listed != "" {
			a.Versions = []string{listed}
		}
		vuln, patched, err := langVersions(ver, a)
		if err != nil {
			return
		}
		if len(vuln) == 0 || vuln[0] == "" {
			return
		}
		m, err := ver.compile(strings.Join(vuln, " || "))
		if err != nil {
			t.Fatalf("written constraints %q do not parse: %v", vuln, err)
		}
		for _, p := range patched {
			if in, err := m(p); err != nil || in {
				t.Fatalf("patched %q inside %q (%v)", p, vuln, err)
			}
		}
	})
}
