package mirror

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stellaops/stella/internal/statcache"
)

// parseState is parseStateSum of bytes summed here (OpenRecordState sums
// the file as it reads it).
func parseState(data []byte) (*RecordState, error) {
	var sum uint32
	if len(data) >= 4 {
		sum = crc32.Checksum(data[:len(data)-4], castagnoli)
	}
	return parseStateSum(data, sum)
}

// withCRC gives b the CRC-32C the state format ends with, so that the
// fuzzer gets past the checksum into the structure checks.
func withCRC(b []byte) []byte {
	if len(b) < 4 {
		return b
	}
	b = append([]byte(nil), b...)
	binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], castagnoli))
	return b
}

// FuzzRecordState: whatever a state file holds, opening it and every read
// of it either works or fails with an error — no panic, no read outside
// the file — and a state that opens can be copied into a new one.
func FuzzRecordState(f *testing.F) {
	dir := f.TempDir()
	p := filepath.Join(dir, "seed")
	w, err := CreateRecordState(p, filepath.Join(dir, "tmp"), 4<<10, RecordStateHeader{RunID: "r"}, nil)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range []Entry{stateEntry(KindAdvisory, 1, "a"), stateEntry(KindAdvisory, 2, "a"), stateEntry(KindFinding, 3, "a"),
		stateEntry(KindPolicy, 4, "a"), stateEntry(KindVEX, 5, "a")} {
		w.Add(e)
	}
	if err := w.Close(); err != nil {
		f.Fatal(err)
	}
	seed, _ := os.ReadFile(p)
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Add([]byte(stateMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseState(withCRC(b))
		if err != nil {
			return
		}
		s.fence = statcache.NewFence(s.docCount(), s.docAt)
		for i := 0; i < s.Len(); i++ {
			s.KindID(i)
			if e, err := s.Entry(i); err == nil {
				s.Find(statcache.KeyOf(e.Source, e.Path), e.Digest)
				s.Search(e.Kind, e.ID, 0)
			}
		}
		s.Range(KindFinding)
		s.Find(statcache.Key{}, "sha256:"+strings.Repeat("0", 64))
		out := filepath.Join(t.TempDir(), "copy")
		w, err := CreateRecordState(out, filepath.Join(t.TempDir(), "tmp"), 4<<10, RecordStateHeader{}, s)
		if err != nil {
			t.Fatal(err)
		}
		w.Copy(0, s.Len())
		if err := w.Close(); err == nil {
			c, err := OpenRecordState(out)
			if err != nil || c.Len() != s.Len() {
				t.Fatalf("copy of a state of %d entries: %v", s.Len(), err)
			}
			c.Close()
		}
	})
}
