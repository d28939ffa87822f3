module github.com/flamingochat/flamingo/tests/property

go 1.25.0

// The replace line builds against this repository's root module, for working on both
// together. A replace applies only in the main module: a module that requires this one
// ignores it and gets the version of the root module required below, so that must be a
// tagged release (tag v0.1.0).
replace github.com/flamingochat/flamingo => ../..

require (
	github.com/flamingochat/flamingo v0.1.0
	github.com/stretchr/testify v1.12.1
	go.uber.org/goleak v1.3.0
	pgregory.net/rapid v1.3.0
)

require (
	github.com/coder/websocket v1.8.15 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/time v0.15.0 // indirect
)
