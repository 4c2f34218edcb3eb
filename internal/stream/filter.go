package stream

import (
	"slices"

	"github.com/audittrail/audittrail/internal/event"
)

// matches reports whether the connector delivers e: same company, a level
// and project it selects, and every filter passed (filters are ANDed, as in
// Descope).
func (s *Spec) matches(e *event.Event) bool {
	if e.CompanyID != s.CompanyID {
		return false
	}
	switch e.Level {
	case event.LevelProject:
		if s.Level == LevelCompany {
			return false
		}
		if s.ProjectID != "" && e.ProjectID != s.ProjectID {
			return false
		}
	case event.LevelCompany:
		if s.Level == LevelProject {
			return false
		}
	default:
		return false
	}
	for i := range s.Filters {
		if !s.Filters[i].passes(e) {
			return false
		}
	}
	return true
}

func (f *Filter) passes(e *event.Event) bool {
	var hit bool
	switch f.FilterType {
	case "all":
		hit = true
	case "actions":
		hit = slices.Contains(f.Values, e.Action)
	case "tenants":
		for _, t := range e.Tenants {
			if slices.Contains(f.Values, t) {
				hit = true
				break
			}
		}
	}
	if f.Operator == "excludes" {
		return !hit
	}
	return hit
}
