package xerr

import (
	"errors"
	"fmt"
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
