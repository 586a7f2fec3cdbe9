// Package dbbundle is the part of trivy:db and trivy:java-db that does not
// depend on the database format: a "db bundle" is a gzip tar of a few
// regular files at the archive root (metadata.json and the DB file), packed
// deterministically, extracted with safety checks into temporary files, and
// installed into a trivy cache directory by atomic renames.
//
// The callers keep what is theirs: the file names, the size limits, the
// schema and DB checks, and the wording of the messages about a missing
// bundle (Spec).
package dbbundle

import (
	"archive/tar"
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/stellaops/stella/internal/bundle"
	"github.com/stellaops/stella/internal/xerr"
)

// MetadataFile is the metadata file of every trivy DB.
const MetadataFile = "metadata.json"

// Pack writes a gzip tar to w with the files names (read from dir) at the
// archive root, in the order given, mtime 0 (the Unix epoch), uid/gid 0, no
// owner names, mode 0644, and a gzip header without name or time, so that
// the bytes depend on the files only. level 0 is gzip.DefaultCompression.
// An error about one file reads "<label> <name>: ..." (label is the bundle's
// name, e.g. "db.bundle").
func Pack(w io.Writer, dir string, names []string, level int, label string) error {
	if level == 0 {
		level = gzip.DefaultCompression
	}
	zw, err := gzip.NewWriterLevel(w, level)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(zw, 1<<20)
	tw := tar.NewWriter(bw)
	for _, name := range names {
		if err := addFile(tw, filepath.Join(dir, name), name); err != nil {
			return fmt.Errorf("%s %s: %w", label, name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return zw.Close()
}

func addFile(tw *tar.Writer, path, name string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	h := &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: st.Size(),
		ModTime: time.Unix(0, 0).UTC(), Format: tar.FormatUSTAR}
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}

// Limit bounds the size of one file of a bundle.
type Limit struct {
	Max  int64  // bytes
	Note string // ends the refusal "<bundle>: <name> is <n> bytes; <Note>"
}

// Spec describes one kind of db bundle.
type Spec struct {
	// Label names the kind in messages: "db.bundle", "java-db.bundle".
	Label string
	// Files are the entries the bundle holds, exactly, in the order the
	// messages list them and a missing one is reported.
	Files []string
	// Limits bounds the size of some of the files.
	Limits map[string]Limit
	// NotFound is the error for a bundle path that does not exist.
	NotFound func(bundlePath string) error
}

// list is "a and b", "a, b and c".
func list(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// Extract reads the files of the bundle at bundlePath into temporary files
// in dir ("."+name+".import-*") and returns their paths by file name. The
// bundle must be a gzip tar holding exactly s.Files, each once, as regular
// files within s.Limits (a "." directory entry is allowed); every entry
// must be read in full. On error no temporary file is left. The caller
// removes or renames the files (Remove, Install).
func (s Spec) Extract(bundlePath, dir string) (tmps map[string]string, err error) {
	tmps = map[string]string{}
	defer func() {
		if err != nil {
			Remove(tmps)
			tmps = nil
		}
	}()
	f, err := os.Open(bundlePath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return tmps, s.NotFound(bundlePath)
		}
		return tmps, xerr.Wrap(xerr.InvalidInput, err, "open %s", bundlePath)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return tmps, xerr.Wrap(xerr.Verify, err, "%s is not a gzip tar (%s)", bundlePath, s.Label)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return tmps, xerr.Wrap(xerr.Verify, err, "%s: tar", bundlePath)
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if h.Typeflag == tar.TypeDir && name == "." {
			continue
		}
		if !s.holds(name) {
			return tmps, xerr.New(xerr.Verify, "%s: unexpected entry %q (a %s holds %s only)", bundlePath, h.Name, s.Label, list(s.Files))
		}
		if h.Typeflag != tar.TypeReg {
			return tmps, xerr.New(xerr.Verify, "%s: %s is not a regular file", bundlePath, h.Name)
		}
		if _, dup := tmps[name]; dup {
			return tmps, xerr.New(xerr.Verify, "%s: %s appears twice", bundlePath, name)
		}
		if l, ok := s.Limits[name]; ok && h.Size > l.Max {
			return tmps, xerr.New(xerr.Verify, "%s: %s is %d bytes; %s", bundlePath, name, h.Size, l.Note)
		}
		tf, err := os.CreateTemp(dir, "."+name+".import-*")
		if err != nil {
			return tmps, xerr.Wrap(xerr.InvalidInput, err, "write into %s", dir)
		}
		tmps[name] = tf.Name()
		n, err := io.Copy(tf, tr)
		if err == nil && n != h.Size {
			err = io.ErrUnexpectedEOF
		}
		if err == nil {
			err = tf.Sync()
		}
		if cerr := tf.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return tmps, xerr.Wrap(xerr.Verify, err, "%s: extract %s", bundlePath, name)
		}
	}
	for _, n := range s.Files {
		if _, ok := tmps[n]; !ok {
			return tmps, xerr.New(xerr.Verify, "%s has no %s (a %s holds %s)", bundlePath, n, s.Label, list(s.Files))
		}
	}
	return tmps, nil
}

func (s Spec) holds(name string) bool {
	for _, n := range s.Files {
		if n == name {
			return true
		}
	}
	return false
}

// Remove removes the temporary files of Extract (errors are ignored).
func Remove(tmps map[string]string) {
	for _, p := range tmps {
		os.Remove(p)
	}
}

// Prepare readies an import of the bundle at bundlePath into a trivy
// cache: cacheDir must be given and the bundle must exist (NotFound if
// not); it creates and returns <cacheDir>/<subdir>.
func (s Spec) Prepare(bundlePath, cacheDir, subdir string) (string, error) {
	if cacheDir == "" {
		return "", xerr.New(xerr.InvalidInput, "no cache directory given").WithHint("pass --cache-dir, the directory trivy is run with (--cache-dir)")
	}
	if _, err := os.Stat(bundlePath); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", s.NotFound(bundlePath)
		}
		return "", xerr.Wrap(xerr.InvalidInput, err, "open %s", bundlePath)
	}
	dbDir := filepath.Join(cacheDir, subdir)
	if err := os.MkdirAll(dbDir, 0o755); err != nil {
		return "", xerr.Wrap(xerr.InvalidInput, err, "create %s", dbDir)
	}
	return dbDir, nil
}

