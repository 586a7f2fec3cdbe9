package signing

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stellaops/stella/internal/canon"
	"github.com/stellaops/stella/internal/xerr"
)

func hexSHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := canon.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGenerateKeyPairFormat(t *testing.T) {
	priv, pub, err := GenerateKeyPair([]byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	block, rest := pem.Decode(priv)
	if block == nil || block.Type != PEMTypeEncryptedSigstore || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("private key PEM: %q", priv)
	}
	// The PEM body is go-securesystemslib's JSON with cosign's parameters.
	var enc struct {
		KDF struct {
			Name   string
			Params struct{ N, R, P int }
			Salt   []byte
		}
		Cipher struct {
			Name  string
			Nonce []byte
		}
		Ciphertext []byte
	}
	if err := json.Unmarshal(block.Bytes, &enc); err != nil {
		t.Fatal(err)
	}
	if enc.KDF.Name != "scrypt" || enc.KDF.Params.N != 65536 || enc.KDF.Params.R != 8 || enc.KDF.Params.P != 1 ||
		len(enc.KDF.Salt) != 32 || enc.Cipher.Name != "nacl/secretbox" || len(enc.Cipher.Nonce) != 24 {
		t.Errorf("encryption parameters differ from cosign's: %+v", enc)
	}
	pb, _ := pem.Decode(pub)
	if pb == nil || pb.Type != "PUBLIC KEY" {
		t.Fatalf("public key PEM: %q", pub)
	}
	k, err := x509.ParsePKIXPublicKey(pb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if ek, ok := k.(*ecdsa.PublicKey); !ok || ek.Curve != elliptic.P256() {
		t.Fatalf("public key is %T, want ECDSA P-256", k)
	}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	dir := t.TempDir()
	kp := newKeyPair(t, dir, "k", "")
	other := newKeyPair(t, dir, "o", "x")
	blob := testBlob(t)
	sig, err := kp.signer.Sign(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	// Deterministic: same key and data, same bytes (reproducible bundles).
	sig2, _ := kp.signer.Sign(bytes.NewReader(blob))
	if !bytes.Equal(sig, sig2) {
		t.Error("two signatures of the same data differ; want RFC 6979 deterministic signatures")
	}
	if !isDERSignature(sig) {
		t.Fatalf("signature is not DER: %x", sig)
	}
	// Streaming: the reader is consumed through a small-chunk reader.
	sig3, err := kp.signer.Sign(io.LimitReader(&oneByteReader{r: bytes.NewReader(blob)}, int64(len(blob))))
	if err != nil || !bytes.Equal(sig, sig3) {
		t.Errorf("signing a one-byte-at-a-time reader gives another signature (%v)", err)
	}
	for name, form := range map[string][]byte{
		"der": sig, "b64": EncodeSignature(sig), "b64+nl": append(EncodeSignature(sig), '\n'),
		"b64+crlf": append(EncodeSignature(sig), '\r', '\n'), "spaces": append([]byte("  "), EncodeSignature(sig)...),
	} {
		if err := kp.verifier.Verify(bytes.NewReader(blob), form); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := kp.verifier.Verify(bytes.NewReader(flip(blob)), sig); !xerr.Is(err, xerr.Verify) {
		t.Errorf("modified blob: %v", err)
	}
	if err := other.verifier.Verify(bytes.NewReader(blob), sig); !xerr.Is(err, xerr.Verify) {
		t.Errorf("other key: %v", err)
	}
	if kp.signer.KeyID() != kp.verifier.KeyID() || kp.signer.KeyID() == other.verifier.KeyID() {
		t.Error("KeyID does not identify the key")
	}
	d := sha256.Sum256(blob)
	if err := kp.verifier.VerifyDigest(d, sig); err != nil {
		t.Errorf("VerifyDigest: %v", err)
	}
}

type oneByteReader struct{ r io.Reader }

func (o *oneByteReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}

func TestDecodeSignatureRejects(t *testing.T) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	d := sha256.Sum256([]byte("x"))
	der, _ := ecdsa.SignASN1(rand.Reader, priv, d[:])
	for len(der)%3 == 0 { // the unpadded case needs a length with padding
		der, _ = ecdsa.SignASN1(rand.Reader, priv, d[:])
	}
	bad := map[string][]byte{
		"empty":          nil,
		"whitespace":     []byte(" \n"),
		"not base64":     []byte("not a signature!"),
		"base64 of text": []byte(base64.StdEncoding.EncodeToString([]byte("hello world, not DER"))),
		"trailing junk":  append(bytes.Clone(der), 0),
		"unpadded b64":   []byte(base64.RawStdEncoding.EncodeToString(der)),
		"too long":       bytes.Repeat([]byte("A"), maxSignatureText+4),
		"p1363":          make([]byte, 64),
	}
	for name, b := range bad {
		if _, err := DecodeSignature(b); !xerr.Is(err, xerr.Verify) {
			t.Errorf("%s: %v, want ERR_EXPORT_VERIFY", name, err)
		}
	}
	if got, err := DecodeSignature(EncodeSignature(der)); err != nil || !bytes.Equal(got, der) {
		t.Errorf("round trip: %v", err)
	}
}

func TestLoadSignerErrors(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	priv, pub, err := GenerateKeyPair([]byte("right"))
	if err != nil {
		t.Fatal(err)
	}
	keyPath := write("k.key", priv)
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	_ = edPub
	edDER, _ := x509.MarshalPKCS8PrivateKey(edPriv)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384DER, _ := x509.MarshalPKCS8PrivateKey(p384)

	cases := []struct {
		name, ref   string
		pw          func() ([]byte, error)
		msg, hint   string // substrings
		wantPathMsg bool
	}{
		{"missing file", filepath.Join(dir, "nope.key"), nil, "does not exist", "cosign generate-key-pair", true},
		{"wrong password", keyPath, staticPassword("wrong"), "wrong password", EnvPassword, true},
		{"password unreadable", keyPath, func() ([]byte, error) { return nil, errors.New("no tty") }, "password cannot be read", EnvPassword, true},
		{"not pem", write("x.key", []byte("hello")), nil, "not a PEM file", "private key file", true},
		{"public key", write("p.key", pub), nil, "is a public key", "private key", true},
		{"ed25519", write("ed.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: edDER})), nil, "unsupported key type", "P-256", true},
		{"p384", write("p384.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p384DER})), nil, "unsupported key type ECDSA P-384", "P-256", true},
		{"garbage encrypted", write("g.key", pem.EncodeToMemory(&pem.Block{Type: PEMTypeEncryptedSigstore, Bytes: []byte("{}")})), nil, "malformed encrypted key", "regenerate", true},
		{"kms hashivault", "hashivault://stella", nil, `KMS provider "hashivault" not built in`, "docs/signing.md", true},
		{"kms generic", "kms://awskms/alias/stella", nil, `KMS provider "awskms" not built in`, "key files only", true},
		{"empty ref", "", nil, "no signing key", "kms://", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := LoadSigner(ctx, c.ref, c.pw)
			var xe *xerr.Error
			if !errors.As(err, &xe) || xe.Code != xerr.Signing {
				t.Fatalf("err = %v, want ERR_EXPORT_SIGNING", err)
			}
			if !strings.Contains(xe.Message, c.msg) || !strings.Contains(xe.Hint, c.hint) {
				t.Errorf("message %q / hint %q, want %q / %q", xe.Message, xe.Hint, c.msg, c.hint)
			}
			if c.wantPathMsg && !strings.Contains(xe.Message, c.ref) {
				t.Errorf("message %q does not name %q", xe.Message, c.ref)
			}
		})
	}

	// The old cosign PEM type and plain PKCS#8 load too.
	block, _ := pem.Decode(priv)
	old := write("old.key", pem.EncodeToMemory(&pem.Block{Type: PEMTypeEncryptedCosign, Bytes: block.Bytes}))
	if _, err := LoadSigner(ctx, old, staticPassword("right")); err != nil {
		t.Errorf("ENCRYPTED COSIGN PRIVATE KEY: %v", err)
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	plainDER, _ := x509.MarshalPKCS8PrivateKey(p256)
	plain := write("plain.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: plainDER}))
	if _, err := LoadSigner(ctx, plain, nil); err != nil {
		t.Errorf("plain PKCS#8: %v", err)
	}

	// PasswordFromEnv: stella's variable wins over cosign's.
	t.Setenv(EnvCosignPassword, "wrong")
	t.Setenv(EnvPassword, "right")
	if _, err := LoadSigner(ctx, keyPath, PasswordFromEnv()); err != nil {
		t.Errorf("PasswordFromEnv: %v", err)
	}
}

func TestLoadVerifierErrors(t *testing.T) {
	priv, _, _ := GenerateKeyPair(nil)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der384, _ := x509.MarshalPKIXPublicKey(&p384.PublicKey)
	for name, b := range map[string][]byte{
		"empty": nil, "private key": priv, "garbage": []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
		"p384": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der384}),
	} {
		if _, err := LoadVerifier(b); !xerr.Is(err, xerr.Verify) {
			t.Errorf("%s: %v, want ERR_EXPORT_VERIFY", name, err)
		}
	}
}

func TestPAE(t *testing.T) {
	// The example from the DSSE v1 protocol document.
	got := string(PAE("http://example.com/HelloWorld", []byte("hello world")))
	want := "DSSEv1 29 http://example.com/HelloWorld 11 hello world"
	if got != want {
		t.Errorf("PAE = %q, want %q", got, want)
	}
	if got := string(PAE("", nil)); got != "DSSEv1 0  0 " {
		t.Errorf("PAE(empty) = %q", got)
	}
}

func TestDSSERoundTripAndTamper(t *testing.T) {
	dir := t.TempDir()
	kp := newKeyPair(t, dir, "k", "pw")
	other := newKeyPair(t, dir, "o", "pw")
	payload := []byte(`{"_type":"https://in-toto.io/Statement/v1","x":"<&>"}`)
	env, err := SignDSSE(kp.signer, InTotoPayloadType, payload)
	if err != nil {
		t.Fatal(err)
	}
	// Canonical: sorted keys, no whitespace.
	if c, _ := canon.Canonicalize(env); !bytes.Equal(c, env) {
		t.Errorf("envelope is not canonical JSON: %s", env)
	}
	typ, got, err := VerifyDSSE(kp.verifier, env)
	if err != nil || typ != InTotoPayloadType || !bytes.Equal(got, payload) {
		t.Fatalf("VerifyDSSE = %q %q %v", typ, got, err)
	}
	var e Envelope
	if err := json.Unmarshal(env, &e); err != nil {
		t.Fatal(err)
	}
	if e.Signatures[0].KeyID != kp.signer.KeyID() {
		t.Errorf("keyid = %q, want %q", e.Signatures[0].KeyID, kp.signer.KeyID())
	}
	// The signature is over PAE, not over the payload alone.
	sigDER, _ := base64.StdEncoding.DecodeString(e.Signatures[0].Sig)
	if err := kp.verifier.Verify(bytes.NewReader(PAE(InTotoPayloadType, payload)), sigDER); err != nil {
		t.Errorf("signature is not over PAE: %v", err)
	}

	mod := func(f func(e *Envelope)) []byte {
		var c Envelope
		_ = json.Unmarshal(env, &c)
		f(&c)
		b, _ := json.Marshal(c)
		return b
	}
	bad := map[string][]byte{
		"payload changed": mod(func(e *Envelope) {
			e.Payload = base64.StdEncoding.EncodeToString(append(bytes.Clone(payload), ' '))
		}),
		"type changed":    mod(func(e *Envelope) { e.PayloadType = "application/json" }),
		"no signatures":   mod(func(e *Envelope) { e.Signatures = nil }),
		"sig garbage":     mod(func(e *Envelope) { e.Signatures[0].Sig = "AAAA" }),
		"other keyid":     mod(func(e *Envelope) { e.Signatures[0].KeyID = other.signer.KeyID() }),
		"payload not b64": mod(func(e *Envelope) { e.Payload = "%%%" }),
		"empty type":      mod(func(e *Envelope) { e.PayloadType = "" }),
		"not json":        []byte("{"),
		"trailing data":   append(bytes.Clone(env), []byte(" {}")...),
		"unknown field":   bytes.Replace(env, []byte(`{"payload"`), []byte(`{"x":1,"payload"`), 1),
		"sig over payload": mod(func(e *Envelope) {
			s, _ := kp.signer.Sign(bytes.NewReader(payload))
			e.Signatures[0].Sig = base64.StdEncoding.EncodeToString(s)
		}),
	}
	for name, b := range bad {
		if _, _, err := VerifyDSSE(kp.verifier, b); !xerr.Is(err, xerr.Verify) {
			t.Errorf("%s: %v, want ERR_EXPORT_VERIFY", name, err)
		}
	}
	if _, _, err := VerifyDSSE(other.verifier, env); !xerr.Is(err, xerr.Verify) {
		t.Errorf("other key: %v", err)
	}
	// keyid is only a hint: an envelope without one is still checked.
	if _, _, err := VerifyDSSE(kp.verifier, mod(func(e *Envelope) { e.Signatures[0].KeyID = "" })); err != nil {
		t.Errorf("empty keyid: %v", err)
	}
	// URL-safe base64 is allowed by the DSSE spec.
	urlEnv := mod(func(e *Envelope) {
		e.Payload = base64.URLEncoding.EncodeToString(payload)
		e.Signatures[0].Sig = base64.URLEncoding.EncodeToString(sigDER)
	})
	if _, _, err := VerifyDSSE(kp.verifier, urlEnv); err != nil {
		t.Errorf("URL-safe base64: %v", err)
	}
	// A second, foreign signature does not stop ours from counting.
	two := mod(func(e *Envelope) {
		e.Signatures = append([]EnvelopeSignature{{KeyID: other.signer.KeyID(), Sig: "MEQCIA=="}}, e.Signatures...)
	})
	if _, _, err := VerifyDSSE(kp.verifier, two); err != nil {
		t.Errorf("two signatures: %v", err)
	}
}

func TestBundle(t *testing.T) {
	dir := t.TempDir()
	kp := newKeyPair(t, dir, "k", "pw")
	other := newKeyPair(t, dir, "o", "pw")
	blob := testBlob(t)
	sig, _ := kp.signer.Sign(bytes.NewReader(blob))
	b := NewBundle(sig, sha256.Sum256(blob), kp.signer.PublicKey())
	if c, _ := canon.Canonicalize(b); !bytes.Equal(c, b) {
		t.Errorf("bundle is not canonical JSON: %s", b)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got["mediaType"] != BundleMediaType {
		t.Errorf("mediaType %v", got["mediaType"])
	}
	hint := got["verificationMaterial"].(map[string]any)["publicKey"].(map[string]any)["hint"]
	der, _ := x509.MarshalPKIXPublicKey(kp.signer.PublicKey())
	sum := sha256.Sum256(der)
	if hint != base64.StdEncoding.EncodeToString(sum[:]) {
		t.Errorf("hint %v is not b64 sha256 of the PKIX DER", hint)
	}
	if err := VerifyBundle(kp.verifier, b, bytes.NewReader(blob)); err != nil {
		t.Fatalf("VerifyBundle: %v", err)
	}
	cases := map[string]struct {
		v      Verifier
		bundle []byte
		data   []byte
	}{
		"modified blob":   {kp.verifier, b, flip(blob)},
		"other key":       {other.verifier, b, blob},
		"other key, hint": {other.verifier, NewBundle(sig, sha256.Sum256(blob), nil), blob},
		"wrong digest":    {kp.verifier, NewBundle(sig, sha256.Sum256(flip(blob)), kp.signer.PublicKey()), flip(blob)},
		"media type":      {kp.verifier, bytes.Replace(b, []byte("v0.3+json"), []byte("v9+json"), 1), blob},
		"algorithm":       {kp.verifier, bytes.Replace(b, []byte("SHA2_256"), []byte("SHA2_384"), 1), blob},
		"not json":        {kp.verifier, []byte("{"), blob},
		"dsse bundle":     {kp.verifier, []byte(`{"mediaType":"` + BundleMediaType + `","dsseEnvelope":{}}`), blob},
	}
	for name, c := range cases {
		if err := VerifyBundle(c.v, c.bundle, bytes.NewReader(c.data)); !xerr.Is(err, xerr.Verify) {
			t.Errorf("%s: %v, want ERR_EXPORT_VERIFY", name, err)
		}
	}
	// No hint: still verified by signature.
	if err := VerifyBundle(kp.verifier, NewBundle(sig, sha256.Sum256(blob), nil), bytes.NewReader(blob)); err != nil {
		t.Errorf("bundle without hint: %v", err)
	}
	if string(MinimalTrustedRoot()) != `{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}` {
		t.Errorf("MinimalTrustedRoot = %s", MinimalTrustedRoot())
	}
}

func TestProvenanceDeterministic(t *testing.T) {
	in := ProvenanceInput{
		Subjects: []Subject{
			{Name: "trivy/db.bundle", Digest: map[string]string{"sha256": "sha256:ABCDEF"}},
			{Name: "export.json", Digest: SHA256Digest("0123")},
		},
		BuilderID:      "https://github.com/stellaops/stella",
		BuilderVersion: "v1.2.3",
		ExternalParameters: map[string]any{
			"profile":   map[string]any{"kind": "mirror", "revision": "r7"},
			"selectors": map[string]any{"ecosystems": []string{"npm", "Go"}, "note": "a<b&c"},
		},
		ResolvedDependencies: []ResourceDescriptor{
			{Name: "vex", Digest: SHA256Digest("sha256:22")},
			{Name: "osv", Digest: SHA256Digest("11")},
		},
		EncryptionRecipients: []string{"age1zz", "age1aa", "age1zz"},
	}
	subjectsBefore := append([]Subject(nil), in.Subjects...)
	st := NewProvenance(in)
	b1, err := st.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"_type":"https://in-toto.io/Statement/v1","predicate":{"buildDefinition":{"buildType":"` + BuildType + `",` +
		`"externalParameters":{"profile":{"kind":"mirror","revision":"r7"},"selectors":{"ecosystems":["npm","Go"],"note":"a<b&c"}},` +
		`"internalParameters":{"encryptionRecipients":["age1aa","age1zz"]},` +
		`"resolvedDependencies":[{"digest":{"sha256":"11"},"name":"osv"},{"digest":{"sha256":"22"},"name":"vex"}]},` +
		`"runDetails":{"builder":{"id":"https://github.com/stellaops/stella","version":{"stella":"v1.2.3"}}}},` +
		`"predicateType":"https://slsa.dev/provenance/v1",` +
		`"subject":[{"digest":{"sha256":"0123"},"name":"export.json"},{"digest":{"sha256":"abcdef"},"name":"trivy/db.bundle"}]}`
	if string(b1) != want {
		t.Errorf("provenance:\n got %s\nwant %s", b1, want)
	}
	if in.Subjects[0].Name != subjectsBefore[0].Name {
		t.Error("NewProvenance reordered the caller's slice")
	}
	// Same input in another order gives the same bytes.
	in.Subjects[0], in.Subjects[1] = in.Subjects[1], in.Subjects[0]
	in.EncryptionRecipients = []string{"age1aa", "age1zz"}
	b2, _ := NewProvenance(in).Canonical()
	if !bytes.Equal(b1, b2) {
		t.Errorf("order of inputs changes the bytes:\n%s\n%s", b1, b2)
	}
	// No recipients, no internalParameters; nil external parameters is {}.
	b3, _ := NewProvenance(ProvenanceInput{BuilderID: "x", Subjects: in.Subjects}).Canonical()
	if bytes.Contains(b3, []byte("internalParameters")) || !bytes.Contains(b3, []byte(`"externalParameters":{}`)) ||
		bytes.Contains(b3, []byte("metadata")) {
		t.Errorf("minimal provenance: %s", b3)
	}
	parsed, err := ParseStatement(b1)
	if err != nil {
		t.Fatal(err)
	}
	b4, _ := parsed.Canonical()
	if !bytes.Equal(b1, b4) {
		t.Errorf("parse + marshal changes the bytes:\n%s\n%s", b1, b4)
	}
	if _, err := ParseStatement([]byte(`{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://slsa.dev/provenance/v1"}`)); !xerr.Is(err, xerr.Verify) {
		t.Errorf("v0.1 statement accepted: %v", err)
	}
}
