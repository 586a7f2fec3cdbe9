//go:build !linux

package evidence

import "github.com/stellaops/stella/internal/statcache"

// Files are looked up by path here.
func openDirFD(string) int { return -1 }

func closeDirFD(int) {}

func lstatRegularAt(_ int, _, p string) (statcache.Stat, bool) { return lstatRegular(p) }

func openRegularAt(_ int, _, p string) (*regularFile, error) { return openRegular(p) }
