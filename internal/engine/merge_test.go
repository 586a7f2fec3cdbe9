package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stellaops/stella/internal/extsort"
	"github.com/stellaops/stella/pkg/exportapi"
)

// finishAdapter records what the merge hands it.
type finishAdapter struct {
	mu       sync.Mutex
	records  []string
	finished int
	late     int // records after Finish
	err      error
}

func (a *finishAdapter) Record(stream, id string, line []byte) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.finished > 0 {
		a.late++
	}
	a.records = append(a.records, stream+" "+id)
	return nil
}

func (a *finishAdapter) Finish() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.finished++
	return a.err
}

func sortedPairs(t *testing.T, docs int) *extsort.Sorter {
	t.Helper()
	s := extsort.New(t.TempDir(), 1<<20)
	t.Cleanup(func() { s.Close() })
	for i := 0; i < docs; i++ {
		id := "X-" + string(rune('a'+i%26)) + strings.Repeat("z", i/26)
		path := id + ".json"
		for _, p := range [][2][]byte{
			{key(nsID, "advisory", id, "s", path), modBytes(time.Unix(1_700_000_000, 0))},
			{key(nsData, "raw/advisories/s", id, "s", path, seq(0)), []byte(`{"raw":1}`)},
			{key(nsData, "normalized/advisories/s", id, "s", path, seq(0)), []byte(`{"n":1}`)},
			{key(nsDoc, "s", path), []byte("sha256:" + strings.Repeat("0", 64))},
		} {
			if err := s.Add(p[0], p[1]); err != nil {
				t.Fatal(err)
			}
		}
	}
	return s
}

// The adapter's Finish runs once, after every record (it may run beside the
// merge of the documents, which come after the data streams), its error
// fails the merge, and the source digests cover every document.
func TestMergeFinishesAdapterAfterData(t *testing.T) {
	e := &Engine{}
	spec := exportapi.ProfileSpec{Kind: "json", Variant: "raw"}
	for _, docs := range []int{0, 1, 300} {
		ad := &finishAdapter{}
		c := &collected{sorter: sortedPairs(t, docs), counts: map[string]int64{}}
		res, err := e.merge(context.Background(), exportapi.Run{}, spec, c, ad, nil)
		if err != nil {
			t.Fatalf("%d documents: %v", docs, err)
		}
		if ad.finished != 1 || ad.late != 0 || len(ad.records) != 2*docs {
			t.Fatalf("%d documents: Finish called %d times, %d records after it, %d records; want 1, 0, %d",
				docs, ad.finished, ad.late, len(ad.records), 2*docs)
		}
		if docs > 0 && (len(res.sources) != 1 || res.sources[0].Documents != int64(docs) || res.records != int64(docs)) {
			t.Errorf("%d documents: sources %+v, %d records", docs, res.sources, res.records)
		}
	}
	boom := errors.New("boom")
	ad := &finishAdapter{err: boom}
	c := &collected{sorter: sortedPairs(t, 50), counts: map[string]int64{}}
	if _, err := e.merge(context.Background(), exportapi.Run{}, spec, c, ad, nil); !errors.Is(err, boom) {
		t.Errorf("a failing Finish: merge returned %v, want its error", err)
	}
}

func modBytes(t time.Time) []byte {
	var b [8]byte
	if !t.IsZero() {
		binary.BigEndian.PutUint64(b[:], uint64(t.UnixNano()))
	}
	return b[:]
}

func seq(i int) string { return fmt.Sprintf("%08d", i) }

// The keys emit builds in a scratch buffer, and key(), are the
// NUL-separated format the merge reads (literal bytes: key is built on
// appendKey, so comparing the two would prove nothing).
func TestAppendKey(t *testing.T) {
	for _, i := range []int{0, 1, 7, 10, 12345678, 99999999, 100000000, 1234567890} {
		want := "Braw/advisories/ghsa\x00GHSA-1\x00ghsa\x00a/b.json\x00" + fmt.Sprintf("%08d", i)
		if got := appendDataKey([]byte("junk")[:0], "raw/advisories/", "ghsa", "GHSA-1", "ghsa", "a/b.json", i); string(got) != want {
			t.Fatalf("seq %d: appendDataKey = %q, want %q", i, got, want)
		}
		if got := key(nsData, "raw/advisories/ghsa", "GHSA-1", "ghsa", "a/b.json", seq(i)); string(got) != want {
			t.Fatalf("seq %d: key = %q, want %q", i, got, want)
		}
	}
	for _, c := range []struct {
		got  []byte
		want string
	}{
		{appendKey(nil, nsID, "advisory", "", "GHSA-1", "ghsa", "a.json"), "Aadvisory\x00GHSA-1\x00ghsa\x00a.json"},
		{key(nsID, "advisory", "GHSA-1", "ghsa", "a.json"), "Aadvisory\x00GHSA-1\x00ghsa\x00a.json"},
		{appendKey(nil, nsDoc, "ghsa", "", "a.json"), "Cghsa\x00a.json"},
		{key(nsDoc, "ghsa", "a.json"), "Cghsa\x00a.json"},
		{key(nsStat), "S"},
	} {
		if string(c.got) != c.want {
			t.Fatalf("key %q, want %q", c.got, c.want)
		}
	}
}
