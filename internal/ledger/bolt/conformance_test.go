package bolt_test

import (
	"path/filepath"
	"testing"

	"github.com/stellaops/stella/internal/ledger"
	"github.com/stellaops/stella/internal/ledger/bolt"
	"github.com/stellaops/stella/internal/ledger/ledgertest"
)

func openTemp(t *testing.T) ledger.Ledger {
	t.Helper()
	l, err := bolt.Open(filepath.Join(t.TempDir(), "ledger.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestConformance(t *testing.T) {
	ledgertest.Run(t, openTemp)
}
