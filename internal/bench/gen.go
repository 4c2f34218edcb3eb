package bench

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/audittrail/audittrail/internal/event"
)

// The shape of the generated trail (issue 3). They are constants rather than
// options so that every run of every engine talks about the same trail.
const (
	genCompanyID      = "C2bench0000000000000000000001"
	genProjects       = 10
	genHotShare       = 0.60 // of project-level events, in the first project
	genTenants        = 2000
	genNoTenantShare  = 0.20
	genUsers          = 200_000
	genIPs            = 500_000
	genCompanyShare   = 0.01 // company-level events
	genTieShare       = 0.04 // events in the same millisecond as the one before
	genDefaultSpan    = 30 * 24 * time.Hour
	genMaxJitterMs    = 5_000 // events arrive slightly out of order
	idAlphabet        = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	descopeIDLen      = 27 // after the two-character prefix, like P2…, U2…
	genCorrelationLen = 20
)

// ErrInvalidGenOptions is returned by NewGenerator for unusable options.
var ErrInvalidGenOptions = errors.New("bench: invalid generator options")

// GenOptions choose how many events and which trail.
type GenOptions struct {
	// Events is how many events the generator yields.
	Events int
	// Seed selects the trail: the same seed and End give the same events.
	Seed uint64
	// End is the newest Occurred (epoch ms). Events are spread over Span
	// before it, oldest first, the way a live trail arrives.
	End int64
	// Span defaults to 30 days, Descope's search window.
	Span time.Duration
	// FirstIndex numbers the first event; a second generator started at
	// FirstIndex = N continues a trail of N events with fresh IDs.
	FirstIndex int
}

// GenStats describes what a generator produced, for the report and tests.
type GenStats struct {
	Events        int   `json:"events"`
	CompanyLevel  int   `json:"companyLevel"`
	HotProject    int   `json:"hotProject"`
	NoTenant      int   `json:"noTenant"` // project-level events without a tenant
	MultiTenant   int   `json:"multiTenant"`
	JSONBytes     int64 `json:"jsonBytes"` // the events' wire JSON, summed
	DistinctUsers int   `json:"distinctUsers"`
	DistinctIPs   int   `json:"distinctIPs"`
	Actions       int   `json:"distinctActions"`
	Geos          int   `json:"distinctGeos"`
}

// AvgJSONBytes is the mean size of one event's wire JSON.
func (s GenStats) AvgJSONBytes() float64 {
	if s.Events == 0 {
		return 0
	}
	return float64(s.JSONBytes) / float64(s.Events)
}

// HotShare is the hot project's share of project-level events.
func (s GenStats) HotShare() float64 {
	if p := s.Events - s.CompanyLevel; p > 0 {
		return float64(s.HotProject) / float64(p)
	}
	return 0
}

// NoTenantShare is the share of project-level events without a tenant.
func (s GenStats) NoTenantShare() float64 {
	if p := s.Events - s.CompanyLevel; p > 0 {
		return float64(s.NoTenant) / float64(p)
	}
	return 0
}

// Generator yields the trail one event at a time; it holds the pools'
// cumulative weights and a few bitsets, never the events.
type Generator struct {
	opts  GenOptions
	rng   *rand.Rand
	n     int // events yielded
	start int64
	span  int64
	prev  int64 // Occurred of the previous event

	actions, companyActions                      actionPicker
	devices, methods, geos, uas, sdks, errs      picker
	domains, changeFields, scimActions, projects picker
	projectIDs                                   [genProjects]string
	projectUsers                                 [genProjects][2]int // user index range per project

	stats   GenStats
	seenU   []uint64
	seenIP  []uint64
	seenAct map[string]struct{}
	seenGeo map[string]struct{}
	buf     []byte
}

