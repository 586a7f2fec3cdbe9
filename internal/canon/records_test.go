package canon

import (
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/stellaops/stella/internal/record"
)

// fill sets every field of v (a pointer) at random: strings empty or tricky,
// slices nil, empty or with elements. Every field of the record types is
// reached, so a field missing from the hand-written writers fails the tests.
func fill(rng *rand.Rand, v reflect.Value) {
	words := []string{"", "x", "pkg:npm/%40a/b", "caf\u00e9 \"q\" \\ \n\t<&>", "\u2028", "GHSA-xxxx-yyyy-zzzz", "2024-01-01T00:00:00Z"}
	switch v.Kind() {
	case reflect.String:
		v.SetString(words[rng.IntN(len(words))])
	case reflect.Slice:
		switch rng.IntN(3) {
		case 0:
			v.SetZero()
		case 1:
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
		default:
			n := 1 + rng.IntN(3)
			s := reflect.MakeSlice(v.Type(), n, n)
			for i := 0; i < n; i++ {
				fill(rng, s.Index(i))
			}
			v.Set(s)
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			fill(rng, v.Field(i))
		}
	default:
		panic("fill: unexpected kind " + v.Kind().String())
	}
}

func TestRecordWritersMatchEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for i := 0; i < 5000; i++ {
		var a record.Advisory
		fill(rng, reflect.ValueOf(&a).Elem())
		want, err := Fast(&a)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendAdvisory(nil, &a); string(got) != string(want) {
			t.Fatalf("advisory %+v:\n got %s\nwant %s", a, got, want)
		}
		var s record.VEXStatement
		fill(rng, reflect.ValueOf(&s).Elem())
		want, err = Fast(&s)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendVEXStatement(nil, &s); string(got) != string(want) {
			t.Fatalf("statement %+v:\n got %s\nwant %s", s, got, want)
		}
	}
	// The zero values too.
	for _, v := range []any{&record.Advisory{}, &record.VEXStatement{}} {
		want, _ := Fast(v)
		var got []byte
		switch r := v.(type) {
		case *record.Advisory:
			got = AppendAdvisory(nil, r)
		case *record.VEXStatement:
			got = AppendVEXStatement(nil, r)
		}
		if string(got) != string(want) {
			t.Fatalf("zero %T:\n got %s\nwant %s", v, got, want)
		}
	}
}

func BenchmarkAppendAdvisory(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	var a record.Advisory
	fill(rng, reflect.ValueOf(&a).Elem())
	b.Run("hand", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf = AppendAdvisory(buf[:0], &a)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			Fast(&a)
		}
	})
}
