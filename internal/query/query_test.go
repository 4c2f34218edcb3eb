package query

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/audittrail/audittrail/internal/event"
)

func TestTextTokens(t *testing.T) {
	if got := TextTokens("  John.Doe   chrome john "); !reflect.DeepEqual(got, []string{"john", "doe", "chrome"}) {
		t.Fatalf("got %q", got)
	}
}

func TestMatch(t *testing.T) {
	base := event.Event{CompanyID: "C", ProjectID: "P", Level: event.LevelProject, Action: "LoginSucceed", Type: "info",
		UserID: "u1", Occurred: 100, LoginIDs: []string{"John.Doe@example.com"},
		Data: json.RawMessage(`{"Change":{"added_roles":["x"]},"ua":"Mozilla Chrome"}`)}
	noTenant := base
	withTenant := base
	withTenant.Tenants = []string{"t1", "t2"}
	company := base
	company.Level, company.ProjectID = event.LevelCompany, ""
	q := func(mut func(*Query)) Query {
		q := Query{CompanyID: "C", ProjectID: "P", IncludeProject: true, IncludeCompany: true}
		mut(&q)
		return q
	}
	for name, tc := range map[string]struct {
		q    Query
		e    event.Event
		want bool
	}{
		"plain":                {q(func(*Query) {}), base, true},
		"other company":        {q(func(q *Query) { q.CompanyID = "D" }), base, false},
		"other project":        {q(func(q *Query) { q.ProjectID = "Q" }), base, false},
		"company level kept":   {q(func(q *Query) { q.ProjectID = "Q" }), company, true},
		"company level off":    {q(func(q *Query) { q.IncludeCompany = false }), company, false},
		"project level off":    {q(func(q *Query) { q.IncludeProject = false }), base, false},
		"from":                 {q(func(q *Query) { q.From = 101 }), base, false},
		"to inclusive":         {q(func(q *Query) { q.To = 100 }), base, true},
		"excluded":             {q(func(q *Query) { q.ExcludedActions = []string{"LoginSucceed"} }), base, false},
		"actions or":           {q(func(q *Query) { q.Actions = []string{"X", "LoginSucceed"} }), base, true},
		"tenant any":           {q(func(q *Query) { q.Tenants = []string{"t2", "t9"} }), withTenant, true},
		"tenant miss":          {q(func(q *Query) { q.Tenants = []string{"t9"} }), noTenant, false},
		"tenant + noTenants":   {q(func(q *Query) { q.Tenants = []string{"t9"}; q.NoTenants = true }), noTenant, true},
		"noTenants alone":      {q(func(q *Query) { q.NoTenants = true }), withTenant, false},
		"text prefix":          {q(func(q *Query) { q.TextTokens = TextTokens("john.do CHROM") }), base, true},
		"text all words":       {q(func(q *Query) { q.TextTokens = TextTokens("john quetzal") }), base, false},
		"text data key":        {q(func(q *Query) { q.TextTokens = TextTokens("added_roles") }), base, true},
		"type":                 {q(func(q *Query) { q.Types = []string{"warn"} }), base, false},
		"changed field":        {q(func(q *Query) { q.ChangedFields = []string{"added_roles"} }), base, true},
		"changed field absent": {q(func(q *Query) { q.ChangedFields = []string{"email"} }), base, false},
		"login id exact":       {q(func(q *Query) { q.LoginIDs = []string{"john.doe@example.com"} }), base, false},
	} {
		if got := tc.q.Match(&tc.e); got != tc.want {
			t.Errorf("%s: Match = %v, want %v", name, got, tc.want)
		}
	}
}