// NewGenerator checks opts and returns a generator at the first event.
func NewGenerator(opts GenOptions) (*Generator, error) {
	if opts.Events < 0 || opts.FirstIndex < 0 {
		return nil, fmt.Errorf("%w: negative count", ErrInvalidGenOptions)
	}
	if opts.End <= 0 {
		return nil, fmt.Errorf("%w: End is required", ErrInvalidGenOptions)
	}
	if opts.Span <= 0 {
		opts.Span = genDefaultSpan
	}
	g := &Generator{
		opts:           opts,
		rng:            rand.New(rand.NewPCG(opts.Seed, uint64(opts.FirstIndex)^0xa0d17)),
		span:           opts.Span.Milliseconds(),
		actions:        newActionPicker(genActions),
		companyActions: newActionPicker(genCompanyActions),
		devices:        newPicker(genDevices),
		methods:        newPicker(genMethods),
		geos:           newPicker(genGeos),
		uas:            newPicker(genUserAgents),
		sdks:           newPicker(genSDKs),
		errs:           newPicker(genErrorMessages),
		domains:        newPicker(genDomains),
		changeFields:   newPicker(genChangeFields),
		scimActions:    newPicker(genSCIMActions),
		seenU:          make([]uint64, (genUsers+63)/64),
		seenIP:         make([]uint64, (genIPs+63)/64),
		seenAct:        map[string]struct{}{},
		seenGeo:        map[string]struct{}{},
	}
	g.start = opts.End - g.span
	g.prev = g.start + 1

	// One hot project; the other nine share the rest with a Zipf-like skew.
	shares := make([]weighted, genProjects)
	shares[0] = weighted{"0", genHotShare}
	var rest float64
	for k := 1; k < genProjects; k++ {
		rest += 1 / float64(k)
	}
	for k := 1; k < genProjects; k++ {
		shares[k] = weighted{strconv.Itoa(k), (1 - genHotShare) / float64(k) / rest}
	}
	g.projects = newPicker(shares)
	lo := 0
	for k := range genProjects {
		g.projectIDs[k] = "P2" + hashID(opts.Seed, 'P', uint64(k), descopeIDLen)
		hi := lo + int(math.Round(shares[k].w*genUsers))
		if k == genProjects-1 {
			hi = genUsers
		}
		g.projectUsers[k] = [2]int{lo, hi}
		lo = hi
	}
	return g, nil
}

// Stats returns what was generated so far.
func (g *Generator) Stats() GenStats {
	s := g.stats
	s.DistinctUsers = popcount(g.seenU)
	s.DistinctIPs = popcount(g.seenIP)
	s.Actions = len(g.seenAct)
	s.Geos = len(g.seenGeo)
	return s
}

// ProjectIDs lists the trail's projects, the hot one first.
func (g *Generator) ProjectIDs() []string { return g.projectIDs[:] }

// CompanyID is the one company of the trail.
func (g *Generator) CompanyID() string { return genCompanyID }

// Fill overwrites batch with the next events and returns the filled
// prefix, empty once the trail is exhausted. Events are valid, with ID and
// CompanyID set and Seq 0.
func (g *Generator) Fill(batch []event.Event) []event.Event {
	k := 0
	for k < len(batch) && g.n < g.opts.Events {
		batch[k] = event.Event{}
		g.next(&batch[k])
		k++
	}
	return batch[:k]
}

func (g *Generator) next(e *event.Event) {
	r := g.rng
	idx := g.opts.FirstIndex + g.n
	g.n++
	e.ID = "ev" + strconv.FormatUint(g.opts.Seed, 36) + "-" + strconv.Itoa(idx)
	e.CompanyID = genCompanyID

	// Oldest first with a little jitter; some events share a millisecond
	// with the previous one, so only ingest order (Seq) can order them.
	if g.n > 1 && r.Float64() < genTieShare {
		e.Occurred = g.prev
	} else {
		base := g.start + 1 + g.span*int64(g.n-1)/int64(max(g.opts.Events, 1))
		e.Occurred = max(g.start+1, base-r.Int64N(genMaxJitterMs))
	}
	g.prev = e.Occurred

	if r.Float64() < genCompanyShare {
		g.companyEvent(e)
	} else {
		g.projectEvent(e)
	}

	g.stats.Events++
	g.seenAct[e.Action] = struct{}{}
	if e.Geo != "" {
		g.seenGeo[e.Geo] = struct{}{}
	}
	g.stats.JSONBytes += int64(WireSize(e))
}

