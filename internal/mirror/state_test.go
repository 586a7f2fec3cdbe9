package mirror

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/stellaops/stella/internal/statcache"
)

func stateEntry(kind string, i int, salt string) Entry {
	src := "osv"
	if kind == KindVEX {
		src = "vexhub"
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "%s-%d-%s", kind, i, salt))
	e := Entry{Kind: kind, ID: fmt.Sprintf("ID-%06d", i), Digest: "sha256:" + hex.EncodeToString(sum[:]),
		File: "data/raw/x/" + src + ".jsonl.zst", Source: src, Path: fmt.Sprintf("p/%d.json", i)}
	if kind == KindFinding {
		e.Line = int64(i + 1)
	}
	if i%7 == 3 {
		e.Withdrawn = kind == KindAdvisory
	}
	return e
}

func writeState(t *testing.T, path string, base *RecordState, fill func(w *RecordStateWriter) error) *RecordState {
	t.Helper()
	w, err := CreateRecordState(path, filepath.Join(t.TempDir(), "tmp"), 4<<10, RecordStateHeader{RunID: "r", ChainVersion: "v",
		Index: IndexHeader{Include: []string{"advisories"}}}, base)
	if err != nil {
		t.Fatal(err)
	}
	if err := fill(w); err != nil {
		w.Abort()
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := OpenRecordState(path)
	if err != nil || s == nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// checkState checks every entry of s against want, and that every
// document entry is found by key and digest (and not by another digest).
func checkState(t *testing.T, s *RecordState, want []Entry) {
	t.Helper()
	if s.Len() != len(want) {
		t.Fatalf("state has %d entries, want %d", s.Len(), len(want))
	}
	for i, w := range want {
		e, err := s.Entry(i)
		if err != nil || !reflect.DeepEqual(e, w) {
			t.Fatalf("entry %d: got %+v, %v; want %+v", i, e, err, w)
		}
		k := statcache.KeyOf(w.Source, w.Path)
		got := s.Find(k, w.Digest)
		if docIndexed(w.Kind) && got != i {
			t.Fatalf("Find(%s) = %d, want %d", w.Key(), got, i)
		}
		if !docIndexed(w.Kind) && got != -1 {
			t.Fatalf("Find(%s) = %d for a kind without documents", w.Key(), got)
		}
		if other := s.Find(k, "sha256:"+hex.EncodeToString(make([]byte, 32))); other != -1 {
			t.Fatalf("Find with another digest = %d", other)
		}
		if j := s.Search(w.Kind, w.ID, 0); j != i {
			t.Fatalf("Search(%s) = %d, want %d", w.Key(), j, i)
		}
		if j := s.Search(w.Kind, w.ID+"!", 0); j != i+1 {
			t.Fatalf("Search(after %s) = %d, want %d", w.Key(), j, i+1)
		}
	}
}

func TestRecordStateRoundTripAndFold(t *testing.T) {
	dir := t.TempDir()
	var base []Entry
	for _, kind := range []string{KindAdvisory, KindFinding, KindPolicy, KindSBOM, KindVEX} {
		for i := 0; i < 300; i++ {
			base = append(base, stateEntry(kind, i*2, "t0"))
		}
	}
	s0 := writeState(t, filepath.Join(dir, "s0"), nil, func(w *RecordStateWriter) error {
		for _, e := range base {
			if err := w.Add(e); err != nil {
				return err
			}
		}
		return nil
	})
	checkState(t, s0, base)
	if h := s0.Header(); h.RunID != "r" || h.ChainVersion != "v" || h.Entries != int64(len(base)) || h.Docs != 900 {
		t.Fatalf("header %+v", h)
	}
	if from, to := s0.Range(KindPolicy); from != 600 || to != 900 {
		t.Fatalf("Range(policy) = %d, %d", from, to)
	}

	// A delta: copy runs of base entries, drop some, change some, add
	// some in between — the way the mirror adapter folds a delta.
	rng := rand.New(rand.NewPCG(1, 2))
	var want []Entry
	s1 := writeState(t, filepath.Join(dir, "s1"), s0, func(w *RecordStateWriter) error {
		from := 0
		for i := 0; i < len(base); i++ {
			switch r := rng.IntN(20); {
			case r == 0: // removed
				if err := w.Copy(from, i); err != nil {
					return err
				}
				want = append(want, base[from:i]...)
				from = i + 1
			case r == 1: // changed
				if err := w.Copy(from, i); err != nil {
					return err
				}
				want = append(want, base[from:i]...)
				e := base[i]
				e.Digest, e.Path = stateEntry(e.Kind, i, "t1").Digest, e.Path+".new"
				if err := w.Add(e); err != nil {
					return err
				}
				want = append(want, e)
				from = i + 1
			case r == 2: // added before it
				if err := w.Copy(from, i); err != nil {
					return err
				}
				want = append(want, base[from:i]...)
				var n int
				fmt.Sscanf(base[i].ID, "ID-%d", &n)
				e := stateEntry(base[i].Kind, n-1, "t1")
				if err := w.Add(e); err != nil {
					return err
				}
				want = append(want, e)
				from = i
			}
		}
		want = append(want, base[from:]...)
		return w.Copy(from, len(base))
	})
	checkState(t, s1, want)

	// Out of order is refused.
	w, err := CreateRecordState(filepath.Join(dir, "bad"), filepath.Join(dir, "tmp2"), 4<<10, RecordStateHeader{}, s0)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Copy(10, 20); err != nil {
		t.Fatal(err)
	}
	w.Add(base[5]) // before the last one: the failure comes with Close
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), "not sorted") {
		t.Fatalf("Close of a state written out of order: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "bad")); !os.IsNotExist(err) {
		t.Fatal("a failed state file was left behind")
	}
}

// A damaged state file is refused (the delta then rebuilds the state from
// the bundles), never read as something else.
func TestRecordStateDamaged(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "s")
	entries := []Entry{stateEntry(KindAdvisory, 1, "a"), stateEntry(KindAdvisory, 2, "a"), stateEntry(KindVEX, 1, "a")}
	writeState(t, p, nil, func(w *RecordStateWriter) error {
		for _, e := range entries {
			if err := w.Add(e); err != nil {
				return err
			}
		}
		return nil
	}).Close()
	good, _ := os.ReadFile(p)
	if s, err := OpenRecordState(filepath.Join(dir, "none")); s != nil || err != nil {
		t.Fatalf("missing file: %v, %v", s, err)
	}
	for _, c := range []struct {
		name string
		b    []byte
	}{
		{"flipped byte", func() []byte { b := slices.Clone(good); b[len(b)/2] ^= 1; return b }()},
		{"truncated", good[:len(good)-9]},
		{"empty", nil},
		{"other file", []byte("STELLA-STATCACHE-1\n0123456789012345678901234567890123456789")},
	} {
		if err := os.WriteFile(p, c.b, 0o644); err != nil {
			t.Fatal(err)
		}
		if s, err := OpenRecordState(p); err == nil {
			s.Close()
			t.Errorf("%s: opened", c.name)
		}
	}
}
