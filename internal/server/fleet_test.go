package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/store/postgres"
	"github.com/audittrail/audittrail/internal/store/postgres/pgtest"
)

// fleet is several `audittrail serve` processes on one PostgreSQL database.
type fleet struct {
	t     *testing.T
	pgURL string
	nodes []*fleetNode
	creds Credentials
	hc    *http.Client
}

type fleetNode struct {
	name string
	*child
	logs *os.File
}

// startFleet builds the binary and starts n instances on pgURL, one after
// the other (the first bootstraps the company).
func startFleet(t *testing.T, pgURL string, n int, extra ...string) *fleet {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary and runs server processes: skipped with -short")
	}
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{t: t, pgURL: pgURL, hc: &http.Client{Timeout: 15 * time.Second}}
	for i := range n {
		name := string(rune('A' + i))
		dir := t.TempDir()
		logs, err := os.Create(filepath.Join(t.TempDir(), "server-"+name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				logs.Sync()
				b, _ := os.ReadFile(logs.Name())
				t.Logf("instance %s log:\n%s", name, b)
			}
			logs.Close()
		})
		args := append([]string{"--store", "postgres", "--postgres-url", pgURL, "--log-level", "info"}, extra...)
		c := startChild(t, bin, dir, freeAddr(t), logs, args...)
		if i == 0 {
			if f.creds, err = ReadBootstrap(dir); err != nil {
				t.Fatal(err)
			}
		}
		f.nodes = append(f.nodes, &fleetNode{name: name, child: c, logs: logs})
	}
	return f
}

func (f *fleet) client(n *fleetNode) *client.Client {
	return f.clientWithKey(n, f.creds.ManagementKey)
}

func (f *fleet) clientWithKey(n *fleetNode, key string) *client.Client {
	c, err := client.New(client.Config{BaseURL: n.url, ProjectID: f.creds.ProjectID, ManagementKey: key, HTTPClient: f.hc})
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// webhookReceiver counts every event id the fleet delivers.
type webhookReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	count  map[string]int
	writes int
	last   time.Time
}