func (g *Generator) companyEvent(e *event.Event) {
	r := g.rng
	g.stats.CompanyLevel++
	a := g.companyActions.pick(r)
	e.Level = event.LevelCompany
	e.Action, e.Type = a.name, a.typ
	admin := g.user(r.IntN(50)) // a handful of people run the company account
	e.ActorID = "K2" + hashID(g.opts.Seed, 'K', uint64(r.IntN(20)), descopeIDLen)
	e.UserID = admin.id
	e.Device = "Desktop"
	e.Geo = admin.geo
	e.RemoteAddress = g.ip(admin.ips[0])
	e.LoginIDs = []string{admin.login}

	w := g.jsonStart()
	w.str("correlation_id", g.correlationID())
	proj := g.projectIDs[r.IntN(genProjects)]
	switch a.name {
	case "ProjectCreated", "ProjectDeleted":
		w.str("projectId", proj)
		w.str("name", genDepartments[r.IntN(len(genDepartments))]+" portal")
	case "CompanySettingsModified":
		w.obj("changed")
		w.num("searchWindowDays", 30)
		w.num("retentionDays", int64(90+30*r.IntN(12)))
		w.num("searchRateLimit", int64(10*(1+r.IntN(10))))
		w.end()
	default:
		w.str("keyId", "K2"+hashID(g.opts.Seed, 'K', uint64(r.IntN(40)), descopeIDLen))
		w.str("name", genDepartments[r.IntN(len(genDepartments))]+" automation")
		w.str("role", []string{"reader", "writer", "admin"}[r.IntN(3)])
		w.arr("projectIds")
		w.elem(proj)
		w.end()
	}
	g.requestDetails(w, "POST", "/v1/mgmt/"+lowerFirst(a.name), "https://console.audittrail.local", "", admin)
	e.Data = w.done(g)
}

func (g *Generator) projectEvent(e *event.Event) {
	r := g.rng
	p := g.projects.pickIndex(r)
	if p == 0 {
		g.stats.HotProject++
	}
	e.Level = event.LevelProject
	e.ProjectID = g.projectIDs[p]
	lo, hi := g.projectUsers[p][0], g.projectUsers[p][1]
	// Activity per user is skewed: x² puts the busiest users first.
	x := r.Float64()
	uidx := lo + int(float64(hi-lo)*x*x)
	u := g.user(uidx)
	g.seenU[uidx/64] |= 1 << (uidx % 64)

	a := g.actions.pick(r)
	e.Action, e.Type = a.name, a.typ
	e.UserID = u.id
	e.ActorID = u.id
	e.Geo = u.geo
	if r.Float64() < 0.08 {
		e.Geo = g.geos.pick(r) // travelling, or a VPN
	}
	ipIdx := u.ips[0]
	switch f := r.Float64(); {
	case f < 0.15:
		ipIdx = r.IntN(genIPs)
	case f < 0.45:
		ipIdx = u.ips[1]
	}
	g.seenIP[ipIdx/64] |= 1 << (ipIdx % 64)
	e.RemoteAddress = g.ip(ipIdx)

	// Tenants: a user's memberships, on 80 % of events.
	if r.Float64() >= genNoTenantShare {
		e.Tenants = u.tenants
		if len(u.tenants) > 1 {
			g.stats.MultiTenant++
		}
	} else {
		g.stats.NoTenant++
	}

	w := g.jsonStart()
	w.str("correlation_id", g.correlationID())
	origin := "https://" + g.projectHost(p)
	switch a.kind {
	case kindAuth:
		e.Device = u.device
		if r.Float64() < 0.2 {
			e.Device = g.devices.pick(r)
		}
		e.Method = u.method
		if r.Float64() < 0.3 {
			e.Method = g.methods.pick(r)
		}
		if a.name == "UserRefresh" || a.name == "Logout" {
			e.Method = ""
		}
		if a.name == "LoginSucceed" && r.Float64() < 0.005 {
			e.Method = "Impersonate"
			e.ActorID = g.user(lo + r.IntN(min(20, hi-lo))).id
		}
		e.LoginIDs = u.logins
		switch a.name {
		case "LoginFailed", "LoginStartedFailed", "LoginExceedMaxAttempts":
			w.str("error_message", g.errs.pick(r))
		}
		switch e.Method {
		case "oauth":
			w.str("provider", genOAuthProviders[r.IntN(len(genOAuthProviders))])
		case "saml":
			w.str("idp", genIdPs[r.IntN(len(genIdPs))])
			w.str("ssoAppId", "SA2"+hashID(g.opts.Seed, 'S', uint64(p), 20))
		}
		if r.Float64() < 0.5 {
			g.requestDetails(w, "POST", authURI(a.name, e.Method), origin, e.ProjectID, u)
		}
	case kindUser:
		// An administrator (one of the project's first users) or a
		// management key changes someone else.
		e.Device = "Desktop"
		if r.Float64() < 0.4 {
			e.ActorID = "K2" + hashID(g.opts.Seed, 'K', uint64(100+p), descopeIDLen)
			e.Device = "Bot"
		} else {
			e.ActorID = g.user(lo + r.IntN(min(20, hi-lo))).id
		}
		e.LoginIDs = u.logins
		switch a.name {
		case "UserModified", "UsersModified", "UserRolesUpdated", "UserTenantsUpdated":
			g.change(w, u)
		case "UserCreated", "UsersCreated":
			w.obj("user")
			w.str("name", u.name)
			w.str("email", u.email)
			w.bool("verifiedEmail", r.IntN(2) == 0)
			w.end()
		}
		if r.Float64() < 0.4 {
			g.requestDetails(w, "POST", "/v1/mgmt/user/"+lowerFirst(a.name), origin, e.ProjectID, u)
		}
	case kindSCIM:
		e.ActorID = "K2" + hashID(g.opts.Seed, 'K', uint64(200+p), descopeIDLen)
		e.Device = "Unknown"
		e.LoginIDs = u.logins
		g.scim(w, u)
	case kindAdmin:
		admin := g.user(lo + r.IntN(min(20, hi-lo)))
		e.UserID = admin.id
		e.ActorID = admin.id
		e.Device = "Desktop"
		e.LoginIDs = admin.logins
		e.Geo = admin.geo
		e.RemoteAddress = g.ip(admin.ips[0])
		tenant := "T2" + hashID(g.opts.Seed, 'T', uint64(r.IntN(genTenants)), descopeIDLen)
		switch {
		case strings.HasPrefix(a.name, "Tenant"):
			w.str("tenantId", tenant)
			w.str("name", genLastNames[r.IntN(len(genLastNames))]+" "+[]string{"Inc", "Ltd", "GmbH", "LLC"}[r.IntN(4)])
		case strings.HasPrefix(a.name, "Role"):
			w.str("role", genRoles[r.IntN(len(genRoles))])
			w.str("tenantId", tenant)
		case strings.HasPrefix(a.name, "Permission"):
			w.str("permission_id", "perm:"+[]string{"read", "write", "billing", "export", "admin"}[r.IntN(5)])
		default:
			w.str("resource", a.name)
		}
		g.requestDetails(w, "POST", "/v1/mgmt/"+lowerFirst(a.name), "https://app.descope.com", e.ProjectID, admin)
	}
	e.Data = w.done(g)
}

