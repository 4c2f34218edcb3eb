package s3_test

import (
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/server/servertest"
	"github.com/audittrail/audittrail/internal/stream/s3"
	"github.com/audittrail/audittrail/internal/stream/streamtest/e2e"
)

// TestEndToEnd: an S3 connector created through the API of the real
// server archives every event ingested over HTTP through a server restart,
// a stretch of 503 SlowDown and uploads stored but never answered. Object
// keys are deterministic, so a retried batch overwrites what it stored:
// the archive holds each event exactly once, as gzip NDJSON objects under
// trail/<project or company>/YYYY/MM/DD/, in ingest order per project and
// day.
func TestEndToEnd(t *testing.T) {
	f := s3.StartS3(t)
	r := e2e.Start(t, servertest.Options{})
	id := r.Connector("s3", "archive", map[string]any{"bucket": s3.TestBucket, "prefix": "trail", "endpoint": "http://" + f.Addr(),
		"pathStyle": true, "accessKeyId": "test", "secretAccessKey": "test-secret", "timeout": "1s"})
	r.Exercise([]string{id},
		e2e.Outage{Name: "server restart", Down: f.Stop, Up: f.Start},
		e2e.Outage{Name: "503 SlowDown", Down: func() { f.Refuse(true) }, Up: func() { f.Refuse(false) }},
		e2e.Outage{Name: "answers lost", Down: func() { f.LoseAnswers(3) }, Up: func() {}},
	)

	sent := r.Sent()
	got := s3.ReadArchive(t, f)
	var arrivals []e2e.Arrival
	for dir, evs := range got {
		for _, e := range evs {
			day := time.UnixMilli(e.Occurred).UTC().Format("2006/01/02")
			arrivals = append(arrivals, e2e.Arrival{ID: e.ID, Channel: dir + "/" + day})
		}
	}
	e2e.CheckOnceInOrder(t, sent, arrivals, false)
	s3.CheckArchive(t, sent, got)
	t.Logf("%d events archived once each in %d directories", len(sent), len(got))
}
