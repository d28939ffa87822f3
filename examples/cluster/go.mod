module github.com/flamingochat/flamingo/examples/cluster

go 1.25.0

// The replace lines build against this repository's own copies of the modules below,
// for working on them together. A replace applies only in the main module: a module
// that requires this one ignores it and gets the versions required below, so each must
// be a tagged release (tag v0.1.0 for the root module, flamingoredis/v0.1.0 for
// flamingoredis, flamingoprom/v0.1.0 for flamingoprom).
replace (
	github.com/flamingochat/flamingo => ../..
	github.com/flamingochat/flamingo/flamingoprom => ../../flamingoprom
	github.com/flamingochat/flamingo/flamingoredis => ../../flamingoredis
)

require (
	github.com/flamingochat/flamingo v0.1.0
	github.com/flamingochat/flamingo/flamingoprom v0.1.0
	github.com/flamingochat/flamingo/flamingoredis v0.1.0
	github.com/prometheus/client_golang v1.24.1
	github.com/redis/go-redis/v9 v9.22.0
	github.com/stretchr/testify v1.12.1
	go.uber.org/goleak v1.3.0
)

require (
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/coder/websocket v1.8.15 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/prometheus/client_model v0.6.2 // indirect
	github.com/prometheus/common v0.70.1 // indirect
	github.com/prometheus/procfs v0.21.1 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/sys v0.47.0 // indirect
	golang.org/x/time v0.15.0 // indirect
	google.golang.org/protobuf v1.36.11 // indirect
)
