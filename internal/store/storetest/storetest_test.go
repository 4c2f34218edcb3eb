package storetest

import (
	"slices"
	"testing"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/store"
)

// TestMemStore proves the suite passable: the reference store passes it.
func TestMemStore(t *testing.T) {
	Run(t, func(t *testing.T) *Harness {
		m := NewMemStore()
		return &Harness{Store: m, Reopen: func(*testing.T) store.Store { return m.Reopen() }}
	})
}

func TestGenerate(t *testing.T) {
	a := Generate(42, 500, GenOptions{End: fixedEnd})
	b := Generate(42, 500, GenOptions{End: fixedEnd})
	c := Generate(43, 500, GenOptions{End: fixedEnd})
	ties, company, noTenant, changes := 0, 0, 0, 0
	seen := map[int64]bool{}
	for i := range a {
		if d := diffEvent(&a[i], &b[i]); d != "" {
			t.Fatalf("same seed, different events: %s", d)
		}
		if a[i].ID == c[i].ID {
			t.Fatalf("seeds 42 and 43 share ID %s", a[i].ID)
		}
		if err := a[i].Validate(); err != nil {
			t.Fatalf("event %d invalid: %v", i, err)
		}
		if a[i].CompanyID == "" || a[i].ID == "" {
			t.Fatalf("event %d lacks company or id", i)
		}
		if seen[a[i].Occurred] {
			ties++
		}
		seen[a[i].Occurred] = true
		if a[i].Level == event.LevelCompany {
			company++
		}
		if len(a[i].Tenants) == 0 {
			noTenant++
		}
		if len(a[i].ChangedFields()) > 0 {
			changes++
		}
	}
	// The suite relies on each of these being present in quantity.
	for name, n := range map[string]int{"ties": ties, "company-level": company, "no tenant": noTenant, "data.Change": changes} {
		if n < 20 {
			t.Errorf("only %d events with %s in 500", n, name)
		}
	}
	if slices.EqualFunc(a, c, func(x, y event.Event) bool { return x.Occurred == y.Occurred }) {
		t.Error("different seeds gave the same timestamps")
	}
}
