// Package release checks that flamingo's modules can be fetched and built by someone
// outside this repository once their versions are tagged. It holds tests only; see
// release_test.go. It is a module of its own so that golang.org/x/mod, which the tests
// use to build module zips, is never a requirement of the modules it checks.
package release
