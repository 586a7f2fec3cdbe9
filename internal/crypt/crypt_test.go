package crypt_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/stellaops/stella/internal/crypt"
	"github.com/stellaops/stella/internal/xerr"
)

func identity(t *testing.T) (*age.X25519Identity, string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "key.txt")
	if err := os.WriteFile(p, []byte("# test key\n"+id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return id, p
}

func seal(t *testing.T, s *crypt.Sealer, plain []byte, rel string) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := s.Seal(&out, bytes.NewReader(plain), rel); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// sizes around the chunk boundaries.
var sizes = []int{0, 1, crypt.ChunkSize - 1, crypt.ChunkSize, crypt.ChunkSize + 1, 3*crypt.ChunkSize + 17}

func TestRoundTrip(t *testing.T) {
	id1, _ := identity(t)
	id2, _ := identity(t)
	recips := []string{id2.Recipient().String(), id1.Recipient().String()}
	for _, mode := range []string{crypt.ModeAge, crypt.ModeAESGCM} {
		s, err := crypt.NewSealer(mode, recips, "acme-mirror-0123456789abcdef")
		if err != nil {
			t.Fatal(err)
		}
		mc := s.Manifest()
		if mc.Mode != mode || len(mc.Recipients) != 2 || mc.Recipients[0] > mc.Recipients[1] {
			t.Fatalf("%s: manifest %+v: recipients not sorted", mode, mc)
		}
		if mode == crypt.ModeAESGCM && (len(mc.Keys) != 2 || mc.Keys[0].Recipient != mc.Recipients[0]) {
			t.Fatalf("aes-gcm: wrapped keys %+v", mc.Keys)
		}
		for _, n := range sizes {
			plain := make([]byte, n)
			rand.Read(plain)
			rel := "data/raw/advisories/osv.jsonl.zst"
			ct := seal(t, s, plain, rel)
			for _, id := range []*age.X25519Identity{id1, id2} { // every recipient opens it
				op, err := crypt.NewOpener(mc, "acme-mirror-0123456789abcdef", []age.Identity{id})
				if err != nil {
					t.Fatal(err)
				}
				var out bytes.Buffer
				if err := op.Open(&out, bytes.NewReader(ct), rel); err != nil {
					t.Fatalf("%s size %d: %v", mode, n, err)
				}
				if !bytes.Equal(out.Bytes(), plain) {
					t.Fatalf("%s size %d: plaintext differs", mode, n)
				}
			}
		}
	}
}

func TestAESGCMRejectsTampering(t *testing.T) {
	id, _ := identity(t)
	s, err := crypt.NewSealer(crypt.ModeAESGCM, []string{id.Recipient().String()}, "x-y-0000")
	if err != nil {
		t.Fatal(err)
	}
	plain := make([]byte, 2*crypt.ChunkSize+100)
	rand.Read(plain)
	rel := "data/policy/evaluations.jsonl.zst"
	ct := seal(t, s, plain, rel)
	op, err := crypt.NewOpener(s.Manifest(), "x-y-0000", []age.Identity{id})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]func() ([]byte, string, *crypt.Opener){
		"flipped byte":     func() ([]byte, string, *crypt.Opener) { c := bytes.Clone(ct); c[len(c)/2] ^= 1; return c, rel, op },
		"truncated":        func() ([]byte, string, *crypt.Opener) { return ct[:len(ct)-10], rel, op },
		"cut at a chunk":   func() ([]byte, string, *crypt.Opener) { return ct[:len(crypt.Magic)+12+crypt.ChunkSize+16], rel, op },
		"other path (AAD)": func() ([]byte, string, *crypt.Opener) { return ct, "data/policy/snapshot.json", op },
		"other export id": func() ([]byte, string, *crypt.Opener) {
			o, err := crypt.NewOpener(s.Manifest(), "x-y-0001", []age.Identity{id})
			if err != nil {
				t.Fatal(err)
			}
			return ct, rel, o
		},
		"bad header": func() ([]byte, string, *crypt.Opener) { c := bytes.Clone(ct); c[0] = 'X'; return c, rel, op },
	}
	for name, mk := range cases {
		c, r, o := mk()
		if err := o.Open(&bytes.Buffer{}, bytes.NewReader(c), r); err == nil || !xerr.Is(err, xerr.Verify) {
			t.Errorf("%s: want ERR_EXPORT_VERIFY, got %v", name, err)
		}
	}
}

