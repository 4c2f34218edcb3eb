package embedded

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/audittrail/audittrail/internal/query"
	"github.com/audittrail/audittrail/internal/store"
)

// segmentFiles returns the segment files of dir, oldest first.
func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, segDirName, "*"+segSuffix))
	if err != nil || len(m) == 0 {
		t.Fatalf("no segments: %v", err)
	}
	return m
}

func flipByte(t *testing.T, path string, off uint64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, int64(off)); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x55
	if _, err := f.WriteAt(b, int64(off)); err != nil {
		t.Fatal(err)
	}
}

// sectionOffset returns where section sec of the segment file starts and
// its length.
func sectionOffset(t *testing.T, path string, sec int) (uint64, int) {
	t.Helper()
	s, err := openSegment(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	return s.secOff[sec], len(s.sec[sec])
}

func TestCorruptSegmentIsNeverServed(t *testing.T) {
	all := func(q *query.Query) {
		q.CompanyID, q.ProjectID, q.IncludeProject, q.IncludeCompany, q.Size = "c1", "P1", true, true, 1000
	}
	for name, tc := range map[string]struct {
		sec int
		// openFails: the damage is in a section checked at open.
		openFails bool
	}{
		"block":    {sec: secBlocks},
		"posting":  {sec: secPosts},
		"occurred": {sec: secOccurred, openFails: true},
		"keys":     {sec: secKeyBytes, openFails: true},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			e := openT(t, dir)
			appendT(t, e, newGen(11).batch(300))
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			path := segmentFiles(t, dir)[0]
			off, n := sectionOffset(t, path, tc.sec)
			flipByte(t, path, off+uint64(n/2))

			e, err := Open(Options{Dir: dir, Logger: quiet})
			if tc.openFails {
				if !errors.Is(err, store.ErrCorrupt) {
					t.Fatalf("Open = %v, want ErrCorrupt", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer e.Close()
			var q query.Query
			all(&q)
			if tc.sec == secPosts {
				// Ask for every posting key there is: one of them is damaged.
				q.TextTokens = query.TextTokens("a b c d e f g h i j k l m n o p q r s t u v w x y z 0 1 2 3 4 5 6 7 8 9")
				var firstErr error
				for _, tok := range q.TextTokens {
					qq := q
					qq.TextTokens = []string{tok}
					for _, c := range []string{"c1", "c2"} {
						qq.CompanyID = c
						if _, err := e.Search(context.Background(), qq); err != nil && firstErr == nil {
							firstErr = err
						}
					}
				}
				for _, f := range []func(*query.Query){
					func(q *query.Query) { q.UserIDs = []string{"u1", "u2", "u3", ""} },
					func(q *query.Query) { q.Actions = []string{"LoginSucceed", "LoginFailed", "UserModified", "Logout"} },
					func(q *query.Query) { q.Geos = []string{"US", "DE", "IL"} },
					func(q *query.Query) { q.Tenants = []string{"t1", "t2", "T-Acme", "東京"}; q.NoTenants = true },
					func(q *query.Query) { q.Devices = []string{"Desktop", "Mobile", ""} },
					func(q *query.Query) { q.Methods = []string{"otp", "oauth", ""} },
					func(q *query.Query) { q.ActorIDs = []string{"a1", "a2", ""} },
					func(q *query.Query) { q.RemoteAddresses = []string{"10.0.0.1", "10.0.0.2", "192.168.1.1"} },
					func(q *query.Query) { q.LoginIDs = []string{"john@x.io", "Zoë@x.io", "+1555"} },
					func(q *query.Query) { q.ChangedFields = []string{"email", "added_roles", "phone"} },
				} {
					for _, c := range []string{"c1", "c2"} {
						var qq query.Query
						all(&qq)
						qq.CompanyID = c
						f(&qq)
						if _, err := e.Search(context.Background(), qq); err != nil && firstErr == nil {
							firstErr = err
						}
					}
				}
				if !errors.Is(firstErr, store.ErrCorrupt) {
					t.Fatalf("searches over a damaged posting: %v, want ErrCorrupt", firstErr)
				}
			} else {
				// Every row is read by some page: one of them fails.
				var firstErr error
				for _, c := range []string{"c1", "c2"} {
					q.CompanyID = c
					if _, err := e.Search(context.Background(), q); err != nil && firstErr == nil {
						firstErr = err
					}
				}
				if _, err := e.ReadFrom(context.Background(), 0, 1000); !errors.Is(err, store.ErrCorrupt) {
					t.Fatalf("ReadFrom over a damaged block: %v, want ErrCorrupt", err)
				}
				if !errors.Is(firstErr, store.ErrCorrupt) {
					t.Fatalf("Search over a damaged block: %v, want ErrCorrupt", firstErr)
				}
			}
			if _, err := e.Check(context.Background()); !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("Check = %v, want ErrCorrupt", err)
			}
		})
	}
}
