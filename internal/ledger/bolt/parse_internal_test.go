package bolt

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseLog(t *testing.T) {
	ev := func(seq int) string {
		return fmt.Sprintf(`{"runId":"r","seq":%d,"type":"run.progress","time":"2026-03-01T12:00:00Z"}`, seq)
	}
	lines := func(l ...string) []byte { return []byte(strings.Join(l, "\n")) }
	for _, c := range []struct {
		name  string
		data  []byte
		after int64
		limit int
		want  string
	}{
		{"empty", nil, 0, 0, ""},
		{"no complete line", lines(ev(1)), 0, 0, ""},
		{"complete lines", lines(ev(1), ev(2), ev(3), ""), 0, 0, "1,2,3"},
		{"torn last line", lines(ev(1), ev(2), `{"runId":"r","se`), 0, 0, "1,2"},
		{"whole event without newline", lines(ev(1), ev(2)), 0, 0, "1"},
		{"damaged line ended by a later append", lines(ev(1), `{"runId":"r","se`, ev(2), ""), 0, 0, "1,2"},
		{"blank lines", lines(ev(1), "", ev(2), ""), 0, 0, "1,2"},
		{"after", lines(ev(1), ev(2), ev(3), ev(4), ""), 2, 0, "3,4"},
		{"after everything", lines(ev(1), ev(2), ""), 5, 0, ""},
		{"limit", lines(ev(1), ev(2), ev(3), ""), 0, 1, "3"},
		{"a seq out of order is dropped", lines(ev(1), ev(5), ev(2), ev(3), ""), 0, 0, "1,2,3"},
		{"a repeated seq is kept once", lines(ev(1), ev(2), ev(2), ev(3), ""), 0, 0, "1,2,3"},
	} {
		var got []string
		for _, e := range parseLog(c.data, c.after, c.limit) {
			got = append(got, fmt.Sprint(e.Seq))
		}
		if strings.Join(got, ",") != c.want {
			t.Errorf("%s: %v, want %s", c.name, got, c.want)
		}
	}
}
