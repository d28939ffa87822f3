//go:build !linux

package main

import "os/exec"

// dieWithParent does nothing here: only Linux kills a child when its parent dies.
// The tool stops what it started when it exits normally or fails.
func dieWithParent(*exec.Cmd) {}
