package redistest

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them (a process whose
// waiter still runs).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestStartKillRestart: a started server answers; killed, it does not; restarted, it
// answers on the same port, empty.
func TestStartKillRestart(t *testing.T) {
	s := Start(t)
	require.NoError(t, ping(s.Addr()))
	assert.Equal(t, "OK", command(t, s.Addr(), "SET k v")[0])
	assert.Equal(t, []string{"save", ""}, command(t, s.Addr(), "CONFIG GET save"), "persistence off")

	require.NoError(t, s.Kill())
	assert.Zero(t, s.Pid())
	assert.Error(t, ping(s.Addr()), "a killed server does not answer")
	require.NoError(t, s.Kill(), "Kill of a killed server")

	port := s.Port()
	require.NoError(t, s.Restart())
	assert.Equal(t, port, s.Port())
	assert.Equal(t, []string{"(nil)"}, command(t, s.Addr(), "GET k"), "a restarted server is empty")
	assert.Error(t, s.Restart(), "Restart of a running server")
}

// TestReplicaAndSentinel: a replica follows its primary, and a Sentinel started on the
// primary names it as the master.
func TestReplicaAndSentinel(t *testing.T) {
	primary := Start(t)
	host, port, err := net.SplitHostPort(primary.Addr())
	require.NoError(t, err)
	replica := Start(t, "--replicaof", host, port)
	assert.Contains(t, command(t, replica.Addr(), "ROLE")[0], "slave")

	s := StartSentinel(t, SentinelOptions{Primary: primary.Addr()})
	assert.Equal(t, []string{host, port}, command(t, s.Addr(), "SENTINEL get-master-addr-by-name m"))
}

// TestSharedOverride: with FLAMINGO_REDIS_ADDR set, Shared starts nothing and gives
// that address.
func TestSharedOverride(t *testing.T) {
	t.Setenv(AddrEnv, "127.0.0.1:1")
	var sh Shared
	assert.Equal(t, "127.0.0.1:1", sh.Addr(t))
	assert.Nil(t, sh.srv)
	require.NoError(t, sh.Close())
}

// TestShared: Shared starts one server on first use, gives it to every caller, and
// Close stops it.
func TestShared(t *testing.T) {
	t.Setenv(AddrEnv, "")
	var sh Shared
	addr := sh.Addr(t)
	assert.Equal(t, addr, sh.Addr(t), "one server for every caller")
	require.NoError(t, ping(addr))
	require.NoError(t, sh.Close())
	assert.Error(t, ping(addr), "stopped by Close")
	assert.NoDirExists(t, sh.dir)
}

// command sends an inline command and returns the reply's strings: a status or bulk
// string as one, an array's elements in order, a nil as "(nil)".
func command(t *testing.T, addr, cmd string) []string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	_, err = c.Write([]byte(cmd + "\r\n"))
	require.NoError(t, err)
	r := bufio.NewReader(c)
	var read func() []string
	read = func() []string {
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		line = strings.TrimSuffix(line, "\r\n")
		switch line[0] {
		case '+', ':':
			return []string{line[1:]}
		case '-':
			t.Fatalf("%s: %s", cmd, line)
		case '$':
			n, err := strconv.Atoi(line[1:])
			require.NoError(t, err)
			if n < 0 {
				return []string{"(nil)"}
			}
			b := make([]byte, n+2)
			_, err = io.ReadFull(r, b)
			require.NoError(t, err)
			return []string{string(b[:n])}
		case '*':
			n, err := strconv.Atoi(line[1:])
			require.NoError(t, err)
			var out []string
			for range n {
				out = append(out, strings.Join(read(), " "))
			}
			return out
		}
		t.Fatalf("%s: unexpected reply %q", cmd, line)
		return nil
	}
	return read()
}
