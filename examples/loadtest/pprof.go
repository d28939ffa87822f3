package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/flamingochat/flamingo/internal/loadserve"
)

// pprofAddrFor returns where the child server of kind (and, for the cluster, node
// number node) serves pprof, given -pprof base: flamingo on base, the baseline on
// the next port, cluster node i on the port 2+i after base. With port 0, every child
// picks a free port of its own and prints it.
func pprofAddrFor(base, kind string, node int) (string, error) {
	host, p, err := net.SplitHostPort(base)
	if err != nil {
		return "", err
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return "", fmt.Errorf("%q is not a loopback address", base)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", fmt.Errorf("bad port in %q", base)
	}
	if port == 0 {
		return base, nil
	}
	switch kind {
	case kindFlamingo:
	case kindBaseline:
		port++
	case kindCluster:
		if node < 0 {
			return "", errors.New("negative node number")
		}
		port += 2 + node
	default:
		return "", fmt.Errorf("unknown server kind %q", kind)
	}
	if port > 65535 {
		return "", fmt.Errorf("%q leaves no room for the ports after it (up to %d)", base, port)
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), nil
}

// startPprof serves pprof on addr (see loadserve.ServePprof) and says so on stderr.
func startPprof(addr, who string) (stop func(), err error) {
	got, stop, err := loadserve.ServePprof(addr)
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(os.Stderr, "loadtest:", loadserve.DescribePprof(who, got))
	return stop, nil
}
