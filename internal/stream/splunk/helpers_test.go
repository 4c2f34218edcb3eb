package splunk_test

import (
	"github.com/audittrail/audittrail/internal/stream"
	"github.com/audittrail/audittrail/internal/stream/streamtest"
)

func batchOf(n int) stream.Batch {
	return stream.Batch{ConnectorID: "c", Events: streamtest.Events("C1", "P1", "x", n)}
}
