package ledger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/stellaops/stella/internal/xerr"
	"github.com/stellaops/stella/pkg/exportapi"
)

// The rules below are shared by every backend so that they all answer the
// same way (the conformance suite in ledgertest checks them).

var (
	slugRE  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	runIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
)

// ProfileListHint is the hint of a missing-profile error.
const ProfileListHint = "`stella export profile list` shows the profiles of a tenant; `stella export profile show <name>` their revisions"

// CheckRunID accepts run ids that are safe as file names: 1 to 128 of
// A-Z a-z 0-9 . _ -, not starting with a dot, dash or underscore.
func CheckRunID(id string) error {
	if !runIDRE.MatchString(id) {
		return xerr.New(xerr.InvalidInput, "run id %q is not valid: want 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit", id)
	}
	return nil
}

// CheckTenant accepts lowercase slugs (SPEC §3).
func CheckTenant(tenant string) error {
	if !slugRE.MatchString(tenant) {
		return xerr.New(xerr.InvalidInput, "tenant %q is not a lowercase slug (a-z, 0-9, -)", tenant)
	}
	return nil
}

// CheckProfileName accepts lowercase slugs of 3 to 64 characters (SPEC §3).
func CheckProfileName(name string) error {
	if !slugRE.MatchString(name) || len(name) < 3 || len(name) > 64 {
		return xerr.New(xerr.InvalidInput, "profile name %q must be a lowercase slug of 3 to 64 characters (a-z, 0-9, -)", name)
	}
	return nil
}

// RunNotFound is the error of a missing run.
func RunNotFound(id string) error {
	return xerr.New(xerr.RunNotFound, "no run %q", id).
		WithHint("`stella export run list` shows the runs of a tenant")
}

// ProfileNotFound is the error of a missing profile or revision.
func ProfileNotFound(tenant, name, revision string) error {
	if revision != "" {
		return xerr.New(xerr.ProfileNotFound, "profile %q of tenant %q has no revision %q", name, tenant, revision).
			WithHint("%s", ProfileListHint)
	}
	return xerr.New(xerr.ProfileNotFound, "no profile %q for tenant %q", name, tenant).WithHint("%s", ProfileListHint)
}

// RevisionName is the name of revision n: r1, r2, ...
func RevisionName(n int64) string { return "r" + strconv.FormatInt(n, 10) }

// ParseRevision turns "r3" into 3; ok is false for anything else.
func ParseRevision(s string) (n int64, ok bool) {
	if !strings.HasPrefix(s, "r") || len(s) < 2 || s[1] == '0' {
		return 0, false
	}
	n, err := strconv.ParseInt(s[1:], 10, 64)
	return n, err == nil && n > 0
}

// PrepareProfile checks a profile given to SaveProfile and fills the
// defaults: apiVersion and kind when empty; revision and archived are the
// ledger's to set and are cleared.
func PrepareProfile(p *exportapi.Profile) error {
	if err := CheckTenant(p.Metadata.Tenant); err != nil {
		return err
	}
	if err := CheckProfileName(p.Metadata.Name); err != nil {
		return err
	}
	if p.APIVersion == "" {
		p.APIVersion = exportapi.ProfileAPIVersion
	}
	if p.Kind == "" {
		p.Kind = exportapi.ProfileKind
	}
	if p.APIVersion != exportapi.ProfileAPIVersion || p.Kind != exportapi.ProfileKind {
		return xerr.New(xerr.InvalidInput, "profile %q: apiVersion/kind %q/%q, want %q/%q",
			p.Metadata.Name, p.APIVersion, p.Kind, exportapi.ProfileAPIVersion, exportapi.ProfileKind)
	}
	p.Metadata.Revision = ""
	p.Archived = false
	return nil
}

// ArchivedProfile is the error of saving an archived profile.
func ArchivedProfile(tenant, name string) error {
	return xerr.New(xerr.InvalidInput, "profile %q of tenant %q is archived and cannot be saved again", name, tenant).
		WithHint("create the profile under a new name")
}

