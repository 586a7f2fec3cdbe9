package cli

import (
	"strings"

	"github.com/stellaops/stella/internal/config"
	"github.com/stellaops/stella/internal/engine"
)

// IsUsageError reports whether err came from cobra's flag or argument
// parsing (exit code 2, like invalid input).
func IsUsageError(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown flag", "unknown command", "unknown shorthand", "accepts ", "requires at least",
		"required flag", "invalid argument", "flag needs an argument", "accepts at most", "bad flag syntax"} {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

// DefaultHooks configures the engine's optional stages from the config.
// Signing and provenance are wired here as they land.
func DefaultHooks(f *Factory, cfg *config.Config) (engine.Hooks, error) {
	return engine.Hooks{}, nil
}
