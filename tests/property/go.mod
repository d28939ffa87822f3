module github.com/flamingochat/flamingo/tests/property

go 1.25.0

replace github.com/flamingochat/flamingo => ../..

require (
	github.com/flamingochat/flamingo v0.0.0-00010101000000-000000000000
	github.com/stretchr/testify v1.12.1
	go.uber.org/goleak v1.3.0
	pgregory.net/rapid v1.3.0
)

require (
	github.com/coder/websocket v1.8.15 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/time v0.15.0 // indirect
)
