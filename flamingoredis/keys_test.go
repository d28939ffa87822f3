package flamingoredis

import (
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
)

// TestLuaScriptsExpanded checks that every script was made by luaScript and has no
// placeholder left.
func TestLuaScriptsExpanded(t *testing.T) {
	scripts := append([]*redis.Script{enqueueScript, relaxScript, cancelScript, dropScript}, clusterScripts...)
	require.Len(t, luaSources, len(scripts), "every script is in luaSources, once")
	for _, s := range scripts {
		src, ok := luaSources[s]
		require.True(t, ok, "script %s was not made by luaScript", s.Hash())
		assert.NotContains(t, src, "${", "script %s has a placeholder left", s.Hash())
		assert.NotEmpty(t, strings.TrimSpace(src))
	}
}

func TestExpandLua(t *testing.T) {
	tests := []struct {
		give, want string
	}{
		{give: `redis.call('HGET', base .. '${keySess}' .. user, '${sessNode}')`, want: `redis.call('HGET', base .. 'sess:' .. user, 'node')`},
		{give: `'${pairWaiter}${ticketUser}'`, want: `'w_user'`},
		{give: `string.match(m, '^(.*):([^:]*)$')`, want: `string.match(m, '^(.*):([^:]*)$')`},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, expandLua(tt.give))
	}
	assert.Panics(t, func() { expandLua(`'${noSuchName}'`) })
}

// TestWireNames pins the names flamingoredis uses in Redis. They are the wire format
// between the nodes of a cluster: a node that names a key or a field differently does
// not interoperate with one of an earlier version sharing its Redis. Change a value
// here only together with a plan for mixed-version clusters.
func TestWireNames(t *testing.T) {
	k := newKeys("flamingo:", "n1")
	keyTests := []struct {
		give, want string
	}{
		{k.base, "flamingo:{match}:"},
		{k.seq, "flamingo:{match}:seq"},
		{k.ticket("u1"), "flamingo:{match}:ticket:u1"},
		{k.ticketPrefix, "flamingo:{match}:ticket:"},
		{k.nodePrefix, "flamingo:{match}:node:"},
		{k.nodeTickets, "flamingo:{match}:node:n1:tickets"},
		{k.nodePairs, "flamingo:{match}:node:n1:inbox"},
		{k.tickets("n2"), "flamingo:{match}:node:n2:tickets"},
		{k.inbox("n2"), "flamingo:{match}:node:n2:inbox"},
		{k.alive("n2"), "flamingo:{match}:node:n2:alive"},
		{k.sessions("n2"), "flamingo:{match}:node:n2:sessions"},
		{k.nodes(), "flamingo:{match}:nodes"},
		{k.stats(), "flamingo:{match}:stats"},
		{k.session("u1"), "flamingo:{match}:sess:u1"},
		{k.held("u1"), "flamingo:{match}:held:u1"},
		{k.ended("c1"), "flamingo:{match}:ended:c1"},
		{k.orphans(), "flamingo:{match}:orphans"},
		{k.bucket(flamingo.GenderFemale, flamingo.PreferAny), "flamingo:{match}:wait:female:any"},
		{k.bucket(flamingo.GenderOther, flamingo.PreferMale), "flamingo:{match}:wait:other:male"},
		{k.relax, "flamingo:{match}:relax"},
		{k.poolBucket(flamingo.GenderMale, flamingo.PreferAny, ""), "flamingo:{match}:wait:male:any"},
		{k.poolBucket(flamingo.GenderMale, flamingo.PreferAny, "en"), "flamingo:{match}:wait:male:any:2:en"},
		{k.interest(flamingo.GenderMale, flamingo.PreferFemale, "", "music"), "flamingo:{match}:int:male:female/music"},
		{k.interest(flamingo.GenderMale, flamingo.PreferFemale, "a/b", "c"), "flamingo:{match}:int:male:female:3:a/b/c"},
		{k.interest(flamingo.GenderMale, flamingo.PreferFemale, "a", "b/c"), "flamingo:{match}:int:male:female:1:a/b/c"},
	}
	for _, tt := range keyTests {
		assert.Equal(t, tt.want, tt.give)
	}
	buckets := map[string]bool{}
	for _, row := range k.buckets {
		for _, b := range row {
			buckets[b] = true
		}
	}
	assert.Len(t, buckets, 12, "12 distinct buckets")

	fieldTests := []struct {
		give, want string
	}{
		{ticketUser, "user"}, {ticketJoinedAt, "joined_at"}, {ticketNode, "node"},
		{ticketBucket, "bucket"}, {ticketMember, "member"}, {ticketBlob, "t"},
		{ticketAvoid, "a"}, {ticketIndex, "ix"},
		{pairWaiter, "w_"}, {pairNewcomer, "n_"}, {pairChat, "chat"},
		{sessNode, "node"}, {sessDigest, "d"}, {sessGender, "g"}, {sessAway, "away"},
		{sessChat, "chat"}, {sessPeer, "peer"}, {sessPeerGender, "pg"}, {sessStarted, "started"},
		{entryKind, "k"}, {entryUser, "u"}, {entryChat, "c"}, {entryPayload, "p"},
		{entryTo, "to"}, {entryID, "id"}, {entryFound, "found"}, {entryGender, "g"},
		{entryEvents, "n"}, {entryEvent, "e"}, {entryStop, "stop"},
		{kindFrame, "f"}, {kindMessage, "m"}, {kindEnded, "e"}, {kindHandover, "h"},
		{kindReply, "r"}, {kindKick, "k"}, {entryBatch, "b"},
	}
	for _, tt := range fieldTests {
		assert.Equal(t, tt.want, tt.give)
	}
}
