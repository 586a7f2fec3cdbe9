package engine

import (
	"testing"

	"github.com/stellaops/stella/internal/canon"
)

// rawLineJSON is rawLine as encoding/json sees the format: the document a string.
type rawLineJSON struct {
	ContentType string `json:"contentType"`
	Digest      string `json:"digest"`
	Document    string `json:"document"`
	Format      string `json:"format"`
	ID          string `json:"id"`
	Kind        string `json:"kind"`
	Path        string `json:"path"`
	Source      string `json:"source"`
}

func TestAppendRawLineMatchesEncodingJSON(t *testing.T) {
	for _, l := range []rawLineJSON{
		{},
		{ContentType: "application/json", Digest: "sha256:ab", Document: "{\"id\":\"GHSA-1\",\n\t\"x\":\"<caf\u00e9>\\\\\u2028\"}", Format: "osv-json",
			ID: "GHSA-1", Kind: "advisory", Path: "a/b c.json", Source: "ghsa"},
		{ContentType: "application/yaml", Document: "id: X\x00\x1f\xff\n", Path: "\"q\"", Source: "s\\"},
	} {
		want, err := canon.Fast(l)
		if err != nil {
			t.Fatal(err)
		}
		got := appendRawLine(nil, &rawLine{ContentType: l.ContentType, Digest: l.Digest, Document: []byte(l.Document),
			Format: l.Format, ID: l.ID, Kind: l.Kind, Path: l.Path, Source: l.Source})
		if string(got) != string(want) {
			t.Fatalf("appendRawLine:\n got %s\nwant %s", got, want)
		}
	}
}
