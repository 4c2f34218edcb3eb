package embedded

import "syscall"

const (
	sysPreadv2 = 286
	sysFadvise = syscall.SYS_FADVISE64
)
