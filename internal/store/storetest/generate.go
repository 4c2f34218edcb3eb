package storetest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/audittrail/audittrail/internal/event"
)

// GenOptions shape the events Generate produces. The zero value is usable.
type GenOptions struct {
	// Companies the events are spread over; default {"c1", "c2"}.
	Companies []string
	// Projects every company has; default {"P1", "P2", "P3"}. The same
	// project IDs are used in every company on purpose, so that a backend
	// which scopes by project alone and forgets the company is caught.
	Projects []string
	// End is the newest possible Occurred (epoch ms). Default: the current
	// time rounded down to the hour, so two calls in one test agree; set it
	// for events that are identical across runs.
	End int64
	// Span is how far before End events may lie; default 20 days.
	Span time.Duration
	// CompanyLevel is the share of company-level events; default 0.15, a
	// negative value gives none.
	CompanyLevel float64
	// IDPrefix starts every event ID; default "g<seed>-", so batches
	// generated from different seeds never share an ID.
	IDPrefix string
}

func (o *GenOptions) defaults(seed uint64) {
	if len(o.Companies) == 0 {
		o.Companies = []string{"c1", "c2"}
	}
	if len(o.Projects) == 0 {
		o.Projects = []string{"P1", "P2", "P3"}
	}
	if o.End == 0 {
		o.End = time.Now().Truncate(time.Hour).UnixMilli()
	}
	if o.Span <= 0 {
		o.Span = 20 * 24 * time.Hour
	}
	if o.CompanyLevel == 0 {
		o.CompanyLevel = 0.15
	}
	if o.IDPrefix == "" {
		o.IDPrefix = fmt.Sprintf("g%d-", seed)
	}
}

// Pools of realistic values. Unicode and mixed case are here on purpose:
// text search must fold case and treat every letter as a letter.
var (
	genDevices   = []string{"Desktop", "Desktop", "Mobile", "Tablet", "Bot", "Unknown", ""}
	genMethods   = []string{"otp", "totp", "magiclink", "oauth", "saml", "password", "Impersonate", ""}
	genGeos      = []string{"US", "US", "IL", "DE", "FR", "JP", "BR", ""}
	genTenants   = []string{"t1", "t2", "t3", "t4", "T-Acme", "tenant-Ärzte", "東京支社", "t8"}
	genFirst     = []string{"John", "Zoë", "Ana", "Łukasz", "Mei", "Olu", "Søren", "Quetzal", "Priya", "Jean-Luc"}
	genLast      = []string{"Doe", "Müller", "García", "Nowak", "李", "Adeyemi", "Ørsted", "Person", "Rao", "Picard"}
	genDomains   = []string{"example.com", "Example.org", "corp.example.de", "例え.jp"}
	genUAs       = []string{"Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 Chrome/120.0 Safari/537.36", "Mozilla/5.0 (Macintosh) Gecko/20100101 Firefox/121.0", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1) Mobile/15E148 Safari/604.1", "curl/8.4.0", "Googlebot/2.1"}
	genChanges   = []string{"added_roles", "removed_roles", "added_multi_tenant_roles", "display_name", "given_name", "family_name", "phone", "custom_attribute_plan", "email"}
	genRoles     = []string{"Editor", "Viewer", "Tenant Admin", "Aufsichtsrat"}
	genErrors    = []string{"wrong password", "user not found", "OTP code expired", "Zugriff verweigert"}
	genSCIMOps   = []string{"create", "update", "patch", "delete"}
	genCompanyEv = []string{"ProjectCreated", "ProjectDeleted", "ManagementKeyCreated", "ManagementKeyRevoked", "ManagementKeyRotated", "CompanySettingsModified"}
)

type genAction struct {
	name, typ string
	weight    int
}

var genActions = []genAction{
	{"LoginSucceed", event.TypeInfo, 30},
	{"LoginFailed", event.TypeWarn, 10},
	{"LoginStarted", event.TypeInfo, 10},
	{"LoginExceedMaxAttempts", event.TypeWarn, 2},
	{"UserRefresh", event.TypeInfo, 10},
	{"UserCreated", event.TypeInfo, 5},
	{"UserModified", event.TypeInfo, 10},
	{"UserDeleted", event.TypeInfo, 2},
	{"SCIMEvent", event.TypeInfo, 5},
	{"AccessKeyCreated", event.TypeInfo, 2},
	{"PermissionDeleted", event.TypeWarn, 2},
	{"ProjectDeleted", event.TypeError, 1},
}

