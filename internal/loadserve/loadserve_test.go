package loadserve

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
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
	a := Stats{CPUNanos: 1, Mallocs: 2, HeapInuse: 3, StackInuse: 4, RSS: 5, Goroutines: 6}
	if got, want := a.Add(a), (Stats{2, 4, 6, 8, 10, 12}); got != want {
		t.Fatalf("Add = %+v, want %+v", got, want)
	}
}
