package ledger

import "errors"

// Sentinel errors; callers test with errors.Is.
var (
	// ErrNotFound: no such tree, leaf, event or checkpoint.
	ErrNotFound = errors.New("ledger: not found")
	// ErrNotYetAppended: the event is stored but the appender has not put it
	// in its tree yet; retry after Sync.
	ErrNotYetAppended = errors.New("ledger: event not yet appended")
	// ErrBadSize: a tree size or leaf index outside the committed tree.
	ErrBadSize = errors.New("ledger: bad tree size or index")
	// ErrBadTree: a tree name or origin line that is not ours.
	ErrBadTree = errors.New("ledger: bad tree")
	// ErrVerify wraps every verification failure: bad signature, wrong
	// origin, size or root, forged proof, altered event.
	ErrVerify = errors.New("ledger: verification failed")
	// ErrConflict: a TreeStore commit or checkpoint that does not build on
	// the committed state (another appender got there first).
	ErrConflict = errors.New("ledger: conflicting commit")
	// ErrCorrupt: stored tree data failed its checksum or does not match the
	// committed root.
	ErrCorrupt = errors.New("ledger: corrupt tree data")
	// ErrNoSigner: checkpoints cannot be signed without a key.
	ErrNoSigner = errors.New("ledger: no signing key")
	// ErrClosed: the TreeStore or Ledger was closed.
	ErrClosed = errors.New("ledger: closed")
)
