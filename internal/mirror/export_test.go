package mirror

import "os"

// SetCreateTargetFile replaces how apply creates files under the target's
// staging folder; the returned function restores it.
func SetCreateTargetFile(f func(p string) (*os.File, error)) (restore func()) {
	old := createTargetFile
	createTargetFile = f
	return func() { createTargetFile = old }
}
