package trivy

// Benchmarks for `make bench`:
//
//	go test -run '^$' -bench 'TrivyDB' -benchtime 1x ./internal/adapter/trivy/
//
// STELLA_TRIVY_BENCH_N sets the number of advisories (default 200000): the
// real fixture advisories replicated with new ids and package names.
// BenchmarkTrivyDB is the whole trivy:db build (convert and prove ranges,
// external sort, bbolt write, gzip pack; records/s-write-phase is the sort
// merge + bbolt write alone); BenchmarkTrivyDBFloor writes the same
// key/values with a plain bbolt loop (the floor). Each reports
// records/s, the DB and bundle sizes and the peak RSS of the timed part
// (VmHWM, reset before it through /proc/self/clear_refs).

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/stellaops/stella/internal/record"
)

func benchN() int {
	if s := os.Getenv("STELLA_TRIVY_BENCH_N"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			return n
		}
	}
	return 200000
}

var benchCorpusOnce sync.Once
var benchCorpus []*record.Advisory

// replicas calls fn with n advisories made from the real corpus: replica
// r of advisory a has id "<a.ID>-R<r>" and every package renamed with a
// "-r<r>" suffix, so the DB grows in packages as well as advisories.
func replicas(b *testing.B, n int, fn func(*record.Advisory) error) {
	benchCorpusOnce.Do(func() { benchCorpus = corpus(b) })
	base := benchCorpus
	for i := 0; i < n; i++ {
		src := base[i%len(base)]
		r := i / len(base)
		a := *src
		if r > 0 {
			a.ID = fmt.Sprintf("%s-R%d", src.ID, r)
			a.Affected = make([]record.Affected, len(src.Affected))
			for j, af := range src.Affected {
				af.Package = fmt.Sprintf("%s-r%d", af.Package, r)
				a.Affected[j] = af
			}
		}
		if err := fn(&a); err != nil {
			b.Fatal(err)
		}
	}
}

// resetPeakRSS resets the process's peak RSS (VmHWM) so that what was
// allocated before the timed part does not count (Linux >= 4.0; ignored
// elsewhere).
func resetPeakRSS() {
	runtime.GC()
	debug.FreeOSMemory()
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSS is the process's peak resident set (VmHWM) in MiB.
func peakRSS() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

func fileSize(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return st.Size()
}

func BenchmarkTrivyDB(b *testing.B) {
	n := benchN()
	replicas(b, 1, func(*record.Advisory) error { return nil }) // load the corpus outside the timer
	resetPeakRSS()
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		dir := b.TempDir()
		start := time.Now()
		bl, err := NewBuilder(Options{TmpDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		replicas(b, n, bl.Add)
		writeStart := time.Now()
		if err := bl.Build(context.Background(), dir); err != nil {
			b.Fatal(err)
		}
		built := time.Since(start)
		write := time.Since(writeStart) // waiting for the last conversions, the merge and the bbolt write
		f, _ := os.Create(filepath.Join(dir, "db.bundle"))
		if err := Pack(f, dir, 0); err != nil {
			b.Fatal(err)
		}
		f.Close()
		total := time.Since(start)
		bl.Close()
		st := bl.Stats()
		b.ReportMetric(float64(n)/total.Seconds(), "records/s")
		b.ReportMetric(float64(n)/built.Seconds(), "records/s-db-only")
		b.ReportMetric(float64(n)/write.Seconds(), "records/s-write-phase")
		b.ReportMetric(float64(st.DBBytes)/(1<<20), "db-MiB")
		b.ReportMetric(float64(fileSize(filepath.Join(dir, "db.bundle")))/(1<<20), "bundle-MiB")
		b.ReportMetric(float64(st.Entries+st.Advisories+int64(st.Buckets)), "kv")
		b.ReportMetric(float64(st.FreePages), "free-pages")
		b.ReportMetric(peakRSS(), "peak-RSS-MiB")
	}
}

// BenchmarkTrivyDBFloor writes the key/values of the same build with a
// plain bbolt loop: nested CreateBucketIfNotExists + Put in key order,
// default bbolt options, one Update per 10000 puts. The key/values are
// produced (and spilled to a file) before the timer starts.
func BenchmarkTrivyDBFloor(b *testing.B) {
	n := benchN()
	// Produce the key/values: build once, then dump the DB in key order.
	dir := b.TempDir()
	bl, err := NewBuilder(Options{TmpDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	replicas(b, n, bl.Add)
	if err := bl.Build(context.Background(), dir); err != nil {
		b.Fatal(err)
	}
	bl.Close()
	kvPath := filepath.Join(b.TempDir(), "kv.bin")
	if err := dumpKV(filepath.Join(dir, DBFile), kvPath); err != nil {
		b.Fatal(err)
	}
	os.Remove(filepath.Join(dir, DBFile))
	resetPeakRSS()
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		out := filepath.Join(b.TempDir(), "floor.db")
		start := time.Now()
		puts, err := floorWrite(kvPath, out)
		if err != nil {
			b.Fatal(err)
		}
		el := time.Since(start)
		b.ReportMetric(float64(n)/el.Seconds(), "records/s")
		b.ReportMetric(float64(puts), "kv")
		b.ReportMetric(float64(fileSize(out))/(1<<20), "db-MiB")
		b.ReportMetric(peakRSS(), "peak-RSS-MiB")
	}
}

// dumpKV writes every (bucket, [package,] key, value) of a DB, in key
// order, as length-prefixed records.
func dumpKV(dbPath, out string) error {
	db, err := bolt.Open(dbPath, 0o444, &bolt.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer db.Close()
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	put := func(parts ...[]byte) {
		var hdr [binary.MaxVarintLen64]byte
		w.WriteByte(byte(len(parts)))
		for _, p := range parts {
			w.Write(hdr[:binary.PutUvarint(hdr[:], uint64(len(p)))])
			w.Write(p)
		}
	}
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(top []byte, tb *bolt.Bucket) error {
			return tb.ForEach(func(k, v []byte) error {
				if v != nil {
					put(top, k, v)
					return nil
				}
				return tb.Bucket(k).ForEach(func(k2, v2 []byte) error {
					put(top, k, k2, v2)
					return nil
				})
			})
		})
	})
	if err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

func floorWrite(kvPath, out string) (int, error) {
	f, err := os.Open(kvPath)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	db, err := bolt.Open(out, 0o644, nil)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	puts := 0
	var eof bool
	for !eof {
		err := db.Update(func(tx *bolt.Tx) error {
			for i := 0; i < 10000; i++ {
				c, err := r.ReadByte()
				if err == io.EOF {
					eof = true
					return nil
				}
				if err != nil {
					return err
				}
				parts := make([][]byte, c)
				for j := range parts {
					l, err := binary.ReadUvarint(r)
					if err != nil {
						return err
					}
					parts[j] = make([]byte, l)
					if _, err := io.ReadFull(r, parts[j]); err != nil {
						return err
					}
				}
				bk, err := tx.CreateBucketIfNotExists(parts[0])
				if err != nil {
					return err
				}
				if c == 4 {
					if bk, err = bk.CreateBucketIfNotExists(parts[1]); err != nil {
						return err
					}
				}
				if err := bk.Put(parts[c-2], parts[c-1]); err != nil {
					return err
				}
				puts++
			}
			return nil
		})
		if err != nil {
			return puts, err
		}
	}
	return puts, nil
}
