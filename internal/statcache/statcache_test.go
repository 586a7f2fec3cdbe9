package statcache

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestWriteOpenLookup(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c")
	type doc struct{ source, path, digest string }
	docs := []doc{
		{"ghsa", "a.json", "sha256:" + string(bytes.Repeat([]byte("ab"), 32))},
		{"ghsa", "b.json", "sha256:" + string(bytes.Repeat([]byte("cd"), 32))},
		{"osv", "a.json", "sha256:" + string(bytes.Repeat([]byte("ef"), 32))},
	}
	st := func(i int) Stat {
		return Stat{Size: int64(100 + i), ModNs: 1e18 + int64(i), ChangNs: 2e18 + int64(i), Ino: uint64(7 + i), Dev: 3}
	}
	slices.SortFunc(docs, func(a, b doc) int {
		ka, kb := KeyOf(a.source, a.path), KeyOf(b.source, b.path)
		return bytes.Compare(ka[:], kb[:])
	})
	w, err := Create(p)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range docs {
		rec, err := Record(st(i), d.digest)
		if err != nil {
			t.Fatal(err)
		}
		k := KeyOf(d.source, d.path)
		if err := w.Add(k[:], rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := Open(p)
	if err != nil || c.Len() != len(docs) {
		t.Fatalf("open: %v, %d entries", err, c.Len())
	}
	defer c.Close()
	for i, d := range docs {
		if got, ok := c.Lookup(d.source, d.path, st(i)); !ok || got != d.digest {
			t.Fatalf("%s/%s: got %q %v", d.source, d.path, got, ok)
		}
		for _, change := range []func(*Stat){
			func(s *Stat) { s.Size++ }, func(s *Stat) { s.ModNs++ }, func(s *Stat) { s.ChangNs++ },
			func(s *Stat) { s.Ino++ }, func(s *Stat) { s.Dev++ },
		} {
			s := st(i)
			change(&s)
			if _, ok := c.Lookup(d.source, d.path, s); ok {
				t.Fatalf("%s/%s: a changed status %+v still matched", d.source, d.path, s)
			}
		}
	}
	if _, ok := c.Lookup("ghsa", "missing.json", st(0)); ok {
		t.Fatal("an unknown document matched")
	}
	// Out of order entries are refused; a truncated file is not opened.
	w2, _ := Create(filepath.Join(dir, "bad"))
	rec, _ := Record(st(0), docs[0].digest)
	k0, k1 := KeyOf(docs[0].source, docs[0].path), KeyOf(docs[1].source, docs[1].path)
	w2.Add(k1[:], rec)
	if err := w2.Add(k0[:], rec); err == nil {
		t.Fatal("out-of-order entries accepted")
	}
	w2.Close()
	b, _ := os.ReadFile(p)
	os.WriteFile(filepath.Join(dir, "trunc"), b[:len(b)-5], 0o644)
	if _, err := Open(filepath.Join(dir, "trunc")); err == nil {
		t.Fatal("a truncated cache opened")
	}
	if c, err := Open(filepath.Join(dir, "none")); c != nil || err != nil {
		t.Fatalf("a missing cache: %v %v", c, err)
	}
	if _, err := Record(st(0), "md5:abc"); err == nil {
		t.Fatal("a non-sha256 digest was recorded")
	}
}

func TestRacy(t *testing.T) {
	start := time.Unix(1000, 0)
	old := Stat{ModNs: start.Add(-time.Hour).UnixNano(), ChangNs: start.Add(-time.Hour).UnixNano()}
	if Racy(old, start) {
		t.Fatal("an hour-old file is racy")
	}
	for _, s := range []Stat{
		{ModNs: old.ModNs, ChangNs: start.Add(-time.Second).UnixNano()}, // changed just before the run
		{ModNs: start.UnixNano(), ChangNs: old.ChangNs},
	} {
		if !Racy(s, start) {
			t.Fatalf("%+v is not racy", s)
		}
	}
}

// Many entries: every one is found through the narrowed window, and
// unknown documents are not.
func TestLookupMany(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c")
	const n = 20000
	type ent struct {
		k    Key
		path string
	}
	ents := make([]ent, n)
	for i := range ents {
		path := fmt.Sprintf("d/%06d.json", i)
		ents[i] = ent{KeyOf("s", path), path}
	}
	slices.SortFunc(ents, func(a, b ent) int { return bytes.Compare(a.k[:], b.k[:]) })
	digest := "sha256:" + strings.Repeat("0", 64)
	st := Stat{Size: 1, ModNs: 2, ChangNs: 3, Ino: 4, Dev: 5}
	w, err := Create(p)
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := Record(st, digest)
	for _, e := range ents {
		if err := w.Add(e.k[:], rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, e := range ents {
		if d, ok := c.Lookup("s", e.path, st); !ok || d != digest {
			t.Fatalf("%s not found", e.path)
		}
	}
	for i := 0; i < 1000; i++ {
		if _, ok := c.Lookup("s", fmt.Sprintf("missing/%d", i), st); ok {
			t.Fatal("an unknown document was found")
		}
	}
}

// A Fence's Search finds the first key not before k like a binary search does, for
// uniform keys and for keys far from uniform (all in one corner of the key
// space, runs of equal prefixes), present and absent.
func TestFenceSearch(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, shape := range []string{"uniform", "corner", "clustered", "tiny"} {
		n := 20000
		if shape == "tiny" {
			n = 5
		}
		keys := make([]Key, n)
		for i := range keys {
			binary.BigEndian.PutUint64(keys[i][:8], rng.Uint64())
			binary.BigEndian.PutUint64(keys[i][8:], rng.Uint64())
			switch shape {
			case "corner":
				binary.BigEndian.PutUint64(keys[i][:8], rng.Uint64N(1000))
			case "clustered":
				keys[i][0], keys[i][1] = byte(i%3)*100, 7
			}
		}
		slices.SortFunc(keys, func(a, b Key) int { return bytes.Compare(a[:], b[:]) })
		at := func(i int) []byte { return keys[i][:] }
		fence := NewFence(n, at)
		probe := func(k Key) {
			want, _ := slices.BinarySearchFunc(keys, k, func(a, b Key) int { return bytes.Compare(a[:], b[:]) })
			if got := fence.Search(k, at); got != want {
				t.Fatalf("%s: Search = %d, want %d", shape, got, want)
			}
		}
		for i := 0; i < n; i += 7 {
			probe(keys[i])
			k := keys[i]
			k[15]++ // just after (absent, or the next key)
			probe(k)
		}
		var k Key
		probe(k) // before all
		for i := range k {
			k[i] = 0xff
		}
		probe(k) // after all
		for i := 0; i < 2000; i++ {
			binary.BigEndian.PutUint64(k[:8], rng.Uint64())
			probe(k)
		}
		// Touch (a prefetch hint) reads only keys in range, passes over zero
		// keys, and changes no search.
		batch := []Key{{}, keys[0], keys[n-1], k}
		for i := 0; i < 100; i++ {
			var r Key
			binary.BigEndian.PutUint64(r[:8], rng.Uint64())
			batch = append(batch, r)
		}
		fence.Touch(batch, at)
		for _, k := range batch {
			probe(k)
		}
	}
	NewFence(0, func(int) []byte { panic("no keys") }).Touch([]Key{{1}}, func(int) []byte { panic("no keys") })
}

func TestDocListRoundTripAndDamage(t *testing.T) {
	p := filepath.Join(t.TempDir(), "docs")
	w, err := CreateDocList(p)
	if err != nil {
		t.Fatal(err)
	}
	type doc struct {
		src, path string
		sum       [32]byte
		key       Key
	}
	var want []doc
	for i := 0; i < 1000; i++ {
		d := doc{src: fmt.Sprintf("s%d", i/400), path: fmt.Sprintf("dir/%04d.json", i)}
		d.sum = sha256.Sum256([]byte(d.path))
		d.key = KeyOf(d.src, d.path)
		want = append(want, d)
		if err := w.Add([]byte(d.src), []byte(d.path), &d.sum, &d.key); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := OpenDocList(p)
	if err != nil || l == nil {
		t.Fatalf("open: %v", err)
	}
	for i := 0; ; i++ {
		src, path, sum, key, ok, err := l.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			if i != len(want) {
				t.Fatalf("%d documents, want %d", i, len(want))
			}
			break
		}
		if w := want[i]; string(src) != w.src || string(path) != w.path || *sum != w.sum || *key != w.key {
			t.Fatalf("document %d: %s %s", i, src, path)
		}
	}
	l.Close()
	good, _ := os.ReadFile(p)
	for name, b := range map[string][]byte{
		"flipped": func() []byte { b := bytes.Clone(good); b[len(b)/2] ^= 4; return b }(),
		"cut":     good[:len(good)-30],
		"empty":   {},
	} {
		os.WriteFile(p, b, 0o644)
		if l, err := OpenDocList(p); err == nil {
			l.Close()
			t.Errorf("%s: opened", name)
		}
	}
	if l, err := OpenDocList(filepath.Join(t.TempDir(), "none")); l != nil || err != nil {
		t.Fatalf("missing: %v %v", l, err)
	}
}

// FuzzDocList: whatever a document list holds, reading it ends (with the
// documents, or an error) — no panic, no read outside the file.
func FuzzDocList(f *testing.F) {
	p := filepath.Join(f.TempDir(), "seed")
	w, err := CreateDocList(p)
	if err != nil {
		f.Fatal(err)
	}
	var sum [32]byte
	k := KeyOf("s", "a.json")
	w.Add([]byte("s"), []byte("a.json"), &sum, &k)
	w.Add([]byte("s"), []byte("b/c.json"), &sum, &k)
	if err := w.Close(); err != nil {
		f.Fatal(err)
	}
	seed, _ := os.ReadFile(p)
	f.Add(seed)
	f.Add(seed[:len(seed)-5])
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) >= 4 { // past the checksum, into the records
			b = append([]byte(nil), b...)
			binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], castagnoli))
		}
		q := filepath.Join(t.TempDir(), "l")
		os.WriteFile(q, b, 0o644)
		l, err := OpenDocList(q)
		if err != nil || l == nil {
			return
		}
		defer l.Close()
		for i := 0; ; i++ {
			_, _, _, _, ok, err := l.Next()
			if err != nil || !ok {
				return
			}
			if i > len(b) {
				t.Fatal("more documents than bytes")
			}
		}
	})
}

