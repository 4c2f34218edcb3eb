package ledger

import "context"

// LeaseName is the name the appender acquires its lease under.
const LeaseName = "ledger"

// Lease grants the right to append; in a fleet only one instance may hold
// it. It has the shape of stream.Lease (adapt one with LeaseFunc).
type Lease interface {
	// Acquire blocks until the lease is held or ctx ends.
	Acquire(ctx context.Context, name string) (Held, error)
}

// Held is a granted lease.
type Held interface {
	// Lost is closed when the lease was taken away; appending must stop.
	Lost() <-chan struct{}
	Release()
}

// LeaseFunc adapts a function to Lease.
type LeaseFunc func(ctx context.Context, name string) (Held, error)

func (f LeaseFunc) Acquire(ctx context.Context, name string) (Held, error) { return f(ctx, name) }

// LocalLease is the single-instance Lease: always granted, never lost.
type LocalLease struct{}

type localHeld struct{}

func (LocalLease) Acquire(ctx context.Context, _ string) (Held, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return localHeld{}, nil
}
func (localHeld) Lost() <-chan struct{} { return nil }
func (localHeld) Release()              {}
