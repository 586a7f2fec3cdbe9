package bundle

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Transform rewrites the staged file rel through fn (which reads the current
// bytes from src and writes the new ones to dst, e.g. to encrypt them) and
// updates its entry: digest and size of the new bytes, and PlainDigest set
// to the digest of the bytes it replaced (unless already set). Records and
// content type are kept.
func (s *Stage) Transform(rel string, fn func(dst io.Writer, src io.Reader) error) error {
	s.mu.Lock()
	e, ok := s.ents[rel]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("bundle path %q is not staged", rel)
	}
	p := filepath.Join(s.dir, filepath.FromSlash(rel))
	src, err := os.Open(p)
	if err != nil {
		return err
	}
	defer src.Close()
	tmp := p + ".transform"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	hw := newHashWriter(out)
	err = fn(hw, src)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("transform %s: %w", rel, err)
	}
	s.mu.Lock()
	if e.PlainDigest == "" {
		e.PlainDigest = e.Digest
	}
	e.Digest = "sha256:" + hex.EncodeToString(hw.h.Sum(nil))
	e.Bytes = hw.n
	s.mu.Unlock()
	return nil
}

// ContentDigest returns "sha256:<hex>" of r's bytes and their number.
func ContentDigest(r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), n, err
}