// ProfileContent is the canonical JSON of what makes a new revision: labels
// and spec. Absent, null, empty lists and empty objects are the same thing.
func ProfileContent(p exportapi.Profile) ([]byte, error) {
	raw, err := json.Marshal(struct {
		Labels map[string]string     `json:"labels"`
		Spec   exportapi.ProfileSpec `json:"spec"`
	}{p.Metadata.Labels, p.Spec})
	if err != nil {
		return nil, err
	}
	var v any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	v, _ = prune(v)
	return json.Marshal(v) // maps are written with sorted keys
}

// prune drops nulls, empty lists and empty objects; keep is false when v
// itself is one of them.
func prune(v any) (any, bool) {
	switch x := v.(type) {
	case nil:
		return nil, false
	case map[string]any:
		for k, e := range x {
			if pe, keep := prune(e); keep {
				x[k] = pe
			} else {
				delete(x, k)
			}
		}
		return x, len(x) > 0
	case []any:
		out := x[:0]
		for _, e := range x {
			pe, _ := prune(e) // a list keeps its positions
			out = append(out, pe)
		}
		return out, len(out) > 0
	}
	return v, true
}

var validStates = map[exportapi.RunState]bool{
	exportapi.StatePending: true, exportapi.StateRunning: true, exportapi.StateSucceeded: true,
	exportapi.StateFailed: true, exportapi.StateCancelled: true, exportapi.StateExpired: true,
}

// CheckState accepts the run states of SPEC §4.
func CheckState(s exportapi.RunState) error {
	if !validStates[s] {
		return xerr.New(xerr.InvalidInput, "run state %q is not one of pending, running, succeeded, failed, cancelled, expired", s)
	}
	return nil
}

// PrepareRun checks a run given to CreateRun and fills the defaults: state
// pending, priority normal, CreatedAt now.
func PrepareRun(r *exportapi.Run, now time.Time) error {
	if err := CheckRunID(r.ID); err != nil {
		return err
	}
	if err := CheckTenant(r.Tenant); err != nil {
		return xerr.New(xerr.InvalidInput, "run %s: %s", r.ID, xerr.As(err).Message)
	}
	if r.State == "" {
		r.State = exportapi.StatePending
	}
	if r.Priority == "" {
		r.Priority = "normal"
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now
	}
	return checkRun(*r)
}

func checkRun(r exportapi.Run) error {
	if err := CheckState(r.State); err != nil {
		return xerr.New(xerr.InvalidInput, "run %s: %s", r.ID, xerr.As(err).Message)
	}
	if r.Priority != "normal" && r.Priority != "catch-up" {
		return xerr.New(xerr.InvalidInput, "run %s: priority %q is not normal or catch-up", r.ID, r.Priority)
	}
	seen := map[string]bool{}
	for _, a := range r.Artifacts {
		if a.Name == "" || strings.ContainsRune(a.Name, 0) {
			return xerr.New(xerr.InvalidInput, "run %s: an artifact has no name", r.ID)
		}
		if seen[a.Name] {
			return xerr.New(xerr.InvalidInput, "run %s: artifact %q is listed twice", r.ID, a.Name)
		}
		seen[a.Name] = true
	}
	return nil
}

