package stream

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Metrics are one connector's counters and gauges for /metrics.
type Metrics struct {
	ConnectorID string
	CompanyID   string
	Type        string
	State       string
	Health
}

// Metrics returns every connector's metrics, ordered by connector id.
func (m *Manager) Metrics(ctx context.Context) []Metrics {
	m.mu.RLock()
	cs := make([]*connector, 0, len(m.conns))
	for _, c := range m.conns {
		cs = append(cs, c)
	}
	m.mu.RUnlock()
	out := make([]Metrics, 0, len(cs))
	for _, c := range cs {
		s := c.spec()
		h := c.health(ctx)
		out = append(out, Metrics{ConnectorID: s.ID, CompanyID: s.CompanyID, Type: s.Type, State: h.State, Health: h})
	}
	slices.SortFunc(out, func(a, b Metrics) int { return strings.Compare(a.ConnectorID, b.ConnectorID) })
	return out
}

// WritePrometheus writes the metrics in the Prometheus text format, for a
// server that serves /metrics without a client library.
func (m *Manager) WritePrometheus(ctx context.Context, w io.Writer) error {
	ms := m.Metrics(ctx)
	type family struct {
		name, typ, help string
		value           func(*Metrics) float64
	}
	fams := []family{
		{"audittrail_stream_delivered_events_total", "counter", "Events the destination acknowledged.", func(x *Metrics) float64 { return float64(x.Delivered) }},
		{"audittrail_stream_delivered_batches_total", "counter", "Batches the destination acknowledged.", func(x *Metrics) float64 { return float64(x.Batches) }},
		{"audittrail_stream_failed_attempts_total", "counter", "Failed delivery attempts (each is retried).", func(x *Metrics) float64 { return float64(x.FailedAttempts) }},
		{"audittrail_stream_failed_events_total", "counter", "Events in failed delivery attempts.", func(x *Metrics) float64 { return float64(x.FailedEvents) }},
		{"audittrail_stream_lag_events", "gauge", "Store sequence numbers not yet past the cursor.", func(x *Metrics) float64 { return float64(x.LagEvents) }},
		{"audittrail_stream_lag_seconds", "gauge", "Age of the oldest event not yet past the cursor.", func(x *Metrics) float64 { return x.LagSeconds }},
		{"audittrail_stream_up", "gauge", "1 when the connector is active and not failing.", func(x *Metrics) float64 {
			if x.State == StateActive {
				return 1
			}
			return 0
		}},
	}
	var b strings.Builder
	for _, f := range fams {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", f.name, f.help, f.name, f.typ)
		for i := range ms {
			x := &ms[i]
			fmt.Fprintf(&b, "%s{connector=%q,company=%q,type=%q,state=%q} %g\n", f.name, x.ConnectorID, x.CompanyID, x.Type, x.State, f.value(x))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
