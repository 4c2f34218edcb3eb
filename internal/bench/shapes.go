package bench

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/query"
)

// Sample is a uniform reservoir sample of the generated trail: query values
// are drawn from it, so a busy user is asked about as often as real
// operators would ask about them, and every value exists in the data.
type Sample struct {
	rng  *rand.Rand
	seen int
	rows []sampleRow
}

type sampleRow struct {
	projectID     string
	userID        string
	loginIDs      []string
	remoteAddress string
	tenants       []string
	action        string
	geo           string
	device        string
	method        string
	correlationID string
}

// DefaultSampleSize keeps enough rows that 200 queries per shape rarely
// repeat a value, and little enough memory to ignore.
const DefaultSampleSize = 8192

// NewSample returns an empty reservoir of the given size.
func NewSample(seed uint64, size int) *Sample {
	return &Sample{rng: rand.New(rand.NewPCG(seed, 0x5a3b1e)), rows: make([]sampleRow, 0, size)}
}

// Observe offers one event to the reservoir (Algorithm R).
func (s *Sample) Observe(e *event.Event) {
	s.seen++
	slot := len(s.rows)
	if slot == cap(s.rows) {
		slot = s.rng.IntN(s.seen)
		if slot >= len(s.rows) {
			return
		}
	} else {
		s.rows = append(s.rows, sampleRow{})
	}
	s.rows[slot] = sampleRow{
		projectID: e.ProjectID, userID: e.UserID, loginIDs: e.LoginIDs, remoteAddress: e.RemoteAddress,
		tenants: e.Tenants, action: e.Action, geo: e.Geo, device: e.Device, method: e.Method,
		correlationID: correlationID(e.Data),
	}
}

// Len is the number of rows kept.
func (s *Sample) Len() int { return len(s.rows) }

// correlationID reads data.correlation_id, which the generator always
// writes first: a random 20-character word that occurs in one event only.
func correlationID(data []byte) string {
	const prefix = `{"correlation_id":"`
	if !bytes.HasPrefix(data, []byte(prefix)) {
		return ""
	}
	rest := data[len(prefix):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return ""
	}
	return string(rest[:end])
}

// Shape names, in report order.
const (
	ShapeUserID          = "userId"
	ShapeLoginID         = "loginId"
	ShapeRemoteAddress   = "remoteAddress"
	ShapeActionsGeos     = "actions+geos"
	ShapeExcludedActions = "excludedActions"
	ShapeDevicesMethods  = "devices+methods"
	ShapeTenants         = "tenants(5)"
	ShapeTenantsNone     = "tenants(5)+noTenants"
	ShapeTextWord        = "text:word"
	ShapeTextAction      = "text+action"
	ShapeTextRare        = "text:rareDataWord"
	ShapeDeepPage        = "deepPage(200x50)"
	ShapeLevelCompany    = "level:company"
	ShapeLevelProject    = "level:project"
	ShapeLastDay         = "last24h"
)

// Shapes lists every query shape the benchmark runs.
var Shapes = []string{ShapeUserID, ShapeLoginID, ShapeRemoteAddress, ShapeActionsGeos, ShapeExcludedActions,
	ShapeDevicesMethods, ShapeTenants, ShapeTenantsNone, ShapeTextWord, ShapeTextAction, ShapeTextRare,
	ShapeDeepPage, ShapeLevelCompany, ShapeLevelProject, ShapeLastDay}

// ShapeDescriptions say in a line what each shape asks, for the table's
// legend. Every query is scoped to one project (drawn like the events: the
// hot one 60 % of the time), both levels unless said, the 30-day window,
// and asks for the exact total.
var ShapeDescriptions = map[string]string{
	ShapeUserID:          "one user ID",
	ShapeLoginID:         "one login ID (externalIds)",
	ShapeRemoteAddress:   "one IP address",
	ShapeActionsGeos:     "1-3 actions and 1-3 countries",
	ShapeExcludedActions: "excludedActions (1-3 common actions) and nothing else",
	ShapeDevicesMethods:  "1-2 devices and 1-2 methods",
	ShapeTenants:         "five tenants",
	ShapeTenantsNone:     "five tenants, or no tenant at all (noTenants)",
	ShapeTextWord:        "one everyday word (chrome, okta, expired…) as free text",
	ShapeTextAction:      "one everyday word and one action",
	ShapeTextRare:        "a word found in one event's data (its correlation_id)",
	ShapeDeepPage:        "no filter, page 200 of 50 (offset 9,950)",
	ShapeLevelCompany:    "the company's own events only (levels: company)",
	ShapeLevelProject:    "one project's events without the company's (levels: project)",
	ShapeLastDay:         "no filter, the last 24 hours",
}

// QuerySet is the queries of one shape, run in this order on every engine.
type QuerySet struct {
	Shape   string
	Queries []query.Query
}

// QueryOptions scope the queries to the generated trail.
type QueryOptions struct {
	CompanyID string
	// End is the generator's End: the search window is the 30 days before
	// it, as the API would clamp a request's `from`.
	End      int64
	PerShape int
	PageSize int
	Seed     uint64
}

