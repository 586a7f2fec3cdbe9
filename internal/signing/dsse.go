package signing

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strconv"

	"github.com/stellaops/stella/internal/canon"
	"github.com/stellaops/stella/internal/xerr"
)

// InTotoPayloadType is the DSSE payloadType of an in-toto Statement.
const InTotoPayloadType = "application/vnd.in-toto+json"

// Envelope is a DSSE v1 envelope (github.com/secure-systems-lab/dsse,
// envelope.md). Payload and Sig are base64.
type Envelope struct {
	Payload     string              `json:"payload"`
	PayloadType string              `json:"payloadType"`
	Signatures  []EnvelopeSignature `json:"signatures"`
}

// EnvelopeSignature is one signature of an Envelope.
type EnvelopeSignature struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"`
}

// PAE is DSSE v1's pre-authentication encoding, the bytes that are signed:
// "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, LEN in ASCII decimal.
func PAE(payloadType string, payload []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(payloadType) + len(payload) + 32)
	b.WriteString("DSSEv1 ")
	b.WriteString(strconv.Itoa(len(payloadType)))
	b.WriteByte(' ')
	b.WriteString(payloadType)
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(len(payload)))
	b.WriteByte(' ')
	b.Write(payload)
	return b.Bytes()
}

// SignDSSE signs PAE(payloadType, payload) with s and returns the envelope as
// canonical JSON: {"payload","payloadType","signatures":[{"keyid","sig"}]},
// base64 standard padded, keyid = s.KeyID().
func SignDSSE(s Signer, payloadType string, payload []byte) ([]byte, error) {
	if payloadType == "" {
		return nil, xerr.New(xerr.Signing, "DSSE payloadType is empty")
	}
	pae := PAE(payloadType, payload)
	var sig []byte
	var err error
	if ds, ok := s.(digestSigner); ok {
		sig, err = ds.signDigest(sha256.Sum256(pae))
	} else {
		sig, err = s.Sign(bytes.NewReader(pae))
	}
	if err != nil {
		return nil, err
	}
	env := Envelope{
		Payload:     base64.StdEncoding.EncodeToString(payload),
		PayloadType: payloadType,
		Signatures:  []EnvelopeSignature{{KeyID: s.KeyID(), Sig: base64.StdEncoding.EncodeToString(sig)}},
	}
	out, err := canon.Marshal(env)
	if err != nil {
		return nil, xerr.Wrap(xerr.Signing, err, "encoding the DSSE envelope")
	}
	return out, nil
}

// maxEnvelope bounds the envelope VerifyDSSE parses (provenance is small).
const maxEnvelope = 64 << 20

// VerifyDSSE parses a DSSE envelope and checks that at least one of its
// signatures is v's over PAE(payloadType, payload). Signatures whose keyid is
// set and differs from v.KeyID() are skipped (keyid is only a hint, so an
// empty one is tried). It returns the payload type and the decoded payload;
// the caller checks that the type is the one it expects. Errors are
// xerr.Verify.
func VerifyDSSE(v Verifier, env []byte) (payloadType string, payload []byte, err error) {
	if len(env) > maxEnvelope {
		return "", nil, xerr.New(xerr.Verify, "DSSE envelope is %d bytes, more than %d", len(env), maxEnvelope)
	}
	var e Envelope
	dec := json.NewDecoder(bytes.NewReader(env))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return "", nil, xerr.Wrap(xerr.Verify, err, "malformed DSSE envelope").
			WithHint("pass the .dsse.json envelope written by stella")
	}
	if dec.More() {
		return "", nil, xerr.New(xerr.Verify, "malformed DSSE envelope: data after the JSON object")
	}
	if e.PayloadType == "" {
		return "", nil, xerr.New(xerr.Verify, "malformed DSSE envelope: payloadType is empty")
	}
	body, ok := decodeB64(e.Payload)
	if !ok {
		return "", nil, xerr.New(xerr.Verify, "malformed DSSE envelope: payload is not base64")
	}
	if len(e.Signatures) == 0 {
		return "", nil, xerr.New(xerr.Verify, "DSSE envelope has no signatures")
	}
	d := sha256.Sum256(PAE(e.PayloadType, body))
	want := v.KeyID()
	tried := 0
	for _, s := range e.Signatures {
		if s.KeyID != "" && s.KeyID != want {
			continue
		}
		tried++
		sig, ok := decodeB64(s.Sig)
		if !ok || !isDERSignature(sig) {
			continue
		}
		if v.VerifyDigest(d, sig) == nil {
			return e.PayloadType, body, nil
		}
	}
	if tried == 0 {
		return "", nil, xerr.New(xerr.Verify, "DSSE envelope has no signature by key %s", want).
			WithHint("check that the public key is the one the envelope was signed with")
	}
	return "", nil, xerr.New(xerr.Verify, "DSSE signature does not match the envelope and public key %s", want).
		WithHint("the envelope was modified after signing, or it was signed with another key")
}

// decodeB64 accepts standard or URL-safe base64, as the DSSE spec requires.
func decodeB64(s string) ([]byte, bool) {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, true
	}
	if b, err := base64.URLEncoding.DecodeString(s); err == nil {
		return b, true
	}
	return nil, false
}
