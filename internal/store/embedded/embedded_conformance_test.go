package embedded

import (
	"testing"

	"github.com/audittrail/audittrail/internal/store"
	"github.com/audittrail/audittrail/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	for name, mode := range map[string]func(*Options){"tail": noMode, "segments": small} {
		t.Run(name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) *storetest.Harness {
				dir := t.TempDir()
				return &storetest.Harness{
					Store:  openT(t, dir, mode),
					Reopen: func(t *testing.T) store.Store { return openT(t, dir, mode) },
				}
			})
		})
	}
}
