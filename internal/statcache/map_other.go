//go:build !unix

package statcache

import "os"

// mapFile cannot map files here: no cache (every document is read).
func mapFile(*os.File) ([]byte, func() error, error) { return nil, nil, nil }
