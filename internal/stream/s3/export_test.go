package s3

import (
	"testing"

	"github.com/audittrail/audittrail/internal/event"
)

// What the end-to-end test (package s3_test) reuses of this package's fake
// S3 server and checks.

type FakeS3 = fakeS3

const TestBucket = testBucket

var (
	StartS3      = startS3
	CheckArchive = checkArchive
)

func (f *fakeS3) Stop()        { f.stop() }
func (f *fakeS3) Start()       { f.start() }
func (f *fakeS3) Addr() string { return f.addr }

// Refuse makes every request fail with 503 SlowDown while on.
func (f *fakeS3) Refuse(on bool) { f.refuse.Store(on) }

// LoseAnswers stores the next n uploads but drops the connection instead
// of answering them.
func (f *fakeS3) LoseAnswers(n int32) { f.loseAcks.Store(n) }

// ReadArchive returns, per project directory ("company" for company-level
// events), the events of the objects under prefix trail/ in key order,
// checking each object's key, encoding and content type.
func ReadArchive(t *testing.T, f *FakeS3) map[string][]event.Event { return readArchive(t, f) }

// ArchivedBatch is one batch as a receiver reads it back.
type ArchivedBatch = archivedBatch

// ReadEvidence returns every batch's evidence object, in delivery order,
// with the objects it names (decompressed).
func ReadEvidence(t *testing.T, f *FakeS3) []ArchivedBatch { return readEvidence(t, f) }

func (b archivedBatch) Key() string                { return b.key }
func (b archivedBatch) Evidence() []byte           { return b.evidence }
func (b archivedBatch) Objects() map[string][]byte { return b.objects }
