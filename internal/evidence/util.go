package evidence

import "sort"

// sortedUnique returns the non-empty strings of in, sorted and deduplicated,
// as a new non-nil slice.
func sortedUnique(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if s != "" {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	n := 0
	for i, s := range out {
		if i == 0 || s != out[n-1] {
			out[n] = s
			n++
		}
	}
	return out[:n]
}

// uniqueInOrder returns the non-empty strings of in, first occurrence kept,
// as a new non-nil slice.
func uniqueInOrder(in []string) []string {
	out := make([]string, 0, len(in))
	if len(in) <= 8 {
	next:
		for _, s := range in {
			if s == "" {
				continue
			}
			for _, o := range out {
				if o == s {
					continue next
				}
			}
			out = append(out, s)
		}
		return out
	}
	seen := make(map[string]bool, len(in))
	for _, s := range in {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// nilIfEmpty returns nil for an empty slice (for omitempty fields).
func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}
