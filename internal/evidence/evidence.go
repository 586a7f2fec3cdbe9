// Package evidence reads evidence sources and parses their documents.
//
// A source is a directory or an archive (.zip, .tar, .tar.gz/.tgz,
// .tar.zst/.tzst) of documents. Walk streams the candidate documents of a
// source (JSON, YAML and JSON lines files) with their source name, path and
// sha256; Parse detects what a document is (OSV, OpenVEX, CSAF 2.0, CycloneDX,
// SPDX 2.x, or a policy snapshot / findings document) and turns it into the
// normalised records of package record. Raw bytes are never changed.
//
// Problems with one document are *DocError values, so that a caller can fail
// the run (the default) or skip the document and list it (--skip-invalid).
// Problems with a whole source are *xerr.Error values with code
// xerr.InvalidInput. docs/evidence.md describes formats, rules and limits.
package evidence

import (
	"github.com/stellaops/stella/internal/statcache"

	"fmt"
	"path"
	"strings"

	"github.com/stellaops/stella/internal/xerr"
)

// DefaultMaxDocumentBytes is the size limit of one document when
// Options.MaxDocumentBytes is 0.
const DefaultMaxDocumentBytes int64 = 32 << 20

// Options tune how sources are read.
type Options struct {
	// MaxDocumentBytes is the largest document Walk reads; a bigger one is
	// reported as a *DocError without being read. 0 means 32 MiB.
	MaxDocumentBytes int64
	// Readers, when above 1, reads the files of a folder source in that many
	// goroutines (open, read, hash, UTF-8 check), and fn is then called from
	// several goroutines at once: it must be safe for that. Archives are
	// always read by one goroutine. Which documents are passed does not
	// change, only their order.
	Readers int
	// Unchanged, when set, is asked about the documents of a folder source
	// before they are opened, a batch at a time (files of one folder), with
	// their status (Linux and macOS): q.Paths[i] has status q.Stats[i] when
	// q.Has[i]. For each it can tell unchanged, it sets q.Digests[i]: the
	// document is then passed with that digest, Raw nil and Unchanged set,
	// without being read. (The engine answers from the stat cache of a
	// chain's previous run, internal/statcache; asking for a batch lets it
	// look up many at once.) With Readers > 1 it is called from several
	// goroutines at once.
	Unchanged func(q *UnchangedBatch)
}

// UnchangedBatch is one question to Options.Unchanged. Its slices are
// reused by the next batch.
type UnchangedBatch struct {
	Source  string
	Paths   []string
	Stats   []statcache.Stat
	Has     []bool
	Digests []string // answers; "" = read the document
}

func (o Options) maxBytes() int64 {
	if o.MaxDocumentBytes <= 0 {
		return DefaultMaxDocumentBytes
	}
	return o.MaxDocumentBytes
}

// DocError is a problem with one document: it could not be read, is too big,
// is not valid UTF-8, or does not parse as any accepted format.
type DocError struct {
	Source string // source name
	Path   string // slash path relative to the source root
	Reason string // what is wrong, precisely
}

func (e *DocError) Error() string {
	return fmt.Sprintf("source %q: %s: %s", e.Source, e.Path, e.Reason)
}

// SkipHint is what to do about an invalid document.
const SkipHint = "fix or remove the document, or rerun with --skip-invalid to list it in skipped[]"

// AsXerr wraps e as an ERR_EXPORT_INVALID_INPUT error that names the document
// and says what to do.
func (e *DocError) AsXerr() *xerr.Error {
	return &xerr.Error{Code: xerr.InvalidInput, Message: e.Error(), Hint: SkipHint, Err: e}
}

// candidateExts are the file name endings of candidate documents (lower case).
var candidateExts = []string{".json", ".yaml", ".yml", ".jsonl", ".ndjson"}

// IsCandidate reports whether a file of this name (a base name or a slash
// path) is a candidate evidence document: it ends in .json, .yaml, .yml,
// .jsonl or .ndjson (case-insensitive) and is not hidden (its base name does
// not start with a dot). Everything else (LICENSE, *.md, *.asc, *.sha512,
// *.xml, *.spdx tag-value, ...) is not evidence and is passed over.
func IsCandidate(name string) bool {
	base := path.Base(strings.ReplaceAll(name, "\\", "/"))
	if base == "" || base[0] == '.' {
		return false
	}
	ext := strings.ToLower(path.Ext(base))
	for _, e := range candidateExts {
		if ext == e && len(base) > len(ext) {
			return true
		}
	}
	return false
}

// hidden reports whether a file or folder name is hidden (starts with a dot).
// Hidden folders (.git, .github, ...) are not walked.
func hidden(name string) bool { return name != "" && name[0] == '.' && name != "." && name != ".." }
