package server

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/audittrail/audittrail/internal/store/embedded"
)

// damageReporter is a store that reports damaged data it found (the
// embedded engine; PostgreSQL reports its own).
type damageReporter interface {
	Damage() []embedded.Damage
}

// StoreHealth is the /healthz detail of a store that found damage. It
// names files and counts, never events: /healthz is public. The event ids
// are in the server log and in `audittrail check --json`.
type StoreHealth struct {
	Damaged []DamagedFile `json:"damaged"`
	// RowsLost is the sum of the known counts of rows lost.
	RowsLost int `json:"rowsLost"`
	// UnknownLoss: some damage hides even how many rows were lost.
	UnknownLoss bool `json:"unknownLoss,omitempty"`
}

// DamagedFile is one damage report without event ids.
type DamagedFile struct {
	File     string `json:"file"`
	Kind     string `json:"kind"`
	Reason   string `json:"reason"`
	RowsLost int    `json:"rowsLost"`
	Repaired bool   `json:"repaired"`
}

// storeHealth answers httpapi.Options.Health: "degraded" once damage that
// lost rows or is not yet repaired has been found; a torn log tail cut at
// start (a write a crash interrupted, never acknowledged) is no damage.
func storeHealth(d damageReporter) (string, any) {
	var h StoreHealth
	for _, dm := range d.Damage() {
		if dm.Repaired && dm.RowsLost == 0 {
			continue
		}
		h.Damaged = append(h.Damaged, DamagedFile{File: dm.File, Kind: dm.Kind, Reason: dm.Reason, RowsLost: dm.RowsLost, Repaired: dm.Repaired})
		if dm.RowsLost < 0 {
			h.UnknownLoss = true
		} else {
			h.RowsLost += dm.RowsLost
		}
	}
	if len(h.Damaged) == 0 {
		return "ok", nil
	}
	return "degraded", map[string]any{"store": h}
}

// writeDamageMetrics writes the store's damage reports as metrics.
func writeDamageMetrics(w io.Writer, damage []embedded.Damage) error {
	byKind := map[string]int{}
	type lost struct {
		file, kind string
		rows       int
	}
	var rows []lost
	for _, d := range damage {
		byKind[d.Kind]++
		if !(d.Repaired && d.RowsLost == 0) {
			rows = append(rows, lost{d.File, d.Kind, d.RowsLost})
		}
	}
	var b strings.Builder
	b.WriteString("# HELP audittrail_store_damage_reports Damaged data the embedded store found since it opened, repaired or not (log-tail: a crash's torn write, cut; see the server log).\n")
	b.WriteString("# TYPE audittrail_store_damage_reports gauge\n")
	kinds := []string{"log-tail", "log-record", "segment", "read"}
	for _, k := range kinds {
		fmt.Fprintf(&b, "audittrail_store_damage_reports{kind=%q} %d\n", k, byKind[k])
	}
	b.WriteString("# HELP audittrail_store_damage_rows_lost Rows the embedded store could not recover or serve, per damaged file (-1: unknown how many); the server log names them.\n")
	b.WriteString("# TYPE audittrail_store_damage_rows_lost gauge\n")
	sort.Slice(rows, func(i, j int) bool { return rows[i].file < rows[j].file })
	for _, r := range rows {
		fmt.Fprintf(&b, "audittrail_store_damage_rows_lost{file=%s,kind=%q} %s\n", strconv.Quote(r.file), r.kind, strconv.Itoa(r.rows))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
