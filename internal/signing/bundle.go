package signing

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"io"

	"github.com/stellaops/stella/internal/canon"
	"github.com/stellaops/stella/internal/xerr"
)

// Sigstore bundle media types. BundleMediaType is what NewBundle writes; the
// others are the older spellings a v0.3-aware client must also read.
const (
	BundleMediaType      = "application/vnd.dev.sigstore.bundle.v0.3+json"
	TrustedRootMediaType = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
)

var bundleMediaTypes = map[string]bool{
	BundleMediaType: true,
	"application/vnd.dev.sigstore.bundle+json;version=0.3": true,
	"application/vnd.dev.sigstore.bundle+json;version=0.2": true,
	"application/vnd.dev.sigstore.bundle+json;version=0.1": true,
}

// Bundle is the subset of a sigstore bundle that stella writes and reads: a
// message signature made with a public key (no certificate, no transparency
// log entry). JSON names follow the protobuf JSON mapping of
// sigstore/protobuf-specs (dev.sigstore.bundle.v1.Bundle).
type Bundle struct {
	DSSEEnvelope         json.RawMessage      `json:"dsseEnvelope,omitempty"`
	MediaType            string               `json:"mediaType"`
	MessageSignature     *MessageSignature    `json:"messageSignature,omitempty"`
	VerificationMaterial VerificationMaterial `json:"verificationMaterial"`
}

// VerificationMaterial holds the public key hint. Certificates and
// transparency log entries, if a bundle from elsewhere has them, are kept
// raw and not checked (stella verifies offline against a given key).
type VerificationMaterial struct {
	Certificate          json.RawMessage   `json:"certificate,omitempty"`
	PublicKey            *PublicKeyHint    `json:"publicKey,omitempty"`
	TimestampVerifyData  json.RawMessage   `json:"timestampVerificationData,omitempty"`
	TlogEntries          []json.RawMessage `json:"tlogEntries,omitempty"`
	X509CertificateChain json.RawMessage   `json:"x509CertificateChain,omitempty"`
}

// PublicKeyHint identifies the key out of band (KeyHint).
type PublicKeyHint struct {
	Hint string `json:"hint,omitempty"`
}

// MessageSignature is a signature over a blob's digest.
type MessageSignature struct {
	MessageDigest HashOutput `json:"messageDigest"`
	Signature     string     `json:"signature"`
}

// HashOutput is the digest of the signed blob.
type HashOutput struct {
	Algorithm string `json:"algorithm"`
	Digest    string `json:"digest"`
}

// NewBundle writes a sigstore bundle v0.3 (canonical JSON) for a blob whose
// SHA-256 is digest and whose signature (DER, as Signer.Sign returns it) is
// sig. publicKey.hint is KeyHint(pub); if pub cannot be encoded the hint is
// left out ("publicKey":{}), which cosign also accepts.
// `cosign verify-blob --key K --new-bundle-format --bundle B
// --trusted-root TR --insecure-ignore-tlog=true BLOB` accepts it
// (TR = MinimalTrustedRoot for cosign v2).
func NewBundle(sig []byte, digest [32]byte, pub crypto.PublicKey) []byte {
	hint, _ := KeyHint(pub)
	b := Bundle{
		MediaType: BundleMediaType,
		MessageSignature: &MessageSignature{
			MessageDigest: HashOutput{Algorithm: "SHA2_256", Digest: base64.StdEncoding.EncodeToString(digest[:])},
			Signature:     base64.StdEncoding.EncodeToString(sig),
		},
		VerificationMaterial: VerificationMaterial{PublicKey: &PublicKeyHint{Hint: hint}},
	}
	out, err := canon.Marshal(b)
	if err != nil {
		// Only strings and fixed structs: encoding cannot fail.
		panic("signing: encoding a bundle: " + err.Error())
	}
	return out
}

// MinimalTrustedRoot is a sigstore trusted root with no authorities at all.
// cosign v2 needs --trusted-root with --new-bundle-format; this one makes it
// verify against the --key alone, with no network access.
func MinimalTrustedRoot() []byte {
	return []byte(`{"mediaType":"` + TrustedRootMediaType + `"}`)
}

// VerifyBundle checks a sigstore bundle with a message signature against v
// and the blob read from r (streamed through SHA-256): the blob's digest must
// equal messageDigest (SHA2_256), the signature must be v's over it, and a
// publicKey hint, if present, must be v's KeyID. Transparency log entries and
// certificates are not checked. Errors are xerr.Verify.
func VerifyBundle(v Verifier, bundle []byte, r io.Reader) error {
	if len(bundle) > maxEnvelope {
		return xerr.New(xerr.Verify, "sigstore bundle is %d bytes, more than %d", len(bundle), maxEnvelope)
	}
	var b Bundle
	dec := json.NewDecoder(bytes.NewReader(bundle))
	if err := dec.Decode(&b); err != nil {
		return xerr.Wrap(xerr.Verify, err, "malformed sigstore bundle").
			WithHint("pass the .sigstore.json bundle written by stella or `cosign sign-blob --new-bundle-format`")
	}
	if dec.More() {
		return xerr.New(xerr.Verify, "malformed sigstore bundle: data after the JSON object")
	}
	if !bundleMediaTypes[b.MediaType] {
		return xerr.New(xerr.Verify, "unsupported sigstore bundle mediaType %q", b.MediaType).
			WithHint("stella reads sigstore bundles v0.1 to v0.3 (%s)", BundleMediaType)
	}
	if b.MessageSignature == nil {
		if len(b.DSSEEnvelope) > 0 {
			return xerr.New(xerr.Verify, "sigstore bundle holds a DSSE envelope, not a message signature").
				WithHint("check DSSE envelopes with the provenance check, not as a blob signature")
		}
		return xerr.New(xerr.Verify, "sigstore bundle has no messageSignature")
	}
	ms := b.MessageSignature
	if ms.MessageDigest.Algorithm != "SHA2_256" {
		return xerr.New(xerr.Verify, "sigstore bundle digest algorithm is %q, want SHA2_256", ms.MessageDigest.Algorithm)
	}
	want, err := base64.StdEncoding.DecodeString(ms.MessageDigest.Digest)
	if err != nil || len(want) != sha256.Size {
		return xerr.New(xerr.Verify, "malformed sigstore bundle: messageDigest.digest is not a base64 SHA-256")
	}
	if pk := b.VerificationMaterial.PublicKey; pk != nil && pk.Hint != "" && pk.Hint != v.KeyID() {
		return xerr.New(xerr.Verify, "sigstore bundle was signed with key %s, not with the given key %s", pk.Hint, v.KeyID()).
			WithHint("check that the public key is the one the bundle was signed with")
	}
	sig, err := base64.StdEncoding.DecodeString(ms.Signature)
	if err != nil || !isDERSignature(sig) {
		return xerr.New(xerr.Verify, "malformed sigstore bundle: signature is not a base64 DER ECDSA signature")
	}
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return xerr.Wrap(xerr.Verify, err, "reading the signed data")
	}
	var d [32]byte
	h.Sum(d[:0])
	if subtle.ConstantTimeCompare(d[:], want) != 1 {
		return xerr.New(xerr.Verify, "data does not match the digest in the sigstore bundle").
			WithHint("the data was modified after signing, or this is the bundle of another file")
	}
	return v.VerifyDigest(d, sig)
}
