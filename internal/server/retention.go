package server

import (
	"context"
	"time"
)

const day = 24 * time.Hour

// retentionLoop deletes, for every company, the events older than its
// retention, once at start and then every interval.
func (s *Server) retentionLoop(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s.enforceRetention(ctx, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// enforceRetention runs one pass. Retention is never shorter than the
// search window: an event a user may still search for is never deleted.
func (s *Server) enforceRetention(ctx context.Context, now time.Time) {
	companies, err := s.dir.Companies(ctx)
	if err != nil {
		s.log.Error("retention: list companies", "error", err)
		return
	}
	for _, c := range companies {
		days := max(c.Settings.RetentionDays, c.Settings.SearchWindowDays)
		if days <= 0 {
			continue
		}
		before := now.Add(-time.Duration(days) * day).UnixMilli()
		n, err := s.store.DeleteBefore(ctx, c.ID, before)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Error("retention: delete expired events", "company", c.ID, "error", err)
			continue
		}
		if n > 0 {
			s.log.Info("retention: deleted expired events", "company", c.ID, "count", n, "retention_days", days)
		}
	}
}
