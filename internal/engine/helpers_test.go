package engine_test

import (
	"testing"
	"time"

	"github.com/stellaops/stella/internal/ledger"
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func ledgerFilter() ledger.RunFilter { return ledger.RunFilter{} }
