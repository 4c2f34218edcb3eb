package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Limits the server enforces, so callers can size their pages and batches.
const (
	MaxPageSize    = 1000
	MaxBatchEvents = 10_000
	MaxBatchBytes  = 10 << 20
)

// ErrIncompleteExport means an export stream ended before the number of
// records the server announced in X-Total-Count.
var ErrIncompleteExport = errors.New("audittrail: export ended early")

// Audit holds the calls on audit events. Get it from Client.Audit.
type Audit struct{ c *Client }

// SearchOptions filters a search. Zero values mean "no filter"; lists match
// any of their values (OR) and different fields must all match (AND).
type SearchOptions struct {
	UserIDs         []string
	Actions         []string
	ExcludedActions []string
	ActorIDs        []string
	Devices         []string // Bot, Mobile, Desktop, Tablet, Unknown
	Methods         []string
	Geos            []string
	RemoteAddresses []string
	LoginIDs        []string // sent as externalIds
	Tenants         []string
	// NoTenants also includes events without any tenant (only those, when
	// Tenants is empty).
	NoTenants bool
	// Text: every word must prefix-match a token of the event.
	Text string
	// From and To bound the occurrence time, both inclusive; zero is unset.
	// From may not reach back beyond the company's search window.
	From, To time.Time

	// Extensions of audittrail (Descope ignores them).
	Levels        []Level
	ChangedFields []string // keys of data.Change
	OldestFirst   bool
	// WithLeafIndex fills each record's LeafIndex (tamper evidence).
	WithLeafIndex bool

	// Size is the page size: 0 means the server default (1000), max 1000.
	Size int
	// Page is zero-based.
	Page int
}

// searchRequest is the wire form: Descope's keys plus our extensions. Unset
// values are left out, which Descope and audittrail both read as unset.
type searchRequest struct {
	UserIDs         []string `json:"userIds,omitempty"`
	Actions         []string `json:"actions,omitempty"`
	ExcludedActions []string `json:"excludedActions,omitempty"`
	ActorIDs        []string `json:"actorIds,omitempty"`
	Devices         []string `json:"devices,omitempty"`
	Methods         []string `json:"methods,omitempty"`
	Geos            []string `json:"geos,omitempty"`
	RemoteAddresses []string `json:"remoteAddresses,omitempty"`
	LoginIDs        []string `json:"externalIds,omitempty"`
	Tenants         []string `json:"tenants,omitempty"`
	NoTenants       bool     `json:"noTenants,omitempty"`
	Text            string   `json:"text,omitempty"`
	From            int64    `json:"from,omitempty"`
	To              int64    `json:"to,omitempty"`
	Levels          []Level  `json:"levels,omitempty"`
	ChangedFields   []string `json:"changedFields,omitempty"`
	OldestFirst     bool     `json:"oldestFirst,omitempty"`
	WithLeafIndex   bool     `json:"withLeafIndex,omitempty"`
	Size            int      `json:"size,omitempty"`
	Page            int      `json:"page,omitempty"`
}

func (o SearchOptions) wire() searchRequest {
	r := searchRequest{
		UserIDs: o.UserIDs, Actions: o.Actions, ExcludedActions: o.ExcludedActions,
		ActorIDs: o.ActorIDs, Devices: o.Devices, Methods: o.Methods, Geos: o.Geos,
		RemoteAddresses: o.RemoteAddresses, LoginIDs: o.LoginIDs, Tenants: o.Tenants,
		NoTenants: o.NoTenants, Text: o.Text, Levels: o.Levels, ChangedFields: o.ChangedFields,
		OldestFirst: o.OldestFirst, WithLeafIndex: o.WithLeafIndex, Size: o.Size, Page: o.Page,
	}
	// Before 1970 is as unset as zero: the server reads ≤ 0 so.
	r.From = max(timeToMillis(o.From), 0)
	r.To = max(timeToMillis(o.To), 0)
	return r
}

type searchResponse struct {
	Audits []Record `json:"audits"`
	Total  int      `json:"total"`
}

// SearchAll returns one page of matching records, newest first unless
// OldestFirst, and the exact number of all matching records.
func (a *Audit) SearchAll(ctx context.Context, opts SearchOptions) ([]Record, int, error) {
	var out searchResponse
	if err := a.c.call(ctx, http.MethodPost, "/v1/mgmt/audit/search", opts.wire(), &out); err != nil {
		return nil, 0, err
	}
	if out.Audits == nil {
		out.Audits = []Record{}
	}
	return out.Audits, out.Total, nil
}

// Search returns one page of matching records.
func (a *Audit) Search(ctx context.Context, opts SearchOptions) ([]Record, error) {
	recs, _, err := a.SearchAll(ctx, opts)
	return recs, err
}

// searchWaiting is SearchAll that waits out rate limiting (429) for as long
// as ctx allows.
func (a *Audit) searchWaiting(ctx context.Context, opts SearchOptions) ([]Record, int, error) {
	for {
		recs, total, err := a.SearchAll(ctx, opts)
		var apiErr *Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusTooManyRequests {
			return recs, total, err
		}
		if err := sleep(ctx, max(apiErr.RetryAfter, time.Second)); err != nil {
			return nil, 0, fmt.Errorf("waiting for the search rate limit: %w", err)
		}
	}
}

