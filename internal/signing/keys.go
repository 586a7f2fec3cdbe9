package signing

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/stellaops/stella/internal/xerr"
)

// PEM block types of key files.
const (
	// PEMTypeEncryptedSigstore is what cosign (v2.x) and GenerateKeyPair write.
	PEMTypeEncryptedSigstore = "ENCRYPTED SIGSTORE PRIVATE KEY"
	// PEMTypeEncryptedCosign is what older cosign releases wrote; still read.
	PEMTypeEncryptedCosign = "ENCRYPTED COSIGN PRIVATE KEY"
	// PEMTypePublicKey is the PKIX public key block (cosign.pub).
	PEMTypePublicKey = "PUBLIC KEY"
)

// Environment variables that hold the password of an encrypted key file.
const (
	// EnvPassword is stella's own variable; it wins when both are set.
	EnvPassword = "STELLA_SIGNING_PASSWORD"
	// EnvCosignPassword is the variable cosign itself reads.
	EnvCosignPassword = "COSIGN_PASSWORD"
)

// GenerateKeyPair makes an ECDSA P-256 key pair in cosign's file formats:
// privPEM is the PKCS#8 private key encrypted with password (scrypt
// N=65536,r=8,p=1 + nacl/secretbox, exactly as `cosign generate-key-pair`)
// in a PEM block of type "ENCRYPTED SIGSTORE PRIVATE KEY"; pubPEM is the
// PKIX "PUBLIC KEY" PEM. A nil or empty password is allowed, as in cosign:
// the key is still encrypted, with the empty password.
func GenerateKeyPair(password []byte) (privPEM, pubPEM []byte, err error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, xerr.Wrap(xerr.Signing, err, "generating an ECDSA P-256 key")
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, xerr.Wrap(xerr.Signing, err, "encoding the private key")
	}
	if password == nil {
		password = []byte{}
	}
	enc, err := encrypted.Encrypt(der, password)
	if err != nil {
		return nil, nil, xerr.Wrap(xerr.Signing, err, "encrypting the private key")
	}
	pubPEM, err = cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	if err != nil {
		return nil, nil, xerr.Wrap(xerr.Signing, err, "encoding the public key")
	}
	return pem.EncodeToMemory(&pem.Block{Type: PEMTypeEncryptedSigstore, Bytes: enc}), pubPEM, nil
}

// PasswordFromEnv returns a password function for LoadSigner that reads
// STELLA_SIGNING_PASSWORD, else COSIGN_PASSWORD. A variable set to the empty
// string gives the empty password; when neither is set it fails.
func PasswordFromEnv() func() ([]byte, error) {
	return func() ([]byte, error) {
		for _, name := range []string{EnvPassword, EnvCosignPassword} {
			if v, ok := os.LookupEnv(name); ok {
				return []byte(v), nil
			}
		}
		return nil, fmt.Errorf("neither %s nor %s is set", EnvPassword, EnvCosignPassword)
	}
}

// loadKeyFile reads and decrypts a private key file made by cosign or by
// GenerateKeyPair. Every failure is an xerr.Signing error naming path.
func loadKeyFile(path string, password func() ([]byte, error)) (*ecdsa.PrivateKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, xerr.New(xerr.Signing, "signing key %s does not exist", path).
				WithHint("check the key path; make a key pair with `stella export key generate` or `cosign generate-key-pair`")
		}
		return nil, xerr.Wrap(xerr.Signing, err, "cannot read signing key %s", path).
			WithHint("check that the key file is readable by this user")
	}
	return parsePrivateKeyPEM(path, raw, password)
}

func parsePrivateKeyPEM(path string, raw []byte, password func() ([]byte, error)) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, xerr.New(xerr.Signing, "signing key %s is not a PEM file", path).
			WithHint("pass the private key file (cosign.key), not the public key or a signature")
	}
	var der []byte
	switch block.Type {
	case PEMTypeEncryptedSigstore, PEMTypeEncryptedCosign:
		pw := []byte{}
		if password != nil {
			p, err := password()
			if err != nil {
				return nil, xerr.Wrap(xerr.Signing, err, "signing key %s is encrypted and its password cannot be read", path).
					WithHint("set %s to the key's password (the empty string if it has none)", EnvPassword)
			}
			pw = p
		}
		d, err := decryptKey(path, block.Bytes, pw)
		if err != nil {
			return nil, err
		}
		der = d
	case "PRIVATE KEY":
		der = block.Bytes
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, xerr.Wrap(xerr.Signing, err, "signing key %s: malformed EC private key", path).
				WithHint("regenerate the key with `stella export key generate` or `cosign generate-key-pair`")
		}
		return checkP256(path, k)
	case PEMTypePublicKey:
		return nil, xerr.New(xerr.Signing, "signing key %s is a public key", path).
			WithHint("pass the private key file (cosign.key) to sign; the .pub file is for verifying")
	default:
		return nil, xerr.New(xerr.Signing, "signing key %s has unsupported PEM type %q", path, block.Type).
			WithHint("use a cosign key file (%q) or a PKCS#8 \"PRIVATE KEY\" PEM", PEMTypeEncryptedSigstore)
	}
	return parsePKCS8(path, der)
}

func decryptKey(path string, data, pw []byte) ([]byte, error) {
	der, err := encrypted.Decrypt(data, pw)
	if err == nil {
		return der, nil
	}
	if err.Error() == "encrypted: decryption failed" {
		return nil, xerr.Wrap(xerr.Signing, err, "cannot decrypt signing key %s: wrong password (or a damaged key file)", path).
			WithHint("check %s (or %s): it must be the password the key was generated with", EnvPassword, EnvCosignPassword)
	}
	return nil, xerr.Wrap(xerr.Signing, err, "signing key %s: malformed encrypted key", path).
		WithHint("the file is damaged or not a cosign key; regenerate it with `stella export key generate`")
}

func parsePKCS8(path string, der []byte) (*ecdsa.PrivateKey, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, xerr.Wrap(xerr.Signing, err, "signing key %s: malformed PKCS#8 private key", path).
			WithHint("regenerate the key with `stella export key generate` or `cosign generate-key-pair`")
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, xerr.New(xerr.Signing, "signing key %s: unsupported key type %s", path, keyTypeName(k)).
			WithHint("stella signs with ECDSA P-256 keys (cosign's default); make one with `stella export key generate`")
	}
	return checkP256(path, ek)
}

func checkP256(path string, k *ecdsa.PrivateKey) (*ecdsa.PrivateKey, error) {
	if k.Curve != elliptic.P256() {
		return nil, xerr.New(xerr.Signing, "signing key %s: unsupported key type ECDSA %s", path, k.Curve.Params().Name).
			WithHint("stella signs with ECDSA P-256 keys (cosign's default); make one with `stella export key generate`")
	}
	return k, nil
}

func keyTypeName(k any) string {
	switch t := k.(type) {
	case *ecdsa.PrivateKey:
		return "ECDSA " + t.Curve.Params().Name
	case *ecdsa.PublicKey:
		return "ECDSA " + t.Curve.Params().Name
	case crypto.Signer:
		return fmt.Sprintf("%T", t.Public())
	default:
		return fmt.Sprintf("%T", k)
	}
}

// KeyHint is the key identifier stella writes: base64 (standard, padded) of
// SHA-256 over the PKIX DER public key. It is the sigstore bundle's
// verificationMaterial.publicKey.hint and the DSSE signature's keyid.
func KeyHint(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return base64.StdEncoding.EncodeToString(sum[:]), nil
}
