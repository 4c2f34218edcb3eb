package query

import (
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/audittrail/audittrail/internal/event"
)

// FuzzTextTokens: the free-text parser of /search gives distinct, non-empty,
// lower-case runs of letters and digits, and each one is found in the event
// whose text is the query itself (a search for a string finds it).
func FuzzTextTokens(f *testing.F) {
	for _, s := range []string{"login failed", "John.Doe@Example.COM", "Zoë  Größe\t東京", "", "   ", "\xff\xfe a", "a\x00b", "ǅ İ ß ﬃ", "x x X"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		toks := TextTokens(text)
		var inEvent []string
		event.Tokenize(text, func(tok string) { inEvent = append(inEvent, tok) })
		for i, tok := range toks {
			if tok == "" {
				t.Fatalf("TextTokens(%q) gave an empty token", text)
			}
			if slices.Contains(toks[:i], tok) {
				t.Fatalf("TextTokens(%q) repeats %q", text, tok)
			}
			if tok != strings.ToLower(tok) {
				t.Fatalf("TextTokens(%q): %q is not lower-case", text, tok)
			}
			for _, r := range tok {
				if !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != unicode.ReplacementChar {
					t.Fatalf("TextTokens(%q): %q holds %q", text, tok, r)
				}
			}
			if !slices.Contains(inEvent, tok) {
				t.Fatalf("TextTokens(%q): %q is not a token of the same text in an event (%q)", text, tok, inEvent)
			}
		}
		q := Query{CompanyID: "C", ProjectID: "P", IncludeProject: true, TextTokens: toks}
		e := event.Event{CompanyID: "C", ProjectID: "P", Level: event.LevelProject, Action: text}
		if !q.Match(&e) {
			t.Fatalf("a query for %q does not match an event whose action is %q", text, text)
		}
	})
}
