// Package crypt encrypts and decrypts the data files of a bundle (profile
// spec.encryption, SPEC §6). Two modes:
//
//   - age: every file is an age file (binary, not armored) encrypted to all
//     recipients, so that the stock `age -d -i <identity>` decrypts it.
//   - aes-gcm: one random 32-byte run key per bundle; each file is
//     AES-256-GCM encrypted with it under a random 12-byte nonce and the
//     additional data "{exportId}:{relativePath}", in 64 KiB chunks (see
//     Seal for the exact layout); the run key is wrapped for each recipient
//     with age and listed, sorted by recipient, in export.json.
//
// Recipients are age X25519 public keys (age1…). kms:// references are not
// supported by this build. Nothing here is deterministic: age picks a random
// file key per file and aes-gcm a random run key and nonces; bundles keep
// the plaintext digests (plainDigest) so their rerunHash and exportId are.
package crypt

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"

	"filippo.io/age"

	"github.com/stellaops/stella/internal/xerr"
	"github.com/stellaops/stella/pkg/exportapi"
)

// Modes.
const (
	ModeAge    = "age"
	ModeAESGCM = "aes-gcm"
)

// Magic starts every aes-gcm data file.
const Magic = "stella-aesgcm-v1\n"

// ChunkSize is the plaintext size of every aes-gcm chunk but the last.
const ChunkSize = 64 << 10

const (
	keySize   = 32
	nonceSize = 12
	tagSize   = 16
)

// ParseRecipients checks recipient keys and returns them sorted and
// deduplicated, with their parsed form.
func ParseRecipients(keys []string) ([]string, []age.Recipient, error) {
	if len(keys) == 0 {
		return nil, nil, xerr.New(xerr.InvalidInput, "spec.encryption is enabled but lists no recipientKeys").
			WithHint("add the age public keys (age1…) of the receiving sites to spec.encryption.recipientKeys")
	}
	uniq := map[string]bool{}
	for _, k := range keys {
		uniq[strings.TrimSpace(k)] = true
	}
	var sorted []string
	for k := range uniq {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	var out []age.Recipient
	for _, k := range sorted {
		if strings.HasPrefix(k, "kms://") {
			return nil, nil, xerr.New(xerr.InvalidInput, "spec.encryption.recipientKeys: %s: kms:// recipients are not supported by this build", k).
				WithHint("use age X25519 recipients (age1…, from `age-keygen`)")
		}
		r, err := age.ParseX25519Recipient(k)
		if err != nil {
			return nil, nil, xerr.New(xerr.InvalidInput, "spec.encryption.recipientKeys: %q is not an age X25519 recipient: %v", k, err).
				WithHint("recipients look like age1…; `age-keygen -y <identity file>` prints one")
		}
		out = append(out, r)
	}
	return sorted, out, nil
}

// CheckMode validates an encryption mode.
func CheckMode(mode string) error {
	switch mode {
	case ModeAge, ModeAESGCM:
		return nil
	}
	return xerr.New(xerr.InvalidInput, "spec.encryption.mode %q is not age or aes-gcm", mode)
}

// Sealer encrypts the data files of one bundle.
type Sealer struct {
	mode       string
	recipients []string
	parsed     []age.Recipient
	exportID   string
	key        []byte
	aead       cipher.AEAD
	keys       []exportapi.WrappedKey
}

// NewSealer prepares encryption of a bundle whose export id is exportID.
func NewSealer(mode string, recipientKeys []string, exportID string) (*Sealer, error) {
	if err := CheckMode(mode); err != nil {
		return nil, err
	}
	rs, parsed, err := ParseRecipients(recipientKeys)
	if err != nil {
		return nil, err
	}
	s := &Sealer{mode: mode, recipients: rs, parsed: parsed, exportID: exportID}
	if mode == ModeAESGCM {
		s.key = make([]byte, keySize)
		if _, err := rand.Read(s.key); err != nil {
			return nil, err
		}
		if s.aead, err = newGCM(s.key); err != nil {
			return nil, err
		}
		for i, r := range parsed {
			var buf bytes.Buffer
			w, err := age.Encrypt(&buf, r)
			if err != nil {
				return nil, err
			}
			w.Write(s.key)
			if err := w.Close(); err != nil {
				return nil, err
			}
			s.keys = append(s.keys, exportapi.WrappedKey{Recipient: rs[i], Wrapped: base64.StdEncoding.EncodeToString(buf.Bytes())})
		}
	}
	return s, nil
}

// Manifest is the export.json encryption field.
func (s *Sealer) Manifest() *exportapi.ManifestCrypt {
	return &exportapi.ManifestCrypt{Mode: s.mode, Recipients: s.recipients, Keys: s.keys}
}

// AAD is the additional authenticated data of an aes-gcm file.
func AAD(exportID, rel string) []byte { return []byte(exportID + ":" + rel) }

// Seal encrypts src into dst; rel is the file's path relative to the bundle root.
//
// aes-gcm layout: Magic, a random 12-byte nonce N, then the plaintext in
// chunks of ChunkSize bytes (the last one shorter, possibly empty), each
// sealed with AES-256-GCM under the run key, the nonce N XOR
// (0x000000 || uint64be(chunk index) || 0x01 for the last chunk else 0x00),
// and the AAD "{exportId}:{relativePath}"; every sealed chunk is its
// ciphertext followed by its 16-byte tag. The chunk index and last flag in
// the nonce stop reordering and truncation (the STREAM construction).
func (s *Sealer) Seal(dst io.Writer, src io.Reader, rel string) error {
	if s.mode == ModeAge {
		w, err := age.Encrypt(dst, s.parsed...)
		if err != nil {
			return err
		}
		if _, err := io.Copy(w, src); err != nil {
			return err
		}
		return w.Close()
	}
	var nonce [nonceSize]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return err
	}
	bw := bufio.NewWriterSize(dst, ChunkSize+tagSize+64)
	bw.WriteString(Magic)
	bw.Write(nonce[:])
	aad := AAD(s.exportID, rel)
	br := bufio.NewReaderSize(src, ChunkSize+1)
	plain := make([]byte, ChunkSize)
	out := make([]byte, 0, ChunkSize+tagSize)
	for i := uint64(0); ; i++ {
		n, err := io.ReadFull(br, plain)
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return err
		}
		last := n < ChunkSize
		if !last {
			if _, perr := br.Peek(1); perr == io.EOF {
				last = true
			} else if perr != nil {
				return perr
			}
		}
		out = s.aead.Seal(out[:0], chunkNonce(nonce, i, last), plain[:n], aad)
		if _, err := bw.Write(out); err != nil {
			return err
		}
		if last {
			break
		}
	}
	return bw.Flush()
}