// Generate returns n valid, realistic events, the same for the same seed and
// options: logins, failures, user changes with data.Change, SCIM events,
// company-level admin events, nested request details, unicode names, repeated
// timestamps (to exercise ties) and events without tenants or data. Seq is 0.
func Generate(seed uint64, n int, opts GenOptions) []event.Event {
	opts.defaults(seed)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	pick := func(s []string) string { return s[rng.IntN(len(s))] }

	type person struct{ id, name, login string }
	people := make([]person, 60)
	for i := range people {
		first, last := pick(genFirst), pick(genLast)
		login := strings.ToLower(first) + "." + last + "@" + pick(genDomains)
		if rng.IntN(8) == 0 {
			login = fmt.Sprintf("+1415555%04d", rng.IntN(10000))
		}
		people[i] = person{id: "U" + randomID(rng, 27), name: first + " " + last, login: login}
	}
	addrs := make([]string, 40)
	for i := range addrs {
		if i%5 == 4 {
			addrs[i] = fmt.Sprintf("2001:db8::%x", rng.IntN(0xffff))
		} else {
			addrs[i] = fmt.Sprintf("%d.%d.%d.%d", 198+rng.IntN(6), rng.IntN(256), rng.IntN(256), 1+rng.IntN(254))
		}
	}
	totalWeight := 0
	for _, a := range genActions {
		totalWeight += a.weight
	}

	span := max(1, opts.Span.Milliseconds())
	out := make([]event.Event, n)
	for i := range out {
		e := &out[i]
		e.ID = fmt.Sprintf("%s%06d", opts.IDPrefix, i)
		e.CompanyID = pick(opts.Companies)
		switch {
		case i > 0 && rng.IntN(10) == 0:
			// Same millisecond as an earlier event: only Seq orders them.
			e.Occurred = out[rng.IntN(i)].Occurred
		case rng.IntN(5) == 0:
			e.Occurred = opts.End - rng.Int64N(span)/1000*1000
		default:
			e.Occurred = opts.End - rng.Int64N(span)
		}
		if e.Occurred <= 0 {
			e.Occurred = 1
		}
		p := people[rng.IntN(len(people))]

		if rng.Float64() < opts.CompanyLevel {
			e.Level = event.LevelCompany
			e.Action = pick(genCompanyEv)
			e.Type = event.TypeInfo
			if e.Action == "ProjectDeleted" || e.Action == "ManagementKeyRevoked" {
				e.Type = event.TypeWarn
			}
			e.ActorID = "K" + randomID(rng, 26)
			e.RemoteAddress = pick(addrs)
			e.Data = mustJSON(map[string]any{
				"projectId": pick(opts.Projects),
				"name":      pick(genFirst) + " project",
				"changed":   map[string]any{"searchWindowDays": rng.IntN(90), "retentionDays": 90 + rng.IntN(300)},
			})
			continue
		}

		e.Level = event.LevelProject
		e.ProjectID = pick(opts.Projects)
		w := rng.IntN(totalWeight)
		var act genAction
		for _, a := range genActions {
			if w < a.weight {
				act = a
				break
			}
			w -= a.weight
		}
		e.Action, e.Type = act.name, act.typ
		e.UserID = p.id
		e.ActorID = p.id
		if rng.IntN(4) == 0 {
			e.ActorID = people[rng.IntN(len(people))].id
		}
		e.Device = pick(genDevices)
		e.Method = pick(genMethods)
		e.Geo = pick(genGeos)
		e.RemoteAddress = pick(addrs)
		if rng.IntN(10) != 0 {
			e.LoginIDs = []string{p.login}
			if rng.IntN(10) == 0 {
				e.LoginIDs = append(e.LoginIDs, fmt.Sprintf("+1415555%04d", rng.IntN(10000)))
			}
		}
		for range max(0, rng.IntN(5)-1) {
			t := pick(genTenants)
			if !contains(e.Tenants, t) {
				e.Tenants = append(e.Tenants, t)
			}
		}

		data := map[string]any{}
		if rng.IntN(3) != 0 {
			data["correlation_id"] = randomID(rng, 12)
			data["request_details"] = map[string]any{
				"contentLength": rng.IntN(4000),
				"host":          "api.example.com",
				"method":        "POST",
				"uri":           "/v1/auth/" + strings.ToLower(e.Method),
				"headers": map[string]any{
					"http": map[string]any{"user-agent": pick(genUAs), "origin": "https://app.example.com"},
				},
			}
		}
		switch e.Action {
		case "LoginFailed", "LoginExceedMaxAttempts":
			data["error_message"] = pick(genErrors)
		case "UserModified", "SCIMEvent":
			change := map[string]any{}
			for range 1 + rng.IntN(3) {
				f := pick(genChanges)
				switch f {
				case "added_roles", "removed_roles":
					change[f] = []any{pick(genRoles)}
				case "added_multi_tenant_roles":
					change[f] = map[string]any{pick(genTenants): []any{pick(genRoles)}}
				default:
					change[f] = map[string]any{"old": pick(genFirst), "new": pick(genFirst)}
				}
			}
			data["Change"] = change
			if e.Action == "SCIMEvent" {
				data["scim_action"] = pick(genSCIMOps)
				data["scim_request"] = map[string]any{"displayName": p.name, "active": rng.IntN(2) == 0}
			}
		case "UserCreated":
			data["name"] = p.name
		}
		if len(data) > 0 {
			e.Data = mustJSON(data)
		}
	}
	return out
}

const idAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func randomID(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = idAlphabet[rng.IntN(len(idAlphabet))]
	}
	return string(b)
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}
