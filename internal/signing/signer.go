package signing

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"io"
	"regexp"
	"strings"

	"github.com/stellaops/stella/internal/xerr"
)

// Signer signs blobs the way `cosign sign-blob` does.
type Signer interface {
	// Sign returns the ASN.1 DER ECDSA signature over SHA-256 of everything
	// read from r. r is streamed through the hash, never held in memory.
	Sign(r io.Reader) (sig []byte, err error)
	// PublicKey is the key that verifies the signatures.
	PublicKey() crypto.PublicKey
	// KeyID is KeyHint of the public key.
	KeyID() string
}

// digestSigner is implemented by every Signer of this package: it signs a
// SHA-256 digest computed elsewhere (DSSE and bundles reuse it).
type digestSigner interface {
	signDigest(digest [32]byte) ([]byte, error)
}

type keySigner struct {
	priv  *ecdsa.PrivateKey
	keyID string
}

// NewSigner wraps an ECDSA P-256 private key.
func NewSigner(priv *ecdsa.PrivateKey) (Signer, error) {
	if priv == nil || priv.Curve != elliptic.P256() {
		return nil, xerr.New(xerr.Signing, "unsupported signing key: only ECDSA P-256 keys are supported").
			WithHint("make a key pair with `stella export key generate` or `cosign generate-key-pair`")
	}
	id, err := KeyHint(&priv.PublicKey)
	if err != nil {
		return nil, xerr.Wrap(xerr.Signing, err, "encoding the public key")
	}
	return &keySigner{priv: priv, keyID: id}, nil
}

func (s *keySigner) Sign(r io.Reader) ([]byte, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return nil, xerr.Wrap(xerr.Signing, err, "reading the data to sign")
	}
	var d [32]byte
	h.Sum(d[:0])
	return s.signDigest(d)
}

// signDigest signs deterministically (RFC 6979: a nil random source), so the
// same key and data always give the same signature bytes.
func (s *keySigner) signDigest(d [32]byte) ([]byte, error) {
	sig, err := s.priv.Sign(nil, d[:], crypto.SHA256)
	if err != nil {
		return nil, xerr.Wrap(xerr.Signing, err, "signing")
	}
	return sig, nil
}

func (s *keySigner) PublicKey() crypto.PublicKey { return &s.priv.PublicKey }
func (s *keySigner) KeyID() string               { return s.keyID }

// KMSProviders lists the KMS providers this build can sign with. None is
// built in: see docs/signing.md ("KMS").
func KMSProviders() []string { return nil }

var schemeRE = regexp.MustCompile(`^([a-zA-Z][a-zA-Z0-9+.-]*)://`)

// LoadSigner opens the signing key named by ref: a key file path (made by
// cosign or by GenerateKeyPair) or a KMS reference (`kms://<provider>/<key>`
// or sigstore's own `<provider>://<key>` form, e.g. `hashivault://stella`).
// password is called only for an encrypted key file; nil means the empty
// password. Every failure is an *xerr.Error with code xerr.Signing that names
// ref and says what to check.
func LoadSigner(ctx context.Context, ref string, password func() ([]byte, error)) (Signer, error) {
	if err := ctx.Err(); err != nil {
		return nil, xerr.Wrap(xerr.Signing, err, "loading signing key %s", ref)
	}
	if ref == "" {
		return nil, xerr.New(xerr.Signing, "no signing key given").
			WithHint("pass a cosign key file or a kms:// reference")
	}
	if m := schemeRE.FindStringSubmatch(ref); m != nil {
		return nil, kmsNotBuiltIn(ref, strings.ToLower(m[1]))
	}
	priv, err := loadKeyFile(ref, password)
	if err != nil {
		return nil, err
	}
	return NewSigner(priv)
}

func kmsNotBuiltIn(ref, scheme string) error {
	provider := scheme
	if scheme == "kms" {
		rest := strings.TrimPrefix(ref[len(scheme)+3:], "/")
		provider, _, _ = strings.Cut(rest, "/")
		if provider == "" {
			provider = "(none)"
		}
	}
	return xerr.New(xerr.Signing, "signing key %s: KMS provider %q not built in", ref, provider).
		WithHint("this stella build signs with key files only (KMS: see docs/signing.md); " +
			"use a cosign key file made with `stella export key generate` or `cosign generate-key-pair`")
}
