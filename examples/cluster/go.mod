module github.com/flamingochat/flamingo/examples/cluster

go 1.25.0

replace (
	github.com/flamingochat/flamingo => ../..
	github.com/flamingochat/flamingo/flamingoredis => ../../flamingoredis
)

require (
	github.com/flamingochat/flamingo v0.0.0-00010101000000-000000000000
	github.com/flamingochat/flamingo/flamingoredis v0.0.0-00010101000000-000000000000
	github.com/redis/go-redis/v9 v9.22.0
	github.com/stretchr/testify v1.12.1
	go.uber.org/goleak v1.3.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/coder/websocket v1.8.15 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/sys v0.30.0 // indirect
	golang.org/x/time v0.15.0 // indirect
)
