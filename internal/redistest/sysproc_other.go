//go:build !linux

package redistest

import "syscall"

// sysProcAttr: only Linux can tie a child's life to its parent's; elsewhere a Redis
// outlives a test binary that dies without cleaning up.
func sysProcAttr() *syscall.SysProcAttr { return nil }
