package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRoundRobin: requests go to the nodes in turn, and the Host the browser used is
// kept (the nodes check a WebSocket's Origin against it).
func TestRoundRobin(t *testing.T) {
	var nodes []string
	for _, name := range []string{"a", "b"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, name+" "+r.Host)
		}))
		t.Cleanup(srv.Close)
		nodes = append(nodes, strings.TrimPrefix(srv.URL, "http://"))
	}
	h, err := roundRobin(nodes)
	require.NoError(t, err)
	var got []string
	for range 4 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://front.example/", nil))
		got = append(got, rec.Body.String())
	}
	assert.Equal(t, []string{"a front.example", "b front.example", "a front.example", "b front.example"}, got)

	_, err = roundRobin([]string{"http://x:1/"})
	assert.Error(t, err)
}
