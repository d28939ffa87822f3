// Command loadnode is one node of a flamingo cluster on Redis, run by the load tool
// (examples/loadtest -redis) as a child process: the engine the tool measures as
// "flamingo" (every rate limit raised out of the way, no connection limits), joined
// to the nodes that share its Redis and key prefix through flamingoredis.Cluster.
//
// It speaks the tool's child protocol (internal/loadserve): it listens on a free
// loopback port, prints "addr HOST:PORT" on stdout, answers each "stats" or "stats
// gc" line on stdin with one JSON line of process figures, and stops when stdin ends.
// Warnings and errors of the engine and of the cluster go to stderr.
//
// Usage:
//
//	loadnode -redis ADDR -prefix P [-cpuprofile FILE] [-pprof ADDR]
//
// The flags are:
//
//	-redis ADDR        the Redis server the nodes share (default 127.0.0.1:6379)
//	-prefix P          the key prefix the nodes share (default "flamingo:")
//	-cpuprofile FILE   write the node's CPU profile to FILE
//	-pprof ADDR        serve net/http/pprof on the loopback ADDR, with the mutex and
//	                   block profiles on (see loadserve.ServePprof)
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/redis/go-redis/v9"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingoredis"
	"github.com/flamingochat/flamingo/internal/loadserve"
)

func main() {
	redisAddr := flag.String("redis", "127.0.0.1:6379", "address of the Redis server the nodes share")
	prefix := flag.String("prefix", "flamingo:", "key prefix the nodes share")
	cpuProfile := flag.String("cpuprofile", "", "write the node's CPU profile to this file")
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof on this loopback address")
	flag.Parse()
	if err := run(*redisAddr, *prefix, *cpuProfile, *pprofAddr); err != nil {
		fmt.Fprintln(os.Stderr, "loadnode:", err)
		os.Exit(1)
	}
}

func run(redisAddr, prefix, cpuProfile, pprofAddr string) error {
	stopProfile, err := loadserve.StartCPUProfile(cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	if pprofAddr != "" {
		addr, stopPprof, err := loadserve.ServePprof(pprofAddr)
		if err != nil {
			return err
		}
		defer stopPprof()
		fmt.Fprintln(os.Stderr, "loadnode:", loadserve.DescribePprof(fmt.Sprintf("cluster node (pid %d)", os.Getpid()), addr))
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	client := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer client.Close()
	cl := flamingoredis.NewCluster(client, flamingoredis.ClusterOptions{
		Options: flamingoredis.Options{Prefix: prefix, Logger: logger},
	})
	cfg := loadserve.EngineConfig()
	cfg.Matcher, cfg.Broker, cfg.Logger = cl.Matcher(), cl, logger
	e, err := flamingo.New(cfg)
	if err != nil {
		return fmt.Errorf("joining the cluster on Redis at %s: %w", redisAddr, err)
	}
	serr := loadserve.Serve(loadserve.Handler(e), os.Stdin, os.Stdout)
	if err := loadserve.Shutdown(e); err != nil {
		logger.Warn("loadnode: shutdown", "node", cl.NodeID(), "err", err)
	}
	return serr
}
