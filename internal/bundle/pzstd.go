package bundle

import (
	"io"
	"runtime"

	"github.com/klauspost/compress/zstd"
)

// frameBytes is how much input goes into each zstd frame of a data file.
// Frames are compressed independently, on all cores, and written in order:
// the bytes depend only on the input (never on the number of cores), and
// every zstd reader reads the concatenated frames as one stream.
const frameBytes = 4 << 20

// frameWorkers bounds the frames being compressed at once: one per core,
// two at least, four at most (each holds an encoder with a window of
// frameBytes and its input and output).
var frameWorkers = min(max(runtime.GOMAXPROCS(0), 2), 4)

// frameWriter compresses what is written to it as a sequence of zstd frames
// of frameBytes of input each.
type frameWriter struct {
	w       io.Writer
	enc     *zstd.Encoder
	buf     []byte
	pending []*frameJob // in output order
	sem     chan struct{}
	err     error
	wrote   bool
	closed  bool
	// Buffers of finished frames, for the next ones: plain free lists
	// (only the writing goroutine takes and returns them), not sync.Pools,
	// which every collection empties — a new 4 MiB input buffer to clear
	// and an output buffer to grow again, frame after frame.
	freeIn  [][]byte
	freeOut [][]byte
}

type frameJob struct {
	in   []byte
	out  []byte
	done chan struct{}
}

func newFrameWriter(w io.Writer, lvl zstd.EncoderLevel) (*frameWriter, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(lvl), zstd.WithEncoderConcurrency(frameWorkers),
		zstd.WithEncoderCRC(true), zstd.WithWindowSize(frameBytes))
	if err != nil {
		return nil, err
	}
	return &frameWriter{w: w, enc: enc, sem: make(chan struct{}, frameWorkers)}, nil
}

func (f *frameWriter) Write(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	n := len(p)
	for len(p) > 0 {
		if f.buf == nil {
			if n := len(f.freeIn); n > 0 {
				f.buf, f.freeIn = f.freeIn[n-1][:0], f.freeIn[:n-1]
			} else {
				f.buf = make([]byte, 0, frameBytes)
			}
		}
		k := min(len(p), frameBytes-len(f.buf))
		f.buf = append(f.buf, p[:k]...)
		p = p[k:]
		if len(f.buf) == frameBytes {
			if err := f.submit(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

// WriteByte writes one byte (data files end every line with one).
func (f *frameWriter) WriteByte(c byte) error {
	if f.err == nil && f.buf != nil && len(f.buf) < frameBytes-1 {
		f.buf = append(f.buf, c)
		return nil
	}
	_, err := f.Write([]byte{c})
	return err
}

// submit starts compressing the buffered input as one frame, after writing
// out finished frames so that at most frameWorkers+1 are held.
func (f *frameWriter) submit() error {
	j := &frameJob{in: f.buf, done: make(chan struct{})}
	f.buf = nil
	f.wrote = true
	var dst []byte
	if n := len(f.freeOut); n > 0 {
		dst, f.freeOut = f.freeOut[n-1][:0], f.freeOut[:n-1]
	} else {
		dst = make([]byte, 0, len(j.in)/2+1<<10)
	}
	f.sem <- struct{}{}
	go func() {
		j.out = f.enc.EncodeAll(j.in, dst)
		<-f.sem
		close(j.done)
	}()
	f.pending = append(f.pending, j)
	for len(f.pending) > frameWorkers {
		if err := f.flushOne(); err != nil {
			return err
		}
	}
	return nil
}

func (f *frameWriter) flushOne() error {
	j := f.pending[0]
	<-j.done
	f.pending = f.pending[1:]
	if cap(j.in) == frameBytes {
		f.freeIn = append(f.freeIn, j.in[:0])
	}
	if f.err == nil {
		if _, err := f.w.Write(j.out); err != nil {
			f.err = err
		}
	}
	f.freeOut = append(f.freeOut, j.out[:0])
	return f.err
}

// Close compresses the rest and writes every frame (an empty input gives
// one empty frame, so the output is always a valid zstd stream).
func (f *frameWriter) Close() error {
	if f.closed {
		return f.err
	}
	f.closed = true
	if f.err == nil && (len(f.buf) > 0 || !f.wrote) {
		if f.buf == nil {
			f.buf = []byte{}
		}
		f.submit()
	}
	for len(f.pending) > 0 {
		f.flushOne()
	}
	f.freeIn, f.freeOut = nil, nil
	f.enc.Close()
	return f.err
}
