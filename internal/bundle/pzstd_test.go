package bundle

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"testing"
)

// corpusBytes is n bytes of JSON-like text that compresses like evidence.
func corpusBytes(n int) []byte {
	rng := rand.New(rand.NewPCG(3, 4))
	words := []string{`{"id":"GHSA-`, `","modified":"2024-`, `"affected":[{"package":{"ecosystem":"PyPI","name":"`, `"}}]}`, "\n", "django", "requests", "0123", "abcd"}
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[rng.IntN(len(words))])
	}
	return b.Bytes()[:n]
}

func compressFramed(t *testing.T, data []byte, chunk int) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := Compressor(&out, Zstd, 0)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(data); off += chunk {
		if _, err := w.Write(data[off:min(off+chunk, len(data))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestFrameWriterRoundTripAndDeterminism(t *testing.T) {
	for _, n := range []int{0, 1, 1000, frameBytes - 1, frameBytes, 3*frameBytes + 12345} {
		data := corpusBytes(n)
		a := compressFramed(t, data, 4096)
		b := compressFramed(t, data, 1<<20+7) // other write sizes: same bytes
		if !bytes.Equal(a, b) {
			t.Fatalf("n=%d: output depends on how the input was written", n)
		}
		r, err := Decompressor(bytes.NewReader(a), Zstd)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("n=%d: round trip: %v (got %d bytes, want %d)", n, err, len(got), len(data))
		}
		// The stock zstd CLI reads the concatenated frames as one stream.
		if zstdCLI := lookZstd(t); zstdCLI != "" {
			cmd := exec.Command(zstdCLI, "-d", "-c")
			cmd.Stdin = bytes.NewReader(a)
			out, err := cmd.Output()
			if err != nil || !bytes.Equal(out, data) {
				t.Fatalf("n=%d: zstd -d: %v (got %d bytes, want %d)", n, err, len(out), len(data))
			}
		}
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n -= len(p); f.n < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestFrameWriterReportsWriteErrors(t *testing.T) {
	w, err := Compressor(&failWriter{n: 10}, Zstd, 0)
	if err != nil {
		t.Fatal(err)
	}
	data := corpusBytes(3 * frameBytes)
	_, werr := w.Write(data)
	cerr := w.Close()
	if werr == nil && cerr == nil {
		t.Fatal("a failing destination was not reported")
	}
}

// lookZstd finds the zstd CLI; missing, the check is skipped unless
// STELLA_REQUIRE_ORACLES is set.
func lookZstd(t *testing.T) string {
	p, err := exec.LookPath("zstd")
	if err != nil {
		if os.Getenv("STELLA_REQUIRE_ORACLES") != "" {
			t.Fatal("zstd CLI not found (apt-get install zstd); STELLA_REQUIRE_ORACLES is set")
		}
		t.Log("zstd CLI not found: stock decoder check skipped")
		return ""
	}
	return p
}
