package embedded

import (
	"errors"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// A selective page needs one block per row, scattered over the store's
// day partitions. When the kernel has dropped them from the page cache
// (as it does with pages nobody read for a while: memory reclaim, or a
// host's cold-page reclaim such as DAMON's pageout, which on the bench's
// VM empties files untouched for about a minute), each pread waits for the
// disk, one after the other: a 100-row userId page at 10M events took
// 12 ms instead of 1.4. So a page first tries each block with
// preadv2(RWF_NOWAIT), which returns the bytes when they are cached and
// fails instead of waiting when they are not; the missing ones are
// announced to the kernel (POSIX_FADV_WILLNEED, which starts their reads
// and returns) before any of them is waited for, so their reads overlap.
// With everything cached this costs nothing: the probing read is the read.

// rwfNoWait is RWF_NOWAIT: fail with EAGAIN rather than wait for I/O.
const rwfNoWait = 0x8

// fadvWillNeed is POSIX_FADV_WILLNEED.
const fadvWillNeed = 3

// noWaitUnsupported is set once preadv2 or RWF_NOWAIT turned out to be
// unavailable (an old kernel, a file system without it): blocks are then
// read plainly.
var noWaitUnsupported atomic.Bool

// readNoWait reads len(buf) bytes at off of fd if the page cache holds
// them all. ok is false when it does not (or cannot tell); buf is then
// not to be used.
func readNoWait(fd int, buf []byte, off int64) (ok bool) {
	if sysPreadv2 < 0 || noWaitUnsupported.Load() || len(buf) == 0 {
		return false
	}
	iov := syscall.Iovec{Base: &buf[0]}
	iov.SetLen(len(buf))
	n, _, errno := syscall.Syscall6(uintptr(sysPreadv2), uintptr(fd), uintptr(unsafe.Pointer(&iov)), 1,
		uintptr(off), 0, rwfNoWait)
	switch {
	case errno == 0:
		return int(n) == len(buf) // short: partly cached, read it whole later
	case errors.Is(errno, syscall.ENOSYS), errors.Is(errno, syscall.EOPNOTSUPP), errors.Is(errno, syscall.EINVAL):
		noWaitUnsupported.Store(true)
	}
	return false
}

// willNeed tells the kernel that bytes [off, off+n) of fd will be read
// soon: it starts reading those not cached and returns.
func willNeed(fd int, off, n int64) {
	if sysFadvise < 0 {
		return
	}
	syscall.Syscall6(uintptr(sysFadvise), uintptr(fd), uintptr(off), uintptr(n), fadvWillNeed, 0, 0)
}
