package ledger

import (
	"time"

	"golang.org/x/mod/sumdb/note"
)

// SignCheckpointForTest exposes checkpoint signing to the external tests.
func SignCheckpointForTest(s note.Signer, t TreeID, size uint64, root []byte, at time.Time) (Checkpoint, error) {
	return signCheckpoint(s, Origin(DefaultOriginPrefix, t), t, size, root, at)
}

// SetManifestLimitForTest makes FileStore snapshot its manifest sooner.
func SetManifestLimitForTest(n int64) (restore func()) {
	old := manifestLimit
	manifestLimit = n
	return func() { manifestLimit = old }
}

// SetSeqWindowForTest makes FileStore.FindSeqs scan fewer records per read,
// so that a small batch spans several windows.
func SetSeqWindowForTest(n uint64) (restore func()) {
	old := seqWindow
	seqWindow = n
	return func() { seqWindow = old }
}
