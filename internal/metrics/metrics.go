// Package metrics holds stella's Prometheus collectors (SPEC §9) in one
// registry. The service exposes them on /metrics; CLI runs add their
// observations to a Prometheus textfile (for node_exporter's textfile
// collector), carrying counters and histograms over from the file's
// previous contents so that they keep counting across invocations.
package metrics

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Set is one registry with every collector.
type Set struct {
	Reg              *prometheus.Registry
	RunDuration      *prometheus.HistogramVec
	RunFailures      *prometheus.CounterVec
	RunBytes         *prometheus.CounterVec
	DistributionPush *prometheus.HistogramVec
	VerifyFailures   *prometheus.CounterVec
	RetentionPruned  *prometheus.CounterVec
	StorageBytes     *prometheus.GaugeVec
	JobsReady        prometheus.Gauge
	WorkersBusy      prometheus.Gauge
}

// New makes a Set with every collector registered.
func New() *Set {
	s := &Set{
		Reg: prometheus.NewRegistry(),
		RunDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "exporter_run_duration_seconds",
			Help: "Duration of export runs.", Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600}}, []string{"profile_kind"}),
		RunFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "exporter_run_failures_total",
			Help: "Export runs that failed, by profile and error code label."}, []string{"profile", "error_code"}),
		RunBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "exporter_run_bytes_total",
			Help: "Bytes of artifacts written by export runs."}, []string{"profile_kind"}),
		DistributionPush: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "exporter_distribution_push_seconds",
			Help: "Duration of distribution pushes.", Buckets: prometheus.DefBuckets}, []string{"kind"}),
		VerifyFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "exporter_verify_failures_total",
			Help: "Bundle verifications that failed, by failing check."}, []string{"check"}),
		RetentionPruned: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "exporter_retention_pruned_total",
			Help: "Runs pruned by retention."}, []string{"profile_kind"}),
		StorageBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "exporter_storage_bytes_total",
			Help: "Bytes of artifacts kept, by tenant."}, []string{"tenant"}),
		JobsReady:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "exporter_jobs_ready", Help: "Runs waiting for a worker."}),
		WorkersBusy: prometheus.NewGauge(prometheus.GaugeOpts{Name: "exporter_workers_busy", Help: "Workers executing a run."}),
	}
	s.Reg.MustRegister(s.RunDuration, s.RunFailures, s.RunBytes, s.DistributionPush, s.VerifyFailures,
		s.RetentionPruned, s.StorageBytes, s.JobsReady, s.WorkersBusy)
	return s
}

// WriteTextfile merges this process's observations into the textfile at
// path: counters and histograms are added to the values already there,
// gauges replaced. The file is replaced atomically.
func (s *Set) WriteTextfile(path string) error {
	fams, err := s.Reg.Gather()
	if err != nil {
		return err
	}
	old := map[string]*dto.MetricFamily{}
	if b, err := os.ReadFile(path); err == nil {
		p := expfmt.NewTextParser(model.UTF8Validation)
		if parsed, err := p.TextToMetricFamilies(bytes.NewReader(b)); err == nil {
			old = parsed
		}
	}
	var buf bytes.Buffer
	for _, f := range fams {
		if o, ok := old[f.GetName()]; ok && o.GetType() == f.GetType() {
			merge(f, o)
		}
		if _, err := expfmt.MetricFamilyToText(&buf, f); err != nil {
			return err
		}
	}
	// Families present only in the old file (other label sets) are kept.
	for name, o := range old {
		found := false
		for _, f := range fams {
			if f.GetName() == name {
				found = true
			}
		}
		if !found {
			expfmt.MetricFamilyToText(&buf, o)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func labelKey(m *dto.Metric) string {
	var b bytes.Buffer
	for _, l := range m.GetLabel() {
		fmt.Fprintf(&b, "%s=%q,", l.GetName(), l.GetValue())
	}
	return b.String()
}

// merge adds old's counters/histograms into cur (same family).
func merge(cur, old *dto.MetricFamily) {
	byKey := map[string]*dto.Metric{}
	for _, m := range cur.Metric {
		byKey[labelKey(m)] = m
	}
	for _, om := range old.Metric {
		m, ok := byKey[labelKey(om)]
		if !ok {
			cur.Metric = append(cur.Metric, om)
			continue
		}
		switch cur.GetType() {
		case dto.MetricType_COUNTER:
			v := m.GetCounter().GetValue() + om.GetCounter().GetValue()
			m.Counter.Value = &v
		case dto.MetricType_HISTOGRAM:
			h, oh := m.GetHistogram(), om.GetHistogram()
			c := h.GetSampleCount() + oh.GetSampleCount()
			sum := h.GetSampleSum() + oh.GetSampleSum()
			h.SampleCount, h.SampleSum = &c, &sum
			for i, b := range h.Bucket {
				if i < len(oh.Bucket) && oh.Bucket[i].GetUpperBound() == b.GetUpperBound() {
					n := b.GetCumulativeCount() + oh.Bucket[i].GetCumulativeCount()
					b.CumulativeCount = &n
				}
			}
		}
	}
}
