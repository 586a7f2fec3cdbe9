package javadb

import (
	"io"

	"github.com/stellaops/stella/internal/adapter/dbbundle"
)

// Pack writes java-db.bundle to w: a gzip tar with metadata.json and
// trivy-java.db (read from dir) at the archive root, in name order, mtime 0,
// uid/gid 0, no owner names, mode 0644, and a gzip header without name or
// time: the bytes depend on the two files only. It is the layout of
// upstream's javadb.tar.gz, which trivy unpacks into <cache>/java-db/.
func Pack(w io.Writer, dir string, level int) error {
	return dbbundle.Pack(w, dir, []string{MetadataFile, DBFile}, level, "java-db.bundle") // sorted
}
