//go:build !linux

package main

import "os/exec"

// dieWithParent does nothing here: only Linux kills a child when its parent dies.
// The tool stops what it started when it exits normally or fails.
func dieWithParent(*exec.Cmd) {}

// raiseFileLimit leaves the open files limit alone here (the Go runtime raises the
// soft limit at start on Unix systems) and returns 0: unknown.
func raiseFileLimit() (uint64, error) { return 0, nil }
