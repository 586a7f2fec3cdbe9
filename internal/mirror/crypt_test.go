package mirror_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/stellaops/stella/internal/bundle"
	"github.com/stellaops/stella/internal/crypt"
	"github.com/stellaops/stella/internal/engine"
	"github.com/stellaops/stella/internal/mirror"
	"github.com/stellaops/stella/internal/xerr"
	"github.com/stellaops/stella/pkg/exportapi"
)

func encProfile(name, variant, mode string, recipients ...string) exportapi.Profile {
	return exportapi.Profile{APIVersion: exportapi.ProfileAPIVersion, Kind: exportapi.ProfileKind,
		Metadata: exportapi.ProfileMetadata{Name: name, Tenant: "acme", Labels: map[string]string{"stellaops.io/mirror-chain": "enc"}},
		Spec: exportapi.ProfileSpec{Kind: "mirror", Variant: variant, Include: []string{"advisories", "findings", "sboms", "vex"},
			PolicySnapshotMode: "optional", Compression: exportapi.Compression{Codec: "zstd", Level: 3},
			Encryption: exportapi.Encryption{Enabled: true, Mode: mode, RecipientKeys: recipients}}}
}

func newIdentity(t *testing.T) (*age.X25519Identity, string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "key.txt")
	if err := os.WriteFile(p, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return id, p
}

