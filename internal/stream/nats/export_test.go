package nats

import "testing"

// What the end-to-end test (package nats_test) reuses of this package's
// test server and checks.

type OwnServer = ownServer

var (
	Integration    = integration
	StartOwnServer = startOwnServer
	UniqueStream   = uniqueStream
	CheckReceived  = checkReceived
)

func (s *ownServer) Kill()       { s.kill() }
func (s *ownServer) Run()        { s.run() }
func (s *ownServer) URL() string { return s.url }

// Received is one message of a stream as ReadStream returns it.
type Received = received

// ReadStream returns every message of the stream in stream order.
func ReadStream(t *testing.T, url, name string) []Received { return readStream(t, url, name) }

func (r received) EventID() string { return r.event.ID }
func (r received) Subject() string { return r.subject }
func (r received) Data() []byte    { return r.data }

// Evidence is the message's evidence header, nil when it has none.
func (r received) Evidence() []byte {
	if v := r.header.Get(HeaderEvidence); v != "" {
		return []byte(v)
	}
	return nil
}

// SetMaxEvidenceBytes changes the evidence header's bound until the test
// ends, so that groups are cut by size.
func SetMaxEvidenceBytes(t *testing.T, n int) {
	old := maxEvidenceBytes
	maxEvidenceBytes = n
	t.Cleanup(func() { maxEvidenceBytes = old })
}
