//go:build !(linux || darwin)

package evidence

import "github.com/stellaops/stella/internal/statcache"

// stat: file status is not used on this platform (every document is read).
func (f *regularFile) stat() (statcache.Stat, bool) { return statcache.Stat{}, false }

func lstatRegular(string) (statcache.Stat, bool) { return statcache.Stat{}, false }
