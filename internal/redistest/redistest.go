// Package redistest runs redis-server and redis-sentinel processes of the tests' own,
// so that the Redis tests run wherever the binaries are installed (Debian packages
// redis-server and redis-sentinel), with nothing to start or set by hand.
//
// Each process listens on a free port of 127.0.0.1, keeps nothing on disk beyond its
// temporary directory (no RDB snapshots, no append-only file) and is killed when its
// test ends, or when its package's tests end for the [Shared] server. On Linux the
// kernel also kills it if the test binary dies first (a panic, a -timeout), so no
// process outlives the tests.
//
// Without the binary a test is skipped, saying which package installs it; when the
// environment variable CI is "true", it fails instead.
//
// The package uses only the standard library: it checks readiness with a PING of its
// own, so that the root module, which holds it, needs no Redis client.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// AddrEnv names the environment variable that points the tests at a Redis of one's
// own (host:port) instead of one they start. [Shared] honours it.
const AddrEnv = "FLAMINGO_REDIS_ADDR"

// Bounds on waiting for a process.
const (
	// readyWait bounds how long a new process may take to answer PING: Redis 7 is
	// ready in about 0.15 s, so this only matters on a machine that is very busy.
	readyWait = 10 * time.Second
	// exitWait bounds how long a killed process may take to be reaped.
	exitWait = 10 * time.Second
	// portTries is how many free ports a start tries: a port found free may be taken
	// by someone else before the process binds it.
	portTries = 5
)

// Server is a running redis-server or redis-sentinel process. Its methods are for one
// goroutine at a time (the test's).
type Server struct {
	bin  string
	dir  string // the process's working directory: its log, and its config file if any
	port int
	args func(port int) ([]string, error) // the command line for a port

	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been reaped
}

// Addr returns the server's address, 127.0.0.1:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// Port returns the server's port.
func (s *Server) Port() int { return s.port }

// Pid returns the process id, or 0 if the server is not running.
func (s *Server) Pid() int {
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Log returns what the process has logged so far (all its runs).
func (s *Server) Log() string {
	b, err := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(b)
}

// NewServer starts a redis-server in dir (which must exist) with persistence off,
// extra appended to its command line (e.g. "--replicaof", "127.0.0.1", "6379"), and
// waits until it answers PING. Close it when done.
func NewServer(dir string, extra ...string) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, dir: dir, args: func(port int) ([]string, error) {
		return append([]string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no",
			"--dir", dir, "--logfile", "redis.log",
		}, extra...), nil
	}}
	return s, s.startOnFreePort()
}

// SentinelOptions configures a Sentinel that monitors one primary. A zero value of a
// field means the default given with it.
type SentinelOptions struct {
	// Master is the name the primary is monitored under; "m" by default.
	Master string
	// Primary is the primary's address; required.
	Primary string
	// Quorum is how many Sentinels must agree that the primary is down; 1 by default.
	Quorum int
	// DownAfter is how long the primary may not answer before it is taken for down;
	// 500 ms by default.
	DownAfter time.Duration
	// FailoverTimeout is Sentinel's failover-timeout; 2 s by default.
	FailoverTimeout time.Duration
}

// NewSentinel starts a redis-sentinel in dir (which must exist), writing its config
// file there (Sentinel rewrites it as it learns), and waits until it answers PING.
// Close it when done.
func NewSentinel(dir string, opts SentinelOptions) (*Server, error) {
	bin, err := exec.LookPath("redis-sentinel")
	if err != nil {
		return nil, err
	}
	if opts.Primary == "" {
		return nil, errors.New("redistest: SentinelOptions.Primary is required")
	}
	if opts.Master == "" {
		opts.Master = "m"
	}
	if opts.Quorum <= 0 {
		opts.Quorum = 1
	}
	if opts.DownAfter <= 0 {
		opts.DownAfter = 500 * time.Millisecond
	}
	if opts.FailoverTimeout <= 0 {
		opts.FailoverTimeout = 2 * time.Second
	}
	host, port, err := net.SplitHostPort(opts.Primary)
	if err != nil {
		return nil, fmt.Errorf("redistest: primary address: %w", err)
	}
	conf := filepath.Join(dir, "sentinel.conf")
	s := &Server{bin: bin, dir: dir, args: func(p int) ([]string, error) {
		text := strings.Join([]string{
			fmt.Sprintf("port %d", p),
			"bind 127.0.0.1",
			"dir " + dir,
			"logfile redis.log",
			fmt.Sprintf("sentinel monitor %s %s %s %d", opts.Master, host, port, opts.Quorum),
			fmt.Sprintf("sentinel down-after-milliseconds %s %d", opts.Master, opts.DownAfter.Milliseconds()),
			fmt.Sprintf("sentinel failover-timeout %s %d", opts.Master, opts.FailoverTimeout.Milliseconds()),
		}, "\n") + "\n"
		return []string{conf}, os.WriteFile(conf, []byte(text), 0o600)
	}}
	return s, s.startOnFreePort()
}

// startOnFreePort starts the process on a port that was free a moment ago, trying
// another if it turns out to be taken.
func (s *Server) startOnFreePort() error {
	var err error
	for range portTries {
		s.port, err = freePort()
		if err != nil {
			return err
		}
		err = s.start()
		if err == nil || !strings.Contains(err.Error(), "in use") {
			return err
		}
	}
	return err
}

