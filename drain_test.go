package flamingo_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingotest"
)

func TestDrain_SingleNodeEndsChatsAndMovesClients(t *testing.T) {
	var ended []flamingo.ChatEnd
	e := newEngine(t, flamingo.Config{OnChatEnd: func(end flamingo.ChatEnd) { ended = append(ended, end) }})
	a, b := flamingotest.Pair(t, e)
	w := flamingotest.Connect(t, e)
	w.Init("")
	w.Join(flamingo.GenderOther, flamingo.PreferMale) // waits: nobody is compatible
	require.NoError(t, e.Ready(context.Background()))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, e.Drain(ctx))

	for _, c := range []*flamingotest.Client{a, b} {
		var p flamingo.ChatEndedPayload
		evs := c.ExpectClosed(flamingo.CloseServiceRestart)
		require.Len(t, evs, 1)
		require.Equal(t, flamingo.EventChatEnded, evs[0].Type)
		require.NoError(t, evs[0].Decode(&p))
		assert.Equal(t, flamingo.ReasonServerRestart, p.Reason)
	}
	w.ExpectClosed(flamingo.CloseServiceRestart)
	require.Len(t, ended, 1)
	assert.Equal(t, flamingo.ReasonServerRestart, ended[0].Reason)

	assert.ErrorIs(t, e.Ready(context.Background()), flamingo.ErrEngineClosed)
	assert.ErrorIs(t, e.Serve(context.Background(), pipeEnd()), flamingo.ErrEngineClosed)
	assert.Equal(t, 0, e.Metrics().Connections)
}

func TestDrain_RefusedOverWebSocket(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	url := wsServer(t, e, nil)
	require.NoError(t, e.Drain(context.Background()))
	resp, err := httpGetUpgrade(url)
	require.NoError(t, err)
	assert.Equal(t, 503, resp)
}

func TestKick(t *testing.T) {
	handles := make(chan [2]string, 1)
	e := newEngine(t, flamingo.Config{OnMatch: func(ci flamingo.ChatInfo) { handles <- ci.Users }})
	a, b := flamingotest.Pair(t, e)
	users := <-handles // a waited longer: Users[0] is a's handle

	require.NoError(t, e.Kick(users[0], "spam"))
	evs := a.ExpectClosed(flamingo.ClosePolicyViolation)
	require.Len(t, evs, 1)
	assert.Equal(t, flamingo.EventChatEnded, evs[0].Type)
	var p flamingo.ChatEndedPayload
	b.ExpectPayload(flamingo.EventChatEnded, &p)
	assert.Equal(t, flamingo.ReasonPartnerLeft, p.Reason)

	a2 := flamingotest.Connect(t, e)
	ready := a2.Init(a.UserID)
	assert.False(t, ready.Resumed, "a kicked user's id resumes nothing")
	assert.ErrorIs(t, e.Kick(users[0], "again"), flamingo.ErrSessionNotFound)
	assert.Equal(t, 2, e.Stats().Online) // b and a2
}
