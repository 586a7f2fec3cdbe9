//go:build !windows

package mirror

import (
	"os"

	"golang.org/x/sys/unix"
)

// lockTarget takes the target's apply lock without waiting.
func lockTarget(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, errLocked
	}
	return f, nil
}
