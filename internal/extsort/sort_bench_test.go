package extsort

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// enginePairs makes pairs shaped like an export run's: per document an id
// key, a document key, a stat key (16 random bytes) and two data keys
// sharing long prefixes, in an order unrelated to the keys.
func enginePairs(n int) []pair {
	rng := rand.New(rand.NewPCG(5, 6))
	var ps []pair
	v := []byte("value")
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("BENCH-GHSA-%04x-%04x-%04x-%07d", rng.IntN(1<<16), rng.IntN(1<<16), rng.IntN(1<<16), rng.IntN(1e7))
		path := fmt.Sprintf("%04d/%s.json", rng.IntN(200), id)
		stat := make([]byte, 17)
		stat[0] = 'S'
		for j := 1; j < len(stat); j++ {
			stat[j] = byte(rng.IntN(256))
		}
		ps = append(ps,
			pair{k: []byte("Aadvisory\x00" + id + "\x00bench\x00" + path), v: v},
			pair{k: []byte("Bbench\x00" + path), v: v},
			pair{k: stat, v: v},
			pair{k: []byte("Craw/advisories/bench\x00" + id + "\x00bench\x00" + path + "\x0000000000"), v: v},
			pair{k: []byte("Cnormalized/advisories/bench\x00" + id + "\x00bench\x00" + path + "\x0000000000"), v: v})
	}
	rng.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
	return ps
}

func BenchmarkSortPairs(b *testing.B) {
	src := enginePairs(8000) // 40,000 pairs: about one 32 MiB run of a mirror build
	buf := make([]pair, len(src))
	for b.Loop() {
		copy(buf, src)
		sortPairs(buf)
	}
}

// sortPairs orders as a plain comparison of keys, then values, would: keys
// that are prefixes of others, that end in or hold NUL bytes, equal keys
// with different values, empty keys, long shared prefixes.
func TestSortPairsMatchesComparison(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	alphabet := []byte{0, 1, 'a', 'b', 0xff}
	for round := 0; round < 200; round++ {
		n := 1 + rng.IntN(2000)
		prefix := make([]byte, rng.IntN(40))
		for i := range prefix {
			prefix[i] = alphabet[rng.IntN(len(alphabet))]
		}
		ps := make([]pair, n)
		for i := range ps {
			k := append([]byte{}, prefix[:rng.IntN(len(prefix)+1)]...)
			for j := rng.IntN(20); j > 0; j-- {
				k = append(k, alphabet[rng.IntN(len(alphabet))])
			}
			v := []byte{alphabet[rng.IntN(len(alphabet))], alphabet[rng.IntN(len(alphabet))]}
			ps[i] = pair{k: k, v: v}
		}
		if round%10 == 0 {
			ps = append(ps, enginePairs(300)...)
		}
		want := slices.Clone(ps)
		slices.SortStableFunc(want, func(a, b pair) int {
			if c := bytes.Compare(a.k, b.k); c != 0 {
				return c
			}
			return bytes.Compare(a.v, b.v)
		})
		sortPairs(ps)
		for i := range ps {
			if !bytes.Equal(ps[i].k, want[i].k) || !bytes.Equal(ps[i].v, want[i].v) {
				t.Fatalf("round %d: pair %d = %q/%q, want %q/%q", round, i, ps[i].k, ps[i].v, want[i].k, want[i].v)
			}
		}
	}
}
