package loadserve

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestServe(t *testing.T) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := Serve(http.NotFoundHandler(), inR, outW)
		_ = outW.Close()
		done <- err
	}()
	out := bufio.NewReader(outR)
	line, err := out.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "addr 127.0.0.1:") {
		t.Fatalf("first line %q, %v", line, err)
	}
	addr := strings.TrimSpace(strings.TrimPrefix(line, "addr "))
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status %d, want the handler's 404", resp.StatusCode)
	}
	for _, cmd := range []string{"stats", "stats gc"} {
		if _, err := io.WriteString(inW, cmd+"\n"); err != nil {
			t.Fatal(err)
		}
		line, err := out.ReadBytes('\n')
		if err != nil {
			t.Fatal(err)
		}
		var st Stats
		if err := json.Unmarshal(line, &st); err != nil {
			t.Fatalf("%s: %q: %v", cmd, line, err)
		}
		if st.Goroutines == 0 || st.HeapInuse == 0 || st.Mallocs == 0 {
			t.Fatalf("%s: implausible stats %+v", cmd, st)
		}
	}
	_ = inW.Close()
	if err := <-done; err != nil {
		t.Fatalf("Serve after stdin ended: %v", err)
	}
}

func TestServeUnknownCommand(t *testing.T) {
	outR, outW := io.Pipe()
	go func() { _, _ = io.Copy(io.Discard, outR) }()
	if err := Serve(http.NotFoundHandler(), strings.NewReader("status\n"), outW); err == nil {
		t.Fatal("Serve accepted an unknown command")
	}
	_ = outW.Close()
}

func TestStatsAdd(t *testing.T) {
	a := Stats{CPUNanos: 1, Mallocs: 2, AllocBytes: 7, HeapInuse: 3, StackInuse: 4, RSS: 5, Goroutines: 6, WriteCalls: 9}
	want := Stats{CPUNanos: 2, Mallocs: 4, AllocBytes: 14, HeapInuse: 6, StackInuse: 8, RSS: 10, Goroutines: 12, WriteCalls: 18}
	if got := a.Add(a); got != want {
		t.Fatalf("Add = %+v, want %+v", got, want)
	}
}

// TestWriteCalls: where /proc/self/io exists, each write system call counts one.
func TestWriteCalls(t *testing.T) {
	if _, err := os.Stat("/proc/self/io"); err != nil {
		t.Skip("no /proc/self/io here")
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "w"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	before := ReadStats(false).WriteCalls
	for range 10 {
		if _, err := f.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	// Other goroutines of the test binary may write too, but not fewer than ten.
	if got := ReadStats(false).WriteCalls - before; got < 10 {
		t.Fatalf("%d write calls counted for 10 writes", got)
	}
}

func TestServePprof(t *testing.T) {
	addr, stop, err := ServePprof("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if got := runtime.SetMutexProfileFraction(-1); got != MutexProfileFraction {
		t.Errorf("mutex profile fraction %d while serving, want %d", got, MutexProfileFraction)
	}
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/mutex?debug=1", "/debug/pprof/block?debug=1", "/debug/pprof/cmdline"} {
		resp, err := hc.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: status %d", path, resp.StatusCode)
		}
		if path == "/debug/pprof/" && !strings.Contains(string(body), "mutex") {
			t.Fatalf("GET %s does not list the mutex profile:\n%s", path, body)
		}
	}
	stop()
	if got := runtime.SetMutexProfileFraction(-1); got != 0 {
		t.Errorf("mutex profile fraction %d after stop, want 0", got)
	}
	if _, err := hc.Get("http://" + addr + "/debug/pprof/"); err == nil {
		t.Fatal("pprof still served after stop")
	}
}

func TestServePprofLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:6060", "example.com:6060", "127.0.0.1"} {
		if _, stop, err := ServePprof(addr); err == nil {
			stop()
			t.Errorf("ServePprof(%q) accepted an address off loopback or without a port", addr)
		}
	}
}

func TestDescribePprof(t *testing.T) {
	s := DescribePprof("flamingo", "127.0.0.1:6060")
	for _, want := range []string{"flamingo", "http://127.0.0.1:6060/debug/pprof/mutex", "trace?seconds="} {
		if !strings.Contains(s, want) {
			t.Errorf("%q lacks %q", s, want)
		}
	}
}
