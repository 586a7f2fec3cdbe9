package bolt

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// errBusy is returned by lockFile when the lock is held and the caller did
// not want to wait, and by backoff when the deadline has passed.
var errBusy = errors.New("locked by another process")

// backoff sleeps between attempts to open the database: 1 ms doubling to 10 ms, with jitter,
// never past the deadline.
type backoff struct{ d time.Duration }

const maxBackoff = 10 * time.Millisecond

func (b *backoff) wait(ctx context.Context, deadline time.Time) error {
	if b.d == 0 {
		b.d = time.Millisecond
	} else if b.d *= 2; b.d > maxBackoff {
		b.d = maxBackoff
	}
	d := b.d/2 + rand.N(b.d/2+1)
	left := time.Until(deadline)
	if left <= 0 {
		return errBusy
	}
	if d > left {
		d = left
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// lockFile opens path (creating it, 0600) and takes an exclusive flock on
// it. When wait is false it makes one attempt and returns errBusy if another
// open file holds the lock; otherwise it waits until the deadline.
//
// A holder may unlink the file while we wait for it (event logs are removed
// once folded, lease files once released), so after taking the lock it
// checks that path still names the locked file, and starts again if not:
// a lock on an unlinked file protects nothing.
func lockFile(ctx context.Context, path string, deadline time.Time, wait bool) (*os.File, error) {
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, err
		}
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if errors.Is(err, unix.EWOULDBLOCK) {
			if !wait {
				f.Close()
				return nil, errBusy
			}
			var owned bool
			owned, err = flockWait(ctx, f, deadline)
			if !owned {
				return nil, err // f now belongs to the abandoned waiter
			}
		}
		if err != nil {
			f.Close()
			if errors.Is(err, errBusy) || ctx.Err() != nil {
				return nil, err
			}
			return nil, &os.PathError{Op: "flock", Path: path, Err: err}
		}
		same, err := samePath(f, path)
		if err != nil {
			f.Close()
			return nil, err
		}
		if same {
			return f, nil
		}
		f.Close() // unlinked while we waited: lock the new file
	}
}

// flockWait blocks in flock(LOCK_EX) until it gets the lock, the deadline
// passes or ctx ends. A blocked flock is woken the moment the holder lets
// go, so waiters from several processes take turns fairly, where polling
// with LOCK_NB would let the process that just released the lock take it
// again while the others sleep.
//
// flock cannot be interrupted, so the wait runs in a goroutine. If we give
// up first, that goroutine keeps the file: it closes it (releasing the lock
// at once if it got it) when its flock returns. owned reports whether the
// caller still owns f.
func flockWait(ctx context.Context, f *os.File, deadline time.Time) (owned bool, err error) {
	done := make(chan error, 1)
	var mu sync.Mutex
	abandoned := false
	fd := int(f.Fd())
	go func() {
		var err error
		for {
			if err = unix.Flock(fd, unix.LOCK_EX); !errors.Is(err, unix.EINTR) {
				break
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if abandoned {
			f.Close()
			return
		}
		done <- err
	}()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case err := <-done:
		return true, err
	case <-ctx.Done():
		err = ctx.Err()
	case <-t.C:
		err = errBusy
	}
	mu.Lock()
	defer mu.Unlock()
	select {
	case <-done: // it got the lock just now; we own f again, and give up
		return true, err
	default:
		abandoned = true
		return false, err
	}
}

// samePath reports whether path still names the open file f.
func samePath(f *os.File, path string) (bool, error) {
	var a, b unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &a); err != nil {
		return false, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	if err := unix.Stat(path, &b); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return a.Dev == b.Dev && a.Ino == b.Ino, nil
}

// fileID identifies an open file and its size.
type fileID struct {
	dev, ino uint64
	size     int64
}

func statFile(f *os.File) (fileID, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fileID{}, &os.PathError{Op: "fstat", Path: f.Name(), Err: err}
	}
	return fileID{dev: uint64(st.Dev), ino: st.Ino, size: st.Size}, nil
}