// change writes a data.Change map like Descope's for UserModified.
func (g *Generator) change(w *jsonWriter, u genUser) {
	r := g.rng
	w.obj("Change")
	n := 1 + r.IntN(3)
	seen := [4]string{}
	for i := range n {
		f := g.changeFields.pick(r)
		dup := false
		for _, s := range seen[:i] {
			dup = dup || s == f
		}
		if dup {
			continue
		}
		seen[i] = f
		switch f {
		case "added_roles", "removed_roles":
			w.arr(f)
			w.elem(genRoles[r.IntN(len(genRoles))])
			w.end()
		case "added_multi_tenant_roles":
			w.obj(f)
			tenant := "T2" + hashID(g.opts.Seed, 'T', uint64(r.IntN(genTenants)), descopeIDLen)
			w.arr(tenant)
			w.elem(genRoles[r.IntN(len(genRoles))])
			w.end()
			w.end()
		case "custom_attribute_plan":
			w.str(f, genPlans[r.IntN(len(genPlans))])
		case "custom_attribute_department":
			w.str(f, genDepartments[r.IntN(len(genDepartments))])
		case "display_name":
			w.str(f, u.name)
		case "given_name":
			w.str(f, genFirstNames[r.IntN(len(genFirstNames))])
		case "family_name", "middle_name":
			w.str(f, genLastNames[r.IntN(len(genLastNames))])
		case "phone":
			w.str(f, fmt.Sprintf("+1%010d", r.Int64N(1e10)))
		case "email":
			w.str(f, u.email)
		case "picture":
			w.str(f, "https://cdn.example-images.net/avatars/"+strconv.Itoa(r.IntN(1_000_000))+".png")
		case "verified_email":
			w.bool(f, true)
		case "status":
			w.str(f, []string{"enabled", "disabled", "invited"}[r.IntN(3)])
		}
	}
	w.end()
}

