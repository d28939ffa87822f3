// Package flamingotest helps test code built on flamingo, and flamingo itself.
//
// [Pipe] is an in-memory [flamingo.Transport]: hand one end to [flamingo.Engine.Serve]
// and drive the other with a scripted [Client], with no network and in zero wall time
// under testing/synctest. [Connect] does both in one call, and [Dial] gives the same
// Client over a real WebSocket.
//
// [TestMatcher] and [TestTransport] are conformance suites: any [flamingo.Matcher] or
// [flamingo.Transport] implementation runs the one for its interface from its own tests
// to show that it keeps the contract. The in-memory pipe and the WebSocket adapter pass
// TestTransport. A [Ledger] audits a concurrent run of one matcher, or of several
// sharing a queue, against the Matcher contract; TestMatcher uses it, and an
// implementation's own stress tests can too.
package flamingotest
