package evidence

import (
	"fmt"
	"path"
	"strings"
)

// excluder matches slash paths relative to a source root against exclude
// globs. A pattern is split on "/"; each segment is matched with path.Match,
// and a segment "**" matches zero or more whole segments. Patterns are
// anchored at the source root: "*.md" matches only top-level files, "**/*.md"
// matches at any depth, "vendor/**" matches the folder vendor and all below.
type excluder struct {
	patterns [][]string
}

func newExcluder(patterns []string) (*excluder, error) {
	ex := &excluder{}
	for _, orig := range patterns {
		p := strings.TrimPrefix(strings.TrimSpace(orig), "./")
		p = strings.TrimSuffix(p, "/")
		if p == "" {
			return nil, fmt.Errorf("exclude pattern %q is empty", orig)
		}
		segs := strings.Split(p, "/")
		for _, s := range segs {
			if s == "**" {
				continue
			}
			if _, err := path.Match(s, ""); err != nil {
				return nil, fmt.Errorf("exclude pattern %q: %v", p, err)
			}
		}
		ex.patterns = append(ex.patterns, segs)
	}
	return ex, nil
}

// match reports whether rel itself matches a pattern.
func (ex *excluder) match(rel string) bool {
	if ex == nil || len(ex.patterns) == 0 {
		return false
	}
	segs := strings.Split(rel, "/")
	for _, p := range ex.patterns {
		if matchSegments(p, segs) {
			return true
		}
	}
	return false
}

// matchTree reports whether rel or one of the folders above it matches a
// pattern (archives list files without their folders, so a folder pattern is
// checked against every prefix).
func (ex *excluder) matchTree(rel string) bool {
	if ex == nil || len(ex.patterns) == 0 {
		return false
	}
	for i := 0; i < len(rel); i++ {
		if rel[i] == '/' && ex.match(rel[:i]) {
			return true
		}
	}
	return ex.match(rel)
}

// matchSegments matches path segments against pattern segments, "**"
// standing for any number of segments. It runs in O(len(p)*len(s)).
func matchSegments(p, s []string) bool {
	// cur[j] reports whether p[:i] matches s[:j].
	cur := make([]bool, len(s)+1)
	next := make([]bool, len(s)+1)
	cur[0] = true
	for i := range p {
		for j := range next {
			next[j] = false
		}
		if p[i] == "**" {
			seen := false
			for j := 0; j <= len(s); j++ {
				seen = seen || cur[j]
				next[j] = seen
			}
		} else {
			for j := 1; j <= len(s); j++ {
				if cur[j-1] {
					if ok, _ := path.Match(p[i], s[j-1]); ok {
						next[j] = true
					}
				}
			}
		}
		cur, next = next, cur
	}
	return cur[len(s)]
}
