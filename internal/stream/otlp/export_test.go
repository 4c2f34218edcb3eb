package otlp

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

// What the end-to-end test (package otlp_test) reuses of this package's
// in-process Collector receiver and checks.

type Collector = collector

var (
	StartCollector = startCollector
	CheckRecords   = checkRecords
)

func (c *collector) Addr() string { return c.addr }
func (c *collector) Stop()        { c.stop() }
func (c *collector) Start()       { c.start() }

// Refuse makes the pipeline fail while on: the receiver answers 503.
func (c *collector) Refuse(on bool) { c.refuse.Store(on) }

// Received returns every log record taken so far, with its resource's
// attributes.
func (c *collector) Received() ([]plog.LogRecord, []pcommon.Map) { return c.received() }
