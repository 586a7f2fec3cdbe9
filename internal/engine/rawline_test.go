package engine

import (
	"testing"

	"github.com/stellaops/stella/internal/canon"
)

func TestAppendRawLineMatchesEncodingJSON(t *testing.T) {
	for _, l := range []rawLine{
		{},
		{ContentType: "application/json", Digest: "sha256:ab", Document: "{\"id\":\"GHSA-1\",\n\t\"x\":\"<caf\u00e9>\\\\\u2028\"}", Format: "osv-json",
			ID: "GHSA-1", Kind: "advisory", Path: "a/b c.json", Source: "ghsa"},
		{ContentType: "application/yaml", Document: "id: X\x00\x1f\xff\n", Path: "\"q\"", Source: "s\\"},
	} {
		want, err := canon.Fast(l)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendRawLine(nil, &l); string(got) != string(want) {
			t.Fatalf("appendRawLine:\n got %s\nwant %s", got, want)
		}
	}
}
