package javadb

import (
	"github.com/stellaops/stella/internal/bundle"
	"github.com/stellaops/stella/internal/engine"
)

// The trivy:java-db profile: the engine feeds the run's record streams to
// an Adapter, which stages trivy/java-db.bundle. The engine refuses the
// profile unless ExportCenter.Profiles.Trivy.EnableJavaDb is set.
func init() {
	engine.RegisterAdapter("trivy:java-db", func(ac engine.AdapterContext) (engine.Adapter, error) {
		var opts Options
		if ac.SourceDateEpoch != nil {
			opts.UpdatedAt = *ac.SourceDateEpoch
		}
		if ac.Codec == bundle.Gzip {
			opts.GzipLevel = ac.Level
		}
		return NewAdapter(ac.Ctx, ac.Stage, DefaultBundlePath, opts, ac.Run)
	})
}
