package flamingo_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
)

// A campus, an office or a carrier-grade NAT brings many strangers through one public
// address. These tests hold the defaults to what SECURITY.md promises such a crowd:
// 100 connected at once, 100 new identities at once and 5 per second after that, while
// guessing user_ids stays slow.

const crowd = 100 // strangers behind one address that the defaults must admit at once

func TestDefaults_CrowdFromOneAddress_OverWebSocket(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	url := wsServer(t, e, nil) // listens on 127.0.0.1, where every client comes from
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Everyone connects at once, then everyone sends init at once.
	conns := make([]*websocket.Conn, crowd)
	errs := make([]error, crowd)
	var wg sync.WaitGroup
	for i := range crowd {
		wg.Go(func() { conns[i], _, errs[i] = websocket.Dial(ctx, url, nil) })
	}
	wg.Wait()
	for _, c := range conns {
		if c != nil {
			t.Cleanup(func() { _ = c.CloseNow() })
		}
	}
	for i, err := range errs {
		require.NoError(t, err, "connection %d of %d from one address", i+1, crowd)
	}

	ready := make([]flamingo.ReadyPayload, crowd)
	for i, c := range conns {
		wg.Go(func() { errs[i] = roundTrip(ctx, c, `{"type":"init"}`, flamingo.EventReady, &ready[i]) })
	}
	wg.Wait()
	ids := make(map[string]bool)
	for i, err := range errs {
		require.NoError(t, err, "init %d of %d from one address", i+1, crowd)
		assert.False(t, ready[i].Resumed)
		ids[ready[i].UserID] = true
	}
	assert.Len(t, ids, crowd, "a new identity for each")

	// All of them stay connected, and each connection still answers.
	assert.Equal(t, crowd, e.Stats().Online)
	for i, c := range conns {
		wg.Go(func() { errs[i] = roundTrip(ctx, c, `{"type":"ping"}`, flamingo.EventPong, nil) })
	}
	wg.Wait()
	for i, err := range errs {
		assert.NoError(t, err, "ping on connection %d", i+1)
	}
}

// roundTrip sends frame on c and reads the next event, which must be of type want; its
// payload is decoded into v if v is not nil.
func roundTrip(ctx context.Context, c *websocket.Conn, frame string, want flamingo.EventType, v any) error {
	if err := c.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
		return err
	}
	_, b, err := c.Read(ctx)
	if err != nil {
		return err
	}
	var env flamingo.Envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return err
	}
	if env.Type != want {
		return fmt.Errorf("got %s, want %s", b, want)
	}
	if v != nil {
		return json.Unmarshal(env.Payload, v)
	}
	return nil
}

// After the burst, one address gets a new identity every 200 ms. The bubble's clock
// stands still unless the test sleeps, so the counts are exact.
func TestDefaults_NewIdentitiesFromOneAddress_AfterTheBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngine(t, flamingo.Config{})
		const addr = "203.0.113.7"
		for range crowd {
			connectFrom(t, e, addr).Init("")
		}

		late := connectFrom(t, e, addr)
		late.Send(flamingo.EventInit, nil)
		p := late.ExpectError(flamingo.CodeRateLimited)
		assert.Equal(t, flamingo.EventInit, p.Ref)
		assert.Equal(t, int64(200), p.RetryAfterMs, "5 new identities per second")
		time.Sleep(200 * time.Millisecond)
		assert.False(t, late.Init("").Resumed, "admitted when retry_after_ms has passed")

		time.Sleep(time.Second)
		for range 5 {
			connectFrom(t, e, addr).Init("")
		}
		sixth := connectFrom(t, e, addr)
		sixth.Send(flamingo.EventInit, nil)
		sixth.ExpectError(flamingo.CodeRateLimited)
		assert.Equal(t, crowd+1+5, e.Stats().Online)
	})
}

// Guessing stays slow: ten unknown user_ids from one address get fresh identities, the
// eleventh is refused, one more is let through a minute later, and a right user_id from
// the same address still resumes.
func TestDefaults_ResumeGuessingStaysStrict(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngine(t, flamingo.Config{})
		const addr = "198.51.100.4"
		owner := connectFrom(t, e, addr)
		id := owner.Init("").UserID
		awaySynctest(owner)

		guess := func(i int) string { return fmt.Sprintf("%032x", i) }
		for i := range 10 {
			assert.False(t, connectFrom(t, e, addr).Init(guess(i)).Resumed)
		}
		guesser := connectFrom(t, e, addr)
		guesser.Send(flamingo.EventInit, flamingo.InitPayload{UserID: guess(10)})
		p := guesser.ExpectError(flamingo.CodeRateLimited)
		assert.Equal(t, int64(time.Minute/time.Millisecond), p.RetryAfterMs, "one unknown user_id per minute")

		assert.True(t, connectFrom(t, e, addr).Init(id).Resumed, "a resume is never limited")

		time.Sleep(time.Minute)
		assert.False(t, connectFrom(t, e, addr).Init(guess(11)).Resumed, "a minute later")
	})
}