// start starts the process on s.port and waits until it answers PING.
func (s *Server) start() error {
	args, err := s.args(s.port)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	cmd.SysProcAttr = sysProcAttr()
	// The log goes to redis.log; anything the process prints before it opens its log
	// (a bad argument) is kept too.
	out, err := os.OpenFile(filepath.Join(s.dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Start()
	_ = out.Close() // the child has its own copy
	if err != nil {
		return fmt.Errorf("redistest: starting %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited

	deadline := time.Now().Add(readyWait)
	for {
		err := ping(s.Addr())
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			s.cmd = nil
			return fmt.Errorf("redistest: %s on port %d exited before it was ready: %s",
				filepath.Base(s.bin), s.port, lastLines(s.Log(), 5))
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.kill()
			return fmt.Errorf("redistest: %s on port %d did not answer PING within %v (last error: %v): %s",
				filepath.Base(s.bin), s.port, readyWait, err, lastLines(s.Log(), 5))
		}
	}
}

// Kill kills the process at once (SIGKILL), losing everything it held, and waits until
// it has exited. It does nothing if the process is not running.
func (s *Server) Kill() error {
	if s.cmd == nil {
		return nil
	}
	return s.kill()
}

func (s *Server) kill() error {
	defer func() { s.cmd = nil }()
	if err := s.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("redistest: killing pid %d: %w", s.cmd.Process.Pid, err)
	}
	select {
	case <-s.exited:
		return nil
	case <-time.After(exitWait):
		return fmt.Errorf("redistest: pid %d did not exit within %v of SIGKILL", s.cmd.Process.Pid, exitWait)
	}
}

// Restart starts the process again, on the same port with the same command line,
// after a Kill: a redis-server comes back empty. It waits until it answers PING.
func (s *Server) Restart() error {
	if s.cmd != nil {
		return errors.New("redistest: Restart of a running server")
	}
	return s.start()
}

// Close kills the process if it runs. It does not remove its directory.
func (s *Server) Close() error { return s.Kill() }

// Start starts a redis-server for tb with persistence off and extra on its command
// line, in a temporary directory of tb's, and kills it when tb ends (logging its log
// if tb failed). Without redis-server it skips tb, or fails it when CI is "true".
func Start(tb testing.TB, extra ...string) *Server {
	tb.Helper()
	Require(tb, "redis-server", "redis-server")
	s, err := NewServer(tb.TempDir(), extra...)
	if err != nil {
		tb.Fatal(err)
	}
	cleanup(tb, s)
	return s
}

// StartSentinel starts a redis-sentinel for tb, in a temporary directory of tb's, and
// kills it when tb ends (logging its log if tb failed). Without redis-sentinel it
// skips tb, or fails it when CI is "true".
func StartSentinel(tb testing.TB, opts SentinelOptions) *Server {
	tb.Helper()
	Require(tb, "redis-sentinel", "redis-sentinel")
	s, err := NewSentinel(tb.TempDir(), opts)
	if err != nil {
		tb.Fatal(err)
	}
	cleanup(tb, s)
	return s
}

func cleanup(tb testing.TB, s *Server) {
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Error(err)
		}
		if tb.Failed() {
			tb.Logf("%s on port %d logged:\n%s", filepath.Base(s.bin), s.port, lastLines(s.Log(), 40))
		}
	})
}

// Require skips tb if the binary bin is not installed, naming the Debian package pkg
// that installs it, or fails tb when CI is "true" (CI must install it).
func Require(tb testing.TB, bin, pkg string) {
	tb.Helper()
	if _, err := exec.LookPath(bin); err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("%s is not installed: CI must install it (apt-get install %s): %v", bin, pkg, err)
		}
		tb.Skipf("%s is not installed (Debian: apt-get install %s), so this test cannot run: %v", bin, pkg, err)
	}
}

// Shared is one redis-server for the tests of a package, started by the first test
// that asks for its address and stopped by Close, which TestMain calls after the
// tests. Tests that share it must keep to keys of their own (a prefix each). If the
// environment variable FLAMINGO_REDIS_ADDR is set, Shared starts nothing and gives
// that address instead.
//
// A zero Shared is ready to use. Its methods are safe for concurrent use.
type Shared struct {
	once sync.Once
	dir  string
	srv  *Server
	addr string
	err  error
}

// Addr returns the address of the shared server, starting it if it is the first call.
// Without redis-server (and without FLAMINGO_REDIS_ADDR) it skips tb, or fails it when
// CI is "true"; it fails tb if the server could not be started.
func (sh *Shared) Addr(tb testing.TB) string {
	tb.Helper()
	sh.once.Do(func() {
		if addr := os.Getenv(AddrEnv); addr != "" {
			sh.addr = addr
			return
		}
		if _, err := exec.LookPath("redis-server"); err != nil {
			return // each caller skips (or fails, in CI) below
		}
		sh.dir, sh.err = os.MkdirTemp("", "redistest-")
		if sh.err != nil {
			return
		}
		sh.srv, sh.err = NewServer(sh.dir)
		if sh.err == nil {
			sh.addr = sh.srv.Addr()
		}
	})
	if sh.addr == "" && sh.err == nil {
		Require(tb, "redis-server", "redis-server")
	}
	if sh.err != nil {
		tb.Fatalf("starting the tests' redis-server: %v", sh.err)
	}
	return sh.addr
}

// Close stops the shared server if one was started, and removes its directory.
func (sh *Shared) Close() error {
	sh.once.Do(func() {}) // no start after Close
	var err error
	if sh.srv != nil {
		err = sh.srv.Close()
	}
	if sh.dir != "" {
		err = errors.Join(err, os.RemoveAll(sh.dir))
	}
	return err
}

// freePort returns a port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	return port, l.Close()
}

// ping sends PING to the server at addr and checks that it answers +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line = strings.TrimSpace(line); line != "+PONG" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
