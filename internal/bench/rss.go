package bench

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// resetPeakRSS sets the process's VmHWM back to its current RSS (Linux ≥
// 4.0, "5" in clear_refs), so that each engine's peak is its own. Where
// that is not possible the peak is cumulative, which only overstates.
func resetPeakRSS() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSS reads VmHWM, the peak resident set size, in bytes; 0 when the
// system does not say.
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
}
