package flamingo

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"strconv"
	"time"
)

// This file issues TURN credentials in the TURN REST scheme ("A REST API for Access to
// TURN Services", draft-uberti-behave-turn-rest), which coturn implements as
// use-auth-secret / static-auth-secret: the TURN server and this engine share a
// secret, and a credential is valid until the time written in its username.

// TURNCredentials returns a TURN username and credential for user (a handle), valid
// until expires: the username is "<expiry>:<user>", the expiry in Unix seconds, and
// the credential is the base64 of the HMAC-SHA1 of the username under secret.
func TURNCredentials(secret, user string, expires time.Time) (username, credential string) {
	username = strconv.FormatInt(expires.Unix(), 10) + ":" + user
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// TURNServers returns a function for [Config.ICEServers] that gives each user one
// [ICEServer] with urls (turn: and turns: URLs of servers that share secret) and
// credentials from [TURNCredentials] valid for ttl from the match. Add STUN servers by
// wrapping it.
func TURNServers(secret string, ttl time.Duration, urls ...string) func(user string) []ICEServer {
	urls = append([]string(nil), urls...)
	return func(user string) []ICEServer {
		name, cred := TURNCredentials(secret, user, time.Now().Add(ttl))
		return []ICEServer{{URLs: urls, Username: name, Credential: cred}}
	}
}
