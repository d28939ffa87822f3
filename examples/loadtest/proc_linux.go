package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent has cmd killed when this process ends, however it ends.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// raiseFileLimit sets this process's soft limit on open files (RLIMIT_NOFILE) to its
// hard limit and returns the limit in force. The processes it starts inherit the
// limit: every Go program raises its soft limit at start (package os), but hands the
// original one to the processes it starts unless the program sets the limit itself,
// as here.
func raiseFileLimit() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	want := syscall.Rlimit{Cur: rl.Max, Max: rl.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		return rl.Cur, err
	}
	return want.Cur, nil
}