// encryptedChain builds full(t0) and delta(t0->t1) with encrypted profiles.
func encryptedChain(t *testing.T, f *fixture, mode string, recipients ...string) (full, delta string) {
	t.Helper()
	e, err := newEngine(filepath.Join(t.TempDir(), "enc"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, v := range []string{"full", "delta"} {
		if _, _, err := e.Ledger().SaveProfile(ctx, encProfile("enc-"+v, v, mode, recipients...)); err != nil {
			t.Fatal(err)
		}
	}
	r0, err := runEngine(e, engine.SubmitRequest{Profile: "enc-full", Sources: sources(f.t0), SkipInvalid: true})
	if err != nil {
		t.Fatal(err)
	}
	r1, err := runEngine(e, engine.SubmitRequest{Profile: "enc-delta", Sources: sources(f.t1), SkipInvalid: true})
	if err != nil {
		t.Fatal(err)
	}
	return archiveOf(r0), archiveOf(r1)
}

func TestEncryptedMirror(t *testing.T) {
	f := getFixture(t)
	id, key := newIdentity(t)
	id2, _ := newIdentity(t)
	wrong, _ := newIdentity(t)
	plain, _ := manifestOf(t, f.full0)
	for _, mode := range []string{crypt.ModeAge, crypt.ModeAESGCM} {
		t.Run(mode, func(t *testing.T) {
			full, delta := encryptedChain(t, f, mode, id.Recipient().String(), id2.Recipient().String())
			m, _ := manifestOf(t, full)
			if m.Encryption == nil || m.Encryption.Mode != mode || len(m.Encryption.Recipients) != 2 {
				t.Fatalf("encryption %+v", m.Encryption)
			}
			// The recipients are in provenance too.
			prov, err := os.ReadFile(filepath.Join(extract(t, full), "provenance.json"))
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range m.Encryption.Recipients {
				if !strings.Contains(string(prov), r) {
					t.Errorf("provenance.json does not list recipient %s", r)
				}
			}
			// rerunHash is over plaintext digests: the same as the plain bundle's.
			if m.RerunHash != plain.RerunHash {
				t.Errorf("rerunHash %s, plain bundle %s", m.RerunHash, plain.RerunHash)
			}
			for _, c := range m.Contents {
				enc := strings.HasPrefix(c.Path, "data/")
				if enc != (c.PlainDigest != "") || (enc && c.PlainDigest == c.Digest) {
					t.Errorf("%s: digest %s plainDigest %s", c.Path, c.Digest, c.PlainDigest)
				}
			}
			// Indexes stay readable: verify without an identity passes.
			for _, b := range []string{full, delta} {
				if rep := mirror.Verify(b, mirror.VerifyOptions{Now: now()}); !rep.OK {
					t.Fatalf("verify %s: %+v", filepath.Base(b), rep.Failed())
				}
				rep := mirror.Verify(b, mirror.VerifyOptions{Now: now(), Identities: []age.Identity{id2}})
				if !rep.OK {
					t.Fatalf("verify with identity: %+v", rep.Failed())
				}
				rep = mirror.Verify(b, mirror.VerifyOptions{Now: now(), Identities: []age.Identity{wrong}})
				if rep.OK || !strings.Contains(failedDetail(rep.Failed()), "wrong identity") {
					t.Fatalf("verify with a wrong identity: %+v", rep.Failed())
				}
			}
			target := filepath.Join(t.TempDir(), "m")
			_, err = applyLog(t, target, mirror.ApplyOptions{}, full)
			if !xerr.Is(err, xerr.Verify) || !strings.Contains(err.Error(), "--identity") {
				t.Fatalf("no identity: %v", err)
			}
			log, err := applyLog(t, target, mirror.ApplyOptions{Identities: []age.Identity{wrong}}, full, delta)
			if !xerr.Is(err, xerr.Verify) || !strings.Contains(err.Error(), "wrong identity") || !strings.Contains(log, "mirror.delta.apply_failed") {
				t.Fatalf("wrong identity: %v", err)
			}
			if st, _ := mirror.ReadState(target); st.Chain != nil {
				t.Fatal("target changed")
			}
			applyOK(t, target, mirror.ApplyOptions{Identities: []age.Identity{id}}, full, delta)
			sameAsFull(t, target, f.full1)

			// Not deterministic (random keys), but the plaintext is.
			full2, _ := encryptedChain(t, f, mode, id.Recipient().String(), id2.Recipient().String())
			m2, _ := manifestOf(t, full2)
			a, _ := os.ReadFile(full)
			b, _ := os.ReadFile(full2)
			if string(a) == string(b) {
				t.Error("two encrypted bundles are byte-identical; the keys should be random")
			}
			if m2.RerunHash != m.RerunHash || m2.ExportID != m.ExportID {
				t.Errorf("rerunHash/exportId differ between two encrypted runs")
			}
			if mode == crypt.ModeAge {
				ageDecrypts(t, full, key, m)
			}
		})
	}
}

func failedDetail(cs []bundle.Check) string {
	var s []string
	for _, c := range cs {
		s = append(s, c.Name+": "+c.Detail)
	}
	return strings.Join(s, "; ")
}

// ageDecrypts decrypts every data file of an age-mode bundle with the stock
// age CLI (the oracle) and compares it with its plainDigest.
func ageDecrypts(t *testing.T, archive, key string, m *exportapi.Manifest) {
	t.Helper()
	ageBin := os.Getenv("STELLA_AGE")
	if ageBin == "" {
		ageBin = repoPath("bin/age")
	}
	if fi, err := os.Stat(ageBin); err != nil || fi.Mode()&0o111 == 0 {
		if os.Getenv("STELLA_REQUIRE_ORACLES") != "" {
			t.Fatalf("age oracle not found at %s", ageBin)
		}
		t.Logf("age oracle not found at %s (tools/install.sh); skipping the CLI check", ageBin)
		return
	}
	root := extract(t, archive)
	n := 0
	for _, c := range m.Contents {
		if c.PlainDigest == "" {
			continue
		}
		out, err := exec.Command(ageBin, "-d", "-i", key, filepath.Join(root, filepath.FromSlash(c.Path))).Output()
		if err != nil {
			t.Fatalf("age -d %s: %v", c.Path, err)
		}
		s := sha256.Sum256(out)
		if "sha256:"+hex.EncodeToString(s[:]) != c.PlainDigest {
			t.Fatalf("age -d %s: plaintext differs from plainDigest", c.Path)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no encrypted file")
	}
}
