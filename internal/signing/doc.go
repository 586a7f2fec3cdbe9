// Package signing makes and checks the signatures that go into and beside
// stella bundles, in formats a stock cosign accepts offline:
//
//   - keys: ECDSA P-256; the private key is PKCS#8, encrypted the way cosign
//     encrypts it (go-securesystemslib "encrypted": scrypt + nacl/secretbox,
//     PEM type "ENCRYPTED SIGSTORE PRIVATE KEY"); the public key is PKIX PEM.
//     cosign-made key files load as they are.
//   - blob signatures: ASN.1 DER ECDSA over SHA-256 of the bytes, written
//     base64 like `cosign sign-blob --output-signature` (EncodeSignature).
//     File-key signatures are deterministic (RFC 6979), so the same key and
//     bytes always give the same signature and bundles stay reproducible.
//   - DSSE envelopes around in-toto Statements with an SLSA v1 provenance
//     predicate (SignDSSE, VerifyDSSE, NewProvenance).
//   - Sigstore bundles v0.3 with a message signature (NewBundle,
//     VerifyBundle) and the minimal trusted root cosign v2 needs offline.
//
// Key problems are *xerr.Error with code xerr.Signing; failed checks are
// xerr.Verify. docs/signing.md has the formats and the cosign commands.
package signing