// BuildQueries draws opts.PerShape queries of every shape from the sample.
// The same sample and options give the same queries.
func BuildQueries(s *Sample, opts QueryOptions) []QuerySet {
	rng := rand.New(rand.NewPCG(opts.Seed, 0x9e7e5))
	projectRows := make([]sampleRow, 0, len(s.rows))
	for _, r := range s.rows {
		if r.projectID != "" {
			projectRows = append(projectRows, r)
		}
	}
	if len(projectRows) == 0 {
		return nil
	}
	row := func() sampleRow { return projectRows[rng.IntN(len(projectRows))] }
	// rowWhere draws a row of the project that has what the shape needs;
	// it gives up after a while and returns any row of the project.
	rowWhere := func(projectID string, ok func(sampleRow) bool) sampleRow {
		for range 1000 {
			r := row()
			if (projectID == "" || r.projectID == projectID) && ok(r) {
				return r
			}
		}
		return row()
	}
	// distinct draws up to n different values of one field from rows of
	// the project.
	distinct := func(projectID string, n int, field func(sampleRow) string) []string {
		var out []string
		for range 50 * n {
			if len(out) == n {
				break
			}
			v := field(rowWhere(projectID, func(r sampleRow) bool { return field(r) != "" }))
			if v != "" && !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
		return out
	}
	base := func(projectID string) query.Query {
		return query.Query{
			CompanyID: opts.CompanyID, ProjectID: projectID,
			IncludeProject: true, IncludeCompany: true,
			From: opts.End - genDefaultSpan.Milliseconds(),
			Size: opts.PageSize,
		}
	}

	build := map[string]func() query.Query{
		ShapeUserID: func() query.Query {
			r := row()
			q := base(r.projectID)
			q.UserIDs = []string{r.userID}
			return q
		},
		ShapeLoginID: func() query.Query {
			r := rowWhere("", func(r sampleRow) bool { return len(r.loginIDs) > 0 })
			q := base(r.projectID)
			q.LoginIDs = []string{r.loginIDs[rng.IntN(len(r.loginIDs))]}
			return q
		},
		ShapeRemoteAddress: func() query.Query {
			r := row()
			q := base(r.projectID)
			q.RemoteAddresses = []string{r.remoteAddress}
			return q
		},
		ShapeActionsGeos: func() query.Query {
			p := row().projectID
			q := base(p)
			q.Actions = distinct(p, 1+rng.IntN(3), func(r sampleRow) string { return r.action })
			q.Geos = distinct(p, 1+rng.IntN(3), func(r sampleRow) string { return r.geo })
			return q
		},
		ShapeExcludedActions: func() query.Query {
			p := row().projectID
			q := base(p)
			q.ExcludedActions = distinct(p, 1+rng.IntN(3), func(r sampleRow) string { return r.action })
			return q
		},
		ShapeDevicesMethods: func() query.Query {
			p := row().projectID
			q := base(p)
			q.Devices = distinct(p, 1+rng.IntN(2), func(r sampleRow) string { return r.device })
			q.Methods = distinct(p, 1+rng.IntN(2), func(r sampleRow) string { return r.method })
			return q
		},
		ShapeTenants: func() query.Query {
			p := row().projectID
			q := base(p)
			q.Tenants = distinct(p, 5, func(r sampleRow) string {
				if len(r.tenants) == 0 {
					return ""
				}
				return r.tenants[rng.IntN(len(r.tenants))]
			})
			return q
		},
		ShapeTextWord: func() query.Query {
			q := base(row().projectID)
			q.TextTokens = query.TextTokens(TextWords[rng.IntN(len(TextWords))])
			return q
		},
		ShapeTextAction: func() query.Query {
			r := row()
			q := base(r.projectID)
			q.TextTokens = query.TextTokens(TextWords[rng.IntN(len(TextWords))])
			q.Actions = []string{r.action}
			return q
		},
		ShapeTextRare: func() query.Query {
			r := rowWhere("", func(r sampleRow) bool { return r.correlationID != "" })
			q := base(r.projectID)
			q.TextTokens = query.TextTokens(r.correlationID)
			return q
		},
		ShapeDeepPage: func() query.Query {
			q := base(row().projectID)
			q.Page, q.Size = 199, 50
			return q
		},
		ShapeLevelCompany: func() query.Query {
			q := base(row().projectID)
			q.IncludeProject = false
			return q
		},
		ShapeLevelProject: func() query.Query {
			q := base(row().projectID)
			q.IncludeCompany = false
			return q
		},
		ShapeLastDay: func() query.Query {
			q := base(row().projectID)
			q.From = opts.End - (24 * time.Hour).Milliseconds()
			return q
		},
	}
	build[ShapeTenantsNone] = func() query.Query {
		q := build[ShapeTenants]()
		q.NoTenants = true
		return q
	}

	out := make([]QuerySet, 0, len(Shapes))
	for _, shape := range Shapes {
		set := QuerySet{Shape: shape, Queries: make([]query.Query, opts.PerShape)}
		for i := range set.Queries {
			set.Queries[i] = build[shape]()
		}
		out = append(out, set)
	}
	return out
}
