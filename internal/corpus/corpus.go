// Package corpus generates large advisory corpora for benchmarks and load
// tests by replicating real OSV records under new ids.
package corpus

import (
	"bytes"
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

// ghsaEcosystems are the OSV ecosystems that the upstream trivy-db
// builder's GHSA source reads (trivy-db pkg/vulnsrc/ghsa).
var ghsaEcosystems = map[string]bool{"Go": true, "npm": true, "PyPI": true, "Maven": true, "crates.io": true,
	"RubyGems": true, "NuGet": true, "Packagist": true, "Hex": true, "Pub": true, "SwiftURL": true}

// GHSAShaped keeps the seeds that the upstream trivy-db builder can read as
// GitHub advisories (every affected package in an ecosystem its GHSA source
// maps) and gives each a "database_specific" object (its GHSA transformer
// requires one), so that one corpus can be built by both stella and
// `trivy-db build` for the benchmark comparison.
func GHSAShaped(seeds []map[string]any) []map[string]any {
	var out []map[string]any
	for _, s := range seeds {
		aff, _ := s["affected"].([]any)
		ok := len(aff) > 0
		for _, a := range aff {
			pkg, _ := a.(map[string]any)["package"].(map[string]any)
			eco, _ := pkg["ecosystem"].(string)
			ok = ok && ghsaEcosystems[eco]
		}
		if !ok {
			continue
		}
		if _, has := s["database_specific"].(map[string]any); !has {
			m := make(map[string]any, len(s)+1)
			for k, v := range s {
				m[k] = v
			}
			m["database_specific"] = map[string]any{}
			s = m
		}
		out = append(out, s)
	}
	return out
}

// Generate writes n advisories to out/<bucket>/<id>.json, 1000 per folder:
// record i is seed i%len(seeds) with id "<prefix>-<seed id>-<i>". Output is
// deterministic. Changed, when > 0, marks every changed-th record as edited
// (a different summary), to make a later snapshot for delta tests.
func Generate(seeds []map[string]any, out, prefix string, n, changed int) (int64, error) {
	lastDir := ""
	return GenerateTo(seeds, prefix, n, changed, func(name string, b []byte) error {
		p := filepath.Join(out, filepath.FromSlash(name))
		if d := filepath.Dir(p); d != lastDir {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
			lastDir = d
		}
		return os.WriteFile(p, b, 0o644)
	})
}

// GenerateTo is Generate handing each document (its slash-separated path
// and bytes) to put instead of writing files, e.g. into an archive.
func GenerateTo(seeds []map[string]any, prefix string, n, changed int, put func(name string, b []byte) error) (int64, error) {
	var total int64
	// Each seed is marshalled once with a placeholder id; copies substitute
	// their id (as json.Marshal writes it), which gives the same bytes as
	// marshalling every copy, many times faster.
	const placeholder = "\x00stella-corpus-id\x00"
	templates := make([][2][]byte, len(seeds))
	render := func(s map[string]any, id string, revised bool) ([]byte, error) {
		m := make(map[string]any, len(s))
		for k, v := range s {
			m[k] = v
		}
		m["id"] = id
		delete(m, "aliases") // aliases of a copy would alias the original
		if revised {
			m["summary"] = fmt.Sprintf("%v (revised)", m["summary"])
			m["modified"] = "2026-11-01T00:00:00Z"
		}
		return json.MarshalIndent(m, "", "  ")
	}
	for i := 0; i < n; i++ {
		si := i % len(seeds)
		s := seeds[si]
		id := fmt.Sprintf("%s-%s-%07d", prefix, s["id"], i)
		var b []byte
		var err error
		if changed > 0 && i%changed == 0 {
			b, err = render(s, id, true)
		} else {
			t := &templates[si]
			if t[0] == nil {
				tb, err := render(s, placeholder, false)
				if err != nil {
					return total, err
				}
				ph, _ := json.Marshal(placeholder)
				before, after, ok := bytes.Cut(tb, ph)
				if !ok {
					return total, fmt.Errorf("corpus: placeholder not found in seed %v", s["id"])
				}
				t[0], t[1] = before, after
			}
			q, _ := json.Marshal(id)
			b = make([]byte, 0, len(t[0])+len(q)+len(t[1]))
			b = append(append(append(b, t[0]...), q...), t[1]...)
		}
		if err != nil {
			return total, err
		}
		name := fmt.Sprintf("%04d/%s.json", i/1000, strings.ReplaceAll(id, ":", "_"))
		if err := put(name, b); err != nil {
			return total, err
		}
		total += int64(len(b))
	}
	return total, nil
}
