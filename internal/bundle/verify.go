package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/stellaops/stella/pkg/exportapi"
)

// Check is one verification step and its outcome.
type Check struct {
	Detail string `json:"detail,omitempty"`
	Name   string `json:"check"`
	OK     bool   `json:"ok"`
}

// Report is the outcome of Verify.
type Report struct {
	Bundle   string              `json:"bundle"`
	Checks   []Check             `json:"checks"`
	Manifest *exportapi.Manifest `json:"-"`
	OK       bool                `json:"ok"`
	// Meta holds the small descriptive files read on the way (export.json,
	// manifest.yaml, provenance, signatures) for further checks.
	Meta map[string][]byte `json:"-"`
	// Digests maps every file of the bundle to its sha256 digest.
	Digests map[string]string `json:"-"`
}

// Failed returns the checks that failed.
func (r *Report) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c)
		}
	}
	return out
}

func (r *Report) add(name string, ok bool, format string, args ...any) {
	r.Checks = append(r.Checks, Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
}

// Add appends a check from another layer (signatures, Trivy DB).
func (r *Report) Add(c Check) { r.Checks = append(r.Checks, c) }

// Finish sets OK from the checks.
func (r *Report) Finish() *Report {
	r.OK = len(r.Checks) > 0 && len(r.Failed()) == 0
	return r
}

// VerifyOptions control Verify.
type VerifyOptions struct {
	Limits ReadLimits
	Now    time.Time // for the expiry check; zero = skip it
	// KeepMeta also keeps these extra bundle paths in Report.Meta (small files only).
	KeepMeta func(rel string) bool
	// Tap, when set, is asked for every file; a writer it returns gets a
	// copy of the file's bytes as they are read (in the same single pass)
	// and is closed after the file; a Close error fails the verification.
	Tap func(rel string) io.WriteCloser
}

const maxMeta = 64 << 20

// Verify reads a bundle (archive or directory) once, streaming, and checks
// archive integrity, every entry's digest and size against export.json, that
// no entry is missing or unlisted, the manifest schema, the rerun hash, the
// export id, and expiry. Signature checks are added by the signing layer on
// the returned report (Meta carries the files they need).
func Verify(p string, opt VerifyOptions) *Report {
	rep := &Report{Bundle: p, Meta: map[string][]byte{}, Digests: map[string]string{}}
	sizes := map[string]int64{}
	err := Walk(p, opt.Limits, func(rel string, size int64, r io.Reader) error {
		h := sha256.New()
		keep := IsMeta(rel) || rel == "manifest.yaml" || (opt.KeepMeta != nil && opt.KeepMeta(rel))
		var buf *bytes.Buffer
		var w io.Writer = h
		if keep {
			buf = &bytes.Buffer{}
			w = io.MultiWriter(h, buf)
			r = io.LimitReader(r, maxMeta+1)
		}
		var tap io.WriteCloser
		if opt.Tap != nil {
			if tap = opt.Tap(rel); tap != nil {
				w = io.MultiWriter(w, tap)
			}
		}
		n, err := io.Copy(w, r)
		if tap != nil {
			if cerr := tap.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			return err
		}
		if keep {
			if n > maxMeta {
				return fmt.Errorf("%s is larger than %d bytes", rel, maxMeta)
			}
			rep.Meta[rel] = buf.Bytes()
		}
		rep.Digests[rel] = "sha256:" + hex.EncodeToString(h.Sum(nil))
		sizes[rel] = n
		return nil
	})
	if err != nil {
		name := "archive"
		if errors.Is(err, ErrUnsafe) {
			name = "archive-safety"
		}
		rep.add(name, false, "%v", err)
		return rep.Finish()
	}
	rep.add("archive", true, "%d files read", len(rep.Digests))

	raw, ok := rep.Meta["export.json"]
	if !ok {
		rep.add("manifest-schema", false, "export.json is missing")
		return rep.Finish()
	}
	m, err := ParseManifest(raw)
	if err != nil {
		rep.add("manifest-schema", false, "export.json: %v", err)
		return rep.Finish()
	}
	rep.Manifest = m
	rep.add("manifest-schema", true, "%s, %d entries", m.Schema, len(m.Contents))

	// Every listed entry present with the right digest and size.
	listed := map[string]bool{}
	var bad []string
	for _, c := range m.Contents {
		listed[c.Path] = true
		d, ok := rep.Digests[c.Path]
		switch {
		case !ok:
			bad = append(bad, c.Path+": missing from the bundle")
		case d != c.Digest:
			bad = append(bad, fmt.Sprintf("%s: digest %s, export.json says %s", c.Path, d, c.Digest))
		case sizes[c.Path] != c.Bytes:
			bad = append(bad, fmt.Sprintf("%s: %d bytes, export.json says %d", c.Path, sizes[c.Path], c.Bytes))
		}
	}
	if len(bad) > 0 {
		rep.add("digests", false, "%s", strings.Join(bad, "; "))
	} else {
		rep.add("digests", true, "%d entries match export.json", len(m.Contents))
	}
	var extra []string
	for rel := range rep.Digests {
		if !listed[rel] && !IsMeta(rel) {
			extra = append(extra, rel)
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		rep.add("unlisted-entries", false, "not in export.json: %s", strings.Join(extra, ", "))
	} else {
		rep.add("unlisted-entries", true, "none")
	}
	if rh := RerunHash(m.Contents); rh != m.RerunHash {
		rep.add("rerun-hash", false, "computed %s, export.json says %s", rh, m.RerunHash)
	} else {
		rep.add("rerun-hash", true, "%s", rh)
	}
	if want := ExportID(m.Tenant, m.Profile.Name, m.RerunHash); m.ExportID != want {
		rep.add("export-id", false, "export.json says %q, its content gives %q", m.ExportID, want)
	} else {
		rep.add("export-id", true, "%s", m.ExportID)
	}
	if y, ok := rep.Meta["manifest.yaml"]; ok {
		if want, err := RenderSummary(raw, m); err != nil || !bytes.Equal(want, y) {
			rep.add("manifest-summary", false, "manifest.yaml does not match export.json (edited or from another bundle)")
		} else {
			rep.add("manifest-summary", true, "matches export.json")
		}
	} else {
		rep.add("manifest-summary", false, "manifest.yaml is missing")
	}
	if m.Expires != "" && !opt.Now.IsZero() {
		exp, err := time.Parse(time.RFC3339, m.Expires)
		switch {
		case err != nil:
			rep.add("expiry", false, "expires %q is not RFC 3339", m.Expires)
		case !opt.Now.Before(exp):
			rep.add("expiry", false, "expired at %s", m.Expires)
		default:
			rep.add("expiry", true, "valid until %s", m.Expires)
		}
	}
	return rep.Finish()
}

// ParseManifest decodes and validates export.json.
func ParseManifest(raw []byte) (*exportapi.Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var m exportapi.Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("not a valid manifest: %w", err)
	}
	var probs []string
	if m.Schema != exportapi.ManifestSchema {
		probs = append(probs, fmt.Sprintf("schema %q, want %q", m.Schema, exportapi.ManifestSchema))
	}
	if m.ExportID == "" {
		probs = append(probs, "exportId is empty")
	}
	if m.Tenant == "" || m.Profile.Kind == "" || m.Profile.Variant == "" || m.Profile.Name == "" || m.Profile.Revision == "" {
		probs = append(probs, "tenant or profile{kind, variant, name, revision} is empty")
	}
	if _, err := time.Parse(time.RFC3339, m.GeneratedAt); err != nil {
		probs = append(probs, fmt.Sprintf("generatedAt %q is not RFC 3339", m.GeneratedAt))
	}
	if len(m.RerunHash) != 64 {
		probs = append(probs, "rerunHash is not a sha256")
	}
	prev := ""
	for i, c := range m.Contents {
		if err := CheckPath(c.Path); err != nil || IsMeta(c.Path) {
			probs = append(probs, fmt.Sprintf("contents[%d].path %q is not allowed", i, c.Path))
		}
		if i > 0 && c.Path <= prev {
			probs = append(probs, fmt.Sprintf("contents[] is not sorted by path at %q", c.Path))
		}
		prev = c.Path
		if !strings.HasPrefix(c.Digest, "sha256:") || len(c.Digest) != 71 {
			probs = append(probs, fmt.Sprintf("contents[%d].digest %q is not sha256:<hex>", i, c.Digest))
		}
	}
	if len(probs) > 0 {
		return &m, errors.New(strings.Join(probs, "; "))
	}
	return &m, nil
}
