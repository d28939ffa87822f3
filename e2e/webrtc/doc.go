// Package webrtc holds end-to-end tests of flamingo's WebRTC signaling with real
// peers: two github.com/pion/webrtc/v4 PeerConnections are matched through flamingo
// over real WebSockets, negotiate with the offer, answer and ICE candidates that
// flamingo relays as signal events, and exchange data-channel messages, on one node,
// across two cluster nodes on Redis, and across a reload of one page mid-call (a
// resume and an ICE restart).
//
// It is its own module so that the root module never depends on a WebRTC stack. Run
// it from this folder with
//
//	go test ./...
//
// or from the repository root, through go.work, with
//
//	go test ./... ./e2e/webrtc/...
//
// All media stays on loopback: the peers gather only UDP host candidates of
// 127.0.0.0/8, with mDNS off. The cluster tests start their own redis-server (Debian
// package redis-server) on a free loopback port; without it they skip, or fail when
// $CI is "true".
package webrtc
