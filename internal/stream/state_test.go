package stream_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/audittrail/audittrail/internal/stream"
	"github.com/audittrail/audittrail/internal/stream/statetest"
)

func TestFileStatePersists(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "streams.json")
	fs, err := stream.OpenFileState(path)
	if err != nil {
		t.Fatal(err)
	}
	if recs, _ := fs.Load(ctx); len(recs) != 0 {
		t.Fatalf("new state holds %d records", len(recs))
	}
	for _, id := range []string{"a", "b", "c"} {
		r := stream.Record{Spec: stream.Spec{ID: id, CompanyID: "C1", Config: json.RawMessage(`{"token":"t-` + id + `"}`)}, Cursor: 7}
		if err := fs.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := fs.Update(ctx, "b", func(r *stream.Record) error { r.Cursor, r.Paused = 42, true; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := fs.Delete(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v err %v", info.Mode(), err)
	}
	if tmps, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".streams-*")); len(tmps) != 0 {
		t.Fatalf("temporary files left: %v", tmps)
	}
	again, err := stream.OpenFileState(path)
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := again.Load(ctx)
	byID := map[string]stream.Record{}
	for _, r := range recs {
		byID[r.Spec.ID] = r
	}
	if len(byID) != 2 || byID["b"].Cursor != 42 || !byID["b"].Paused || byID["a"].Cursor != 7 || string(byID["a"].Spec.Config) != `{"token":"t-a"}` {
		t.Fatalf("reloaded: %+v", byID)
	}
	os.WriteFile(path, []byte("{not json"), 0o600)
	if _, err := stream.OpenFileState(path); err == nil {
		t.Fatal("a corrupt state file opened without error")
	}
}

func FuzzFromDescopeWebhook(f *testing.F) {
	f.Add(`{"name":"a","url":"https://x/y","authentication":{"bearerToken":"t"},"filters":[{"key":"actions","operator":"includes","values":["A"]}]}`)
	f.Add(`{"name":"a","url":"http://x","authentication":{"apiKey":{"key":"k","token":"v"}},"headers":{"a":"b"},"insecure":true}`)
	f.Add(`{"name":1}`)
	f.Fuzz(func(t *testing.T, body string) {
		s, err := stream.FromDescopeWebhook([]byte(body))
		if err != nil {
			return
		}
		var cfg stream.WebhookConfig
		if err := json.Unmarshal(s.Config, &cfg); err != nil {
			t.Fatalf("accepted body produced an undecodable config: %v", err)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted body produced an invalid config: %v", err)
		}
		if s.Name == "" || s.Type != stream.WebhookType {
			t.Fatalf("accepted spec: %+v", s)
		}
	})
}

func TestStateStoreConformance(t *testing.T) {
	statetest.Run(t, statetest.Harness{
		New: func(t *testing.T) stream.StateStore {
			fs, err := stream.OpenFileState(filepath.Join(t.TempDir(), "streams.json"))
			if err != nil {
				t.Fatal(err)
			}
			return fs
		},
		Reopen: func(t *testing.T, s stream.StateStore) stream.StateStore {
			fs, err := stream.OpenFileState(s.(*stream.FileState).Path())
			if err != nil {
				t.Fatal(err)
			}
			return fs
		},
	})
}
