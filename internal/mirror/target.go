package mirror

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/stellaops/stella/internal/canon"
	"github.com/stellaops/stella/internal/xerr"
)

// A target directory holds the applied mirror:
//
//	<target>/mirror-target.json   {"current":"g-000003-<hex12>","schema":…}: the one file whose
//	                               atomic replacement switches the target to a new state
//	<target>/g-000003-<hex12>/     the current generation, a mirror root: README.md, data/,
//	                               indexes/, chain.json, bundles/<sequence>/ (manifests, signatures)
//	<target>/.staging-*/           an apply in progress (or killed); removed by the next apply
//	<target>/.lock                 held while applying
const (
	PointerFile = "mirror-target.json"
	ChainFile   = "chain.json"
	lockFile    = ".lock"
	stagingPfx  = ".staging-"
)

// Pointer is mirror-target.json.
type Pointer struct {
	Current string `json:"current"`
	// Previous is the generation before Current. It is kept until the
	// next apply so that a reader that started before the switch (an
	// export reading the target as its source) can finish.
	Previous string `json:"previous,omitempty"`
	Schema   string `json:"schema"`
}

// Chain is chain.json of a generation: the bundles applied since the last full one.
type Chain struct {
	Applied []Link `json:"applied"`
	Schema  string `json:"schema"`
	Tenant  string `json:"tenant"`
}

// Link is one applied bundle.
type Link struct {
	Added              int    `json:"added"`
	AppliedAt          string `json:"appliedAt"`
	BaseManifestDigest string `json:"baseManifestDigest,omitempty"`
	Bundle             string `json:"bundle"` // file name it was applied from
	Changed            int    `json:"changed"`
	Expires            string `json:"expires"`
	ExportID           string `json:"exportId"`
	GeneratedAt        string `json:"generatedAt"`
	ManifestDigest     string `json:"manifestDigest"`
	Profile            string `json:"profile"`
	Removed            int    `json:"removed"`
	Sequence           int64  `json:"sequence"`
	Variant            string `json:"variant"`
}

// Head is the last applied bundle.
func (c *Chain) Head() *Link {
	if c == nil || len(c.Applied) == 0 {
		return nil
	}
	return &c.Applied[len(c.Applied)-1]
}

var genName = regexp.MustCompile(`^g-[0-9]{6,}-[0-9a-f]{12}$`)

// State is what a target holds now.
type State struct {
	Target     string `json:"target"`
	Generation string `json:"generation,omitempty"` // folder name of the current generation
	Chain      *Chain `json:"chain,omitempty"`      // nil for an empty target
	previous   string
}

// Dir is the current generation's folder ("" when empty).
func (s *State) Dir() string {
	if s.Generation == "" {
		return ""
	}
	return filepath.Join(s.Target, s.Generation)
}

// ReadState reads a target's current state. A target that does not exist
// or has no pointer yet is empty.
func ReadState(target string) (*State, error) {
	st := &State{Target: target}
	raw, err := os.ReadFile(filepath.Join(target, PointerFile))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	var p Pointer
	if err := json.Unmarshal(raw, &p); err != nil || p.Schema != TargetSchema || !genName.MatchString(p.Current) {
		return nil, xerr.New(xerr.Verify, "%s: %s is not a stella mirror pointer", target, PointerFile)
	}
	st.Generation, st.previous = p.Current, p.Previous
	craw, err := os.ReadFile(filepath.Join(target, p.Current, ChainFile))
	if err != nil {
		return nil, xerr.New(xerr.Verify, "%s: the current generation %s is unreadable: %v", target, p.Current, err)
	}
	var c Chain
	if err := json.Unmarshal(craw, &c); err != nil || c.Schema != ChainSchema || len(c.Applied) == 0 {
		return nil, xerr.New(xerr.Verify, "%s: %s/%s is not a mirror chain", target, p.Current, ChainFile)
	}
	st.Chain = &c
	return st, nil
}

// IsTarget reports whether dir holds an applied mirror.
func IsTarget(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, PointerFile))
	return err == nil
}

// CurrentRoot returns the mirror root of an applied target (its current generation).
func CurrentRoot(target string) (string, error) {
	st, err := ReadState(target)
	if err != nil {
		return "", err
	}
	if st.Generation == "" {
		return "", xerr.New(xerr.InvalidInput, "%s holds no applied mirror yet", target)
	}
	return st.Dir(), nil
}

func writeJSON(path string, v any) error {
	b, err := canon.Marshal(v)
	if err != nil {
		return err
	}
	return writeFileSync(path, append(b, '\n'))
}

func writeFileSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// syncTree fsyncs every file and folder below dir.
func syncTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		return err
	})
}

// cleanLeftovers removes what a killed apply may have left: staging
// folders and generations that the pointer does not name.
func cleanLeftovers(target string, keep ...string) error {
	ents, err := os.ReadDir(target)
	if err != nil {
		return err
	}
	for _, e := range ents {
		n := e.Name()
		switch {
		case strings.HasPrefix(n, stagingPfx), genName.MatchString(n) && !slices.Contains(keep, n):
			if err := os.RemoveAll(filepath.Join(target, n)); err != nil {
				return err
			}
		case n == PointerFile+".tmp":
			os.Remove(filepath.Join(target, n))
		}
	}
	return nil
}

// checkTargetDir refuses a non-empty folder that is not a mirror target, so
// that apply never mixes a mirror into unrelated files.
func checkTargetDir(target string) error {
	ents, err := os.ReadDir(target)
	if err != nil {
		return err
	}
	for _, e := range ents {
		n := e.Name()
		if n == PointerFile || n == lockFile || n == PointerFile+".tmp" || strings.HasPrefix(n, stagingPfx) || genName.MatchString(n) {
			continue
		}
		return xerr.New(xerr.InvalidInput, "--target %s holds %q and is not a stella mirror target", target, n).
			WithHint("apply into an empty or new folder, or into one that `stella export mirror apply` made")
	}
	return nil
}

type digester struct{ h hash.Hash }

func newDigester() *digester { return &digester{h: sha256.New()} }

func (d *digester) Write(p []byte) (int, error) { return d.h.Write(p) }
func (d *digester) digest() string              { return "sha256:" + hex.EncodeToString(d.h.Sum(nil)) }

func digestBytes(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func genDirName(seq int64, manifestDigest string) string {
	h := strings.TrimPrefix(manifestDigest, "sha256:")
	if len(h) > 12 {
		h = h[:12]
	}
	return fmt.Sprintf("g-%06d-%s", seq, h)
}
