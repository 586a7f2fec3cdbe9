package extsort

import (
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
)

// spills are the ways run files are written; each test that spills runs
// with each.
var spills = []struct {
	name string
	mode Spill
}{{"s2", SpillCompressed}, {"stored", SpillStored}}

func TestSortSpillsAndMerges(t *testing.T) {
	for _, sp := range spills {
		t.Run(sp.name, func(t *testing.T) { testSortSpillsAndMerges(t, sp.mode) })
	}
}

func testSortSpillsAndMerges(t *testing.T, mode Spill) {
	for _, budget := range []int{1 << 10, 1 << 30} { // many runs; all in memory
		dir := t.TempDir()
		s := New(dir, budget)
		s.SetSpill(mode)
		rng := rand.New(rand.NewPCG(1, 2))
		var want []string
		var wg sync.WaitGroup
		var mu sync.Mutex
		for g := 0; g < 4; g++ {
			keys := make([]string, 500)
			for i := range keys {
				keys[i] = fmt.Sprintf("k%08d-%d", rng.IntN(1e6), g*1000+i)
			}
			want = append(want, keys...)
			wg.Add(1)
			go func(keys []string) {
				defer wg.Done()
				for _, k := range keys {
					if err := s.Add([]byte(k), []byte("v"+k)); err != nil {
						mu.Lock()
						t.Error(err)
						mu.Unlock()
					}
				}
			}(keys)
		}
		wg.Wait()
		sort.Strings(want)
		var got []string
		err := s.Merge(func(k, v []byte) error {
			if string(v) != "v"+string(k) {
				t.Fatalf("value %q for key %q", v, k)
			}
			got = append(got, string(k))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("budget %d: got %d pairs, want %d", budget, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("budget %d: pair %d = %q, want %q", budget, i, got[i], want[i])
			}
		}
		if budget < 1<<20 && s.runs != nil {
			t.Errorf("budget %d: runs left after Merge", budget)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("budget %d: %d run files left behind", budget, len(ents))
		}
	}
}

func TestSpillFailureIsReported(t *testing.T) {
	s := New(t.TempDir()+"/missing", 1<<10)
	var err error
	for i := 0; i < 200 && err == nil; i++ {
		err = s.Add([]byte(fmt.Sprintf("k%04d", i)), make([]byte, 64))
	}
	if err == nil {
		t.Fatal("spilling into a missing directory did not fail")
	}
	if merr := s.Merge(func(k, v []byte) error { return nil }); merr == nil {
		t.Fatal("Merge after a failed spill did not fail")
	}
}

// More runs than maxFanIn are merged in passes: same order, all pairs.
func TestManyRunsMergeInPasses(t *testing.T) {
	for _, sp := range spills {
		t.Run(sp.name, func(t *testing.T) { testManyRunsMergeInPasses(t, sp.mode) })
	}
}

func testManyRunsMergeInPasses(t *testing.T, mode Spill) {
	s := New(t.TempDir(), 256) // a run every few pairs
	s.SetSpill(mode)
	const n = 3000
	for i := n - 1; i >= 0; i-- {
		if err := s.Add([]byte(fmt.Sprintf("k%06d", i)), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.runs) <= 2*maxFanIn {
		t.Fatalf("only %d runs; the test needs more than %d", len(s.runs), 2*maxFanIn)
	}
	i := 0
	err := s.Merge(func(k, v []byte) error {
		if string(k) != fmt.Sprintf("k%06d", i) || v[0] != byte(i) {
			t.Fatalf("pair %d: %q", i, k)
		}
		i++
		return nil
	})
	if err != nil || i != n {
		t.Fatalf("merged %d of %d: %v", i, n, err)
	}
}

// Pairs larger than a run block, beside small ones, come back whole.
func TestBigPairs(t *testing.T) {
	for _, sp := range spills {
		t.Run(sp.name, func(t *testing.T) { testBigPairs(t, sp.mode) })
	}
}

func testBigPairs(t *testing.T, mode Spill) {
	s := New(t.TempDir(), 64<<10)
	s.SetSpill(mode)
	want := map[string]string{}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 300; i++ {
		k := fmt.Sprintf("k%05d", rng.IntN(1e5))
		n := 10 + rng.IntN(100)
		if i%37 == 0 {
			n = runBlock + rng.IntN(runBlock) // a block of its own
		}
		v := make([]byte, n)
		for j := range v {
			v[j] = byte('a' + rng.IntN(26))
		}
		if _, dup := want[k]; dup {
			continue
		}
		want[k] = string(v)
		if err := s.Add([]byte(k), v); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.runs) < 2 {
		t.Fatalf("%d runs: the test needs spills", len(s.runs))
	}
	n := 0
	prev := ""
	err := s.Merge(func(k, v []byte) error {
		if string(k) <= prev {
			return fmt.Errorf("key %q after %q", k, prev)
		}
		prev = string(k)
		if want[string(k)] != string(v) {
			return fmt.Errorf("key %q: value of %d bytes, want %d", k, len(v), len(want[string(k)]))
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != len(want) {
		t.Fatalf("%d pairs, want %d", n, len(want))
	}
}

// A run file damaged on disk fails the merge; it is never read as other pairs.
func TestDamagedRunFails(t *testing.T) {
	for _, sp := range spills {
		for _, damage := range []string{"flip", "truncate", "header"} {
			t.Run(sp.name+"/"+damage, func(t *testing.T) { testDamagedRunFails(t, sp.mode, damage) })
		}
	}
}

func testDamagedRunFails(t *testing.T, mode Spill, damage string) {
	s := New(t.TempDir(), 8<<10)
	s.SetSpill(mode)
	for i := 0; i < 2000; i++ {
		if err := s.Add(fmt.Appendf(nil, "key-%06d", (i*7919)%2000), fmt.Appendf(nil, "value %d of the run", i)); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.runs) == 0 {
		t.Fatal("no run spilled")
	}
	s.inflight.Wait()
	name := s.runs[0]
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	switch damage {
	case "flip":
		b[len(b)/2] ^= 0x40
	case "truncate":
		b = b[:len(b)-3]
	case "header":
		b[4] ^= 0xff // the stored length
	}
	if err := os.WriteFile(name, b, 0o600); err != nil {
		t.Fatal(err)
	}
	err = s.Merge(func(k, v []byte) error { return nil })
	if err == nil {
		t.Fatal("a damaged run merged without an error")
	}
	if !strings.Contains(err.Error(), name) {
		t.Errorf("error %q does not name the run file", err)
	}
}

// SpillAuto compresses run files when the file system is short of room,
// and stores them as they are when it has plenty; either way the merge
// gives the same pairs.
func TestAutoSpillFollowsFreeSpace(t *testing.T) {
	defer func(f func(string) (uint64, bool)) { freeSpace = f }(freeSpace)
	value := []byte(strings.Repeat("a compressible value ", 20))
	for _, tc := range []struct {
		name   string
		free   uint64
		ok     bool
		stored bool
	}{
		{"plenty", storedRoom, true, true},
		{"short", storedRoom - 1, true, false},
		{"unknown", 1 << 62, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			freeSpace = func(string) (uint64, bool) { return tc.free, tc.ok }
			s := New(t.TempDir(), 16<<10)
			for i := 0; i < 200; i++ {
				if err := s.Add(fmt.Appendf(nil, "k%05d", (i*37)%200), value); err != nil {
					t.Fatal(err)
				}
			}
			s.inflight.Wait()
			if len(s.runs) == 0 {
				t.Fatal("no run spilled")
			}
			fi, err := os.Stat(s.runs[0])
			if err != nil {
				t.Fatal(err)
			}
			if stored := fi.Size() > 8<<10; stored != tc.stored {
				t.Errorf("run file of %d bytes for a 16 KiB buffer: stored = %v, want %v", fi.Size(), stored, tc.stored)
			}
			n := 0
			if err := s.Merge(func(k, v []byte) error {
				if string(k) != fmt.Sprintf("k%05d", n) || string(v) != string(value) {
					return fmt.Errorf("pair %d: %q", n, k)
				}
				n++
				return nil
			}); err != nil || n != 200 {
				t.Fatalf("merged %d of 200: %v", n, err)
			}
		})
	}
}
