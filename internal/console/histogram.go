package console

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/httpapi"
	"github.com/audittrail/audittrail/internal/query"
)

// MaxBuckets bounds a histogram: more bars than a screen can show would
// only cost store searches.
const MaxBuckets = 120

// histogramFanout is how many parts a range with matches is split into at
// each level of the count tree: an empty part costs one search however many
// buckets it spans, and a dense range costs about 1/(fanout-1) more searches
// than one per bucket.
const histogramFanout = 8

// bucketSizes are the widths the automatic choice picks from, narrowest
// first; the request may name minute, hour or day.
var bucketSizes = []struct {
	name string
	d    time.Duration
}{
	{"minute", time.Minute}, {"5m", 5 * time.Minute}, {"15m", 15 * time.Minute}, {"30m", 30 * time.Minute},
	{"hour", time.Hour}, {"3h", 3 * time.Hour}, {"6h", 6 * time.Hour}, {"12h", 12 * time.Hour},
	{"day", 24 * time.Hour},
}

var namedBuckets = map[string]time.Duration{"minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour}

// histogramExtra is what a histogram request adds to a search request.
type histogramExtra struct {
	// Bucket is minute, hour or day; empty chooses the narrowest width
	// that gives at most MaxBuckets bars.
	Bucket string `json:"bucket"`
	// UTCOffsetMinutes aligns buckets to the viewer's local clock (east of
	// UTC positive), so day bars start at local midnight.
	UTCOffsetMinutes int `json:"utcOffsetMinutes"`
}

// Bucket is one bar: matches with start <= occurred < start+bucketMs, by type.
type Bucket struct {
	Start int64 `json:"start"`
	Info  int   `json:"info"`
	Warn  int   `json:"warn"`
	Error int   `json:"error"`
}

// Histogram is the answer of POST /v1/mgmt/audit/histogram.
type Histogram struct {
	Buckets []Bucket `json:"buckets"`
	// Total is the exact number of matches, as /search counts them.
	Total int `json:"total"`
	// Bucket names the width chosen; BucketMs is that width.
	Bucket   string `json:"bucket"`
	BucketMs int64  `json:"bucketMs"`
	// From and To are the range counted (epoch ms, inclusive).
	From int64 `json:"from"`
	To   int64 `json:"to"`
}

func (c *Console) handleHistogram(w http.ResponseWriter, r *http.Request) {
	q, body, err := c.readSearch(w, r)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	var extra histogramExtra
	if err := json.Unmarshal(body, &extra); err != nil {
		httpapi.WriteError(w, r, httpapi.Errorf(httpapi.CodeInvalidArgument, "bucket: must be a string, utcOffsetMinutes: a whole number"))
		return
	}
	h, err := c.histogram(r.Context(), q, extra)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	b, err := json.Marshal(h)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(append(b, '\n'))
}

// histogram counts q's matches per bucket and type with total-only
// searches (Size 0) narrowed by query.Types.
func (c *Console) histogram(ctx context.Context, q query.Query, extra histogramExtra) (Histogram, error) {
	if extra.UTCOffsetMinutes < -14*60 || extra.UTCOffsetMinutes > 14*60 {
		return Histogram{}, httpapi.Errorf(httpapi.CodeInvalidArgument, "utcOffsetMinutes: must be between -840 and 840")
	}
	from, to := q.From, q.To
	if to <= 0 {
		to = c.opts.Now().UnixMilli()
	}
	if to < from {
		to = from
	}
	offset := int64(extra.UTCOffsetMinutes) * time.Minute.Milliseconds()
	align := func(size int64) (start int64, n int) {
		start = floorDiv(from+offset, size)*size - offset
		return start, int((to - start + size) / size)
	}

	var name string
	var size int64
	var start int64
	var n int
	if extra.Bucket != "" {
		d, ok := namedBuckets[extra.Bucket]
		if !ok {
			return Histogram{}, httpapi.Errorf(httpapi.CodeInvalidArgument, "bucket: must be minute, hour or day")
		}
		name, size = extra.Bucket, d.Milliseconds()
		start, n = align(size)
		if n > MaxBuckets {
			return Histogram{}, httpapi.Errorf(httpapi.CodeInvalidArgument,
				"bucket: %s bars over this range would be %d; at most %d: choose a wider bucket or a shorter range", name, n, MaxBuckets)
		}
	} else {
		for _, s := range bucketSizes {
			name, size = s.name, s.d.Milliseconds()
			if start, n = align(size); n <= MaxBuckets {
				break
			}
		}
		// Beyond 120 days even day bars are too many: widen by whole days.
		for n > MaxBuckets {
			size *= 2
			name = fmt.Sprintf("%dd", size/(24*time.Hour).Milliseconds())
			start, n = align(size)
		}
	}

	h := Histogram{Buckets: make([]Bucket, n), Bucket: name, BucketMs: size, From: from, To: to}
	for i := range h.Buckets {
		h.Buckets[i].Start = start + int64(i)*size
	}
	// bucketRange is the inclusive occurred range of buckets [i, j).
	bucketRange := func(i, j int) (int64, int64) {
		lo := max(start+int64(i)*size, from)
		hi := min(start+int64(j)*size-1, to)
		return lo, hi
	}
	count := func(typ string, lo, hi int64) (int, error) {
		cq := q
		cq.From, cq.To, cq.Page, cq.Size = lo, hi, 0, 0
		if typ != "" {
			cq.Types = []string{typ}
		}
		res, err := c.opts.Store.Search(ctx, cq)
		if err != nil {
			return 0, fmt.Errorf("histogram: count %s events: %w", typ, err)
		}
		return res.Total, nil
	}

	types := []string{event.TypeInfo, event.TypeWarn, event.TypeError}
	perType := make([][]int, len(types))
	errs := make([]error, len(types)+1)
	var wg sync.WaitGroup
	for ti, typ := range types {
		perType[ti] = make([]int, n)
		wg.Go(func() {
			counts := perType[ti]
			// fill counts buckets [i, j) that hold total matches between
			// them; a part without matches costs no further search.
			var fill func(i, j, total int) error
			fill = func(i, j, total int) error {
				if total == 0 {
					return nil
				}
				if j-i == 1 {
					counts[i] = total
					return nil
				}
				step := max(1, (j-i+histogramFanout-1)/histogramFanout)
				for a := i; a < j; a += step {
					b := min(a+step, j)
					lo, hi := bucketRange(a, b)
					k, err := count(typ, lo, hi)
					if err != nil {
						return err
					}
					if err := fill(a, b, k); err != nil {
						return err
					}
				}
				return nil
			}
			lo, hi := bucketRange(0, n)
			total, err := count(typ, lo, hi)
			if err == nil {
				err = fill(0, n, total)
			}
			errs[ti] = err
		})
	}
	wg.Go(func() {
		var err error
		h.Total, err = count("", from, to)
		errs[len(types)] = err
	})
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return Histogram{}, err
		}
	}
	sum := 0
	for i := range h.Buckets {
		b := &h.Buckets[i]
		b.Info, b.Warn, b.Error = perType[0][i], perType[1][i], perType[2][i]
		sum += b.Info + b.Warn + b.Error
	}
	if sum != h.Total {
		// Each type is counted separately, so events ingested meanwhile
		// can make them differ by a few; a large gap means the store does
		// not honour query.Types.
		c.log.Warn("histogram: counts by type do not add up to the total", "total", h.Total, "by_type", sum)
	}
	return h, nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}
