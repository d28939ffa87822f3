module github.com/flamingochat/flamingo/e2e/browser

go 1.25.0

// The replace line builds against this repository's root module, for working on both
// together. A replace applies only in the main module: a module that requires this one
// ignores it and gets the version of the root module required below, so that must be a
// tagged release (tag v0.1.0).
replace github.com/flamingochat/flamingo => ../..

require (
	github.com/chromedp/cdproto v0.159.0
	github.com/chromedp/chromedp v0.23.0
	github.com/flamingochat/flamingo v0.1.0
	github.com/stretchr/testify v1.12.1
)

require (
	github.com/coder/websocket v1.8.15 // indirect
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/time v0.15.0 // indirect
)
