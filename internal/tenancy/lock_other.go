//go:build !unix

package tenancy

// lockFile is a no-op where flock is unavailable; run one process per file.
func lockFile(string) (func() error, error) { return func() error { return nil }, nil }
