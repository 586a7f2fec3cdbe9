// Package corpus generates large advisory corpora for benchmarks and load
// tests by replicating real OSV records under new ids.
package corpus

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/stellaops/stella/internal/evidence"
	"github.com/stellaops/stella/internal/record"
)

// Seeds loads the OSV JSON documents below dir (sorted by path) to replicate.
func Seeds(dir string) ([]map[string]any, error) {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".json") {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var seeds []map[string]any
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		if p, err := evidence.Parse(record.Document{Source: "seed", Path: filepath.Base(path), Raw: b, Digest: record.Digest(b)}); err != nil ||
			p.Kind != record.KindAdvisory {
			continue // only records stella accepts
		}
		var m map[string]any
		if json.Unmarshal(b, &m) != nil {
			continue
		}
		if _, ok := m["id"].(string); !ok {
			continue
		}
		if _, ok := m["affected"]; !ok {
			continue
		}
		if _, ok := m["withdrawn"]; ok {
			continue
		}
		seeds = append(seeds, m)
	}
	if len(seeds) == 0 {
		return nil, fmt.Errorf("no OSV JSON seeds below %s", dir)
	}
	return seeds, nil
}

// Generate writes n advisories to out/<bucket>/<id>.json, 1000 per folder:
// record i is seed i%len(seeds) with id "<prefix>-<seed id>-<i>". Output is
// deterministic. Changed, when > 0, marks every changed-th record as edited
// (a different summary), to make a later snapshot for delta tests.
func Generate(seeds []map[string]any, out, prefix string, n, changed int) (int64, error) {
	var total int64
	for i := 0; i < n; i++ {
		s := seeds[i%len(seeds)]
		m := make(map[string]any, len(s))
		for k, v := range s {
			m[k] = v
		}
		id := fmt.Sprintf("%s-%s-%07d", prefix, s["id"], i)
		m["id"] = id
		delete(m, "aliases") // aliases of a copy would alias the original
		if changed > 0 && i%changed == 0 {
			m["summary"] = fmt.Sprintf("%v (revised)", m["summary"])
			m["modified"] = "2026-11-01T00:00:00Z"
		}
		b, err := json.MarshalIndent(m, "", "  ")
		if err != nil {
			return total, err
		}
		dir := filepath.Join(out, fmt.Sprintf("%04d", i/1000))
		if i%1000 == 0 {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return total, err
			}
		}
		if err := os.WriteFile(filepath.Join(dir, strings.ReplaceAll(id, ":", "_")+".json"), b, 0o644); err != nil {
			return total, err
		}
		total += int64(len(b))
	}
	return total, nil
}
