package bolt

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"sync"
	"time"
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
		err = tryLock(f)
		if errors.Is(err, errWouldBlock) {
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
	go func() {
		err := blockLock(f)
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
