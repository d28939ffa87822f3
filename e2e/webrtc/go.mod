module github.com/flamingochat/flamingo/e2e/webrtc

go 1.25.0

// The replace lines build against this repository's own copies of the modules below,
// for working on them together. A replace applies only in the main module: a module
// that requires this one ignores it and gets the versions required below, so each must
// be a tagged release (tag v0.1.0 for the root module, flamingoredis/v0.1.0 for
// flamingoredis).
replace (
	github.com/flamingochat/flamingo => ../..
	github.com/flamingochat/flamingo/flamingoredis => ../../flamingoredis
)

require (
	github.com/coder/websocket v1.8.15
	github.com/flamingochat/flamingo v0.1.0
	github.com/flamingochat/flamingo/flamingoredis v0.1.0
	github.com/pion/ice/v4 v4.4.8
	github.com/pion/turn/v5 v5.1.3
	github.com/pion/webrtc/v4 v4.2.26
	github.com/redis/go-redis/v9 v9.22.0
	github.com/stretchr/testify v1.12.1
	go.uber.org/goleak v1.3.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/pion/datachannel v1.6.3 // indirect
	github.com/pion/dtls/v3 v3.1.15 // indirect
	github.com/pion/interceptor v0.1.51 // indirect
	github.com/pion/logging v0.2.4 // indirect
	github.com/pion/mdns/v2 v2.2.2 // indirect
	github.com/pion/randutil v0.1.0 // indirect
	github.com/pion/rtcp v1.2.20 // indirect
	github.com/pion/rtp v1.10.6 // indirect
	github.com/pion/sctp v1.12.0 // indirect
	github.com/pion/sdp/v3 v3.0.20 // indirect
	github.com/pion/srtp/v3 v3.1.3 // indirect
	github.com/pion/stun/v4 v4.0.1 // indirect
	github.com/pion/transport/v5 v5.1.4 // indirect
	github.com/wlynxg/anet v0.0.5 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/crypto v0.48.0 // indirect
	golang.org/x/net v0.50.0 // indirect
	golang.org/x/sys v0.41.0 // indirect
	golang.org/x/time v0.15.0 // indirect
)
