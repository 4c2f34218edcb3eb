package ledger

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/transparency-dev/merkle/compact"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/store/storetest"
)

// The fast path must give exactly the leaf of the wire JSON that GET
// /v1/mgmt/audit/event/{id} and the NDJSON export write (json.Marshal).
func TestEventLeafHashMatchesWireJSON(t *testing.T) {
	evs := storetest.Generate(11, 500, storetest.GenOptions{})
	odd := []event.Event{
		{ID: "html<&>", CompanyID: "c", ProjectID: "P", Level: event.LevelProject, Action: "a\u2028b", Type: "info", Occurred: 1,
			Data: json.RawMessage(`{"z": 1.50, "a": [1e2, "x<y>"], "\u00e9": {"b":true,"a":null}, "a": "dup"}`)},
		{ID: "bad-utf8", CompanyID: "c", Level: event.LevelCompany, Action: "x\xff\xfey", UserID: "\x01\x1f\"\\", Type: "warn", Occurred: 2,
			LoginIDs: []string{"a", "😀"}, Tenants: []string{}},
		{ID: "null-data", CompanyID: "c", ProjectID: "P", Level: event.LevelProject, Action: "n", Type: "error", Occurred: 3, Data: json.RawMessage(`null`)},
		{ID: "spaced-data", CompanyID: "c", ProjectID: "P", Level: event.LevelProject, Action: "n", Type: "info", Occurred: 4, Data: json.RawMessage(" {\n\"k\" : [ ] } ")},
	}
	for _, e := range append(evs, odd...) {
		wire, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("marshal %s: %v", e.ID, err)
		}
		want, err := LeafHashFromJSON(wire)
		if err != nil {
			t.Fatalf("LeafHashFromJSON(%s): %v", wire, err)
		}
		got, err := EventLeafHash(&e)
		if err != nil {
			t.Fatalf("EventLeafHash(%s): %v", e.ID, err)
		}
		if !bytes.Equal(got, want) {
			c1, _ := AppendEventCanonical(nil, &e)
			c2, _ := Canonicalize(wire)
			t.Fatalf("event %s: fast path differs\nfast %s\nwire %s", e.ID, c1, c2)
		}
		// And the wire JSON read back (as a verifier would) hashes alike.
		var back event.Event
		if err := json.Unmarshal(wire, &back); err != nil {
			t.Fatal(err)
		}
		back.CompanyID = e.CompanyID
		if again, _ := EventLeafHash(&back); !bytes.Equal(again, want) {
			t.Fatalf("event %s: decoded copy hashes differently", e.ID)
		}
	}
}

func TestTreeIDAndOrigin(t *testing.T) {
	for _, tr := range []TreeID{{CompanyID: "C1", ProjectID: "P1"}, {CompanyID: "C1"}, {CompanyID: "C2", ProjectID: "company"}} {
		back, err := ParseTreeID(tr.String())
		if err != nil || back != tr {
			t.Fatalf("ParseTreeID(%q) = %+v, %v", tr.String(), back, err)
		}
		o := Origin("audit.example.com/log", tr)
		if back, err := TreeFromOrigin("audit.example.com/log", o); err != nil || back != tr {
			t.Fatalf("TreeFromOrigin(%q) = %+v, %v", o, back, err)
		}
		prefix, back, err := ParseOrigin(o)
		if err != nil || back != tr || prefix != "audit.example.com/log" {
			t.Fatalf("ParseOrigin(%q) = %q %+v, %v", o, prefix, back, err)
		}
	}
	for _, bad := range []string{"", "C1", "C1/", "C1/project/", "/company", "C1/other"} {
		if _, err := ParseTreeID(bad); err == nil {
			t.Errorf("ParseTreeID(%q) accepted", bad)
		}
	}
}

func TestPostOrderPositions(t *testing.T) {
	// Appending leaves one by one must report nodes exactly at consecutive
	// post-order positions: that is what makes the node file append-only.
	r := rangeFactory.NewEmptyRange(0)
	next := uint64(0)
	for i := range uint64(1000) {
		_ = r.Append(LeafHash([]byte{byte(i)}), func(id compact.NodeID, _ []byte) {
			if p := postOrderPos(id); p != next {
				t.Fatalf("leaf %d: node %d/%d at position %d, want %d", i, id.Level, id.Index, p, next)
			}
			next++
		})
		if next != nodeCount(i+1) {
			t.Fatalf("after %d leaves: %d nodes, nodeCount says %d", i+1, next, nodeCount(i+1))
		}
	}
}

// The fast path and the wire JSON agree on any strings and any data.
func FuzzEventLeafHash(f *testing.F) {
	f.Add("a<b>&", "u\u2028", "\xff", `{"b":1,"a":[1.0,"\u00e9"]}`, int64(1))
	f.Add("", "", "", "", int64(1700000000000))
	f.Fuzz(func(t *testing.T, action, user, tenant, data string, occurred int64) {
		e := event.Event{ID: "x", CompanyID: "c", ProjectID: "P", Level: event.LevelProject, Action: action, UserID: user,
			Type: "info", Occurred: occurred, Tenants: []string{tenant}}
		if data != "" {
			if !json.Valid([]byte(data)) {
				return
			}
			e.Data = json.RawMessage(data)
		}
		wire, err := json.Marshal(e)
		if err != nil {
			return
		}
		want, err := LeafHashFromJSON(wire)
		if err != nil {
			t.Fatalf("wire JSON %s not canonicalisable: %v", wire, err)
		}
		got, err := EventLeafHash(&e)
		if err != nil || !bytes.Equal(got, want) {
			c1, _ := AppendEventCanonical(nil, &e)
			c2, _ := Canonicalize(wire)
			t.Fatalf("fast path differs (%v)\nfast %q\nwire %q", err, c1, c2)
		}
	})
}
