package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/stellaops/stella/internal/bundle"
	"github.com/stellaops/stella/internal/config"
	"github.com/stellaops/stella/internal/engine"
	"github.com/stellaops/stella/internal/signing"
	"github.com/stellaops/stella/internal/xerr"
)

func init() {
	extraCommands = append(extraCommands, NewKeyCmd)
	verifyHooks = append(verifyHooks, verifySignatures)
}

// signedFiles maps each in-bundle signature to the file it signs.
var signedFiles = map[string]string{
	"signatures/export.sig":        "export.json",
	"signatures/manifest.sig":      "manifest.yaml",
	"signatures/trivy-db.sig":      "trivy/db.bundle",
	"signatures/trivy-java-db.sig": "trivy/java-db.bundle",
}

// Sidecar names of the signatures written beside a bundle archive.
const (
	ArchiveSigSuffix    = ".sig"
	ArchiveBundleSuffix = ".sigstore.json"
)

// DefaultHooks configures the engine's signing from ExportCenter.Signing.Key.
// The key is loaded when a run reaches its signing step, before any
// artifact is marked complete; a key problem fails the run with
// ERR_EXPORT_SIGNING.
func DefaultHooks(f *Factory, cfg *config.Config) (engine.Hooks, error) {
	ref := cfg.ExportCenter.Signing.Key
	if ref == "" {
		return engine.Hooks{}, nil
	}
	var signer signing.Signer
	load := func(ctx context.Context) (signing.Signer, error) {
		if signer != nil {
			return signer, nil
		}
		s, err := signing.LoadSigner(ctx, ref, signing.PasswordFromEnv())
		if err != nil {
			return nil, err
		}
		signer = s
		return s, nil
	}
	return engine.Hooks{
		Sign: func(ctx context.Context, in engine.SignInput) (map[string][]byte, error) {
			s, err := load(ctx)
			if err != nil {
				return nil, err
			}
			return SignStage(s, in.Stage, in.Provenance)
		},
		SignArchive: func(ctx context.Context, archive string) ([]string, error) {
			s, err := load(ctx)
			if err != nil {
				return nil, err
			}
			return SignArchive(s, archive)
		},
	}, nil
}

// SignStage signs export.json, manifest.yaml and any Trivy DB in the stage,
// and wraps provenance.json in a DSSE envelope.
func SignStage(s signing.Signer, st *bundle.Stage, provenance []byte) (map[string][]byte, error) {
	out := map[string][]byte{}
	for sig, target := range signedFiles {
		if _, ok := st.Entry(target); !ok && target != "export.json" && target != "manifest.yaml" {
			continue
		}
		f, err := st.Open(target)
		if err != nil {
			return nil, xerr.Wrap(xerr.Internal, err, "sign %s", target)
		}
		der, err := s.Sign(f)
		f.Close()
		if err != nil {
			return nil, xerr.Wrap(xerr.Signing, err, "sign %s with key %s", target, s.KeyID()).
				WithHint("check the signing key (ExportCenter.Signing.Key) and retry")
		}
		out[sig] = signing.EncodeSignature(der)
	}
	if provenance != nil {
		env, err := signing.SignDSSE(s, signing.InTotoPayloadType, provenance)
		if err != nil {
			return nil, xerr.Wrap(xerr.Signing, err, "sign provenance")
		}
		out["provenance.dsse.json"] = env
	}
	return out, nil
}

// SignArchive writes <archive>.sig (cosign's base64 signature form) and
// <archive>.sigstore.json (a v0.3 sigstore bundle) beside an archive,
// atomically, and returns their paths.
func SignArchive(s signing.Signer, archive string) ([]string, error) {
	f, err := os.Open(archive)
	if err != nil {
		return nil, xerr.Wrap(xerr.Internal, err, "sign %s", archive)
	}
	h := sha256.New()
	_, err = io.Copy(h, f)
	f.Close()
	if err != nil {
		return nil, xerr.Wrap(xerr.Internal, err, "sign %s", archive)
	}
	var digest [32]byte
	copy(digest[:], h.Sum(nil))
	// Sign the bytes again through the Signer (it hashes the reader itself).
	f, _ = os.Open(archive)
	der, err := s.Sign(f)
	f.Close()
	if err != nil {
		return nil, xerr.Wrap(xerr.Signing, err, "sign %s", archive)
	}
	files := map[string][]byte{
		archive + ArchiveSigSuffix:    signing.EncodeSignature(der),
		archive + ArchiveBundleSuffix: signing.NewBundle(der, digest, s.PublicKey()),
	}
	var paths []string
	for p, b := range files {
		if err := writeAtomic(p, b, 0o644); err != nil {
			return nil, xerr.Wrap(xerr.Internal, err, "write %s", p)
		}
		paths = append(paths, p)
	}
	sort.Strings(paths)
	return paths, nil
}