// CheckUpdate checks a run changed by an UpdateRun function against the
// stored one: the id, tenant and creation time never change, and a terminal
// run changes only by moving to expired. changed reports whether anything
// differs at all; an unchanged run is always accepted.
func CheckUpdate(old, upd exportapi.Run) (changed bool, err error) {
	a, err := json.Marshal(old)
	if err != nil {
		return false, err
	}
	b, err := json.Marshal(upd)
	if err != nil {
		return false, err
	}
	if bytes.Equal(a, b) {
		return false, nil
	}
	switch {
	case upd.ID != old.ID:
		return true, xerr.New(xerr.InvalidInput, "run %s: the run id cannot change (to %q)", old.ID, upd.ID)
	case upd.Tenant != old.Tenant:
		return true, xerr.New(xerr.InvalidInput, "run %s: the tenant cannot change (from %q to %q)", old.ID, old.Tenant, upd.Tenant)
	case !upd.CreatedAt.Equal(old.CreatedAt):
		return true, xerr.New(xerr.InvalidInput, "run %s: createdAt cannot change", old.ID)
	case old.State.Terminal() && (old.State == exportapi.StateExpired || upd.State != exportapi.StateExpired):
		return true, xerr.New(xerr.InvalidInput, "run %s is %s and cannot change any more (only retention may move a finished run to expired)", old.ID, old.State).
			WithHint("replay it with `stella export run submit` using the same parameters")
	}
	return true, checkRun(upd)
}

// DefaultOwner is the lease owner of this process: host:pid.
func DefaultOwner() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "localhost"
	}
	return fmt.Sprintf("%s:%d", h, os.Getpid())
}

// LeaseBusy is the error of taking a lease another process holds.
func LeaseBusy(runID, owner string) error {
	if owner == "" {
		owner = "another process"
	}
	return xerr.New(xerr.InvalidInput, "run %s is already being executed by %s", runID, owner).
		WithHint("watch it with `stella export run watch %s`, or cancel it with `stella export run cancel %s`", runID, runID)
}

// DeadHolderMessage is the error message of a run whose lease holder died.
func DeadHolderMessage(owner string) string {
	return fmt.Sprintf("the process that ran it (%s) stopped before the run finished (killed or crashed); "+
		"nothing it wrote is marked complete; replay it with \"stella export run submit\" using the same parameters", owner)
}

// FailDeadRun marks r failed because its lease holder is gone and returns
// the run.failed event to append (Seq unset).
func FailDeadRun(r *exportapi.Run, now time.Time) exportapi.Event {
	msg := DeadHolderMessage(r.Owner)
	r.State = exportapi.StateFailed
	r.ErrorType = string(xerr.Internal)
	r.ErrorCode = xerr.Internal.Label()
	r.ErrorMessage = msg
	r.FinishedAt = &now
	return exportapi.Event{RunID: r.ID, Type: exportapi.EventFailed, State: exportapi.StateFailed,
		ErrorCode: xerr.Internal.Label(), Message: msg, Time: now}
}

// CheckEvent checks an event given to AppendEvent.
func CheckEvent(ev exportapi.Event) error {
	if err := CheckRunID(ev.RunID); err != nil {
		return err
	}
	if ev.Type == "" {
		return xerr.New(xerr.InvalidInput, "run %s: an event needs a type (run.progress, ...)", ev.RunID)
	}
	return nil
}

// TerminalEvent reports whether an event type ends a run's log.
func TerminalEvent(typ string) bool {
	return typ == exportapi.EventCompleted || typ == exportapi.EventFailed || typ == exportapi.EventCancelled
}

// CheckFilter checks a RunFilter and returns its effective limit.
func CheckFilter(f RunFilter) (int, error) {
	if f.Limit < 0 {
		return 0, xerr.New(xerr.InvalidInput, "limit %d is negative", f.Limit)
	}
	if f.Tenant != "" {
		if err := CheckTenant(f.Tenant); err != nil {
			return 0, err
		}
	}
	for _, s := range f.States {
		if err := CheckState(s); err != nil {
			return 0, err
		}
	}
	if f.Limit == 0 {
		return 100, nil
	}
	return f.Limit, nil
}

// BadCursor is the error of a cursor that this ledger did not hand out.
func BadCursor(c string) error {
	return xerr.New(xerr.InvalidInput, "cursor %q is not valid", c).
		WithHint("pass the cursor the previous page returned, or none for the first page")
}
