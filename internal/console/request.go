package console

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/audittrail/audittrail/internal/httpapi"
	"github.com/audittrail/audittrail/internal/query"
)

// readSearch reads a search request body (the same one /search takes),
// resolves it for the caller and takes one token of the project's search
// budget. It returns the body too, for the extra keys of a route.
func (c *Console) readSearch(w http.ResponseWriter, r *http.Request) (query.Query, []byte, error) {
	p, ok := httpapi.PrincipalFrom(r.Context())
	if !ok {
		return query.Query{}, nil, httpapi.ErrUnauthenticated
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return query.Query{}, nil, httpapi.Errorf(httpapi.CodeMediaType, "Content-Type must be application/json, not %q", ct)
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, httpapi.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return query.Query{}, nil, err
		}
		return query.Query{}, nil, &httpapi.Error{Code: httpapi.CodeBadRequest, Message: "could not read the request body", Err: err}
	}
	req, err := httpapi.DecodeSearchRequest(body)
	if err != nil {
		return query.Query{}, nil, err
	}
	company, err := c.opts.Directory.Company(r.Context(), p.CompanyID)
	if err != nil {
		return query.Query{}, nil, fmt.Errorf("look up company: %w", err)
	}
	q, err := req.Resolve(p, company.Settings, c.opts.Now())
	if err != nil {
		return query.Query{}, nil, err
	}
	// One token of the budget /search uses, so the console cannot search
	// more often than the API allows.
	if err := c.api.TakeSearchToken(r, p, company.Settings); err != nil {
		return query.Query{}, nil, err
	}
	return q, body, nil
}