func chunkNonce(base [nonceSize]byte, i uint64, last bool) []byte {
	n := base
	var ctr [8]byte
	binary.BigEndian.PutUint64(ctr[:], i)
	for k := 0; k < 8; k++ {
		n[3+k] ^= ctr[k]
	}
	if last {
		n[11] ^= 1
	}
	return n[:]
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithNonceSize(b, nonceSize)
}

// LoadIdentities reads age identity files (AGE-SECRET-KEY-1… lines; # comments allowed).
func LoadIdentities(files []string) ([]age.Identity, error) {
	var out []age.Identity
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, xerr.New(xerr.InvalidInput, "--identity %s: %v", f, err)
		}
		ids, err := age.ParseIdentities(bytes.NewReader(b))
		if err != nil {
			return nil, xerr.New(xerr.InvalidInput, "--identity %s is not an age identity file: %v", f, err).
				WithHint("an identity file holds AGE-SECRET-KEY-1… lines, as `age-keygen -o key.txt` writes")
		}
		out = append(out, ids...)
	}
	return out, nil
}

// Opener decrypts the data files of one bundle.
type Opener struct {
	mode     string
	exportID string
	ids      []age.Identity
	aead     cipher.AEAD
}

// ErrWrongIdentity marks a bundle that none of the given identities can open.
var ErrWrongIdentity = errors.New("no identity matches")

