package flamingoredis

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/flamingochat/flamingo"
)

// A ticket is kept in Redis, and carried into a pair entry, as one string that only
// Go code reads: the scripts copy it without looking inside, and take what they need
// to decide (the node, the users avoided, the keys the ticket is listed under) from
// the other fields of the ticket hash. The encoding is compact and is read by slicing
// the string, with no map but the ticket's own Labels:
//
//	version            1 byte, ticketVersion
//	kind               1 byte, gender index * 4 + preference index (keys.go's order)
//	JoinedAt, RelaxAt  each as varint Unix seconds, then uvarint nanoseconds
//	User, Node, Pool   each as uvarint length, then the bytes
//	Interests, Avoid   each as uvarint count + 1 (0 for a nil slice), then the strings
//	Labels             uvarint count + 1 (0 for a nil map), then key and value strings
//
// Nil and empty slices and maps stay apart, and times keep their nanoseconds (a zero
// time decodes as the zero [time.Time]), so the Pair carries every field as the
// Ticket had it. A ticket takes about 30 bytes plus its strings.
const ticketVersion = 1

// zeroUnix is the Unix time of the zero time.Time.
var zeroUnix = time.Time{}.Unix()

// appendTicket appends the encoding of t to dst. t's Gender and Preference must be
// valid.
func appendTicket(dst []byte, t flamingo.Ticket) []byte {
	dst = append(dst, ticketVersion, byte(genderIndex(t.Gender)*len(preferences)+preferenceIndex(t.Preference)))
	dst = appendTime(dst, t.JoinedAt)
	dst = appendTime(dst, t.RelaxAt)
	dst = appendString(dst, t.User)
	dst = appendString(dst, t.Node)
	dst = appendString(dst, t.Pool)
	dst = appendStrings(dst, t.Interests)
	dst = appendStrings(dst, t.Avoid)
	if t.Labels == nil {
		return append(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(len(t.Labels))+1)
	for k, v := range t.Labels {
		dst = appendString(dst, k)
		dst = appendString(dst, v)
	}
	return dst
}

func appendTime(dst []byte, t time.Time) []byte {
	dst = binary.AppendVarint(dst, t.Unix())
	return binary.AppendUvarint(dst, uint64(t.Nanosecond()))
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendStrings(dst []byte, ss []string) []byte {
	if ss == nil {
		return append(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(len(ss))+1)
	for _, s := range ss {
		dst = appendString(dst, s)
	}
	return dst
}

func genderIndex(g flamingo.Gender) int {
	for i := range genders {
		if genders[i] == g {
			return i
		}
	}
	return -1
}

func preferenceIndex(p flamingo.Preference) int {
	for i := range preferences {
		if preferences[i] == p {
			return i
		}
	}
	return -1
}

var errTicketEncoding = errors.New("malformed ticket encoding")

// decodeTicket reads a ticket encoded by appendTicket. Its strings share s's memory.
func decodeTicket(s string) (flamingo.Ticket, error) {
	d := ticketDecoder{s: s}
	if v := d.next(); d.bad || v != ticketVersion {
		return flamingo.Ticket{}, fmt.Errorf("%w: version %d, want %d", errTicketEncoding, v, ticketVersion)
	}
	var t flamingo.Ticket
	kind := int(d.next())
	if kind >= len(genders)*len(preferences) {
		return flamingo.Ticket{}, fmt.Errorf("%w: kind %d", errTicketEncoding, kind)
	}
	t.Gender, t.Preference = genders[kind/len(preferences)], preferences[kind%len(preferences)]
	t.JoinedAt = d.when()
	t.RelaxAt = d.when()
	t.User = d.str()
	t.Node = d.str()
	t.Pool = d.str()
	t.Interests = d.strs()
	t.Avoid = d.strs()
	if n, ok := d.count(2); ok {
		t.Labels = make(map[string]string, n)
		for range n {
			k := d.str()
			t.Labels[k] = d.str()
		}
	}
	if d.bad || d.i != len(s) {
		return flamingo.Ticket{}, fmt.Errorf("%w (%d bytes, stopped at %d)", errTicketEncoding, len(s), d.i)
	}
	return t, nil
}

// ticketDecoder reads an encoded ticket from s at i. Once bad (a read past the end,
// a length that does not fit), every read returns a zero value.
type ticketDecoder struct {
	s   string
	i   int
	bad bool
}

func (d *ticketDecoder) next() byte {
	if d.bad || d.i >= len(d.s) {
		d.bad = true
		return 0
	}
	d.i++
	return d.s[d.i-1]
}

func (d *ticketDecoder) uvarint() uint64 {
	var x uint64
	for shift := 0; shift < 64; shift += 7 {
		b := d.next()
		if d.bad {
			return 0
		}
		x |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return x
		}
	}
	d.bad = true
	return 0
}

func (d *ticketDecoder) varint() int64 {
	u := d.uvarint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

func (d *ticketDecoder) when() time.Time {
	sec, nsec := d.varint(), d.uvarint()
	if nsec >= uint64(time.Second) {
		d.bad = true
	}
	if d.bad || (sec == zeroUnix && nsec == 0) {
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec))
}

func (d *ticketDecoder) str() string {
	n := d.uvarint()
	if d.bad || n > uint64(len(d.s)-d.i) {
		d.bad = true
		return ""
	}
	s := d.s[d.i : d.i+int(n)]
	d.i += int(n)
	return s
}

// count reads a count + 1 (0 for nil) of items that take at least size bytes each.
// ok is false for nil.
func (d *ticketDecoder) count(size int) (n int, ok bool) {
	c := d.uvarint()
	if d.bad || c == 0 {
		return 0, false
	}
	if c-1 > uint64((len(d.s)-d.i)/size) {
		d.bad = true
		return 0, false
	}
	return int(c - 1), true
}

func (d *ticketDecoder) strs() []string {
	n, ok := d.count(1)
	if !ok {
		return nil
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = d.str()
	}
	return ss
}
