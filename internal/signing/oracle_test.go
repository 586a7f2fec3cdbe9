package signing

// Tests against the real cosign (v2.6.5, tools/versions.env). Every cosign
// run has no network (see cosignRun), and each positive check has negative
// twins (modified blob, other key) so that a check that always passed would
// show.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/stellaops/stella/internal/xerr"
)

const cosignPW = "correct horse battery staple"

// Our key and our signature verify with `cosign verify-blob`, in both the
// base64 and the raw DER signature form; a modified blob or another key fails.
func TestOracleCosignVerifiesOurSignature(t *testing.T) {
	c := newCosign(t)
	ours := newKeyPair(t, c.dir, "ours", cosignPW)
	other := newKeyPair(t, c.dir, "other", cosignPW)
	blob := testBlob(t)
	c.write("blob", blob)
	c.write("blob.modified", flip(blob))

	der, err := ours.signer.Sign(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	c.write("blob.sig", EncodeSignature(der))
	c.write("blob.sig.nl", append(EncodeSignature(der), '\n'))
	c.write("blob.der", der)

	for _, sig := range []string{"blob.sig", "blob.sig.nl", "blob.der"} {
		c.mustPass(nil, "verify-blob", "--key", ours.pubPath, "--signature", sig, "--insecure-ignore-tlog=true", "blob")
		c.mustFail(nil, "verify-blob", "--key", ours.pubPath, "--signature", sig, "--insecure-ignore-tlog=true", "blob.modified")
		c.mustFail(nil, "verify-blob", "--key", other.pubPath, "--signature", sig, "--insecure-ignore-tlog=true", "blob")
	}

	// The same checks with our own verifier.
	if err := ours.verifier.Verify(bytes.NewReader(blob), EncodeSignature(der)); err != nil {
		t.Errorf("our verifier rejects our signature: %v", err)
	}
	if err := ours.verifier.Verify(bytes.NewReader(flip(blob)), der); !xerr.Is(err, xerr.Verify) {
		t.Errorf("our verifier on a modified blob: %v, want ERR_EXPORT_VERIFY", err)
	}
	if err := other.verifier.Verify(bytes.NewReader(blob), der); !xerr.Is(err, xerr.Verify) {
		t.Errorf("other key verifies our signature: %v", err)
	}
}

// `cosign sign-blob` with our key file decrypts it (same encryption) and its
// signature verifies with our Verifier; the file cosign writes is exactly
// EncodeSignature's form.
func TestOracleOurVerifierAcceptsCosignSignature(t *testing.T) {
	c := newCosign(t)
	ours := newKeyPair(t, c.dir, "ours", cosignPW)
	other := newKeyPair(t, c.dir, "other", cosignPW)
	blob := testBlob(t)
	c.write("blob", blob)

	c.mustPass([]string{"COSIGN_PASSWORD=" + cosignPW},
		"sign-blob", "--key", ours.privPath, "--tlog-upload=false", "--output-signature", "blob.sig", "blob")
	sig := c.read("blob.sig")
	der, err := DecodeSignature(sig)
	if err != nil {
		t.Fatalf("cosign's signature file does not decode: %v\n%q", err, sig)
	}
	if !bytes.Equal(EncodeSignature(der), sig) {
		t.Errorf("EncodeSignature differs from cosign's file form:\nours   %q\ncosign %q", EncodeSignature(der), sig)
	}
	if err := ours.verifier.Verify(bytes.NewReader(blob), sig); err != nil {
		t.Errorf("our verifier rejects cosign's signature: %v", err)
	}
	if err := ours.verifier.Verify(bytes.NewReader(blob), der); err != nil {
		t.Errorf("our verifier rejects cosign's signature as DER: %v", err)
	}
	if err := ours.verifier.Verify(bytes.NewReader(flip(blob)), sig); !xerr.Is(err, xerr.Verify) {
		t.Errorf("modified blob: %v, want ERR_EXPORT_VERIFY", err)
	}
	if err := other.verifier.Verify(bytes.NewReader(blob), sig); !xerr.Is(err, xerr.Verify) {
		t.Errorf("other key: %v, want ERR_EXPORT_VERIFY", err)
	}

	// A wrong COSIGN_PASSWORD makes cosign fail on our key: the password
	// really protects it.
	c.mustFail([]string{"COSIGN_PASSWORD=wrong"},
		"sign-blob", "--key", ours.privPath, "--tlog-upload=false", "--output-signature", "x.sig", "blob")
}

// A key pair made by `cosign generate-key-pair` loads in LoadSigner; what we
// sign with it verifies with cosign and with our Verifier on cosign.pub.
func TestOracleCosignKeyLoads(t *testing.T) {
	c := newCosign(t)
	c.mustPass([]string{"COSIGN_PASSWORD=" + cosignPW}, "generate-key-pair")
	other := newKeyPair(t, c.dir, "other", cosignPW)
	blob := testBlob(t)
	c.write("blob", blob)
	c.write("blob.modified", flip(blob))

	block, _ := pem.Decode(c.read("cosign.key"))
	if block == nil || block.Type != PEMTypeEncryptedSigstore {
		t.Fatalf("cosign.key is not an %q PEM", PEMTypeEncryptedSigstore)
	}
	s, err := LoadSigner(context.Background(), c.path("cosign.key"), staticPassword(cosignPW))
	if err != nil {
		t.Fatalf("LoadSigner(cosign.key): %v", err)
	}
	cpub, err := cryptoutils.UnmarshalPEMToPublicKey(c.read("cosign.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cryptoutils.EqualKeys(cpub, s.PublicKey()); err != nil {
		t.Fatalf("loaded key does not match cosign.pub: %v", err)
	}
	der, err := s.Sign(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	c.write("blob.sig", EncodeSignature(der))
	c.mustPass(nil, "verify-blob", "--key", "cosign.pub", "--signature", "blob.sig", "--insecure-ignore-tlog=true", "blob")
	c.mustFail(nil, "verify-blob", "--key", "cosign.pub", "--signature", "blob.sig", "--insecure-ignore-tlog=true", "blob.modified")
	c.mustFail(nil, "verify-blob", "--key", other.pubPath, "--signature", "blob.sig", "--insecure-ignore-tlog=true", "blob")

	v, err := LoadVerifier(c.read("cosign.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(bytes.NewReader(blob), EncodeSignature(der)); err != nil {
		t.Errorf("our verifier on cosign.pub: %v", err)
	}
	if err := v.Verify(bytes.NewReader(flip(blob)), der); err == nil {
		t.Error("our verifier accepts a modified blob")
	}
	if err := other.verifier.Verify(bytes.NewReader(blob), der); err == nil {
		t.Error("another key verifies the signature")
	}

	// Wrong password on cosign's key: ERR_EXPORT_SIGNING naming the file and
	// pointing at STELLA_SIGNING_PASSWORD.
	_, err = LoadSigner(context.Background(), c.path("cosign.key"), staticPassword("nope"))
	var xe *xerr.Error
	if !errors.As(err, &xe) || xe.Code != xerr.Signing {
		t.Fatalf("wrong password: %v, want ERR_EXPORT_SIGNING", err)
	}
	if !strings.Contains(xe.Message, c.path("cosign.key")) || !strings.Contains(xe.Hint, EnvPassword) {
		t.Errorf("wrong password error does not name the key and %s: %q / %q", EnvPassword, xe.Message, xe.Hint)
	}
}

// Our sigstore bundle v0.3 verifies with `cosign verify-blob
// --new-bundle-format` and the minimal trusted root; cosign's own v0.3 bundle
// verifies with VerifyBundle.
func TestOracleBundle(t *testing.T) {
	c := newCosign(t)
	ours := newKeyPair(t, c.dir, "ours", cosignPW)
	other := newKeyPair(t, c.dir, "other", cosignPW)
	blob := testBlob(t)
	c.write("blob", blob)
	c.write("blob.modified", flip(blob))
	c.write("trusted_root.json", MinimalTrustedRoot())

	der, err := ours.signer.Sign(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	c.write("ours.sigstore.json", NewBundle(der, sha256.Sum256(blob), ours.signer.PublicKey()))
	verify := func(pub, bundle, file string) []string {
		return []string{"verify-blob", "--key", pub, "--new-bundle-format", "--bundle", bundle,
			"--trusted-root", "trusted_root.json", "--insecure-ignore-tlog=true", file}
	}
	c.mustPass(nil, verify(ours.pubPath, "ours.sigstore.json", "blob")...)
	c.mustFail(nil, verify(ours.pubPath, "ours.sigstore.json", "blob.modified")...)
	c.mustFail(nil, verify(other.pubPath, "ours.sigstore.json", "blob")...)

	c.mustPass([]string{"COSIGN_PASSWORD=" + cosignPW}, "sign-blob", "--key", ours.privPath,
		"--tlog-upload=false", "--new-bundle-format", "--bundle", "cosign.sigstore.json", "blob")
	cb := c.read("cosign.sigstore.json")
	if err := VerifyBundle(ours.verifier, cb, bytes.NewReader(blob)); err != nil {
		t.Errorf("VerifyBundle rejects cosign's bundle: %v\n%s", err, cb)
	}
	if err := VerifyBundle(ours.verifier, cb, bytes.NewReader(flip(blob))); !xerr.Is(err, xerr.Verify) {
		t.Errorf("VerifyBundle, modified blob: %v", err)
	}
	if err := VerifyBundle(other.verifier, cb, bytes.NewReader(blob)); !xerr.Is(err, xerr.Verify) {
		t.Errorf("VerifyBundle, other key: %v", err)
	}
	// cosign's bundle passes the same schema check as ours.
	if errs := loadSchema(t, "sigstore-bundle.schema.json", camelRequired).check(t, cb); len(errs) > 0 {
		t.Errorf("cosign's bundle fails the schema: %v", errs)
	}
	// cosign's hint is computed the way KeyHint computes it.
	if !bytes.Contains(cb, []byte(`"`+ours.signer.KeyID()+`"`)) {
		t.Errorf("cosign's bundle does not carry our KeyHint %s:\n%s", ours.signer.KeyID(), cb)
	}
}

// A DSSE envelope around our provenance verifies with `cosign
// verify-blob-attestation --type slsaprovenance1`, which also checks that the
// blob is a subject; cosign's own attestation envelope verifies with
// VerifyDSSE.
func TestOracleDSSE(t *testing.T) {
	c := newCosign(t)
	ours := newKeyPair(t, c.dir, "ours", cosignPW)
	other := newKeyPair(t, c.dir, "other", cosignPW)
	blob := testBlob(t)
	c.write("export.json", blob)
	c.write("export.json.modified", flip(blob))

	st := NewProvenance(ProvenanceInput{
		Subjects:             []Subject{{Name: "export.json", Digest: SHA256Digest(hexSHA256(blob))}},
		BuilderID:            "https://github.com/stellaops/stella",
		BuilderVersion:       "v0.0.0-test",
		ExternalParameters:   map[string]any{"profile": map[string]any{"name": "p", "revision": "r1"}},
		ResolvedDependencies: []ResourceDescriptor{{Name: "osv", Digest: SHA256Digest("sha256:" + hexSHA256([]byte("osv")))}},
	})
	payload, err := st.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	env, err := SignDSSE(ours.signer, InTotoPayloadType, payload)
	if err != nil {
		t.Fatal(err)
	}
	c.write("provenance.dsse.json", env)
	tampered := bytes.Replace(env, []byte(`"payload":"`), []byte(`"payload":"eyJ9`), 1)
	c.write("tampered.dsse.json", tampered)

	verify := func(pub, sig, file string) []string {
		return []string{"verify-blob-attestation", "--key", pub, "--signature", sig, "--type", "slsaprovenance1",
			"--insecure-ignore-tlog=true", file}
	}
	c.mustPass(nil, verify(ours.pubPath, "provenance.dsse.json", "export.json")...)
	c.mustFail(nil, verify(ours.pubPath, "provenance.dsse.json", "export.json.modified")...)
	c.mustFail(nil, verify(other.pubPath, "provenance.dsse.json", "export.json")...)
	c.mustFail(nil, verify(ours.pubPath, "tampered.dsse.json", "export.json")...)

	if typ, got, err := VerifyDSSE(ours.verifier, env); err != nil || typ != InTotoPayloadType || !bytes.Equal(got, payload) {
		t.Errorf("VerifyDSSE(our envelope) = %q, %d bytes, %v", typ, len(got), err)
	}

	// cosign attest-blob with our key; VerifyDSSE reads its envelope.
	c.write("predicate.json", mustJSON(t, st.Predicate))
	c.mustPass([]string{"COSIGN_PASSWORD=" + cosignPW}, "attest-blob", "--key", ours.privPath,
		"--predicate", "predicate.json", "--type", "slsaprovenance1", "--tlog-upload=false",
		"--output-signature", "cosign.dsse.json", "export.json")
	cenv := c.read("cosign.dsse.json")
	typ, cpayload, err := VerifyDSSE(ours.verifier, cenv)
	if err != nil || typ != InTotoPayloadType {
		t.Fatalf("VerifyDSSE(cosign's envelope) = %q, %v", typ, err)
	}
	if !bytes.Contains(cpayload, []byte(hexSHA256(blob))) {
		t.Errorf("cosign's statement does not name the blob digest: %s", cpayload)
	}
	if errs := loadSchema(t, "dsse-envelope.schema.json", nil).check(t, cenv); len(errs) > 0 {
		t.Errorf("cosign's envelope fails the DSSE schema: %v", errs)
	}
	if _, _, err := VerifyDSSE(other.verifier, cenv); !xerr.Is(err, xerr.Verify) {
		t.Errorf("VerifyDSSE(cosign's envelope, other key): %v", err)
	}
}
