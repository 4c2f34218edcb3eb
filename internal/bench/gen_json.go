package bench

import (
	"encoding/json"
	"strconv"

	"github.com/audittrail/audittrail/internal/event"
)

// jsonWriter appends a JSON object to a reused buffer in a fixed key order.
// Generating a million payloads through maps and json.Marshal would cost
// more than some engines' ingest and would order keys by hash luck.
type jsonWriter struct {
	b []byte
	// open holds the objects and arrays not yet closed, root first.
	open []jsonFrame
}

type jsonFrame struct {
	closer byte
	used   bool // a member was written, so the next needs a comma
}

func (g *Generator) jsonStart() *jsonWriter {
	return &jsonWriter{b: append(g.buf[:0], '{'), open: []jsonFrame{{closer: '}'}}}
}

func (w *jsonWriter) sep() {
	f := &w.open[len(w.open)-1]
	if f.used {
		w.b = append(w.b, ',')
	}
	f.used = true
}

func (w *jsonWriter) key(k string) {
	w.sep()
	w.b = appendJSONString(w.b, k)
	w.b = append(w.b, ':')
}

func (w *jsonWriter) str(k, v string) {
	w.key(k)
	w.b = appendJSONString(w.b, v)
}

func (w *jsonWriter) num(k string, v int64) {
	w.key(k)
	w.b = strconv.AppendInt(w.b, v, 10)
}

func (w *jsonWriter) bool(k string, v bool) {
	w.key(k)
	w.b = strconv.AppendBool(w.b, v)
}

func (w *jsonWriter) obj(k string) {
	w.key(k)
	w.b = append(w.b, '{')
	w.open = append(w.open, jsonFrame{closer: '}'})
}

func (w *jsonWriter) arr(k string) {
	w.key(k)
	w.b = append(w.b, '[')
	w.open = append(w.open, jsonFrame{closer: ']'})
}

// elem and rawElem add to the array being written.
func (w *jsonWriter) elem(v string) {
	w.sep()
	w.b = appendJSONString(w.b, v)
}

func (w *jsonWriter) rawElem(raw string) {
	w.sep()
	w.b = append(w.b, raw...)
}

// end closes the innermost object or array.
func (w *jsonWriter) end() {
	w.b = append(w.b, w.open[len(w.open)-1].closer)
	w.open = w.open[:len(w.open)-1]
}

// done closes every open level and returns a copy the caller may keep; the
// buffer goes back to the generator for the next event.
func (w *jsonWriter) done(g *Generator) json.RawMessage {
	for len(w.open) > 0 {
		w.end()
	}
	g.buf = w.b
	return json.RawMessage(append([]byte(nil), w.b...))
}

// appendJSONString quotes s; plain ASCII, by far the common case, is copied
// as is, anything else goes through encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// WireSize is len(json.Marshal(e)) computed without marshalling: the
// generator sums it for every event, and marshalling would cost more than
// generating.
func WireSize(e *event.Event) int {
	// Keys, quotes, colons, commas and braces of the fixed record shape.
	const fixed = len(`{"id":,"projectId":,"level":,"userId":,"action":,"type":,"actorId":,` +
		`"device":,"method":,"geo":,"remoteAddress":,"externalIds":[],"tenants":[],"occurred":""}`)
	n := fixed
	for _, s := range []string{e.ID, e.ProjectID, string(e.Level), e.UserID, e.Action, e.Type, e.ActorID,
		e.Device, e.Method, e.Geo, e.RemoteAddress} {
		n += jsonStringSize(s)
	}
	for _, list := range [][]string{e.LoginIDs, e.Tenants} {
		for i, s := range list {
			if i > 0 {
				n++
			}
			n += jsonStringSize(s)
		}
	}
	if len(e.Data) > 0 {
		n += len(`,"data":`) + len(e.Data)
	}
	return n + len(strconv.FormatInt(e.Occurred, 10))
}

func jsonStringSize(s string) int {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= 0x80 {
			q, _ := json.Marshal(s)
			return len(q)
		}
	}
	return len(s) + 2
}
