package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flamingochat/flamingo/internal/loadserve"
)

// nodePackage is the cluster node the tool builds and runs for -redis. It lives in
// the nested module examples/cluster, which may depend on go-redis; the root module
// may not. The build works from anywhere inside the Go workspace (go.work).
const nodePackage = "github.com/flamingochat/flamingo/examples/cluster/loadnode"

// clusterEnv is what a run with -redis sets up once: the Redis (started here with
// -redis auto), the node binary and the key prefix that all the nodes share.
type clusterEnv struct {
	addr   string // the Redis the nodes share
	auto   bool   // Redis was started here
	prefix string // fresh for each run
	tmp    string // holds the node binary and, with auto, Redis's working directory
	bin    string
	redis  *exec.Cmd   // with auto
	used   atomic.Bool // nodes were started: there are keys to delete
	once   sync.Once
}

// setupCluster builds the node, starts Redis with -redis auto, checks that Redis
// answers and picks a fresh key prefix.
func setupCluster(cfg config) (*clusterEnv, error) {
	tmp, err := os.MkdirTemp("", "loadtest-")
	if err != nil {
		return nil, err
	}
	env := &clusterEnv{addr: cfg.redis, tmp: tmp, bin: filepath.Join(tmp, "loadnode")}
	var id [6]byte
	_, _ = rand.Read(id[:])
	env.prefix = "loadtest-" + hex.EncodeToString(id[:]) + ":"

	fmt.Fprintf(os.Stderr, "loadtest: building %s\n", nodePackage)
	build := exec.Command("go", "build", "-o", env.bin, nodePackage)
	if out, err := build.CombinedOutput(); err != nil {
		env.close()
		return nil, fmt.Errorf("building the cluster node failed (go build -o %s %s; the tool must run inside the repository, with its go.work): %v\n%s",
			env.bin, nodePackage, err, out)
	}
	if cfg.redis == "auto" {
		if err := env.startRedis(); err != nil {
			env.close()
			return nil, err
		}
	}
	c, err := dialRedis(env.addr)
	if err == nil {
		_, err = c.do("PING")
		c.close()
	}
	if err != nil {
		env.close()
		return nil, fmt.Errorf("redis at %s: %w", env.addr, err)
	}
	return env, nil
}

