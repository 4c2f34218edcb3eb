//go:build !linux || !(amd64 || arm64)

package embedded

// Elsewhere blocks are read plainly (see readahead.go).
const (
	sysPreadv2 = -1
	sysFadvise = -1
)
