package flamingo_test

import (
	"fmt"
	"time"

	"github.com/flamingochat/flamingo"
)

// Short-lived TURN credentials for a coturn server run with use-auth-secret and
// static-auth-secret=north: each user gets its own username and credential, valid for
// an hour from the match. The STUN server is added beside them.
func ExampleTURNServers() {
	turn := flamingo.TURNServers("north", time.Hour, "turn:turn.example.com:3478", "turns:turn.example.com:5349")
	cfg := flamingo.Config{
		ICEServers: func(user string) []flamingo.ICEServer {
			return append([]flamingo.ICEServer{{URLs: []string{"stun:turn.example.com:3478"}}}, turn(user)...)
		},
	}
	servers := cfg.ICEServers("0123abcd")
	fmt.Println(servers[0].URLs)
	fmt.Println(servers[1].URLs)

	// What each credential is: the expiry and the user's handle, signed.
	name, cred := flamingo.TURNCredentials("north", "0123abcd", time.Unix(1700000000, 0))
	fmt.Println(name, cred)
	// Output:
	// [stun:turn.example.com:3478]
	// [turn:turn.example.com:3478 turns:turn.example.com:5349]
	// 1700000000:0123abcd JjzjHR8L4C3hxod2yfMIXrU7fPU=
}