// startRedis starts a redis-server without persistence on a free loopback port.
func (env *clusterEnv) startRedis() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	logPath := filepath.Join(env.tmp, "redis.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no")
	cmd.Dir, cmd.Stdout, cmd.Stderr = env.tmp, logFile, logFile
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting redis-server: %w", err)
	}
	env.redis, env.auto = cmd, true
	env.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := dialRedis(env.addr)
		if err == nil {
			_, err = c.do("PING")
			c.close()
			if err == nil {
				fmt.Fprintf(os.Stderr, "loadtest: started redis-server on %s (pid %d)\n", env.addr, cmd.Process.Pid)
				return nil
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("redis-server on %s did not answer within 5 s: %v\n%s", env.addr, err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// close stops the Redis started here, or deletes the run's keys from the Redis it was
// given, and removes the temporary directory. It may be called more than once.
func (env *clusterEnv) close() {
	env.once.Do(func() {
		if env.redis != nil {
			_ = env.redis.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() {
				_ = env.redis.Wait()
				close(done)
			}()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = env.redis.Process.Kill()
				<-done
			}
		} else if env.used.Load() {
			if n, err := deleteKeys(env.addr, env.prefix); err != nil {
				fmt.Fprintf(os.Stderr, "loadtest: deleting the run's keys (%s*) from %s: %v (%d deleted)\n", env.prefix, env.addr, err, n)
			}
		}
		_ = os.RemoveAll(env.tmp)
	})
}

// describe says which Redis the run used.
func (env *clusterEnv) describe() string {
	if env.auto {
		return env.addr + " (started by the tool)"
	}
	return env.addr
}

// startCluster starts cfg.nodes nodes on the run's Redis and key prefix.
func startCluster(cfg config) (*server, error) {
	env := cfg.cluster
	env.used.Store(true)
	s := &server{kind: kindCluster}
	for i := range cfg.nodes {
		args := []string{"-redis", env.addr, "-prefix", env.prefix}
		if cpuProfile != "" {
			args = append(args, "-cpuprofile", fmt.Sprintf("%s.cluster%d", cpuProfile, i))
		}
		if cfg.pprof != "" {
			addr, err := pprofAddrFor(cfg.pprof, kindCluster, i)
			if err != nil {
				s.stop()
				return nil, err
			}
			args = append(args, "-pprof", addr)
		}
		ch, err := loadserve.Start(exec.Command(env.bin, args...))
		if err != nil {
			s.stop()
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
		s.children = append(s.children, ch)
		s.addrs = append(s.addrs, ch.Addr)
	}
	ri, err := dialRedis(env.addr)
	if err != nil {
		s.stop()
		return nil, err
	}
	s.redis = &redisInfo{c: ri}
	if _, ok := s.redis.cpu(); !ok {
		fmt.Fprintf(os.Stderr, "loadtest: cannot read the CPU time of redis at %s (INFO cpu); Redis CPU is not reported\n", env.addr)
		s.redis.close()
		s.redis = nil
	}
	return s, nil
}

// redisInfo reads the CPU time of a Redis server.
type redisInfo struct {
	mu sync.Mutex
	c  *respConn
}

// cpu returns used_cpu_sys + used_cpu_user from INFO cpu: the CPU seconds of the
// whole redis-server process.
func (ri *redisInfo) cpu() (float64, bool) {
	ri.mu.Lock()
	defer ri.mu.Unlock()
	v, err := ri.c.do("INFO", "cpu")
	s, ok := v.(string)
	if err != nil || !ok {
		return 0, false
	}
	var sum float64
	found := 0
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || (k != "used_cpu_sys" && k != "used_cpu_user") {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, false
		}
		sum += f
		found++
	}
	return sum, found == 2
}

func (ri *redisInfo) close() { ri.c.close() }

// deleteKeys deletes every key that starts with prefix and returns how many it
// deleted.
func deleteKeys(addr, prefix string) (int, error) {
	c, err := dialRedis(addr)
	if err != nil {
		return 0, err
	}
	defer c.close()
	n, cursor := 0, "0"
	for {
		v, err := c.do("SCAN", cursor, "MATCH", prefix+"*", "COUNT", "1000")
		if err != nil {
			return n, err
		}
		a, ok := v.([]any)
		if !ok || len(a) != 2 {
			return n, fmt.Errorf("unexpected SCAN reply %v", v)
		}
		cursor, _ = a[0].(string)
		keys, _ := a[1].([]any)
		if len(keys) > 0 {
			args := []string{"UNLINK"}
			for _, k := range keys {
				if ks, ok := k.(string); ok {
					args = append(args, ks)
				}
			}
			if _, err := c.do(args...); err != nil {
				return n, err
			}
			n += len(args) - 1
		}
		if cursor == "0" || cursor == "" {
			return n, nil
		}
	}
}

// respConn is a minimal Redis client (RESP2), enough for PING, INFO, SCAN and
// UNLINK: the root module does not depend on a Redis client.
type respConn struct {
	c net.Conn
	r *bufio.Reader
}

func dialRedis(addr string) (*respConn, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	return &respConn{c: c, r: bufio.NewReader(c)}, nil
}

func (c *respConn) close() { _ = c.c.Close() }

// do sends one command and returns its reply: a string, an int64, nil or a []any.
func (c *respConn) do(args ...string) (any, error) {
	var b []byte
	b = fmt.Appendf(b, "*%d\r\n", len(args))
	for _, a := range args {
		b = fmt.Appendf(b, "$%d\r\n%s\r\n", len(a), a)
	}
	_ = c.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.c.Write(b); err != nil {
		return nil, err
	}
	return c.read()
}

func (c *respConn) read() (any, error) {
	line, err := c.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("empty reply line")
	}
	switch line[0] {
	case '+':
		return line[1:], nil
	case '-':
		return nil, errors.New(line[1:])
	case ':':
		return strconv.ParseInt(line[1:], 10, 64)
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(c.r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		a := make([]any, n)
		for i := range a {
			if a[i], err = c.read(); err != nil {
				return nil, err
			}
		}
		return a, nil
	}
	return nil, fmt.Errorf("unexpected reply %q", line)
}
