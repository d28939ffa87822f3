package flamingoredis

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
)

func codecTickets() []flamingo.Ticket {
	return []flamingo.Ticket{
		{User: "u", Gender: flamingo.GenderMale, Preference: flamingo.PreferAny, JoinedAt: time.Unix(1700000000, 5)},
		{
			User: "9f86d081884c7d65", Gender: flamingo.GenderOther, Preference: flamingo.PreferOther,
			JoinedAt: time.Date(1700, 1, 1, 0, 0, 0, 999999999, time.UTC), RelaxAt: time.Date(2261, 1, 1, 0, 0, 0, 1, time.UTC),
			Node: "node-1", Interests: []string{"chess", "jazz", "ünïcode"}, Pool: "a:b/c",
			Labels: map[string]string{"k": "v", "": "", "x\x00y": "\xff"}, Avoid: []string{"a", "b"},
		},
		{
			User: "e", Gender: flamingo.GenderFemale, Preference: flamingo.PreferFemale, JoinedAt: time.Unix(-5, 0),
			Interests: []string{}, Avoid: []string{}, Labels: map[string]string{},
		},
	}
}

// TestTicketEncoding: a ticket decodes to what was encoded, nil and empty kept apart
// and times to the nanosecond.
func TestTicketEncoding(t *testing.T) {
	for _, tk := range codecTickets() {
		got, err := decodeTicket(string(appendTicket(nil, tk)))
		require.NoError(t, err, tk.User)
		assertTicket(t, tk, got)
	}
}

// TestTicketEncoding_Malformed: every truncation, and every change of one byte that
// breaks the layout, is an error and never a panic.
func TestTicketEncoding_Malformed(t *testing.T) {
	for _, tk := range codecTickets() {
		b := appendTicket(nil, tk)
		for n := range len(b) {
			_, err := decodeTicket(string(b[:n]))
			assert.Error(t, err, "%s truncated to %d bytes", tk.User, n)
		}
		_, err := decodeTicket(string(append(b, 0)))
		assert.Error(t, err, "a byte too many")
		for i := range b {
			c := append([]byte(nil), b...)
			c[i] = 0xff
			assert.NotPanics(t, func() { _, _ = decodeTicket(string(c)) })
		}
	}
	_, err := decodeTicket("\x02")
	assert.ErrorContains(t, err, "version")
	_, err = decodeTicket("\x01\x0c")
	assert.ErrorContains(t, err, "kind")
}

func FuzzDecodeTicket(f *testing.F) {
	for _, tk := range codecTickets() {
		f.Add(string(appendTicket(nil, tk)))
	}
	f.Fuzz(func(t *testing.T, s string) {
		tk, err := decodeTicket(s)
		if err != nil {
			return
		}
		// What decodes re-encodes to a ticket that decodes the same.
		again, err := decodeTicket(string(appendTicket(nil, tk)))
		require.NoError(t, err)
		assertTicket(t, tk, again)
	})
}

func BenchmarkTicketEncoding(b *testing.B) {
	tk := flamingo.Ticket{
		User: "9f86d081884c7d659a2feaa0c55ad015", Gender: flamingo.GenderFemale, Preference: flamingo.PreferAny,
		JoinedAt: time.Now(), RelaxAt: time.Now().Add(10 * time.Second), Node: "0123456789abcdef",
		Interests: []string{"chess", "jazz", "movies"}, Avoid: []string{"a1b2c3d4e5f60718"},
	}
	buf := appendTicket(nil, tk)
	b.ReportMetric(float64(len(buf)), "bytes")
	s := string(buf)
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			buf = appendTicket(buf[:0], tk)
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := decodeTicket(s); err != nil {
				b.Fatal(err)
			}
		}
	})
}
