// Command gencorpus writes a large OSV corpus for benchmarks by replicating
// real records (from testdata/evidence) under new ids.
//
//	go run ./tools/gencorpus -n 200000 -out .bench/corpus
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/stellaops/stella/internal/corpus"
)

func main() {
	n := flag.Int("n", 200000, "number of advisories")
	out := flag.String("out", ".bench/corpus", "output directory")
	seeds := flag.String("seeds", "testdata/evidence/osv", "folder of real OSV JSON records to replicate")
	prefix := flag.String("prefix", "BENCH", "id prefix")
	changed := flag.Int("changed", 0, "edit every N-th record (0 = none), for a later snapshot")
	onlyChanged := flag.Bool("only-changed", false, "with -changed: write only the edited records, each over the file of that name in -out (new file renamed over the old), to update a corpus folder in place")
	ghsa := flag.Bool("ghsa", false, "only records the upstream trivy-db builder reads as GitHub advisories (for the trivy:db comparison)")
	flag.Parse()
	s, err := corpus.Seeds(*seeds)
	if err == nil && *ghsa {
		if s = corpus.GHSAShaped(s); len(s) == 0 {
			err = fmt.Errorf("no GHSA-shaped seeds below %s", *seeds)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gencorpus:", err)
		os.Exit(2)
	}
	var total int64
	if *onlyChanged {
		if *changed <= 0 {
			fmt.Fprintln(os.Stderr, "gencorpus: -only-changed needs -changed N")
			os.Exit(2)
		}
		i := 0
		total, err = corpus.GenerateTo(s, *prefix, *n, *changed, func(name string, b []byte) error {
			defer func() { i++ }()
			if i%*changed != 0 {
				return nil
			}
			p := filepath.Join(*out, filepath.FromSlash(name))
			if err := os.WriteFile(p+".tmp", b, 0o644); err != nil {
				return err
			}
			return os.Rename(p+".tmp", p)
		})
	} else {
		total, err = corpus.Generate(s, *out, *prefix, *n, *changed)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gencorpus:", err)
		os.Exit(1)
	}
	if *onlyChanged {
		fmt.Printf("rewrote %d of %d advisories in %s\n", (*n+*changed-1) / *changed, *n, *out)
		return
	}
	fmt.Printf("wrote %d advisories (%d bytes) from %d seeds to %s\n", *n, total, len(s), *out)
}
