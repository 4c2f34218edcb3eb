package cli

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

var errTime = errors.New(`want an age like 7d, 36h or 15m, an RFC 3339 time like 2026-11-25T14:00:00Z, a date like 2026-11-25, or epoch milliseconds`)

// parseTime reads a --from/--to value: an age before now (7d, 2w, 36h,
// 15m, 1h30m), an RFC 3339 time, a date (midnight UTC), or epoch
// milliseconds (a bare integer). Empty gives the zero time.
func parseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if isDigits(s) {
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil || ms <= 0 {
			return time.Time{}, errTime
		}
		return time.UnixMilli(ms).UTC(), nil
	}
	if d, ok := parseAge(s); ok {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errTime
}

// parseAge reads a positive duration with the day (d) and week (w) units
// Go's time.ParseDuration lacks: "7d", "2w", "1d12h", "15m".
func parseAge(s string) (time.Duration, bool) {
	var total time.Duration
	rest := s
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) {
			return 0, false
		}
		n, err := strconv.ParseInt(rest[:i], 10, 64)
		if err != nil {
			return 0, false
		}
		var unit time.Duration
		switch rest[i] {
		case 'w':
			unit = 7 * 24 * time.Hour
		case 'd':
			unit = 24 * time.Hour
		default:
			// Leave the standard units (h, m, s, ms, …) to ParseDuration.
			d, err := time.ParseDuration(rest)
			if err != nil {
				return 0, false
			}
			total += d
			rest = ""
			continue
		}
		// Ages beyond ~290 years overflow a Duration; nobody means those.
		if n > int64(100*365*24*time.Hour/unit) {
			return 0, false
		}
		total += time.Duration(n) * unit
		rest = rest[i+1:]
	}
	return total, total > 0
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
