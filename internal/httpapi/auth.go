package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/audittrail/audittrail/internal/store"
	"github.com/audittrail/audittrail/internal/tenancy"
)

// Principal is the authenticated caller of a request.
type Principal struct {
	Key       tenancy.Key
	CompanyID string
	// ProjectID is the project the call is about: the one the
	// Authorization header named. "" on admin calls that named none.
	ProjectID string
}

// AllProjects reports whether the key may act on every project of its
// company (and so on company-level events).
func (p Principal) AllProjects() bool { return len(p.Key.ProjectIDs) == 0 }

// MayUseProject reports whether the key is scoped to the project.
func (p Principal) MayUseProject(id string) bool {
	return p.AllProjects() || slices.Contains(p.Key.ProjectIDs, id)
}

// PrincipalFrom returns the caller that Handle authenticated.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey).(Principal)
	return p, ok
}

// WithPrincipal returns a context carrying p, for tests of handlers
// mounted by other packages.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey, p)
}

// roleRank orders roles so that a stronger one may do what a weaker may.
var roleRank = map[tenancy.Role]int{tenancy.RoleReader: 1, tenancy.RoleWriter: 2, tenancy.RoleAdmin: 3}

// RoleAllows reports whether a key of role have may call a route needing want.
func RoleAllows(have, want tenancy.Role) bool {
	return roleRank[have] > 0 && roleRank[have] >= roleRank[want]
}

// ParseAuthorization reads Descope's "Bearer <projectId>:<managementKey>"
// or, for calls naming no project, "Bearer <managementKey>".
func ParseAuthorization(header string) (Credentials, error) {
	scheme, rest, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return Credentials{}, fmt.Errorf("%w: Authorization must be \"Bearer <projectId>:<managementKey>\"", ErrUnauthenticated)
	}
	rest = strings.TrimSpace(rest)
	var c Credentials
	pid, key, named := strings.Cut(rest, ":")
	if named {
		c = Credentials{ProjectID: pid, ManagementKey: key}
	} else {
		c = Credentials{ManagementKey: rest}
	}
	// Keys and project ids are printable ASCII; anything else (control
	// characters, an empty project before the colon) is refused here so
	// that each credential has one spelling (found by FuzzParseAuthorization).
	if c.ManagementKey == "" || (named && c.ProjectID == "") || len(c.ManagementKey) > 512 || len(c.ProjectID) > 128 ||
		!printableASCII(c.ManagementKey) || (named && !printableASCII(c.ProjectID)) || strings.Contains(c.ManagementKey, ":") {
		return Credentials{}, fmt.Errorf("%w: malformed Authorization", ErrUnauthenticated)
	}
	return c, nil
}

// Authenticated wraps h so that it runs only for a caller whose key holds
// role and, when needProject is set, names a project it may use.
func (a *API) Authenticated(role tenancy.Role, needProject bool, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := a.authenticate(r, role, needProject)
		if err != nil {
			WriteError(w, r, err)
			return
		}
		h.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}

func (a *API) authenticate(r *http.Request, role tenancy.Role, needProject bool) (Principal, error) {
	ctx := r.Context()
	creds, err := ParseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		return Principal{}, &Error{Code: CodeUnauthenticated, Message: strings.TrimPrefix(err.Error(), ErrUnauthenticated.Error()+": "), Err: err}
	}
	key, err := a.opts.Authenticate(ctx, creds.ManagementKey)
	if err != nil {
		if errors.Is(err, store.ErrUnavailable) || errors.Is(err, context.Canceled) {
			return Principal{}, err
		}
		return Principal{}, &Error{Code: CodeUnauthenticated, Message: "invalid, revoked or expired management key", Err: err}
	}
	now := a.now()
	if !key.Revoked.IsZero() || (!key.Expires.IsZero() && !now.Before(key.Expires)) {
		return Principal{}, Errorf(CodeUnauthenticated, "invalid, revoked or expired management key")
	}
	if info := infoFrom(ctx); info != nil {
		info.keyID = key.ID
		info.projectID = creds.ProjectID
	}
	p := Principal{Key: key, CompanyID: key.CompanyID, ProjectID: creds.ProjectID}
	if p.ProjectID == "" && needProject {
		// A key limited to exactly one project leaves no doubt which.
		if len(key.ProjectIDs) != 1 {
			return Principal{}, Errorf(CodeUnauthenticated, "Authorization must name the project: \"Bearer <projectId>:<managementKey>\"")
		}
		p.ProjectID = key.ProjectIDs[0]
	}
	if p.ProjectID != "" {
		proj, err := a.opts.Directory.Project(ctx, p.ProjectID)
		switch {
		case errors.Is(err, tenancy.ErrNotFound) || (err == nil && proj.CompanyID != p.CompanyID):
			// Another company's project answers like an unknown one, so a
			// key cannot probe which ids exist elsewhere.
			return Principal{}, Errorf(CodeNotFound, "unknown project %q", p.ProjectID)
		case err != nil:
			return Principal{}, fmt.Errorf("look up project: %w", err)
		}
		if !p.MayUseProject(p.ProjectID) {
			return Principal{}, Errorf(CodeForbidden, "the management key is not scoped to project %q", p.ProjectID)
		}
	}
	if !RoleAllows(key.Role, role) {
		return Principal{}, Errorf(CodeForbidden, "the management key's role %q may not make this call (needs %q)", key.Role, role)
	}
	return p, nil
}
