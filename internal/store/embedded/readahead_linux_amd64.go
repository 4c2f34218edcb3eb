package embedded

import "syscall"

const (
	sysPreadv2 = 327
	sysFadvise = syscall.SYS_FADVISE64
)