func writeAtomic(p string, b []byte, mode os.FileMode) error {
	tmp := p + ".partial"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// NewKeyCmd builds `stella export key`.
func NewKeyCmd(f *Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "key", Short: "Manage signing keys"}
	var prefix string
	var force bool
	gen := &cobra.Command{
		Use:   "generate [--output-key-prefix export-center]",
		Short: "Write a cosign-compatible key pair: <prefix>.key (encrypted) and <prefix>.pub",
		Long: `Writes an ECDSA P-256 key pair that stock cosign reads: the private key encrypted as cosign
encrypts it (password from STELLA_SIGNING_PASSWORD or COSIGN_PASSWORD, or a prompt on a terminal), and the
public key as PEM. Set ExportCenter.Signing.Key to the .key file to sign every run.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return keyGenerate(f, prefix, force) },
	}
	gen.Flags().StringVar(&prefix, "output-key-prefix", "export-center", "path prefix of the key files")
	gen.Flags().BoolVar(&force, "force", false, "overwrite existing key files")
	cmd.AddCommand(gen)
	return cmd
}

func keyGenerate(f *Factory, prefix string, force bool) error {
	keyPath, pubPath := prefix+".key", prefix+".pub"
	if !force {
		for _, p := range []string{keyPath, pubPath} {
			if _, err := os.Stat(p); err == nil {
				return xerr.New(xerr.InvalidInput, "%s already exists", p).WithHint("choose another --output-key-prefix, or pass --force")
			}
		}
	}
	pass, err := keyPassword(f)
	if err != nil {
		return err
	}
	priv, pub, err := signing.GenerateKeyPair(pass)
	if err != nil {
		return xerr.Wrap(xerr.Signing, err, "generate key pair")
	}
	if dir := filepath.Dir(keyPath); dir != "." {
		os.MkdirAll(dir, 0o700)
	}
	if err := writeAtomic(keyPath, priv, 0o600); err != nil {
		return xerr.Wrap(xerr.InvalidInput, err, "write %s", keyPath)
	}
	if err := writeAtomic(pubPath, pub, 0o644); err != nil {
		return xerr.Wrap(xerr.InvalidInput, err, "write %s", pubPath)
	}
	out := map[string]string{"privateKey": keyPath, "publicKey": pubPath}
	return f.emit(out, func(w io.Writer) error {
		fmt.Fprintf(w, "Private key written to %s\nPublic key written to %s\n", keyPath, pubPath)
		fmt.Fprintf(w, "Sign runs with: ExportCenter.Signing.Key: %s (or STELLA_EXPORTCENTER_SIGNING_KEY)\n", keyPath)
		return nil
	})
}

// keyPassword reads the password for a new key: the environment, else a
// prompt (twice) on a terminal.
func keyPassword(f *Factory) ([]byte, error) {
	for _, env := range []string{signing.EnvPassword, signing.EnvCosignPassword} {
		if v, ok := os.LookupEnv(env); ok {
			return []byte(v), nil
		}
	}
	in, ok := f.IO.In.(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		return nil, xerr.New(xerr.InvalidInput, "no password for the new key").
			WithHint("set %s (it may be empty) or run on a terminal to be prompted", signing.EnvPassword)
	}
	fmt.Fprint(f.IO.ErrOut, "Enter password for private key: ")
	a, err := term.ReadPassword(int(in.Fd()))
	fmt.Fprintln(f.IO.ErrOut)
	if err != nil {
		return nil, xerr.Wrap(xerr.InvalidInput, err, "read password")
	}
	fmt.Fprint(f.IO.ErrOut, "Enter password for private key again: ")
	b, err := term.ReadPassword(int(in.Fd()))
	fmt.Fprintln(f.IO.ErrOut)
	if err != nil {
		return nil, xerr.Wrap(xerr.InvalidInput, err, "read password")
	}
	if !bytes.Equal(a, b) {
		return nil, xerr.New(xerr.InvalidInput, "the passwords do not match")
	}
	return a, nil
}

// loadVerifiers reads --key and --trust-root (files of one or more PEM
// public keys).
func loadVerifiers(o *VerifyOptions) ([]signing.Verifier, error) {
	var out []signing.Verifier
	for _, p := range []string{o.Key, o.TrustRoot} {
		if p == "" {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, xerr.Wrap(xerr.InvalidInput, err, "read public key %s", p)
		}
		rest := data
		n := 0
		for {
			var blk *pem.Block
			blk, rest = pem.Decode(rest)
			if blk == nil {
				break
			}
			v, err := signing.LoadVerifier(pem.EncodeToMemory(blk))
			if err != nil {
				return nil, xerr.Wrap(xerr.InvalidInput, err, "public key in %s", p).WithHint("pass the PEM public key (cosign.pub)")
			}
			out = append(out, v)
			n++
		}
		if n == 0 {
			return nil, xerr.New(xerr.InvalidInput, "%s holds no PEM public key", p).WithHint("pass the .pub file written by `stella export key generate` or cosign")
		}
	}
	return out, nil
}

func verifyAny(vs []signing.Verifier, digest string, sig []byte) (string, error) {
	d, err := hex.DecodeString(strings.TrimPrefix(digest, "sha256:"))
	if err != nil || len(d) != 32 {
		return "", fmt.Errorf("bad digest %q", digest)
	}
	var dd [32]byte
	copy(dd[:], d)
	var last error
	for _, v := range vs {
		if err := v.VerifyDigest(dd, sig); err == nil {
			return v.KeyID(), nil
		} else {
			last = err
		}
	}
	return "", last
}

// verifySignatures adds the signature, DSSE and provenance checks to a report.
func verifySignatures(ctx context.Context, f *Factory, o *VerifyOptions, rep *bundle.Report) error {
	if rep.Manifest == nil {
		return nil
	}
	vs, err := loadVerifiers(o)
	if err != nil {
		return err
	}
	// Provenance subjects must match what is in the bundle (with or without a key).
	if prov, ok := rep.Meta["provenance.json"]; ok {
		rep.Add(checkProvenance(prov, rep))
	} else {
		rep.Add(bundle.Check{Name: "provenance", OK: false, Detail: "provenance.json is missing"})
	}
	var sigs []string
	for rel := range rep.Meta {
		if strings.HasPrefix(rel, "signatures/") {
			sigs = append(sigs, rel)
		}
	}
	sort.Strings(sigs)
	if len(vs) == 0 {
		detail := "not checked: pass --key <cosign.pub> (or --trust-root)"
		if len(sigs) == 0 {
			detail = "the bundle is unsigned; " + detail
		}
		rep.Add(bundle.Check{Name: "signatures", OK: true, Detail: detail})
		return nil
	}
	if len(sigs) == 0 {
		rep.Add(bundle.Check{Name: "signatures", OK: false, Detail: "the bundle carries no signatures (signatures/ is empty)"})
	}
	for _, rel := range sigs {
		target, known := signedFiles[rel]
		name := "signature " + rel
		if !known {
			rep.Add(bundle.Check{Name: name, OK: false, Detail: "unknown signature file"})
			continue
		}
		digest, ok := rep.Digests[target]
		if !ok {
			rep.Add(bundle.Check{Name: name, OK: false, Detail: target + " is missing"})
			continue
		}
		if key, err := verifyAny(vs, digest, rep.Meta[rel]); err != nil {
			rep.Add(bundle.Check{Name: name, OK: false, Detail: fmt.Sprintf("does not verify %s with the given key(s): %v", target, err)})
		} else {
			rep.Add(bundle.Check{Name: name, OK: true, Detail: target + " signed by key " + key})
		}
	}
	if env, ok := rep.Meta["provenance.dsse.json"]; ok {
		rep.Add(checkDSSE(vs, env, rep))
	} else {
		rep.Add(bundle.Check{Name: "provenance-dsse", OK: false, Detail: "provenance.dsse.json is missing from a signed bundle"})
	}
	// The whole-archive signature beside the bundle, when there is one.
	if st, err := os.Stat(rep.Bundle); err == nil && !st.IsDir() {
		sum, _, herr := bundle.FileSHA256(rep.Bundle)
		if sig, err := os.ReadFile(rep.Bundle + ArchiveSigSuffix); err == nil && herr == nil {
			if key, err := verifyAny(vs, sum, sig); err != nil {
				rep.Add(bundle.Check{Name: "archive-signature", OK: false, Detail: fmt.Sprintf("%s: %v", rep.Bundle+ArchiveSigSuffix, err)})
			} else {
				rep.Add(bundle.Check{Name: "archive-signature", OK: true, Detail: "signed by key " + key})
			}
		}
		bpath := o.Bundle
		if bpath == "" {
			if _, err := os.Stat(rep.Bundle + ArchiveBundleSuffix); err == nil {
				bpath = rep.Bundle + ArchiveBundleSuffix
			}
		}
		if bpath != "" {
			rep.Add(checkSigstoreBundle(vs, bpath, rep.Bundle))
		}
	} else if o.Bundle != "" {
		rep.Add(bundle.Check{Name: "sigstore-bundle", OK: false, Detail: "--bundle needs the bundle archive, not a directory"})
	}
	return nil
}

func checkSigstoreBundle(vs []signing.Verifier, bpath, archive string) bundle.Check {
	data, err := os.ReadFile(bpath)
	if err != nil {
		return bundle.Check{Name: "sigstore-bundle", OK: false, Detail: err.Error()}
	}
	var last error
	for _, v := range vs {
		f, err := os.Open(archive)
		if err != nil {
			return bundle.Check{Name: "sigstore-bundle", OK: false, Detail: err.Error()}
		}
		err = signing.VerifyBundle(v, data, f)
		f.Close()
		if err == nil {
			return bundle.Check{Name: "sigstore-bundle", OK: true, Detail: filepath.Base(bpath) + " verifies the archive"}
		}
		last = err
	}
	return bundle.Check{Name: "sigstore-bundle", OK: false, Detail: fmt.Sprintf("%s: %v", bpath, last)}
}

func checkDSSE(vs []signing.Verifier, env []byte, rep *bundle.Report) bundle.Check {
	var payload []byte
	var last error
	for _, v := range vs {
		_, p, err := signing.VerifyDSSE(v, env)
		if err == nil {
			payload = p
			break
		}
		last = err
	}
	if payload == nil {
		return bundle.Check{Name: "provenance-dsse", OK: false, Detail: fmt.Sprintf("envelope signature: %v", last)}
	}
	if prov, ok := rep.Meta["provenance.json"]; ok && !bytes.Equal(prov, payload) {
		return bundle.Check{Name: "provenance-dsse", OK: false, Detail: "the envelope's statement differs from provenance.json"}
	}
	c := checkProvenance(payload, rep)
	c.Name = "provenance-dsse"
	if c.OK {
		c.Detail = "envelope signed; " + c.Detail
	}
	return c
}

// checkProvenance checks that the statement's subjects are export.json and
// every content entry, with the digests the bundle has.
func checkProvenance(raw []byte, rep *bundle.Report) bundle.Check {
	st, err := signing.ParseStatement(raw)
	if err != nil {
		return bundle.Check{Name: "provenance", OK: false, Detail: err.Error()}
	}
	want := map[string]string{"export.json": rep.Digests["export.json"]}
	for _, c := range rep.Manifest.Contents {
		want[c.Path] = c.Digest
	}
	var bad []string
	seen := map[string]bool{}
	for _, s := range st.Subject {
		seen[s.Name] = true
		w, ok := want[s.Name]
		if !ok {
			bad = append(bad, s.Name+": not in the bundle")
			continue
		}
		if "sha256:"+s.Digest["sha256"] != w {
			bad = append(bad, s.Name+": digest differs")
		}
	}
	for n := range want {
		if !seen[n] {
			bad = append(bad, n+": no subject")
		}
	}
	sort.Strings(bad)
	if len(bad) > 0 {
		return bundle.Check{Name: "provenance", OK: false, Detail: strings.Join(bad, "; ")}
	}
	return bundle.Check{Name: "provenance", OK: true, Detail: fmt.Sprintf("%d subjects match", len(st.Subject))}
}
