//go:build unix

package ledger_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/ledger"
	"github.com/audittrail/audittrail/internal/store/storetest"
)

// BenchmarkEventLeafHash: the canonical form and leaf hash of one event
// (the CPU the appender spends per event before any tree work).
func BenchmarkEventLeafHash(b *testing.B) {
	evs := storetest.Generate(1, 1000, storetest.GenOptions{})
	size := 0
	for i := range evs {
		w, _ := json.Marshal(evs[i])
		size += len(w)
	}
	b.SetBytes(int64(size / len(evs)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := ledger.EventLeafHash(&evs[i%len(evs)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLeafHashViaWireJSON is the slow way the fast path replaces:
// json.Marshal, then the general canonicaliser.
func BenchmarkLeafHashViaWireJSON(b *testing.B) {
	evs := storetest.Generate(1, 1000, storetest.GenOptions{})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		w, _ := json.Marshal(evs[i%len(evs)])
		if _, err := ledger.LeafHashFromJSON(w); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendPerEvent: the appender's whole cost per event (read from
// the store, canonicalise, hash, grow the trees, fsync the FileStore
// commit), events already stored. ns/op is per event.
func BenchmarkAppendPerEvent(b *testing.B) {
	st := storetest.NewMemStore()
	evs := storetest.Generate(7, b.N, storetest.GenOptions{})
	for i := 0; i < len(evs); i += 1000 {
		if err := st.Append(context.Background(), evs[i:min(len(evs), i+1000)]); err != nil {
			b.Fatal(err)
		}
	}
	trees, err := ledger.OpenFileStore(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer trees.Close()
	signer, vkey, err := ledger.LoadOrCreateKey(filepath.Join(b.TempDir(), "k"), "bench")
	if err != nil {
		b.Fatal(err)
	}
	l, err := ledger.New(ledger.Options{Store: st, Trees: trees, Signer: signer, VerifierKey: vkey})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	l.Start()
	if err := l.Sync(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	// CPU time, not wall time, is what ingest competes with; on a shared,
	// loaded machine it is also the stable figure.
	b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/event")
	l.Close()
}

// processCPU is the user+system CPU time this process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
