//go:build unix

// Package filelock keeps a second process off files one process owns.
package filelock

import (
	"fmt"
	"os"
	"syscall"
)

// Lock takes an exclusive advisory lock on path (created 0600 if missing),
// failing at once if another process holds it. The kernel drops the lock
// when the process dies, so a kill -9 never leaves the files locked.
func Lock(path string) (unlock func() error, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("held by another process: %w", err)
	}
	return f.Close, nil
}