// All pages through every matching record, starting at opts.Page, with
// pages of opts.Size (default MaxPageSize). When the server says 429 it
// waits Retry-After and tries again, so a long walk is paced by the search
// rate limit: for a large result Export is much faster (one request).
//
// Events ingested while paging shift later pages; a record already yielded
// on the previous page is not yielded again. Paging is by offset, which the
// server caps at a million rows: beyond that, or whenever the result is
// large, use Export. The sequence stops at the first error, which it yields.
func (a *Audit) All(ctx context.Context, opts SearchOptions) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		if opts.Size <= 0 || opts.Size > MaxPageSize {
			opts.Size = MaxPageSize
		}
		prev := map[string]bool{}
		for {
			recs, _, err := a.searchWaiting(ctx, opts)
			if err != nil {
				yield(Record{}, err)
				return
			}
			seen := make(map[string]bool, len(recs))
			for _, r := range recs {
				if r.ID != "" {
					seen[r.ID] = true
					if prev[r.ID] {
						continue
					}
				}
				if !yield(r, nil) {
					return
				}
			}
			if len(recs) < opts.Size {
				return
			}
			prev = seen
			opts.Page++
		}
	}
}

// ExportFormat is the body format of an export.
type ExportFormat string

const (
	FormatNDJSON ExportFormat = "ndjson" // one wire record per line
	FormatCSV    ExportFormat = "csv"    // a header row, then one row per record
)

// ExportProgress is reported while an export streams.
type ExportProgress struct {
	Records int64 // complete records written so far
	Total   int64 // records announced by the server, -1 if it did not say
	Bytes   int64
	Done    bool // the last report, after the stream ended successfully
}

// ExportOptions are the search filters of an export (Size and Page are
// ignored: every match is exported) and an optional progress callback.
type ExportOptions struct {
	SearchOptions
	// Progress, when set, is called from Export's goroutine after each chunk
	// written and once more with Done set; keep it quick.
	Progress func(ExportProgress)
}

// Export streams every matching record to w in format (default NDJSON)
// through one request, and returns the number of records written. It
// waits out rate limiting like All. When the stream ends before the
// announced total it returns ErrIncompleteExport.
func (a *Audit) Export(ctx context.Context, opts ExportOptions, format ExportFormat, w io.Writer) (int64, error) {
	switch format {
	case "":
		format = FormatNDJSON
	case FormatNDJSON, FormatCSV:
	default:
		return 0, fmt.Errorf("%w: export format %q (want ndjson or csv)", ErrBadRequest, format)
	}
	body := opts.SearchOptions.wire()
	body.Size, body.Page = 0, 0
	path := "/v1/mgmt/audit/export?format=" + url.QueryEscape(string(format))
	var resp *http.Response
	for {
		req, err := a.c.newRequest(ctx, http.MethodPost, path, body)
		if err != nil {
			return 0, err
		}
		req.Header.Set("Accept", "*/*")
		resp, err = a.c.send(req)
		var apiErr *Error
		if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusTooManyRequests {
			if err := sleep(ctx, max(apiErr.RetryAfter, time.Second)); err != nil {
				return 0, fmt.Errorf("waiting for the search rate limit: %w", err)
			}
			continue
		}
		if err != nil {
			return 0, err
		}
		break
	}
	defer resp.Body.Close()

	total := int64(-1)
	if v := resp.Header.Get("X-Total-Count"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			total = n
		}
	}
	counter := recordCounter{csv: format == FormatCSV}
	buf := make([]byte, 32<<10)
	var written int64
	report := func(done bool) {
		if opts.Progress != nil {
			opts.Progress(ExportProgress{Records: counter.records, Total: total, Bytes: written, Done: done})
		}
	}
	report(false)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return counter.records, fmt.Errorf("export: write: %w", err)
			}
			written += int64(n)
			counter.feed(buf[:n])
			report(false)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return counter.records, fmt.Errorf("export: read stream after %d records: %w", counter.records, rerr)
		}
	}
	if total >= 0 && counter.records < total {
		return counter.records, fmt.Errorf("%w: %d of %d records", ErrIncompleteExport, counter.records, total)
	}
	report(true)
	return counter.records, nil
}

// recordCounter counts complete records in an NDJSON or CSV stream: a
// newline outside a quoted CSV field ends one. The CSV header row is not a
// record.
type recordCounter struct {
	csv      bool
	inQuotes bool
	lines    int64
	records  int64
}

func (c *recordCounter) feed(b []byte) {
	for _, ch := range b {
		switch {
		case c.csv && ch == '"':
			// A doubled quote inside a field toggles twice: no net change.
			c.inQuotes = !c.inQuotes
		case ch == '\n' && !c.inQuotes:
			c.lines++
		}
	}
	c.records = c.lines
	if c.csv && c.lines > 0 {
		c.records = c.lines - 1
	}
}

