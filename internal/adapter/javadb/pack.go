package javadb

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

// Pack writes java-db.bundle to w: a gzip tar with metadata.json and
// trivy-java.db (read from dir) at the archive root, in name order, mtime 0,
// uid/gid 0, no owner names, mode 0644, and a gzip header without name or
// time: the bytes depend on the two files only. It is the layout of
// upstream's javadb.tar.gz, which trivy unpacks into <cache>/java-db/.
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
		if err := addFile(tw, filepath.Join(dir, name), name); err != nil {
			return fmt.Errorf("java-db.bundle %s: %w", name, err)
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
