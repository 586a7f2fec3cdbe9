package bundle

import (
	"compress/gzip"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// Codec is a compression codec of data files (profile spec.compression.codec).
type Codec string

// Codecs.
const (
	Zstd Codec = "zstd"
	Gzip Codec = "gzip"
	None Codec = "none"
)

// Ext is the file-name suffix of a codec ("" for none).
func (c Codec) Ext() string {
	switch c {
	case Zstd:
		return ".zst"
	case Gzip:
		return ".gz"
	}
	return ""
}

// Compressor wraps w so that what is written to it is compressed with codec
// at level (0 = the codec's default). Close flushes the compressor, not w.
func Compressor(w io.Writer, codec Codec, level int) (io.WriteCloser, error) {
	switch codec {
	case Zstd, "":
		lvl := zstd.SpeedDefault
		if level != 0 {
			lvl = zstd.EncoderLevelFromZstd(level)
		}
		return newFrameWriter(w, lvl)
	case Gzip:
		if level == 0 {
			level = gzip.DefaultCompression
		}
		// No name, no mtime: the header is the same on every machine.
		return gzip.NewWriterLevel(w, level)
	case None:
		return nopCloser{w}, nil
	}
	return nil, fmt.Errorf("unknown compression codec %q (use zstd, gzip or none)", codec)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// Decompressor reads what Compressor wrote.
func Decompressor(r io.Reader, codec Codec) (io.ReadCloser, error) {
	switch codec {
	case Zstd, "":
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	case Gzip:
		return gzip.NewReader(r)
	case None:
		return io.NopCloser(r), nil
	}
	return nil, fmt.Errorf("unknown compression codec %q", codec)
}

// CodecOf guesses the codec from a file name.
func CodecOf(name string) Codec {
	switch {
	case hasSuffix(name, ".zst"), hasSuffix(name, ".tzst"):
		return Zstd
	case hasSuffix(name, ".gz"), hasSuffix(name, ".tgz"):
		return Gzip
	}
	return None
}

func hasSuffix(s, suf string) bool { return len(s) >= len(suf) && s[len(s)-len(suf):] == suf }