// scim writes a SCIM request as an identity provider sends it, the result
// (absent on failure) and the changes.
func (g *Generator) scim(w *jsonWriter, u genUser) {
	r := g.rng
	act := g.scimActions.pick(r)
	w.str("scim_action", act)
	w.obj("scim_request")
	w.arr("schemas")
	w.elem("urn:ietf:params:scim:schemas:core:2.0:User")
	w.end()
	w.str("userName", u.email)
	w.obj("name")
	w.str("givenName", u.first)
	w.str("familyName", u.last)
	w.end()
	w.arr("emails")
	w.rawElem(`{"primary":true,"type":"work","value":` + string(appendJSONString(nil, u.email)) + `}`)
	w.end()
	w.bool("active", act != "delete")
	w.str("externalId", "00u"+hashID(g.opts.Seed, 'X', uint64(u.index), 17))
	w.end()
	if r.Float64() < 0.9 {
		w.obj("scim_result")
		w.str("id", u.id)
		w.str("userName", u.email)
		w.bool("active", act != "delete")
		w.end()
		if act == "update" || act == "patch" {
			g.change(w, u)
		}
	} else {
		w.str("error", []string{"user already exists", "invalid filter", "tenant not found", "schema violation"}[r.IntN(4)])
	}
}

// requestDetails writes Descope's data.request_details.
func (g *Generator) requestDetails(w *jsonWriter, method, uri, origin, projectID string, u genUser) {
	r := g.rng
	w.obj("request_details")
	w.num("contentLength", int64(40+r.IntN(900)))
	w.obj("headers")
	w.obj("descope")
	w.str("x-descope-sdk-name", g.sdks.pick(r))
	w.str("x-descope-sdk-version", fmt.Sprintf("1.%d.%d", r.IntN(20), r.IntN(10)))
	if projectID != "" {
		w.str("x-descope-project-id", projectID)
	}
	w.end()
	w.obj("http")
	w.str("origin", origin)
	w.str("referer", origin+"/"+[]string{"login", "sign-in", "account", "admin/users", ""}[r.IntN(5)])
	w.str("user-agent", u.ua)
	w.end()
	w.end()
	w.str("host", "api.descope.com")
	w.str("method", method)
	w.str("uri", uri)
	w.str("url", "https://api.descope.com"+uri)
	w.end()
}

func authURI(action, method string) string {
	switch {
	case action == "UserRefresh":
		return "/v1/auth/refresh"
	case action == "Logout":
		return "/v1/auth/logout"
	case method == "":
		return "/v1/auth/" + lowerFirst(action)
	default:
		return "/v1/auth/" + method + "/" + lowerFirst(action)
	}
}

func lowerFirst(s string) string {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return s
	}
	return string(s[0]+'a'-'A') + s[1:]
}

// projectHosts are the projects' web apps, the origin of their requests.
var projectHosts = []string{"app.acme.com", "portal.globex.io", "my.initech.com", "dashboard.umbrella.co",
	"app.hooli.xyz", "login.contoso.com", "id.stark.industries", "account.wayne-enterprises.com",
	"app.soylent.com", "console.tyrell.ai"}

func (g *Generator) projectHost(p int) string { return projectHosts[p%len(projectHosts)] }

func (g *Generator) correlationID() string {
	var b [genCorrelationLen]byte
	for i := range b {
		b[i] = idAlphabet[g.rng.IntN(len(idAlphabet))]
	}
	return string(b[:])
}

// genUser is everything about one user that is stable across events. It is
// derived from the seed and the user's index, so no pool is kept in memory.
type genUser struct {
	index               int
	id                  string
	first, last, name   string
	email               string
	login               string
	logins              []string
	geo, device, method string
	ua                  string
	tenants             []string
	ips                 [2]int
}

func (g *Generator) user(i int) genUser {
	h := splitmix{g.opts.Seed ^ uint64(i)*0x9e3779b97f4a7c15 ^ 'U'<<56}
	u := genUser{index: i, id: "U2" + hashID(g.opts.Seed, 'U', uint64(i), descopeIDLen)}
	u.first = genFirstNames[h.intn(len(genFirstNames))]
	u.last = genLastNames[h.intn(len(genLastNames))]
	u.name = u.first + " " + u.last
	u.email = toLowerASCII(u.first) + "." + toLowerASCII(u.last)
	if h.intn(3) == 0 {
		u.email += strconv.Itoa(h.intn(1000))
	}
	u.email += "@" + g.domains.pickU(h.float())
	u.login = u.email
	if h.intn(10) == 0 {
		u.login = fmt.Sprintf("+1%010d", h.next()%1e10)
	}
	u.logins = []string{u.login}
	if h.intn(20) == 0 && u.login == u.email {
		u.logins = append(u.logins, fmt.Sprintf("+44%010d", h.next()%1e10))
	}
	u.geo = g.geos.pickU(h.float())
	u.device = g.devices.pickU(h.float())
	u.method = g.methods.pickU(h.float())
	u.ua = g.uas.pickU(h.float())
	nt := 1
	switch f := h.float(); {
	case f < 0.03:
		nt = 3
	case f < 0.15:
		nt = 2
	}
	for range nt {
		x := h.float()
		t := "T2" + hashID(g.opts.Seed, 'T', uint64(float64(genTenants)*x*x), descopeIDLen)
		if len(u.tenants) == 0 || u.tenants[len(u.tenants)-1] != t {
			u.tenants = append(u.tenants, t)
		}
	}
	u.ips = [2]int{(2 * i) % genIPs, (2*i + 1) % genIPs}
	return u
}

