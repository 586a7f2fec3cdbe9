package trivy

import (
	"github.com/stellaops/stella/internal/bundle"
	"github.com/stellaops/stella/internal/engine"
)

// The trivy:db profile: the engine feeds the run's record streams to an
// Adapter, which stages trivy/db.bundle. (trivy:java-db is not built yet.)
func init() {
	engine.RegisterAdapter("trivy:db", func(ac engine.AdapterContext) (engine.Adapter, error) {
		opts := Options{SchemaVersion: ac.Profile.Spec.SchemaVersion}
		if ac.SourceDateEpoch != nil {
			opts.UpdatedAt = *ac.SourceDateEpoch
		}
		if ac.Codec == bundle.Gzip {
			opts.GzipLevel = ac.Level
		}
		return NewAdapter(ac.Ctx, ac.Stage, DefaultBundlePath, opts)
	})
}
