package cli

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxChangeCell bounds the CHANGES column; --json shows everything.
const maxChangeCell = 80

// changeSummary renders data.Change on one line for the table:
// "display_name=Ada L.; status: enabled→disabled; +roles owner; -members u2".
// Keys are sorted so that the same change always reads the same.
func changeSummary(data map[string]any) string {
	change, _ := data["Change"].(map[string]any)
	if len(change) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(change))
	for k := range change {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		v := change[k]
		switch {
		case strings.HasPrefix(k, "added_"):
			parts = append(parts, "+"+strings.TrimPrefix(k, "added_")+" "+listText(v))
		case strings.HasPrefix(k, "removed_"):
			parts = append(parts, "-"+strings.TrimPrefix(k, "removed_")+" "+listText(v))
		default:
			if m, ok := v.(map[string]any); ok && len(m) == 2 && hasKeys(m, "old", "new") {
				parts = append(parts, k+": "+valueText(m["old"])+"→"+valueText(m["new"]))
			} else {
				parts = append(parts, k+"="+valueText(v))
			}
		}
	}
	return clip(strings.Join(parts, "; "), maxChangeCell)
}

func hasKeys(m map[string]any, keys ...string) bool {
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			return false
		}
	}
	return true
}

func listText(v any) string {
	list, ok := v.([]any)
	if !ok {
		return valueText(v)
	}
	out := make([]string, len(list))
	for i, x := range list {
		out[i] = valueText(x)
	}
	return strings.Join(out, ",")
}

func valueText(v any) string {
	switch v := v.(type) {
	case nil:
		return "∅"
	case string:
		if v == "" {
			return `""`
		}
		return v
	case float64, bool:
		return fmt.Sprint(v)
	case map[string]any:
		// Multi-tenant roles: {"tenant":"t1","roles":["r"]} reads t1:r.
		if t, ok := v["tenant"].(string); ok {
			return t + ":" + strings.ReplaceAll(listText(v["roles"]), ",", "+")
		}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// clip makes s safe for a terminal (control characters replaced) and at
// most n runes long.
func clip(s string, n int) string {
	var b strings.Builder
	i := 0
	for _, r := range s {
		if i == n-1 && utf8.RuneCountInString(s) > n {
			b.WriteRune('…')
			break
		}
		if unicode.IsControl(r) || r == utf8.RuneError || unicode.Is(unicode.Cf, r) {
			r = '?'
		}
		b.WriteRune(r)
		i++
	}
	return b.String()
}