func TestWrongIdentity(t *testing.T) {
	right, _ := identity(t)
	wrong, _ := identity(t)
	for _, mode := range []string{crypt.ModeAge, crypt.ModeAESGCM} {
		s, err := crypt.NewSealer(mode, []string{right.Recipient().String()}, "e-1")
		if err != nil {
			t.Fatal(err)
		}
		ct := seal(t, s, []byte("secret"), "data/x.jsonl")
		op, err := crypt.NewOpener(s.Manifest(), "e-1", []age.Identity{wrong})
		if err == nil {
			err = op.Open(&bytes.Buffer{}, bytes.NewReader(ct), "data/x.jsonl")
		}
		if err == nil || !errors.Is(err, crypt.ErrWrongIdentity) || !strings.Contains(err.Error(), "wrong identity") {
			t.Fatalf("%s: want a wrong-identity error, got %v", mode, err)
		}
		// Both modes say it before reading a file, naming the bundle's
		// recipients and the keys given.
		if op, _ := crypt.NewOpener(s.Manifest(), "e-1", []age.Identity{wrong}); op != nil {
			t.Errorf("%s: a wrong identity was found out only at the first file", mode)
		}
		if !strings.Contains(err.Error(), right.Recipient().String()) || !strings.Contains(err.Error(), wrong.Recipient().String()) {
			t.Errorf("%s: the error should name the bundle's recipients and the given keys: %v", mode, err)
		}
		if _, err := crypt.NewOpener(s.Manifest(), "e-1", nil); err == nil || !strings.Contains(err.Error(), "--identity") {
			t.Errorf("%s: no identity: %v", mode, err)
		}
	}
}

func TestRecipients(t *testing.T) {
	id, _ := identity(t)
	for _, bad := range [][]string{nil, {"kms://projects/x/keys/y"}, {"age1notakey"}, {"ssh-ed25519 AAAA"}} {
		if _, _, err := crypt.ParseRecipients(bad); err == nil || !xerr.Is(err, xerr.InvalidInput) {
			t.Errorf("%q: want ERR_EXPORT_INVALID_INPUT, got %v", bad, err)
		}
	}
	r := id.Recipient().String()
	got, _, err := crypt.ParseRecipients([]string{r, " " + r})
	if err != nil || len(got) != 1 {
		t.Fatalf("dedupe: %v %v", got, err)
	}
	if err := crypt.CheckMode("rot13"); err == nil {
		t.Fatal("bad mode accepted")
	}
}

// TestAgeCLIDecrypts uses the stock age CLI (Debian package age, bin/age
// from tools/install.sh) as the oracle: an age-mode data file decrypts with
// `age -d -i key`.
func TestAgeCLIDecrypts(t *testing.T) {
	ageBin := agePath(t)
	id, keyFile := identity(t)
	other, _ := identity(t)
	s, err := crypt.NewSealer(crypt.ModeAge, []string{id.Recipient().String(), other.Recipient().String()}, "e-2")
	if err != nil {
		t.Fatal(err)
	}
	plain := make([]byte, 200_000)
	rand.Read(plain)
	ct := filepath.Join(t.TempDir(), "advisories.jsonl.zst")
	if err := os.WriteFile(ct, seal(t, s, plain, "data/raw/advisories/a.jsonl.zst"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(ageBin, "-d", "-i", keyFile, ct).Output()
	if err != nil {
		t.Fatalf("age -d: %v", err)
	}
	if !bytes.Equal(out, plain) {
		t.Fatal("age -d gave other bytes")
	}
}

func agePath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("STELLA_AGE")
	if p == "" {
		p, _ = filepath.Abs(filepath.Join("..", "..", "bin", "age"))
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode()&0o111 == 0 {
		msg := "age oracle not found at " + p + " (run tools/install.sh, or set STELLA_AGE)"
		if os.Getenv("STELLA_REQUIRE_ORACLES") != "" {
			t.Fatal(msg + "; STELLA_REQUIRE_ORACLES is set")
		}
		t.Skip(msg)
	}
	return p
}