func newWebhookReceiver(t *testing.T) *webhookReceiver {
	r := &webhookReceiver{count: map[string]int{}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body struct {
			Audits []struct {
				ID string `json:"id"`
			} `json:"audits"`
		}
		b, _ := io.ReadAll(req.Body)
		if err := json.Unmarshal(b, &body); err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, a := range body.Audits {
			r.count[a.ID]++
		}
		r.writes++
		r.last = time.Now()
		r.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(r.Close)
	return r
}

// missing lists the ids of want not received; dups counts extra copies.
func (r *webhookReceiver) check(want map[string]bool) (missing []string, dups int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id := range want {
		if r.count[id] == 0 {
			missing = append(missing, id)
		}
	}
	for _, n := range r.count {
		dups += n - 1
	}
	return missing, dups
}

// holderPID is the process whose lock session holds a connector's lease,
// read from pg_locks and the session's application_name.
func holderPID(t *testing.T, pgURL, connectorID string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var names []string
	rows, err := conn.Query(ctx, `SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 AND l.classid = $1::int4::oid
		  AND l.objid::bigint = $2 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
		postgres.StreamLockClass, int64(uint32(postgres.StreamLockKey(connectorID))))
	if err != nil {
		t.Fatal(err)
	}
	names, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 {
		t.Fatalf("stream leases held: %v, want exactly one", names)
	}
	_, pid, ok := strings.Cut(names[0], "pid=")
	n, err := strconv.Atoi(pid)
	if !ok || err != nil {
		t.Fatalf("lease session %q names no pid", names[0])
	}
	return n
}

// TestFleet runs two server processes on one fresh database and checks
// what issue 4 asks of a fleet: an event ingested through one is found
// through the other at once; the search rate limit is shared; a key
// revoked on one is refused on the other at once; a webhook connector
// created through one delivers once across the fleet, and when the
// delivering instance is killed with SIGKILL the other takes over within
// seconds from the durable cursor, with nothing missing.
func TestFleet(t *testing.T) {
	pgURL := pgtest.NewDatabase(t) // skips unless AUDITTRAIL_INTEGRATION=1
	f := startFleet(t, pgURL, 2, "--search-rate-limit", "10")
	a, b := f.nodes[0], f.nodes[1]
	ca, cb := f.client(a), f.client(b)
	ctx := context.Background()

	t.Run("ingest on one, found on the other at once", func(t *testing.T) {
		for i := range 5 {
			from, to := ca, cb
			if i%2 == 1 {
				from, to = cb, ca
			}
			id, err := from.Audit().CreateEvent(ctx, client.CreateEventOptions{Action: "FleetSeen", ActorID: "x", TenantID: "t", Type: "info"})
			if err != nil {
				t.Fatal(err)
			}
			if got, err := to.Audit().Get(ctx, id); err != nil || got.ID != id {
				t.Fatalf("event %s acknowledged by one instance, Get on the other at once: %v", id, err)
			}
		}
	})

	t.Run("search rate limit shared through PostgreSQL", func(t *testing.T) {
		sharedRateLimit(t, ca, cb)
	})

	t.Run("key revoked on one is refused on the other", func(t *testing.T) {
		k, secret, err := ca.Keys().Create(ctx, client.CreateKeyOptions{Name: "fleet", Role: client.RoleWriter})
		if err != nil {
			t.Fatal(err)
		}
		onB := f.clientWithKey(b, secret)
		if _, err := onB.Audit().CreateEvent(ctx, client.CreateEventOptions{Action: "FleetKey", ActorID: "x", TenantID: "t", Type: "info"}); err != nil {
			t.Fatalf("new key on the other instance: %v", err)
		}
		if _, err := ca.Keys().Revoke(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		_, err = onB.Audit().CreateEvent(ctx, client.CreateEventOptions{Action: "FleetKey", ActorID: "x", TenantID: "t", Type: "info"})
		if !errors.Is(err, client.ErrUnauthorized) {
			t.Fatalf("key revoked on A, used on B at once: %v, want 401", err)
		}
	})

	t.Run("webhook delivered once, taken over after kill -9", func(t *testing.T) {
		recv := newWebhookReceiver(t)
		conn, err := ca.Connectors().Create(ctx, client.ConnectorOptions{Name: "fleet-siem", Type: "webhook",
			Config: map[string]any{"url": recv.URL}})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := cb.Connectors().Get(ctx, conn.ID); err != nil || got.ID != conn.ID {
			t.Fatalf("connector created on A, Get on B at once: %v", err)
		}
		acked := map[string]bool{}
		var mu sync.Mutex
		ingest := func(c *client.Client, prefix string, batches int) {
			for n := range batches {
				recs := make([]client.Record, 50)
				for i := range recs {
					recs[i] = client.Record{ID: fmt.Sprintf("%s-%d-%d", prefix, n, i), Action: "FleetStream", ActorID: "x"}
				}
				ids, err := c.Audit().Ingest(ctx, recs)
				if err != nil {
					return // the instance was killed: not acknowledged
				}
				mu.Lock()
				for _, id := range ids {
					acked[id] = true
				}
				mu.Unlock()
			}
		}
		ingest(ca, "a", 4)
		ingest(cb, "b", 4)
		waitDelivered(t, recv, acked, &mu, 30*time.Second)
		if _, dups := recv.check(acked); dups != 0 {
			t.Fatalf("%d duplicate deliveries with both instances up: delivery is not once per fleet", dups)
		}

		pid := holderPID(t, pgURL, conn.ID)
		victim, survivor := a, b
		if b.cmd.Process.Pid == pid {
			victim, survivor = b, a
		} else if a.cmd.Process.Pid != pid {
			t.Fatalf("lease held by pid %d, instances are %d and %d", pid, a.cmd.Process.Pid, b.cmd.Process.Pid)
		}
		t.Logf("instance %s (pid %d) delivers; killing it", victim.name, pid)
		// Keep ingesting through both while the deliverer dies.
		var wg sync.WaitGroup
		wg.Go(func() { ingest(f.client(victim), "v", 20) })
		wg.Go(func() { ingest(f.client(survivor), "s1", 10) })
		time.Sleep(100 * time.Millisecond)
		if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-victim.exited
		killed := time.Now()
		wg.Wait()
		ingest(f.client(survivor), "s2", 4)
		waitDelivered(t, recv, acked, &mu, 30*time.Second)
		took := time.Since(killed)
		missing, dups := recv.check(acked)
		if len(missing) > 0 {
			t.Fatalf("%d acknowledged events never delivered after the takeover, e.g. %v", len(missing), missing[:min(5, len(missing))])
		}
		if dups > 500 {
			t.Fatalf("%d duplicates after the takeover: more than the in-flight batch", dups)
		}
		if took > 15*time.Second {
			t.Fatalf("takeover took %v", took)
		}
		h, err := f.client(survivor).Connectors().Health(ctx, conn.ID)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%d acknowledged events delivered; %d duplicates (in-flight batch); everything delivered %v after the kill; health %+v",
			len(acked), dups, took.Round(time.Millisecond), h.State)
	})
}

// waitDelivered waits until every acknowledged id reached the receiver.
func waitDelivered(t *testing.T, recv *webhookReceiver, acked map[string]bool, mu *sync.Mutex, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		mu.Lock()
		missing, _ := recv.check(acked)
		n := len(acked)
		mu.Unlock()
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged events not delivered after %v", len(missing), n, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sharedRateLimit spends the project's 10 searches a minute alternately on
// two instances; the 11th is refused by both.
func sharedRateLimit(t *testing.T, ca, cb *client.Client) {
	t.Helper()
	ctx := context.Background()
	for i := range 10 {
		c := ca
		if i%2 == 1 {
			c = cb
		}
		if _, _, err := c.Audit().SearchAll(ctx, client.SearchOptions{Size: 1}); err != nil {
			t.Fatalf("search %d of 10: %v", i+1, err)
		}
	}
	for name, c := range map[string]*client.Client{"A": ca, "B": cb} {
		_, _, err := c.Audit().SearchAll(ctx, client.SearchOptions{Size: 1})
		var apiErr *client.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusTooManyRequests || apiErr.RetryAfter <= 0 {
			t.Fatalf("11th search of the minute on %s: %v, want 429 with Retry-After", name, err)
		}
	}
}

// TestFleetRedisRateLimit: with --redis-url the search limit is shared
// through Redis instead.
func TestFleetRedisRateLimit(t *testing.T) {
	pgURL := pgtest.NewDatabase(t)
	redisURL := os.Getenv("AUDITTRAIL_TEST_REDIS_URL")
	if redisURL == "" {
		redisURL = "redis://127.0.0.1:6379/0"
	}
	f := startFleet(t, pgURL, 2, "--search-rate-limit", "10", "--redis-url", redisURL)
	sharedRateLimit(t, f.client(f.nodes[0]), f.client(f.nodes[1]))
}

// TestFleetPostgresRestart stops the database (a private PostgreSQL
// server) under two running instances that ingest and stream: while it is
// down every request fails with 503 and a clear error; once it is back
// both instances serve again by themselves, every acknowledged event is
// stored and delivered, and the connector's delivery resumed.
func TestFleetPostgresRestart(t *testing.T) {
	srv := pgtest.StartPrivateServer(t) // skips unless AUDITTRAIL_INTEGRATION=1
	f := startFleet(t, srv.URL(), 2)
	ctx := context.Background()
	ca := f.client(f.nodes[0])
	recv := newWebhookReceiver(t)
	if _, err := ca.Connectors().Create(ctx, client.ConnectorOptions{Name: "restart-siem", Type: "webhook",
		Config: map[string]any{"url": recv.URL}}); err != nil {
		t.Fatal(err)
	}

	var (
		mu    sync.Mutex
		acked = map[string]bool{}
		// unavailable collects the refusals seen while the database is down.
		unavailable = map[string]int{}
		other       []error
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, n := range f.nodes {
		wg.Go(func() {
			c := f.client(n)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(40 * time.Millisecond):
				}
				recs := make([]client.Record, 10)
				for j := range recs {
					recs[j] = client.Record{ID: fmt.Sprintf("%s-%d-%d", n.name, i, j), Action: "RestartIngest", ActorID: "x"}
				}
				ids, err := c.Audit().Ingest(ctx, recs)
				mu.Lock()
				var apiErr *client.Error
				switch {
				case err == nil:
					for _, id := range ids {
						acked[id] = true
					}
				case errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusServiceUnavailable:
					unavailable[apiErr.Message]++
				default:
					other = append(other, err)
				}
				mu.Unlock()
			}
		})
	}
	time.Sleep(time.Second)
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	// Every kind of request is refused with 503 meanwhile, on both.
	for _, n := range f.nodes {
		c := f.client(n)
		_, _, err := c.Audit().SearchAll(ctx, client.SearchOptions{Size: 1})
		if !errors.Is(err, client.ErrUnavailable) {
			t.Errorf("search on %s while the database is down: %v, want 503", n.name, err)
		}
		if _, err := c.Connectors().List(ctx); !errors.Is(err, client.ErrUnavailable) {
			t.Errorf("connector list on %s while the database is down: %v, want 503", n.name, err)
		}
	}
	time.Sleep(2 * time.Second)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("database down for %v", time.Since(down).Round(time.Millisecond))

	// Both recover by themselves: acknowledged ingests resume on each.
	recovered := time.Now()
	for _, n := range f.nodes {
		c := f.client(n)
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, err := c.Audit().Ingest(ctx, []client.Record{{ID: "probe-" + n.name, Action: "RestartProbe", ActorID: "x"}})
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not serving 30s after the database came back: %v", n.name, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	t.Logf("both instances ingesting again %v after the restart", time.Since(recovered).Round(time.Millisecond))
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	if len(other) > 0 {
		t.Errorf("%d refusals other than 503, e.g. %v", len(other), other[0])
	}
	if len(unavailable) == 0 {
		t.Error("no ingest was refused with 503 while the database was down")
	}
	for msg := range unavailable {
		if !strings.Contains(msg, "unavailable") {
			t.Errorf("503 without a clear error: %q", msg)
		}
	}
	t.Logf("%d events acknowledged; refusals while down: %v", len(acked), unavailable)

	// Nothing acknowledged is lost: each is stored...
	ids := make(chan string)
	var missing []string
	var mmu sync.Mutex
	var gets sync.WaitGroup
	for range 4 {
		gets.Go(func() {
			for id := range ids {
				if _, err := ca.Audit().Get(ctx, id); err != nil {
					mmu.Lock()
					missing = append(missing, id+": "+err.Error())
					mmu.Unlock()
				}
			}
		})
	}
	for id := range acked {
		ids <- id
	}
	close(ids)
	gets.Wait()
	if len(missing) > 0 {
		t.Fatalf("%d acknowledged events not stored after the restart, e.g. %v", len(missing), missing[0])
	}
	// ...and delivered: the connector resumed by itself.
	var dummy sync.Mutex
	waitDelivered(t, recv, acked, &dummy, 60*time.Second)
	_, dups := recv.check(acked)
	t.Logf("all %d delivered to the webhook (%d duplicates)", len(acked), dups)
}
