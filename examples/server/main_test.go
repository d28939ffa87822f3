package main

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runMain makes this test binary run main instead of the tests, so that a test can run
// the command as a person would, and see what it prints and how it exits.
const runMain = "FLAMINGO_SERVER_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMain) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), runMain+"=1")
	return cmd
}

func TestHelpDescribesTheFlags(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := command(ctx, "-h").CombinedOutput()
	require.NoError(t, err, "-h exits 0")
	assert.Contains(t, string(out), "flamingo demo: the chat page at / and its WebSocket at /ws")
	assert.Contains(t, string(out), "-addr host:port\n")
	assert.Contains(t, string(out), "no host means every interface (default \":8080\")")
}

// A taken port is reported without first claiming to serve on it.
func TestTakenPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := command(ctx, "-addr", taken.Addr().String()).CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, 1, exit.ExitCode())
	assert.Contains(t, string(out), "listen tcp "+taken.Addr().String())
	assert.NotContains(t, string(out), "flamingo demo on")
}

// The command says where it serves (the port it got, for port 0), serves the page
// there, and exits 0 on SIGTERM.
func TestServesAndStops(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := command(ctx, "-addr", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	lines := bufio.NewScanner(stderr)
	url := ""
	for url == "" && lines.Scan() {
		_, url, _ = strings.Cut(lines.Text(), "flamingo demo on ")
		url, _, _ = strings.Cut(url, " ")
	}
	require.NotEmpty(t, url, "no line saying where it serves")
	require.NotEqual(t, "http://127.0.0.1:0", url, "the port it got, not the one asked for")
	drained := make(chan struct{})
	go func() { // keep reading, so that the command never blocks on a full pipe
		defer close(drained)
		for lines.Scan() {
		}
	}()

	resp, err := http.Get(url)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	<-drained // the command has closed its stderr: it is exiting
	assert.NoError(t, cmd.Wait(), "exits 0 on SIGTERM")
}
