//go:build !linux

package evidence

// readDirents lists a folder in lexical order.
func readDirents(dir string) ([]dirent, error) { return readDirentsOS(dir) }
