package httpapi

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/query"
	"github.com/audittrail/audittrail/internal/store"
)

// exportPage is how many records one store call reads during an export.
const exportPage = query.MaxSize

// exportWriteWindow is how long a client may take to read one page of an
// export before the connection is cut.
const exportWriteWindow = 2 * time.Minute

// handleExport streams every match of a search as NDJSON or CSV. It takes
// one rate-limit token however long it runs, and sends X-Total-Count before
// the body so a client can show progress.
func (a *API) handleExport(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "ndjson"
	}
	if format != "ndjson" && format != "csv" {
		WriteError(w, r, Errorf(CodeInvalidArgument, "format: must be ndjson or csv"))
		return
	}
	body, err := readBody(w, r, MaxBodyBytes)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	req, err := DecodeSearchRequest(body)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	req.Size, req.Limit, req.BatchSize, req.Page = nil, nil, nil, nil
	company, err := a.opts.Directory.Company(r.Context(), p.CompanyID)
	if err != nil {
		WriteError(w, r, fmt.Errorf("look up company: %w", err))
		return
	}
	now := a.now()
	q, err := req.Resolve(p, company.Settings, now)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	if err := a.TakeSearchToken(r, p, company.Settings); err != nil {
		WriteError(w, r, err)
		return
	}
	// Fix the upper bound at the start so events ingested during a long
	// export do not shift the pages under it.
	if q.To == 0 {
		q.To = now.UnixMilli() + event.MaxFutureSkewMs
	}
	q.Size, q.Page = exportPage, 0

	start := time.Now()
	a.met.searches.With("export").Inc()
	pager := &exportPager{q: q, st: a.opts.Store, r: r}
	first, err := pager.next()
	if err != nil {
		WriteError(w, r, fmt.Errorf("export: %w", err))
		return
	}

	if format == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="audit.csv"`)
	} else {
		w.Header().Set("Content-Type", "application/x-ndjson")
	}
	w.Header().Set("X-Total-Count", strconv.Itoa(pager.total))
	w.WriteHeader(http.StatusOK)

	enc := newExportEncoder(w, format)
	rows := first
	for {
		for i := range rows {
			if err := enc.write(&rows[i]); err != nil {
				// The client went away; nothing more can be told to it.
				loggerFrom(r.Context()).Info("export cut short", "request_id", RequestID(r.Context()), "error", err)
				return
			}
		}
		if err := enc.flush(); err != nil {
			return
		}
		// The server's WriteTimeout bounds ordinary responses; an export
		// that keeps making progress may take longer, so each page it
		// sends buys it another window.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(exportWriteWindow))
		if pager.done {
			break
		}
		rows, err = pager.next()
		if err != nil {
			// Headers are gone: the only honest signal left is to cut the
			// stream, so the client sees a truncated body, not a clean end.
			loggerFrom(r.Context()).Error("export failed mid-stream", "request_id", RequestID(r.Context()), "error", err)
			panic(http.ErrAbortHandler)
		}
	}
	a.met.searchSeconds.With("export").ObserveSince(start)
}

// exportPager walks every match by keyset rather than by offset, so an
// export of millions of records is not capped by query.MaxOffset, each store
// call stays cheap, and records ingested meanwhile cannot shift a page: the
// next page ends where the last one stopped (that millisecond included,
// skipping the records already sent).
type exportPager struct {
	q       query.Query
	st      store.Store
	r       *http.Request
	total   int
	started bool
	done    bool
	// seen holds the ids already sent whose Occurred equals the current
	// bound (q.To newest first, q.From oldest first).
	seen map[string]bool
	// drainMs, when set, is a millisecond holding more than a page of
	// records: it is read by offset within that millisecond alone.
	drainMs   int64
	drainPage int
}

func (p *exportPager) bound() int64 {
	if p.q.OldestFirst {
		return p.q.From
	}
	return p.q.To
}

func (p *exportPager) setBound(ms int64) {
	if p.q.OldestFirst {
		p.q.From = ms
	} else {
		p.q.To = ms
	}
}

// next returns the next records to send; after the last page p.done is set.
func (p *exportPager) next() ([]event.Event, error) {
	for {
		q := p.q
		if p.drainMs != 0 {
			q.From, q.To, q.Page = p.drainMs, p.drainMs, p.drainPage
		}
		res, err := p.st.Search(p.r.Context(), q)
		if err != nil {
			return nil, err
		}
		if !p.started {
			p.total, p.started = res.Total, true
		}
		rows := res.Events
		out := make([]event.Event, 0, len(rows))
		for _, e := range rows {
			if !p.seen[e.ID] {
				out = append(out, e)
			}
		}
		if p.drainMs != 0 {
			for _, e := range out {
				p.seen[e.ID] = true
			}
			p.drainPage++
			if len(rows) < q.Size {
				// That millisecond is exhausted: continue past it.
				next := p.drainMs - 1
				if p.q.OldestFirst {
					next = p.drainMs + 1
				}
				p.setBound(next)
				p.drainMs, p.drainPage, p.seen = 0, 0, nil
				if p.q.From > 0 && p.q.To > 0 && p.q.From > p.q.To {
					p.done = true
				}
			}
			if len(out) > 0 || p.done {
				return out, nil
			}
			continue
		}
		if len(rows) < q.Size {
			p.done = true
			return out, nil
		}
		last := rows[len(rows)-1].Occurred
		if rows[0].Occurred == last {
			// A whole page in one millisecond: read it by offset.
			p.drainMs, p.drainPage = last, 0
			if p.seen == nil || p.bound() != last {
				p.seen = map[string]bool{}
			}
			for _, e := range out {
				p.seen[e.ID] = true
			}
			if len(out) > 0 {
				return out, nil
			}
			continue
		}
		p.setBound(last)
		p.seen = map[string]bool{}
		for _, e := range rows {
			if e.Occurred == last {
				p.seen[e.ID] = true
			}
		}
		return out, nil
	}
}

// exportEncoder writes records as NDJSON or CSV.
type exportEncoder struct {
	w       http.ResponseWriter
	format  string
	csv     *csv.Writer
	started bool
}

func newExportEncoder(w http.ResponseWriter, format string) *exportEncoder {
	e := &exportEncoder{w: w, format: format}
	if format == "csv" {
		e.csv = csv.NewWriter(w)
	}
	return e
}

var csvHeader = []string{"id", "occurred", "projectId", "level", "userId", "action", "type", "actorId",
	"device", "method", "geo", "remoteAddress", "externalIds", "tenants", "data"}

func (enc *exportEncoder) write(e *event.Event) error {
	if enc.format == "ndjson" {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		_, err = enc.w.Write(append(b, '\n'))
		return err
	}
	if !enc.started {
		enc.started = true
		if err := enc.csv.Write(csvHeader); err != nil {
			return err
		}
	}
	return enc.csv.Write([]string{
		e.ID, strconv.FormatInt(e.Occurred, 10), csvSafe(e.ProjectID), string(e.Level), csvSafe(e.UserID),
		csvSafe(e.Action), e.Type, csvSafe(e.ActorID), csvSafe(e.Device), csvSafe(e.Method), csvSafe(e.Geo),
		csvSafe(e.RemoteAddress), csvSafe(strings.Join(e.LoginIDs, ";")), csvSafe(strings.Join(e.Tenants, ";")),
		string(e.Data),
	})
}

// flush pushes what is buffered to the client; an empty CSV export still
// gets its header row.
func (enc *exportEncoder) flush() error {
	if enc.csv != nil {
		if !enc.started {
			enc.started = true
			if err := enc.csv.Write(csvHeader); err != nil {
				return err
			}
		}
		enc.csv.Flush()
		if err := enc.csv.Error(); err != nil {
			return err
		}
	}
	return http.NewResponseController(enc.w).Flush()
}

// csvSafe defuses spreadsheet formulas: a cell a sender controls that
// starts with = + - @ would run when the export is opened in a spreadsheet.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
