package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/audittrail/audittrail/internal/httpapi"
	"github.com/audittrail/audittrail/internal/store"
)

// handleTail streams new matching events as server-sent events over the
// response of a POST, because a browser's EventSource cannot send an
// Authorization header. It follows the store's ingest order (ReadFrom by
// Seq) from the head at the start, so an event is sent once, in the order
// it was acknowledged, whatever its `occurred`: a search by time would miss
// a late event stamped in the past.
//
// Messages: "ready" once (data {"heartbeatMs"}), "audit" per event (data: the
// record, as /search returns it; id: its position in the tail), "heartbeat"
// when idle, "error" for a transient store failure (the tail goes on), and
// "end" when the server shuts down.
func (c *Console) handleTail(w http.ResponseWriter, r *http.Request) {
	q, _, err := c.readSearch(w, r)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	ctx := r.Context()
	cursor, err := c.headSeq(ctx)
	if err != nil {
		httpapi.WriteError(w, r, fmt.Errorf("tail: find the head of the store: %w", err))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx would buffer the stream otherwise
	w.WriteHeader(http.StatusOK)

	t := &tailWriter{w: w, rc: http.NewResponseController(w)}
	t.send("ready", "", fmt.Sprintf(`{"heartbeatMs":%d}`, c.opts.Heartbeat.Milliseconds()))
	if t.flush() != nil {
		return
	}
	poll := time.NewTimer(0)
	defer poll.Stop()
	lastWrite := time.Now()
	var sent uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.tailsCtx.Done():
			t.send("end", "", `{"reason":"the server is shutting down"}`)
			_ = t.flush()
			return
		case <-poll.C:
		}
		evs, err := c.opts.Store.ReadFrom(ctx, cursor, tailReadLimit)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, store.ErrUnavailable):
			c.log.Warn("tail: store unavailable; retrying", "request_id", httpapi.RequestID(ctx), "error", err)
			t.send("error", "", `{"errorCode":"E013503","errorMessage":"storage is unavailable; the tail retries"}`)
		case err != nil:
			c.log.Error("tail: read failed; ending the tail", "request_id", httpapi.RequestID(ctx), "error", err)
			t.send("end", "", `{"reason":"the server could not read new events"}`)
			_ = t.flush()
			return
		}
		for i := range evs {
			cursor = evs[i].Seq
			if !q.Match(&evs[i]) {
				continue
			}
			b, err := json.Marshal(&evs[i])
			if err != nil {
				c.log.Error("tail: encode event", "id", evs[i].ID, "error", err)
				continue
			}
			sent++
			t.send("audit", strconv.FormatUint(sent, 10), string(b))
		}
		if t.n == 0 && time.Since(lastWrite) >= c.opts.Heartbeat {
			t.send("heartbeat", "", "{}")
		}
		if t.n > 0 {
			if t.flush() != nil {
				return // the client went away
			}
			lastWrite = time.Now()
		}
		if len(evs) == tailReadLimit {
			poll.Reset(0) // more is waiting: catch up before sleeping
		} else {
			poll.Reset(c.opts.TailPoll)
		}
	}
}

// tailWriter buffers messages until flush, which writes them with a write
// deadline of its own: the server's WriteTimeout is meant for ordinary
// requests, a tail runs for as long as its page stays open.
type tailWriter struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	buf []byte
	n   int
	err error
}

func (t *tailWriter) send(event, id, data string) {
	t.buf = append(t.buf, "event: "...)
	t.buf = append(t.buf, event...)
	t.buf = append(t.buf, '\n')
	if id != "" {
		t.buf = append(t.buf, "id: "...)
		t.buf = append(t.buf, id...)
		t.buf = append(t.buf, '\n')
	}
	// json.Marshal never emits a raw newline, so data is one line.
	t.buf = append(t.buf, "data: "...)
	t.buf = append(t.buf, data...)
	t.buf = append(t.buf, "\n\n"...)
	t.n++
}

func (t *tailWriter) flush() error {
	if t.err != nil {
		return t.err
	}
	if err := t.rc.SetWriteDeadline(time.Now().Add(tailWriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		t.err = err
		return err
	}
	if _, err := t.w.Write(t.buf); err != nil {
		t.err = err
		return err
	}
	t.buf, t.n = t.buf[:0], 0
	if err := t.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		t.err = err
		return err
	}
	return nil
}

// headSeq returns the highest Seq the store exposes, remembering it so
// the next probe starts from there.
func (c *Console) headSeq(ctx context.Context) (uint64, error) {
	c.headMu.Lock()
	defer c.headMu.Unlock()
	head, err := store.HeadSeq(ctx, c.opts.Store, c.head)
	if err == nil {
		c.head = head
	}
	return head, err
}
