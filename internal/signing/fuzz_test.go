package signing

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"math/big"
	"testing"

	"github.com/stellaops/stella/internal/xerr"
)

// fuzzKey is a fixed P-256 key (test only; scalar = SHA-256 of a label) so
// that the seeds below stay valid signatures across runs.
func fuzzKey(f *testing.F) (*ecdsa.PrivateKey, Signer, Verifier) {
	f.Helper()
	label := sha256.Sum256([]byte("stella fuzz key"))
	d := new(big.Int).SetBytes(label[:])
	d.Mod(d, elliptic.P256().Params().N)
	priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d.FillBytes(make([]byte, 32)))
	if err != nil {
		f.Fatal(err)
	}
	s, err := NewSigner(priv)
	if err != nil {
		f.Fatal(err)
	}
	v, err := NewVerifier(&priv.PublicKey)
	if err != nil {
		f.Fatal(err)
	}
	return priv, s, v
}

var fuzzData = []byte("stella fuzz data\n")

// FuzzVerify feeds arbitrary signature files to Verifier.Verify: it must
// never panic, must fail with ERR_EXPORT_VERIFY for anything but a valid
// signature, and anything it accepts must decode to the one DER signature.
func FuzzVerify(f *testing.F) {
	_, s, v := fuzzKey(f)
	der, err := s.Sign(bytes.NewReader(fuzzData))
	if err != nil {
		f.Fatal(err)
	}
	b64 := EncodeSignature(der)
	for _, seed := range [][]byte{
		der, b64, append(bytes.Clone(b64), '\n'), append([]byte(" \t"), b64...),
		nil, []byte("\n"), []byte("MEUCIQ=="), der[:len(der)-1], append(bytes.Clone(der), 0),
		[]byte(base64.RawStdEncoding.EncodeToString(der)), []byte(base64.URLEncoding.EncodeToString(der)),
		{0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01}, {0x30, 0x80, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0, 0},
		{0x30, 0x07, 0x02, 0x02, 0x00, 0x01, 0x02, 0x01, 0x01},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, sig []byte) {
		err := v.Verify(bytes.NewReader(fuzzData), sig)
		if err != nil {
			if !xerr.Is(err, xerr.Verify) {
				t.Fatalf("error without ERR_EXPORT_VERIFY: %v", err)
			}
			return
		}
		got, derr := DecodeSignature(sig)
		if derr != nil || !isDERSignature(got) {
			t.Fatalf("accepted %q but DecodeSignature says %v", sig, derr)
		}
		if !ecdsa.VerifyASN1(&s.(*keySigner).priv.PublicKey, sha256Sum(fuzzData), got) {
			t.Fatalf("accepted %q which stdlib rejects", sig)
		}
	})
}

func sha256Sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// FuzzVerifyDSSE feeds arbitrary envelopes to VerifyDSSE: no panics, only
// ERR_EXPORT_VERIFY errors, and an accepted envelope's payload must be one
// that really carries our signature over PAE.
func FuzzVerifyDSSE(f *testing.F) {
	_, s, v := fuzzKey(f)
	env, err := SignDSSE(s, InTotoPayloadType, []byte(`{"_type":"https://in-toto.io/Statement/v1"}`))
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][]byte{
		env, nil, []byte("{}"), []byte("[]"), []byte("null"), []byte(`{"payload":"","payloadType":"x","signatures":[]}`),
		[]byte(`{"payload":"e30=","payloadType":"application/vnd.in-toto+json","signatures":[{"keyid":"","sig":"MEUCIQ=="}]}`),
		bytes.Replace(env, []byte(`"keyid":"`), []byte(`"keyid":"x`), 1),
		bytes.Replace(env, []byte(`"payload":"`), []byte(`"payload":"AAAA`), 1),
		append(bytes.Clone(env), ' ', '{', '}'),
		[]byte(`{"payload":"e30","payloadType":"t","signatures":[{"sig":"_-_-"}]}`),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		typ, payload, err := VerifyDSSE(v, data)
		if err != nil {
			if !xerr.Is(err, xerr.Verify) {
				t.Fatalf("error without ERR_EXPORT_VERIFY: %v", err)
			}
			return
		}
		// Accepted: re-signing the same content must verify too, and the
		// type must be non-empty.
		if typ == "" {
			t.Fatal("accepted an envelope with an empty payloadType")
		}
		again, err := SignDSSE(s, typ, payload)
		if err != nil {
			t.Fatal(err)
		}
		if _, p2, err := VerifyDSSE(v, again); err != nil || !bytes.Equal(p2, payload) {
			t.Fatalf("re-signed envelope does not round-trip: %v", err)
		}
	})
}
