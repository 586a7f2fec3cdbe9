// Package bundle writes and reads stella bundles: deterministic tar archives
// (entries sorted by name, mtime 0, uid/gid 0, modes 0644/0755) of files that
// are first staged on disk, with the export.json manifest, the rerun hash and
// the content-derived export id.
package bundle

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/stellaops/stella/pkg/exportapi"
)

// Stage collects the files of one bundle in a private directory. Files are
// written through Create (streaming) and the stage remembers each file's
// digest, size, record count and content type.
type Stage struct {
	dir  string
	mu   sync.Mutex
	ents map[string]*exportapi.ContentEntry
}

// NewStage makes a stage in a new directory below tmp.
func NewStage(tmp string) (*Stage, error) {
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(tmp, "stage-")
	if err != nil {
		return nil, err
	}
	return &Stage{dir: dir, ents: map[string]*exportapi.ContentEntry{}}, nil
}

// Dir is the stage directory.
func (s *Stage) Dir() string { return s.dir }

// Remove deletes the stage directory.
func (s *Stage) Remove() error { return os.RemoveAll(s.dir) }

// CheckPath reports whether rel is a clean relative slash path inside a
// bundle (no "..", no absolute path, no empty or dot segments).
func CheckPath(rel string) error {
	if rel == "" || strings.HasPrefix(rel, "/") || strings.Contains(rel, "\\") || path.Clean(rel) != rel ||
		rel == "." || strings.HasPrefix(rel, "../") || rel == ".." || strings.ContainsRune(rel, 0) {
		return fmt.Errorf("bad bundle path %q", rel)
	}
	return nil
}

// File is a staged file being written.
type File struct {
	s       *Stage
	rel     string
	ctype   string
	f       *os.File
	h       hash.Hash
	n       int64
	records int64
	closed  bool
}

// Create starts a staged file at rel (a slash path inside the bundle root).
func (s *Stage) Create(rel, contentType string) (*File, error) {
	if err := CheckPath(rel); err != nil {
		return nil, err
	}
	s.mu.Lock()
	_, dup := s.ents[rel]
	s.mu.Unlock()
	if dup {
		return nil, fmt.Errorf("bundle path %q written twice", rel)
	}
	p := filepath.Join(s.dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	return &File{s: s, rel: rel, ctype: contentType, f: f, h: sha256.New()}, nil
}

func (f *File) Write(p []byte) (int, error) {
	n, err := f.f.Write(p)
	f.h.Write(p[:n])
	f.n += int64(n)
	return n, err
}

// AddRecords counts records written to the file.
func (f *File) AddRecords(n int64) { f.records += n }

// Close finishes the file and records its entry.
func (f *File) Close() error {
	if f.closed {
		return nil
	}
	f.closed = true
	if err := f.f.Close(); err != nil {
		return err
	}
	e := &exportapi.ContentEntry{Path: f.rel, Bytes: f.n, Records: f.records, ContentType: f.ctype,
		Digest: "sha256:" + hex.EncodeToString(f.h.Sum(nil))}
	f.s.mu.Lock()
	f.s.ents[f.rel] = e
	f.s.mu.Unlock()
	return nil
}

// Abort closes and deletes a file that will not be part of the bundle.
func (f *File) Abort() {
	if !f.closed {
		f.closed = true
		f.f.Close()
	}
	os.Remove(f.f.Name())
}

// Put stages a whole file from memory.
func (s *Stage) Put(rel, contentType string, data []byte, records int64) error {
	f, err := s.Create(rel, contentType)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Abort()
		return err
	}
	f.AddRecords(records)
	return f.Close()
}

// SetPlainDigest records the plaintext digest of an entry that was encrypted.
func (s *Stage) SetPlainDigest(rel, digest string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.ents[rel]; ok {
		e.PlainDigest = digest
	}
}

// Entry returns the entry staged at rel.
func (s *Stage) Entry(rel string) (exportapi.ContentEntry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.ents[rel]
	if !ok {
		return exportapi.ContentEntry{}, false
	}
	return *e, true
}

// Open opens a staged file for reading.
func (s *Stage) Open(rel string) (*os.File, error) {
	return os.Open(filepath.Join(s.dir, filepath.FromSlash(rel)))
}

// Entries returns every staged entry sorted by path, leaving out the given
// paths (export.json itself, signatures, provenance).
func (s *Stage) Entries(except ...string) []exportapi.ContentEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	skip := map[string]bool{}
	for _, e := range except {
		skip[e] = true
	}
	out := make([]exportapi.ContentEntry, 0, len(s.ents))
	for p, e := range s.ents {
		if !skip[p] && !strings.HasPrefix(p, "signatures/") {
			out = append(out, *e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Paths returns every staged path, sorted.
func (s *Stage) Paths() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.ents))
	for p := range s.ents {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// RerunHash is the sha256 (lowercase hex) over the sorted content digests
// joined by newlines (SPEC §5); it does not depend on the run id. An
// encrypted entry counts with its plaintext digest, so that the hash (and
// the export id) do not depend on random encryption keys.
func RerunHash(contents []exportapi.ContentEntry) string {
	ds := make([]string, len(contents))
	for i, c := range contents {
		ds[i] = c.Digest
		if c.PlainDigest != "" {
			ds[i] = c.PlainDigest
		}
	}
	sort.Strings(ds)
	sum := sha256.Sum256([]byte(strings.Join(ds, "\n")))
	return hex.EncodeToString(sum[:])
}

// ExportID derives a bundle's id from its tenant, profile name and rerun hash,
// so a replay of the same run has the same id.
func ExportID(tenant, profile, rerunHash string) string {
	return fmt.Sprintf("%s-%s-%s", tenant, profile, rerunHash[:16])
}

// CopyTo writes a staged file to w.
func (s *Stage) CopyTo(w io.Writer, rel string) (int64, error) {
	f, err := s.Open(rel)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return io.Copy(w, f)
}
