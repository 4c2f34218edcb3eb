package store

import "context"

// HeadReader is implemented by stores that know their highest exposed Seq
// cheaply; HeadSeq uses it when present.
type HeadReader interface {
	LastSeq(ctx context.Context) (uint64, error)
}

// HeadSeq returns the highest Seq s exposes, at least hint (a head found
// earlier). Without a HeadReader it probes with ReadFrom(x, 1), which tells
// whether any event has a Seq above x: galloping forward from hint, then
// bisecting, so it costs O(log n) reads of one event however long the log.
func HeadSeq(ctx context.Context, s Store, hint uint64) (uint64, error) {
	if hr, ok := s.(HeadReader); ok {
		return hr.LastSeq(ctx)
	}
	after := func(x uint64) (uint64, bool, error) {
		evs, err := s.ReadFrom(ctx, x, 1)
		if err != nil || len(evs) == 0 {
			return 0, false, err
		}
		return evs[0].Seq, true, nil
	}
	seq, ok, err := after(hint)
	if err != nil || !ok {
		return hint, err
	}
	lo, hi := seq, uint64(0) // an event has Seq lo; none has a Seq above hi
	for step := uint64(1024); ; step *= 2 {
		probe := lo + step
		if probe < lo { // overflow: no Seq lies above the largest uint64
			hi = ^uint64(0)
			break
		}
		seq, ok, err := after(probe)
		if err != nil {
			return hint, err
		}
		if !ok {
			hi = probe
			break
		}
		lo = seq
	}
	for hi > lo {
		mid := lo + (hi-lo)/2
		seq, ok, err := after(mid)
		if err != nil {
			return hint, err
		}
		if ok {
			lo = seq
		} else {
			hi = mid
		}
	}
	return lo, nil
}
