package flamingoredis

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingotest"
)

// TestEngine runs one Engine on the Redis matcher: two strangers are matched through
// Redis and chat both ways, and a third waits until its compatible partner arrives.
func TestEngine(t *testing.T) {
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		e, err := flamingo.New(flamingo.Config{Matcher: New(client, Options{Prefix: freshPrefix(t, client)})})
		require.NoError(t, err)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), stopWait)
			defer cancel()
			assert.NoError(t, e.Shutdown(ctx))
		})

		alice, bob, carol := flamingotest.Connect(t, e), flamingotest.Connect(t, e), flamingotest.Connect(t, e)
		for _, c := range []*flamingotest.Client{alice, bob, carol} {
			c.Init("")
		}
		alice.Join(flamingo.GenderFemale, flamingo.PreferMale)
		carol.Join(flamingo.GenderFemale, flamingo.PreferFemale) // nobody for her yet
		bob.Join(flamingo.GenderMale, flamingo.PreferAny)

		var fa, fb flamingo.MatchFoundPayload
		alice.ExpectPayload(flamingo.EventMatchFound, &fa)
		bob.ExpectPayload(flamingo.EventMatchFound, &fb)
		require.Equal(t, fa.ChatID, fb.ChatID)
		assert.Equal(t, flamingo.GenderMale, fa.Partner.Gender)
		assert.Equal(t, flamingo.GenderFemale, fb.Partner.Gender)

		alice.Say("hello")
		assert.Equal(t, "hello", bob.ExpectMessage().Content)
		bob.Say("hi")
		assert.Equal(t, "hi", alice.ExpectMessage().Content)

		carol.Sync() // carol is still waiting: nothing but pong
		dave := flamingotest.Connect(t, e)
		dave.Init("")
		dave.Join(flamingo.GenderFemale, flamingo.PreferAny)
		carol.Expect(flamingo.EventMatchFound)
		dave.Expect(flamingo.EventMatchFound)
	})
}
