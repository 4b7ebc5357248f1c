package rules

import (
	"errors"
	"testing"
)

func TestSetModeText(t *testing.T) {
	cases := []struct {
		name, in, id string
		mode         Mode
		want         string
		err          error
	}{
		{"replace plain", "rules:\n  - id: a\n    mode: active # keep\n    when: true\n", "a", ModeShadow,
			"rules:\n  - id: a\n    mode: shadow # keep\n    when: true\n", nil},
		{"replace quoted", "rules:\n  - id: a\n    mode: \"shadow\"\n", "a", ModeDisabled,
			"rules:\n  - id: a\n    mode: disabled\n", nil},
		{"insert after id", "# c\nrules:\n  - id: a\n    when: x\n  - id: b\n    when: y\n", "b", ModeShadow,
			"# c\nrules:\n  - id: a\n    when: x\n  - id: b\n    mode: shadow\n    when: y\n", nil},
		{"flow style refused", "rules:\n  - {id: a, when: x}\n", "a", ModeShadow, "", ErrInvalid},
		{"unknown rule", "rules:\n  - id: a\n", "zz", ModeShadow, "", ErrNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := setModeText([]byte(c.in), c.id, c.mode)
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("err = %v, want %v", err, c.err)
				}
				return
			}
			if err != nil || string(got) != c.want {
				t.Fatalf("got %q, %v\nwant %q", got, err, c.want)
			}
		})
	}
}

func TestContentVersionIgnoresOrder(t *testing.T) {
	a := []File{{Name: "a.yaml", Data: []byte("x")}, {Name: "b.yaml", Data: []byte("y")}}
	b := []File{a[1], a[0]}
	c := []File{{Name: "a.yaml", Data: []byte("xy")}, {Name: "b.yaml", Data: []byte("")}}
	if ContentVersion(a) != ContentVersion(b) || ContentVersion(a) == ContentVersion(c) {
		t.Fatal("content version is order-sensitive or ambiguous")
	}
}