// ip renders the address with index i: mostly IPv4 outside private ranges,
// one in ten IPv6.
func (g *Generator) ip(i int) string {
	h := splitmix{g.opts.Seed ^ uint64(i)*0xbf58476d1ce4e5b9 ^ 'I'<<56}
	v := h.next()
	if v%10 == 0 {
		return fmt.Sprintf("2a0%d:%x:%x:%x::%x", 1+v>>8%9, v>>12&0xffff, v>>28&0xffff, v>>44&0xffff, h.next()&0xffff)
	}
	firsts := [...]int{23, 31, 37, 45, 52, 62, 66, 73, 81, 84, 91, 98, 104, 109, 121, 131, 141, 151, 162, 176, 185, 195, 203, 213}
	return strconv.Itoa(firsts[v>>8%uint64(len(firsts))]) + "." + strconv.Itoa(int(v>>16&0xff)) + "." +
		strconv.Itoa(int(v>>24&0xff)) + "." + strconv.Itoa(1+int(v>>32%254))
}

// hashID derives a Descope-style identifier from the seed, a kind and an
// index, so that users, tenants and projects need no pool in memory.
func hashID(seed uint64, kind byte, i uint64, n int) string {
	h := splitmix{seed ^ uint64(kind)<<56 ^ i*0x94d049bb133111eb}
	b := make([]byte, n)
	for k := 0; k < n; {
		v := h.next()
		for j := 0; j < 10 && k < n; j++ {
			b[k] = idAlphabet[v%62]
			v /= 62
			k++
		}
	}
	return string(b)
}

func toLowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func popcount(bits []uint64) int {
	n := 0
	for _, w := range bits {
		for ; w != 0; w &= w - 1 {
			n++
		}
	}
	return n
}

// splitmix is SplitMix64: a tiny stateless-seeded generator for values
// derived from an index (a user's name, an address), independent of the
// order in which events ask for them.
type splitmix struct{ s uint64 }

func (h *splitmix) next() uint64 {
	h.s += 0x9e3779b97f4a7c15
	z := h.s
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

func (h *splitmix) intn(n int) int { return int(h.next() % uint64(n)) }
func (h *splitmix) float() float64 { return float64(h.next()>>11) / (1 << 53) }

type weighted struct {
	v string
	w float64
}

// picker draws from weighted values by binary search over cumulative
// weights.
type picker struct {
	vals []string
	cum  []float64
}

func newPicker(ws []weighted) picker {
	p := picker{vals: make([]string, len(ws)), cum: make([]float64, len(ws))}
	var t float64
	for i, w := range ws {
		t += w.w
		p.vals[i], p.cum[i] = w.v, t
	}
	return p
}

func (p picker) pickIndex(r *rand.Rand) int { return p.indexU(r.Float64()) }
func (p picker) pick(r *rand.Rand) string   { return p.vals[p.pickIndex(r)] }
func (p picker) pickU(u float64) string     { return p.vals[p.indexU(u)] }

func (p picker) indexU(u float64) int {
	x := u * p.cum[len(p.cum)-1]
	i := sort.Search(len(p.cum), func(i int) bool { return p.cum[i] > x })
	return min(i, len(p.cum)-1)
}

type actionPicker struct {
	picker
	actions []genAction
}

func newActionPicker(as []genAction) actionPicker {
	ws := make([]weighted, len(as))
	for i, a := range as {
		ws[i] = weighted{a.name, a.weight}
	}
	return actionPicker{picker: newPicker(ws), actions: as}
}

func (p actionPicker) pick(r *rand.Rand) genAction { return p.actions[p.pickIndex(r)] }