// CreateEventOptions is Descope's createEvent request plus audittrail's
// extensions. Action, ActorID, TenantID and a valid Type are required.
type CreateEventOptions struct {
	UserID   string
	Action   string
	Type     string // info, warn or error
	ActorID  string
	TenantID string
	Data     map[string]any

	// Extensions of audittrail.
	ID            string    // client id: sending it again never stores a duplicate
	Level         Level     // project (default) or company
	Occurred      time.Time // zero: now
	Device        string
	Method        string
	Geo           string
	RemoteAddress string
	LoginIDs      []string // sent as externalIds
	// RequestContext lets the server fill the device, remote address,
	// country and data.request_details the event leaves empty.
	RequestContext *RequestContext
}

type createEventRequest struct {
	UserID         string          `json:"userId"`
	Action         string          `json:"action"`
	Type           string          `json:"type"`
	ActorID        string          `json:"actorId"`
	TenantID       string          `json:"tenantId"`
	Data           map[string]any  `json:"data,omitempty"`
	ID             string          `json:"id,omitempty"`
	Level          Level           `json:"level,omitempty"`
	Occurred       string          `json:"occurred,omitempty"`
	Device         string          `json:"device,omitempty"`
	Method         string          `json:"method,omitempty"`
	Geo            string          `json:"geo,omitempty"`
	RemoteAddress  string          `json:"remoteAddress,omitempty"`
	LoginIDs       []string        `json:"externalIds,omitempty"`
	RequestContext *RequestContext `json:"requestContext,omitempty"`
}

// CreateEvent records one event (Descope's createEvent) and returns its id
// (empty when the server, like Descope, does not say).
func (a *Audit) CreateEvent(ctx context.Context, opts CreateEventOptions) (string, error) {
	req := createEventRequest{
		UserID: opts.UserID, Action: opts.Action, Type: opts.Type, ActorID: opts.ActorID,
		TenantID: opts.TenantID, Data: opts.Data, ID: opts.ID, Level: opts.Level,
		Device: opts.Device, Method: opts.Method, Geo: opts.Geo, RemoteAddress: opts.RemoteAddress,
		LoginIDs: opts.LoginIDs, RequestContext: opts.RequestContext,
	}
	if ms := timeToMillis(opts.Occurred); ms != 0 {
		req.Occurred = strconv.FormatInt(ms, 10)
	}
	var out struct {
		ID string `json:"id"`
	}
	if err := a.c.call(ctx, http.MethodPost, "/v1/mgmt/audit/event", req, &out); err != nil {
		return "", err
	}
	return out.ID, nil
}

// Ingest stores a batch in one request: all of it or, if any event is
// invalid, none (the *Error names the index and field). It returns the ids
// in request order. At most MaxBatchEvents events and MaxBatchBytes bytes.
func (a *Audit) Ingest(ctx context.Context, records []Record) ([]string, error) {
	if records == nil {
		records = []Record{}
	}
	in := struct {
		Events []Record `json:"events"`
	}{records}
	var out struct {
		IDs []string `json:"ids"`
	}
	if err := a.c.call(ctx, http.MethodPost, "/v1/mgmt/audit/events", in, &out); err != nil {
		return nil, err
	}
	if len(out.IDs) != len(records) {
		return out.IDs, fmt.Errorf("%w: %d ids for %d events", ErrInvalidResponse, len(out.IDs), len(records))
	}
	return out.IDs, nil
}

// Get returns one record by id; ErrNotFound (via errors.Is) when it is
// unknown or outside the key's scope.
func (a *Audit) Get(ctx context.Context, id string) (Record, error) {
	if id == "" {
		return Record{}, fmt.Errorf("%w: empty event id", ErrBadRequest)
	}
	var raw json.RawMessage
	if err := a.c.call(ctx, http.MethodGet, "/v1/mgmt/audit/event/"+url.PathEscape(id), nil, &raw); err != nil {
		return Record{}, err
	}
	// The record may come bare or wrapped as {"audit": record}.
	var wrapped struct {
		Audit *Record `json:"audit"`
	}
	if err := json.Unmarshal(raw, &wrapped); err == nil && wrapped.Audit != nil {
		return *wrapped.Audit, nil
	}
	var r Record
	if err := json.Unmarshal(raw, &r); err != nil {
		return Record{}, fmt.Errorf("GET event %s: %w: %w", id, ErrInvalidResponse, err)
	}
	return r, nil
}

// ActionInfo describes one action of the event catalogue.
type ActionInfo struct {
	Action      string   `json:"action"`
	Type        string   `json:"type"`
	Level       Level    `json:"level"`
	Description string   `json:"description"`
	DataKeys    []string `json:"dataKeys"`
}

// Actions returns the server's event catalogue.
func (a *Audit) Actions(ctx context.Context) ([]ActionInfo, error) {
	var out struct {
		Actions []ActionInfo `json:"actions"`
	}
	if err := a.c.call(ctx, http.MethodGet, "/v1/mgmt/audit/actions", nil, &out); err != nil {
		return nil, err
	}
	return out.Actions, nil
}
