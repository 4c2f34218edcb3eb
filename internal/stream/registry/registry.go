// Package registry is the explicit factory map at the edge: every
// destination type name the server accepts and how to build and redact it.
// Adding a destination is one line here.
package registry

import (
	"slices"

	"github.com/audittrail/audittrail/internal/stream"
	"github.com/audittrail/audittrail/internal/stream/datadog"
	"github.com/audittrail/audittrail/internal/stream/kafka"
	"github.com/audittrail/audittrail/internal/stream/nats"
	"github.com/audittrail/audittrail/internal/stream/otlp"
	"github.com/audittrail/audittrail/internal/stream/s3"
	"github.com/audittrail/audittrail/internal/stream/splunk"
	"github.com/audittrail/audittrail/internal/stream/sumo"
	"github.com/audittrail/audittrail/internal/stream/syslog"
	"github.com/audittrail/audittrail/internal/stream/webhook"
)

// Destinations returns a fresh map of every destination, for
// stream.Options.Destinations. Entries without Redact hide the values of
// keys named like secrets (stream.DefaultSecretKeys) and URL passwords.
func Destinations() map[string]stream.Destination {
	return map[string]stream.Destination{
		stream.WebhookType: webhook.Destination(),
		"splunk":           splunk.Destination(),
		"datadog":          datadog.Destination(),
		"sumo":             sumo.Destination(),
		"nats":             {New: nats.Factory},
		"kafka":            {New: kafka.Factory},
		"syslog":           {New: syslog.Factory},
		"s3":               {New: s3.Factory},
		"otlp":             {New: otlp.Factory},
	}
}

// Names lists the destination type names, sorted.
func Names() []string {
	var names []string
	for n := range Destinations() {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
