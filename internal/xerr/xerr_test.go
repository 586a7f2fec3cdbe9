package xerr

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
)

// TestContractTable is SPEC §10, row by row.
func TestContractTable(t *testing.T) {
	rows := []struct {
		code  Code
		label string
		http  int
		exit  int
	}{
		{InvalidInput, "validation", 400, 2},
		{ProfileNotFound, "validation", 404, 4},
		{RunNotFound, "validation", 404, 4},
		{Empty, "validation", 422, 2},
		{UnsupportedSchema, "adapter", 422, 2},
		{BaseMissing, "base", 409, 2},
		{Signing, "signing", 503, 10},
		{Distribution, "distribution", 502, 10},
		{Verify, "verify", 422, 3},
		{Quota, "quota", 429, 6},
		{Unauthorized, "auth", 401, 3},
		{Offline, "offline", 409, 5},
		{Internal, "internal", 500, 1},
	}
	if len(rows) != len(Codes()) {
		t.Fatalf("%d codes, table has %d rows", len(Codes()), len(rows))
	}
	for _, r := range rows {
		if r.code.Label() != r.label || r.code.HTTPStatus() != r.http || r.code.ExitCode() != r.exit {
			t.Errorf("%s: label %s http %d exit %d; want %s %d %d", r.code, r.code.Label(), r.code.HTTPStatus(), r.code.ExitCode(), r.label, r.http, r.exit)
		}
	}
}

func TestCodeOfWrapped(t *testing.T) {
	e := New(Signing, "key %s", "k")
	wrapped := fmt.Errorf("run: %w", e)
	if CodeOf(wrapped) != Signing || !Is(wrapped, Signing) {
		t.Fatal("code lost through wrapping")
	}
	if CodeOf(errors.New("x")) != Internal || As(errors.New("x")).Code != Internal {
		t.Fatal("plain errors are internal")
	}
	if CodeOf(nil) != "" {
		t.Fatal("nil has a code")
	}
}

// A full disk or quota, however deep in the chain, gets a hint that says
// so instead of "a bug"; other internal errors keep the generic hint.
func TestNoSpaceHint(t *testing.T) {
	full := &os.PathError{Op: "write", Path: "/data/runs/r/.work/run-1.s2", Err: syscall.ENOSPC}
	for _, err := range []error{
		fmt.Errorf("extsort: spill: %w", full),
		Wrap(Internal, full, "run r failed"),
		fmt.Errorf("apply: %w", &os.PathError{Op: "write", Path: "/target/x", Err: syscall.EDQUOT}),
	} {
		e := As(err)
		if e.Code != Internal || !strings.Contains(e.Hint, "full") || strings.Contains(e.Hint, "bug") {
			t.Errorf("%v: code %s, hint %q", err, e.Code, e.Hint)
		}
	}
	if e := As(errors.New("something else")); !strings.Contains(e.Hint, "bug") {
		t.Errorf("generic internal error: hint %q", e.Hint)
	}
	orig := Wrap(Internal, full, "run r failed")
	As(orig)
	if orig.Hint != "" {
		t.Error("As changed the error it was given")
	}
}
