package trivy

import (
	"io"

	"github.com/stellaops/stella/internal/adapter/dbbundle"
)

// BundleMediaType is the media type of db.bundle: the layer type trivy
// pulls from an OCI registry, whose content is the same gzip tar.
const BundleMediaType = "application/vnd.aquasec.trivy.db.layer.v1.tar+gzip"

// Pack writes db.bundle to w: a gzip tar with metadata.json and trivy.db
// (read from dir) at the archive root, in name order, mtime 0 (the Unix
// epoch), uid/gid 0, no owner names, mode 0644, and a gzip header without
// name or time, so that the bytes depend on the two files only.
func Pack(w io.Writer, dir string, level int) error {
	return dbbundle.Pack(w, dir, []string{MetadataFile, DBFile}, level, "db.bundle") // sorted
}
