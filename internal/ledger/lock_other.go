//go:build !unix

package ledger

// lockFile is a no-op where flock is unavailable; run one process per store.
func lockFile(string) (func() error, error) { return func() error { return nil }, nil }
