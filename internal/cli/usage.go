package cli

import "strings"

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
