package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runMain makes this test binary run main instead of the tests, so that a test can
// start the program as a process and signal it.
const runMain = "FLAMINGO_EMBED_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMain) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// The README's "Embed it" section shows this program, without its package comment.
func TestREADMEShowsThisProgram(t *testing.T) {
	src, err := os.ReadFile("main.go")
	require.NoError(t, err)
	_, code, ok := strings.Cut(string(src), "\npackage main\n")
	require.True(t, ok)
	code = "package main\n" + code

	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(readme), "\n## Embed it\n")
	require.True(t, ok, "README.md has no Embed it section")
	_, block, ok := strings.Cut(section, "```go\n")
	require.True(t, ok, "the Embed it section has no go block")
	block, _, ok = strings.Cut(block, "```\n")
	require.True(t, ok, "the go block does not end")
	assert.Equal(t, code, block, "README.md's Embed it example differs from examples/embed/main.go")
}

// On SIGTERM the program closes its WebSockets with 1001 (going away) and exits 0:
// both shutdowns ran, in time.
func TestShutdownOnSignal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), runMain+"=1")
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	// The program logs the address it listens on before it serves.
	lines := bufio.NewScanner(stderr)
	addr := ""
	for addr == "" && lines.Scan() {
		_, addr, _ = strings.Cut(lines.Text(), "listening on ")
	}
	require.NotEmpty(t, addr, "no listening line on stderr")
	var rest strings.Builder
	drained := make(chan struct{})
	go func() { // keep reading, so that the program never blocks on a full pipe
		defer close(drained)
		for lines.Scan() {
			rest.WriteString(lines.Text() + "\n")
		}
	}()

	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", nil)
	require.NoError(t, err)
	defer c.CloseNow()
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(`{"type":"init"}`)))
	_, ready, err := c.Read(ctx)
	require.NoError(t, err)
	require.Contains(t, string(ready), `"type":"ready"`)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	_, _, err = c.Read(ctx)
	assert.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(err), "closed by engine.Shutdown: %v", err)
	<-drained // the program has closed its stderr: it is exiting
	assert.NoError(t, cmd.Wait(), "the program exits 0; it logged:\n%s", rest.String())
}