// Open reads the fence from the file in chunks; it is the fence of the
// mapped keys, for caches smaller and larger than one chunk, and every
// entry is found through it.
func TestOpenFenceFromFile(t *testing.T) {
	for _, n := range []int{0, 1, 5, 30_000} {
		p := filepath.Join(t.TempDir(), "c")
		keys := make([]Key, n)
		for i := range keys {
			keys[i] = KeyOf("s", fmt.Sprintf("doc-%06d.json", i))
		}
		slices.SortFunc(keys, func(a, b Key) int { return bytes.Compare(a[:], b[:]) })
		w, err := Create(p)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := Record(Stat{Size: 1, ModNs: 2, ChangNs: 3, Ino: 4, Dev: 5}, "sha256:"+strings.Repeat("ab", 32))
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if err := w.Add(k[:], rec); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		c, err := Open(p)
		if err != nil || c == nil || c.Len() != n {
			t.Fatalf("%d entries: open: %v", n, err)
		}
		if want := NewFence(c.Len(), c.keyAt); !slices.Equal(c.fence.start, want.start) || c.fence.shift != want.shift || c.fence.n != want.n {
			t.Fatalf("%d entries: the fence read from the file differs from the mapped keys' fence", n)
		}
		for i, k := range keys {
			if got := c.fence.Search(k, c.keyAt); got != i {
				t.Fatalf("%d entries: key %d found at %d", n, i, got)
			}
		}
		c.Close()
	}
}
