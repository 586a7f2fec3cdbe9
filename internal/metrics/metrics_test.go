package metrics

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTextfileAccumulatesAcrossInvocations(t *testing.T) {
	p := filepath.Join(t.TempDir(), "stella.prom")
	for i := 0; i < 3; i++ {
		s := New()
		s.VerifyFailures.WithLabelValues("digests").Inc()
		s.RunDuration.WithLabelValues("json").Observe(2)
		if i == 2 {
			s.VerifyFailures.WithLabelValues("signature").Inc()
		}
		s.JobsReady.Set(float64(i))
		if err := s.WriteTextfile(p); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(p)
	out := string(b)
	for _, want := range []string{
		`exporter_verify_failures_total{check="digests"} 3`,
		`exporter_verify_failures_total{check="signature"} 1`,
		`exporter_run_duration_seconds_count{profile_kind="json"} 3`,
		`exporter_run_duration_seconds_sum{profile_kind="json"} 6`,
		`exporter_run_duration_seconds_bucket{profile_kind="json",le="5"} 3`,
		"exporter_jobs_ready 2",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("textfile lacks %q:\n%s", want, out)
		}
	}
}
