package redistest

import "syscall"

// sysProcAttr has the kernel kill the process if the test binary dies without killing
// it (a panic, a -timeout), so that no Redis outlives the tests.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
