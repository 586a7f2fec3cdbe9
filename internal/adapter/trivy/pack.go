package trivy

import (
	"archive/tar"
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/klauspost/compress/gzip"
)

// BundleMediaType is the media type of db.bundle: the layer type trivy
// pulls from an OCI registry, whose content is the same gzip tar.
const BundleMediaType = "application/vnd.aquasec.trivy.db.layer.v1.tar+gzip"

// Pack writes db.bundle to w: a gzip tar with metadata.json and trivy.db
// (read from dir) at the archive root, in name order, mtime 0 (the Unix
// epoch), uid/gid 0, no owner names, mode 0644, and a gzip header without
// name or time, so that the bytes depend on the two files only.
func Pack(w io.Writer, dir string, level int) error {
	if level == 0 {
		level = gzip.DefaultCompression
	}
	zw, err := gzip.NewWriterLevel(w, level)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(zw, 1<<20)
	tw := tar.NewWriter(bw)
	for _, name := range []string{MetadataFile, DBFile} { // sorted
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return err
		}
		h := &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: st.Size(),
			ModTime: time.Unix(0, 0).UTC(), Format: tar.FormatUSTAR}
		if err := tw.WriteHeader(h); err != nil {
			f.Close()
			return fmt.Errorf("db.bundle %s: %w", name, err)
		}
		_, err = io.Copy(tw, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("db.bundle %s: %w", name, err)
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