// Install renames the temporary files tmps (from Extract into dir) to
// dir/<name>, mode 0644, one by one in the given order, and syncs dir. An
// installed file is deleted from tmps, so that Remove(tmps) afterwards
// removes only what was not installed.
func Install(dir string, tmps map[string]string, order []string) error {
	for _, n := range order {
		if err := os.Chmod(tmps[n], 0o644); err != nil {
			return xerr.Wrap(xerr.Internal, err, "install %s", n)
		}
		if err := os.Rename(tmps[n], filepath.Join(dir, n)); err != nil {
			return xerr.Wrap(xerr.Internal, err, "install %s", filepath.Join(dir, n))
		}
		delete(tmps, n)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Metadata is what every trivy metadata.json holds.
type Metadata struct {
	Version      int
	NextUpdate   time.Time
	UpdatedAt    time.Time
	DownloadedAt time.Time
}

// ParseMetadata parses metadata.json, which must have a Version; what names
// the DB in the refusal ("trivy DB": "metadata.json is not trivy DB
// metadata"). The schema version is the caller's to check.
func ParseMetadata(b []byte, what string) (Metadata, error) {
	var m struct {
		Version      *int
		NextUpdate   time.Time
		UpdatedAt    time.Time
		DownloadedAt time.Time
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return Metadata{}, xerr.Wrap(xerr.Verify, err, "%s is not %s metadata", MetadataFile, what)
	}
	if m.Version == nil {
		return Metadata{}, xerr.New(xerr.Verify, "%s has no Version", MetadataFile)
	}
	return Metadata{Version: *m.Version, NextUpdate: m.NextUpdate, UpdatedAt: m.UpdatedAt, DownloadedAt: m.DownloadedAt}, nil
}

// UpdatedAt is the UpdatedAt (and DownloadedAt) a build stamps into
// metadata.json: the configured time, else the newest input time, else the
// Unix epoch; in UTC, to the second.
func UpdatedAt(configured, newest time.Time) time.Time {
	u := configured
	if u.IsZero() {
		u = newest
	}
	if u.IsZero() {
		u = time.Unix(0, 0)
	}
	return u.UTC().Truncate(time.Second)
}

// Stage packs a bundle into stage at bundlePath with the given media type:
// pack writes the bundle's bytes, records is the count the file is staged
// with. Every error is internal and reads "<prefix>: stage <path>: ..." or
// "<prefix>: pack <path>: ..." (prefix is the layout, e.g. "trivy").
func Stage(stage *bundle.Stage, bundlePath, mediaType string, records int64, prefix string, pack func(io.Writer) error) error {
	f, err := stage.Create(bundlePath, mediaType)
	if err != nil {
		return xerr.Wrap(xerr.Internal, err, "%s: stage %s", prefix, bundlePath)
	}
	if err := pack(f); err != nil {
		f.Abort()
		return xerr.Wrap(xerr.Internal, err, "%s: pack %s", prefix, bundlePath)
	}
	f.AddRecords(records)
	if err := f.Close(); err != nil {
		return xerr.Wrap(xerr.Internal, err, "%s: stage %s", prefix, bundlePath)
	}
	return nil
}