// NewOpener prepares decryption of a bundle with the given identities. In
// aes-gcm mode it unwraps the run key now, so a wrong identity is reported
// before any file is read.
func NewOpener(mc *exportapi.ManifestCrypt, exportID string, ids []age.Identity) (*Opener, error) {
	if mc == nil {
		return nil, fmt.Errorf("bundle is not encrypted")
	}
	if err := CheckMode(mc.Mode); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, xerr.New(xerr.Verify, "the bundle's data is encrypted (%s) to %s; no --identity was given",
			mc.Mode, strings.Join(mc.Recipients, ", ")).
			WithHint("pass --identity <age identity file> holding the secret key of one of the recipients")
	}
	o := &Opener{mode: mc.Mode, exportID: exportID, ids: ids}
	if mc.Mode == ModeAge && !o.mayMatch(mc.Recipients) {
		// Said once, naming both sides, rather than for every data file.
		return nil, o.wrongIdentity(mc)
	}
	if mc.Mode == ModeAESGCM {
		if len(mc.Keys) == 0 {
			return nil, xerr.New(xerr.Verify, "aes-gcm bundle lists no wrapped run keys in export.json encryption.keys")
		}
		var key []byte
		for _, wk := range mc.Keys {
			raw, err := base64.StdEncoding.DecodeString(wk.Wrapped)
			if err != nil {
				return nil, xerr.New(xerr.Verify, "encryption.keys: wrapped key for %s is not base64", wk.Recipient)
			}
			r, err := age.Decrypt(bytes.NewReader(raw), ids...)
			if err != nil {
				var nm *age.NoIdentityMatchError
				if errors.As(err, &nm) {
					continue
				}
				return nil, xerr.New(xerr.Verify, "encryption.keys: wrapped key for %s: %v", wk.Recipient, err)
			}
			k, err := io.ReadAll(io.LimitReader(r, keySize+1))
			if err != nil || len(k) != keySize {
				return nil, xerr.New(xerr.Verify, "encryption.keys: wrapped key for %s does not hold a 32-byte key", wk.Recipient)
			}
			key = k
			break
		}
		if key == nil {
			return nil, o.wrongIdentity(mc)
		}
		aead, err := newGCM(key)
		if err != nil {
			return nil, err
		}
		o.aead = aead
	}
	return o, nil
}

// mayMatch reports whether one of the identities may open a file encrypted
// to recipients: false only when every identity is an X25519 key and none
// of their public keys is listed (another kind of identity cannot be
// compared; the files tell).
func (o *Opener) mayMatch(recipients []string) bool {
	for _, id := range o.ids {
		x, ok := id.(*age.X25519Identity)
		if !ok || slices.Contains(recipients, x.Recipient().String()) {
			return true
		}
	}
	return false
}

func (o *Opener) wrongIdentity(mc *exportapi.ManifestCrypt) error {
	var have []string
	for _, id := range o.ids {
		if x, ok := id.(*age.X25519Identity); ok {
			have = append(have, x.Recipient().String())
		}
	}
	e := xerr.New(xerr.Verify, "wrong identity: the bundle is encrypted to %s; the --identity keys are for %s",
		strings.Join(mc.Recipients, ", "), strings.Join(have, ", ")).
		WithHint("use the identity file of one of the recipients (its public key is `age-keygen -y <file>`)")
	e.Err = ErrWrongIdentity
	return e
}

// Open decrypts src (the stored bytes of rel) into dst.
func (o *Opener) Open(dst io.Writer, src io.Reader, rel string) error {
	if o.mode == ModeAge {
		r, err := age.Decrypt(src, o.ids...)
		if err != nil {
			var nm *age.NoIdentityMatchError
			if errors.As(err, &nm) {
				e := xerr.New(xerr.Verify, "wrong identity: %s: none of the --identity keys is a recipient of this file", rel).
					WithHint("use the identity file of one of the recipients listed in export.json encryption.recipients")
				e.Err = ErrWrongIdentity
				return e
			}
			return xerr.New(xerr.Verify, "%s: age: %v", rel, err)
		}
		if _, err := io.Copy(dst, r); err != nil {
			return xerr.New(xerr.Verify, "%s: age: %v", rel, err)
		}
		return nil
	}
	br := bufio.NewReaderSize(src, ChunkSize+tagSize+1)
	head := make([]byte, len(Magic)+nonceSize)
	if _, err := io.ReadFull(br, head); err != nil || string(head[:len(Magic)]) != Magic {
		return xerr.New(xerr.Verify, "%s: not an aes-gcm data file (bad header)", rel)
	}
	var nonce [nonceSize]byte
	copy(nonce[:], head[len(Magic):])
	aad := AAD(o.exportID, rel)
	buf := make([]byte, ChunkSize+tagSize)
	plain := make([]byte, 0, ChunkSize)
	for i := uint64(0); ; i++ {
		n, err := io.ReadFull(br, buf)
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return err
		}
		last := n < len(buf)
		if !last {
			if _, perr := br.Peek(1); perr == io.EOF {
				last = true
			}
		}
		if n < tagSize {
			return xerr.New(xerr.Verify, "%s: truncated aes-gcm data (chunk %d)", rel, i)
		}
		p, err := o.aead.Open(plain[:0], chunkNonce(nonce, i, last), buf[:n], aad)
		if err != nil {
			return xerr.New(xerr.Verify, "%s: aes-gcm authentication failed at chunk %d (tampered, truncated, wrong key, or moved from another bundle/path)", rel, i)
		}
		if _, err := dst.Write(p); err != nil {
			return err
		}
		if last {
			return nil
		}
	}
}
