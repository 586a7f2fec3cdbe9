package bundle

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// ReadLimits bound what a reader accepts, so that a hostile archive cannot
// exhaust disk or memory (a decompression bomb) or escape its root.
type ReadLimits struct {
	MaxEntryBytes int64 // largest single entry (default 64 GiB)
	MaxTotalBytes int64 // largest total of entries (default 256 GiB)
	MaxRatio      int64 // largest uncompressed/compressed ratio once past 64 MiB (default 200)
	MaxEntries    int   // default 1,000,000
}

func (l ReadLimits) withDefaults() ReadLimits {
	if l.MaxEntryBytes == 0 {
		l.MaxEntryBytes = 64 << 30
	}
	if l.MaxTotalBytes == 0 {
		l.MaxTotalBytes = 256 << 30
	}
	if l.MaxRatio == 0 {
		l.MaxRatio = 200
	}
	if l.MaxEntries == 0 {
		l.MaxEntries = 1_000_000
	}
	return l
}

// ErrUnsafe marks an archive entry that a reader refuses (traversal, link,
// device, duplicate, bomb).
var ErrUnsafe = errors.New("unsafe archive")

// EntryFunc receives one regular file of a bundle: its path relative to the
// bundle root and its content. Directories are not passed.
type EntryFunc func(rel string, size int64, r io.Reader) error

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// WalkArchive streams a bundle archive (tar, optionally zstd or gzip
// compressed, by name or by magic) and calls fn for every regular file, in
// archive order, with its path relative to the single root folder. It
// returns the root folder name.
func WalkArchive(r io.Reader, lim ReadLimits, fn EntryFunc) (root string, err error) {
	lim = lim.withDefaults()
	cr := &countingReader{r: r}
	br := bufio.NewReaderSize(cr, 1<<16)
	codec := None
	if magic, _ := br.Peek(4); len(magic) == 4 {
		switch {
		case magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd:
			codec = Zstd
		case magic[0] == 0x1f && magic[1] == 0x8b:
			codec = Gzip
		}
	}
	dr, err := Decompressor(br, codec)
	if err != nil {
		return "", fmt.Errorf("archive: %w", err)
	}
	defer dr.Close()
	tr := tar.NewReader(dr)
	seen := map[string]bool{}
	var total int64
	for n := 0; ; n++ {
		h, err := tr.Next()
		if err == io.EOF {
			if n == 0 {
				return "", fmt.Errorf("archive: empty or not a tar archive")
			}
			return root, nil
		}
		if err != nil {
			return root, fmt.Errorf("archive is damaged or truncated after %d entries: %w", n, err)
		}
		if n >= lim.MaxEntries {
			return root, fmt.Errorf("%w: more than %d entries", ErrUnsafe, lim.MaxEntries)
		}
		name := strings.TrimSuffix(h.Name, "/")
		if err := CheckPath(name); err != nil {
			return root, fmt.Errorf("%w: entry %q: path escapes the bundle or is not clean", ErrUnsafe, h.Name)
		}
		first, rest, _ := strings.Cut(name, "/")
		if root == "" {
			root = first
		} else if first != root {
			return root, fmt.Errorf("%w: entry %q is outside the root folder %q", ErrUnsafe, h.Name, root)
		}
		if seen[name] {
			return root, fmt.Errorf("%w: entry %q appears twice", ErrUnsafe, h.Name)
		}
		seen[name] = true
		switch h.Typeflag {
		case tar.TypeDir:
			continue
		case tar.TypeReg:
		default:
			return root, fmt.Errorf("%w: entry %q is a %s, only files and folders are allowed", ErrUnsafe, h.Name, typeName(h.Typeflag))
		}
		if rest == "" {
			return root, fmt.Errorf("%w: file %q at the archive top level; bundles have one root folder", ErrUnsafe, h.Name)
		}
		if h.Size > lim.MaxEntryBytes || total+h.Size > lim.MaxTotalBytes {
			return root, fmt.Errorf("%w: entry %q declares %d bytes, over the limit", ErrUnsafe, h.Name, h.Size)
		}
		total += h.Size
		body := &ratioReader{r: tr, comp: cr, base: total - h.Size, lim: lim, name: h.Name}
		if err := fn(rest, h.Size, body); err != nil {
			return root, err
		}
		// Drain what fn did not read, still under the ratio check.
		if _, err := io.Copy(io.Discard, body); err != nil {
			return root, err
		}
	}
}

// ratioReader fails once the bytes produced exceed MaxRatio times the
// compressed bytes consumed (after a 64 MiB allowance).
type ratioReader struct {
	r    io.Reader
	comp *countingReader
	base int64
	read int64
	lim  ReadLimits
	name string
}

func (r *ratioReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.read += int64(n)
	out := r.base + r.read
	if out > 64<<20 && out > r.lim.MaxRatio*(r.comp.n+1) {
		return n, fmt.Errorf("%w: entry %q expands more than %dx (a decompression bomb?)", ErrUnsafe, r.name, r.lim.MaxRatio)
	}
	if err != nil && err != io.EOF {
		err = fmt.Errorf("archive is damaged or truncated in %q: %w", r.name, err)
	}
	return n, err
}

func typeName(t byte) string {
	switch t {
	case tar.TypeSymlink:
		return "symlink"
	case tar.TypeLink:
		return "hard link"
	case tar.TypeChar, tar.TypeBlock:
		return "device"
	case tar.TypeFifo:
		return "fifo"
	}
	return fmt.Sprintf("tar type %q", t)
}

// WalkDir calls fn for every regular file below dir (an extracted bundle
// root), sorted by path. Links and other non-regular files are refused.
func WalkDir(dir string, fn EntryFunc) error {
	var rels []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if !d.Type().IsRegular() {
			return fmt.Errorf("%w: %s is not a regular file", ErrUnsafe, rel)
		}
		rels = append(rels, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(rels)
	for _, rel := range rels {
		f, err := os.Open(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil {
			return err
		}
		st, _ := f.Stat()
		err = fn(rel, st.Size(), f)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// Walk calls fn for each file of a bundle given as an archive file or as a
// directory (the bundle root, or a folder holding exactly one root folder).
func Walk(p string, lim ReadLimits, fn EntryFunc) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if st.IsDir() {
		if _, err := os.Stat(filepath.Join(p, "export.json")); err != nil {
			if ents, _ := os.ReadDir(p); len(ents) == 1 && ents[0].IsDir() {
				p = filepath.Join(p, ents[0].Name())
			}
		}
		return WalkDir(p, fn)
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = WalkArchive(f, lim, fn)
	return err
}

// IsMeta reports whether a bundle path is not listed in export.json because
// it describes or signs the bundle: export.json itself, manifest.yaml (a
// rendering of export.json), provenance, signatures.
func IsMeta(rel string) bool {
	switch rel {
	case "export.json", "manifest.yaml", "provenance.json", "provenance.dsse.json":
		return true
	}
	return strings.HasPrefix(rel, "signatures/") && path.Dir(rel) == "signatures"
}
