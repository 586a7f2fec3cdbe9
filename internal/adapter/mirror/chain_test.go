package mirror

import (
	"testing"
	"time"

	"github.com/stellaops/stella/pkg/exportapi"
)

func TestChainNameAndValidity(t *testing.T) {
	p := func(name string, labels map[string]string) exportapi.Profile {
		return exportapi.Profile{Metadata: exportapi.ProfileMetadata{Name: name, Labels: labels}}
	}
	for _, c := range []struct {
		p    exportapi.Profile
		want string
	}{
		{p("mirror-full", nil), "mirror"},
		{p("mirror-delta", nil), "mirror"},
		{p("nightly-delta", nil), "nightly"},
		{p("-delta", nil), "-delta"},
		{p("eu", map[string]string{LabelChain: "eu-air"}), "eu-air"},
	} {
		if got := ChainName(c.p); got != c.want {
			t.Errorf("%s: chain %q, want %q", c.p.Metadata.Name, got, c.want)
		}
	}
	for v, want := range map[string]time.Duration{"": DefaultValidity, "7d": 7 * 24 * time.Hour, "36h": 36 * time.Hour} {
		got, err := Validity(p("x", map[string]string{LabelValidity: v}))
		if err != nil || got != want {
			t.Errorf("%q: %v %v", v, got, err)
		}
	}
	for _, bad := range []string{"0d", "-1h", "soon"} {
		if _, err := Validity(p("x", map[string]string{LabelValidity: bad})); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
