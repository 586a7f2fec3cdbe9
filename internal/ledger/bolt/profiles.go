package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"

	"go.etcd.io/bbolt"

	"github.com/stellaops/stella/internal/ledger"
	"github.com/stellaops/stella/internal/xerr"
	"github.com/stellaops/stella/pkg/exportapi"
)

// Profile layout: profiles/<tenant>/<name>/ holds a "revisions" bucket
// (8-byte big-endian revision number -> Profile JSON) and, once archived,
// the key "archived".

var (
	bRevisions = []byte("revisions")
	kArchived  = []byte("archived")
)

func revKey(n int64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, uint64(n))
	return b
}

// profileBucket returns the bucket of one profile, nil when it does not exist.
func profileBucket(tx *bbolt.Tx, tenant, name string) *bbolt.Bucket {
	t := tx.Bucket(bProfiles).Bucket([]byte(tenant))
	if t == nil {
		return nil
	}
	return t.Bucket([]byte(name))
}

func decodeProfile(nb *bbolt.Bucket, raw []byte) (exportapi.Profile, error) {
	var p exportapi.Profile
	if err := json.Unmarshal(raw, &p); err != nil {
		return p, xerr.Wrap(xerr.Internal, err, "ledger: a profile revision is damaged")
	}
	p.Archived = nb.Get(kArchived) != nil
	return p, nil
}

// latest returns the newest revision of a profile bucket.
func latest(nb *bbolt.Bucket) (exportapi.Profile, int64, bool, error) {
	revs := nb.Bucket(bRevisions)
	if revs == nil {
		return exportapi.Profile{}, 0, false, nil
	}
	k, v := revs.Cursor().Last()
	if k == nil {
		return exportapi.Profile{}, 0, false, nil
	}
	p, err := decodeProfile(nb, v)
	return p, int64(binary.BigEndian.Uint64(k)), true, err
}

// SaveProfile stores p as the next revision when its labels or spec differ
// (canonical JSON) from the latest revision.
func (l *Ledger) SaveProfile(ctx context.Context, p exportapi.Profile) (exportapi.Profile, bool, error) {
	if err := ledger.PrepareProfile(&p); err != nil {
		return p, false, err
	}
	content, err := ledger.ProfileContent(p)
	if err != nil {
		return p, false, xerr.Wrap(xerr.InvalidInput, err, "profile %q", p.Metadata.Name)
	}
	tenant, name := p.Metadata.Tenant, p.Metadata.Name
	var out exportapi.Profile
	var created bool
	err = l.update(ctx, func(tx *bbolt.Tx) error {
		if nb := profileBucket(tx, tenant, name); nb != nil {
			if nb.Get(kArchived) != nil {
				return ledger.ArchivedProfile(tenant, name)
			}
			cur, _, ok, err := latest(nb)
			if err != nil {
				return err
			}
			if ok {
				cc, err := ledger.ProfileContent(cur)
				if err != nil {
					return err
				}
				if bytes.Equal(cc, content) {
					out = cur
					return nil
				}
			}
		}
		tb, err := tx.Bucket(bProfiles).CreateBucketIfNotExists([]byte(tenant))
		if err != nil {
			return err
		}
		nb, err := tb.CreateBucketIfNotExists([]byte(name))
		if err != nil {
			return err
		}
		revs, err := nb.CreateBucketIfNotExists(bRevisions)
		if err != nil {
			return err
		}
		_, n, _, err := latest(nb)
		if err != nil {
			return err
		}
		p.Metadata.Revision = ledger.RevisionName(n + 1)
		raw, err := json.Marshal(p)
		if err != nil {
			return err
		}
		out, created = p, true
		return revs.Put(revKey(n+1), raw)
	})
	if err != nil {
		return exportapi.Profile{}, false, internal(err, "save profile %s/%s", tenant, name)
	}
	return out, created, nil
}

// Profile returns one revision ("" = latest) of a profile.
func (l *Ledger) Profile(ctx context.Context, tenant, name, revision string) (exportapi.Profile, error) {
	var n int64
	if revision != "" {
		var ok bool
		if n, ok = ledger.ParseRevision(revision); !ok {
			return exportapi.Profile{}, ledger.ProfileNotFound(tenant, name, revision)
		}
	}
	var out exportapi.Profile
	err := l.view(ctx, func(tx *bbolt.Tx) error {
		nb := profileBucket(tx, tenant, name)
		if nb == nil {
			return ledger.ProfileNotFound(tenant, name, "")
		}
		if n == 0 {
			p, _, ok, err := latest(nb)
			if !ok && err == nil {
				return ledger.ProfileNotFound(tenant, name, "")
			}
			out = p
			return err
		}
		raw := nb.Bucket(bRevisions).Get(revKey(n))
		if raw == nil {
			return ledger.ProfileNotFound(tenant, name, revision)
		}
		var err error
		out, err = decodeProfile(nb, raw)
		return err
	})
	return out, err
}

// Profiles returns the latest revision of every profile of a tenant, by name.
func (l *Ledger) Profiles(ctx context.Context, tenant string) ([]exportapi.Profile, error) {
	if err := ledger.CheckTenant(tenant); err != nil {
		return nil, err
	}
	out := []exportapi.Profile{}
	err := l.view(ctx, func(tx *bbolt.Tx) error {
		tb := tx.Bucket(bProfiles).Bucket([]byte(tenant))
		if tb == nil {
			return nil
		}
		return tb.ForEachBucket(func(name []byte) error {
			p, _, ok, err := latest(tb.Bucket(name))
			if ok {
				out = append(out, p)
			}
			return err
		})
	})
	return out, err
}

// ProfileRevisions returns every revision of a profile, oldest first.
func (l *Ledger) ProfileRevisions(ctx context.Context, tenant, name string) ([]exportapi.Profile, error) {
	var out []exportapi.Profile
	err := l.view(ctx, func(tx *bbolt.Tx) error {
		nb := profileBucket(tx, tenant, name)
		if nb == nil || nb.Bucket(bRevisions) == nil {
			return ledger.ProfileNotFound(tenant, name, "")
		}
		return nb.Bucket(bRevisions).ForEach(func(_, v []byte) error {
			p, err := decodeProfile(nb, v)
			out = append(out, p)
			return err
		})
	})
	if err == nil && len(out) == 0 {
		err = ledger.ProfileNotFound(tenant, name, "")
	}
	return out, err
}

// ArchiveProfile marks a profile archived (idempotent).
func (l *Ledger) ArchiveProfile(ctx context.Context, tenant, name string) error {
	return l.update(ctx, func(tx *bbolt.Tx) error {
		nb := profileBucket(tx, tenant, name)
		if nb == nil {
			return ledger.ProfileNotFound(tenant, name, "")
		}
		return nb.Put(kArchived, []byte("true"))
	})
}
