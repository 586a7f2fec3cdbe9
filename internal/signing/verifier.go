package signing

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"math/big"

	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/stellaops/stella/internal/xerr"
)

// Verifier checks signatures made by a Signer or by `cosign sign-blob`.
type Verifier interface {
	// Verify checks sig over everything read from r (streamed through
	// SHA-256). sig is base64 (cosign's --output-signature form; surrounding
	// whitespace such as a trailing newline is ignored) or raw DER.
	Verify(r io.Reader, sig []byte) error
	// VerifyDigest checks sig (same forms as Verify) over a SHA-256 digest.
	VerifyDigest(digest [32]byte, sig []byte) error
	// PublicKey is the key signatures are checked against.
	PublicKey() crypto.PublicKey
	// KeyID is KeyHint of the public key.
	KeyID() string
}

// maxSignatureText bounds the signature file accepted by DecodeSignature;
// a P-256 DER signature is at most 72 bytes (96 in base64).
const maxSignatureText = 1024

type keyVerifier struct {
	pub   *ecdsa.PublicKey
	keyID string
}

// LoadVerifier parses a PKIX "PUBLIC KEY" PEM (cosign.pub, or the public half
// of GenerateKeyPair). Only ECDSA P-256 keys are accepted. Errors are
// xerr.Verify: a bad public key is a verification input problem.
func LoadVerifier(pubPEM []byte) (Verifier, error) {
	block, _ := pem.Decode(pubPEM)
	if block == nil {
		return nil, xerr.New(xerr.Verify, "the public key is not a PEM file").
			WithHint("pass the public key file (cosign.pub)")
	}
	if block.Type != PEMTypePublicKey {
		return nil, xerr.New(xerr.Verify, "the public key has PEM type %q, want %q", block.Type, PEMTypePublicKey).
			WithHint("pass the public key file (cosign.pub), not the private key")
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pubPEM)
	if err != nil {
		return nil, xerr.Wrap(xerr.Verify, err, "malformed public key").
			WithHint("pass the public key file (cosign.pub)")
	}
	return NewVerifier(pub)
}

// NewVerifier wraps an ECDSA P-256 public key.
func NewVerifier(pub crypto.PublicKey) (Verifier, error) {
	ek, ok := pub.(*ecdsa.PublicKey)
	if !ok || ek == nil {
		return nil, xerr.New(xerr.Verify, "unsupported public key type %s", keyTypeName(pub)).
			WithHint("stella signatures use ECDSA P-256 keys (cosign's default)")
	}
	if ek.Curve != elliptic.P256() {
		return nil, xerr.New(xerr.Verify, "unsupported public key type ECDSA %s", ek.Curve.Params().Name).
			WithHint("stella signatures use ECDSA P-256 keys (cosign's default)")
	}
	id, err := KeyHint(ek)
	if err != nil {
		return nil, xerr.Wrap(xerr.Verify, err, "invalid public key")
	}
	return &keyVerifier{pub: ek, keyID: id}, nil
}

func (v *keyVerifier) PublicKey() crypto.PublicKey { return v.pub }
func (v *keyVerifier) KeyID() string               { return v.keyID }

func (v *keyVerifier) Verify(r io.Reader, sig []byte) error {
	der, err := DecodeSignature(sig)
	if err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return xerr.Wrap(xerr.Verify, err, "reading the signed data")
	}
	var d [32]byte
	h.Sum(d[:0])
	return v.verifyDER(d, der)
}

func (v *keyVerifier) VerifyDigest(d [32]byte, sig []byte) error {
	der, err := DecodeSignature(sig)
	if err != nil {
		return err
	}
	return v.verifyDER(d, der)
}

func (v *keyVerifier) verifyDER(d [32]byte, der []byte) error {
	if !ecdsa.VerifyASN1(v.pub, d[:], der) {
		return xerr.New(xerr.Verify, "signature does not match the data and public key %s", v.keyID).
			WithHint("the data was modified after signing, or it was signed with another key: check the public key")
	}
	return nil
}

// EncodeSignature is the signature file form cosign writes with
// `sign-blob --output-signature`: standard padded base64 of the DER bytes,
// with no trailing newline.
func EncodeSignature(der []byte) []byte {
	out := make([]byte, base64.StdEncoding.EncodedLen(len(der)))
	base64.StdEncoding.Encode(out, der)
	return out
}

var errSigFormat = errors.New("not base64 and not an ASN.1 DER ECDSA signature")

// DecodeSignature turns a signature file into DER bytes. It accepts what
// `cosign verify-blob --signature` accepts for ECDSA keys: standard base64
// (padded; leading and trailing whitespace ignored) or raw DER. The result is
// always a well-formed DER SEQUENCE of two positive INTEGERs.
func DecodeSignature(sig []byte) ([]byte, error) {
	if len(sig) > maxSignatureText {
		return nil, xerr.New(xerr.Verify, "signature is %d bytes, more than a signature file can be (%d)", len(sig), maxSignatureText).
			WithHint("pass the signature file (base64 or DER), not the signed data")
	}
	if isDERSignature(sig) {
		return bytes.Clone(sig), nil
	}
	text := bytes.TrimSpace(sig)
	if len(text) == 0 {
		return nil, xerr.New(xerr.Verify, "signature is empty").WithHint("pass the signature file (base64 or DER)")
	}
	der := make([]byte, base64.StdEncoding.DecodedLen(len(text)))
	n, err := base64.StdEncoding.Strict().Decode(der, text)
	if err != nil || !isDERSignature(der[:n]) {
		return nil, xerr.Wrap(xerr.Verify, errSigFormat, "malformed signature").
			WithHint("pass the signature file written by stella or `cosign sign-blob --output-signature`")
	}
	return der[:n], nil
}

// isDERSignature reports whether b is exactly one DER SEQUENCE { INTEGER r,
// INTEGER s } with r, s > 0 and nothing after it.
func isDERSignature(b []byte) bool {
	if len(b) < 8 || b[0] != 0x30 {
		return false
	}
	var rs struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(b, &rs)
	if err != nil || len(rest) != 0 || rs.R.Sign() <= 0 || rs.S.Sign() <= 0 {
		return false
	}
	// encoding/asn1 tolerates some non-minimal forms; require the canonical
	// encoding so one signature has exactly one byte form.
	again, err := asn1.Marshal(rs)
	return err == nil && bytes.Equal(again, b)
}
