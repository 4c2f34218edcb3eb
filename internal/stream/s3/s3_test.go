package s3

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/stream"
	"github.com/audittrail/audittrail/internal/stream/streamtest"
)

func TestParseConfigNamesTheBadField(t *testing.T) {
	const ok = `"bucket":"audit-archive","accessKeyId":"a","secretAccessKey":"s"`
	for _, tc := range []struct {
		raw, field string
	}{
		{`null`, "(root)"},
		{`{"accessKeyId":"a","secretAccessKey":"s"}`, "bucket"},
		{`{"bucket":"Audit_Archive","accessKeyId":"a","secretAccessKey":"s"}`, "bucket"},
		{`{` + ok + `,"prefix":"/x"}`, "prefix"},
		{`{` + ok + `,"prefix":"a//b"}`, "prefix"},
		{`{` + ok + `,"endpoint":"minio:9000"}`, "endpoint"},
		{`{"bucket":"audit-archive","secretAccessKey":"s"}`, "accessKeyId"},
		{`{"bucket":"audit-archive","accessKeyId":"a"}`, "secretAccessKey"},
		{`{` + ok + `,"serverSideEncryption":"rot13"}`, "serverSideEncryption"},
		{`{` + ok + `,"kmsKeyId":"k"}`, "kmsKeyId"},
		{`{` + ok + `,"concurrency":1000}`, "concurrency"},
		{`{` + ok + `,"timeout":"fast"}`, "timeout"},
		{`{` + ok + `,"pathStyle":"yes"}`, "pathStyle"},
		{`{` + ok + `,"acl":"public-read"}`, "acl"},
	} {
		_, err := Factory(json.RawMessage(tc.raw))
		var ce *ConfigError
		if !errors.As(err, &ce) || !errors.Is(err, ErrConfig) {
			t.Errorf("%s: got %v, want a ConfigError", tc.raw, err)
			continue
		}
		if ce.Field != tc.field {
			t.Errorf("%s: error names %q (%v), want %q", tc.raw, ce.Field, err, tc.field)
		}
		var fe *stream.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: the engine sees %v, want a stream.FieldError for %q", tc.raw, fe, tc.field)
		}
	}
}

func TestObjectsKeys(t *testing.T) {
	evs := streamtest.Mixed(0, 6, time.Minute)
	evs[5].Occurred += 24 * 3600 * 1000 // the next day
	got := Objects("audit", evs)
	var keys []string
	for _, o := range got {
		keys = append(keys, o.Key)
	}
	want := []string{
		"audit/P1/2025/10/09/00000000000000000001-00000000000000000004.ndjson.gz",
		"audit/P2/2025/10/09/00000000000000000002-00000000000000000005.ndjson.gz",
		"audit/company/2025/10/09/00000000000000000003-00000000000000000003.ndjson.gz",
		"audit/company/2025/10/10/00000000000000000006-00000000000000000006.ndjson.gz",
	}
	if !slices.Equal(keys, want) {
		t.Fatalf("keys:\n%s\nwant\n%s", strings.Join(keys, "\n"), strings.Join(want, "\n"))
	}
	a, _ := Encode(evs)
	b, _ := Encode(evs)
	if !bytes.Equal(a, b) {
		t.Fatal("Encode is not deterministic: a retried upload would differ")
	}
}

// fakeS3 is gofakes3 in process, on a fixed port so it can be stopped and
// started again with the same in-memory backend, with switches for
// failures.
type fakeS3 struct {
	t       *testing.T
	backend *s3mem.Backend
	handler http.Handler
	addr    string

	mu  sync.Mutex
	srv *http.Server

	refuse   atomic.Bool  // answer 503 SlowDown
	loseAcks atomic.Int32 // store the object, then drop the connection without answering
	puts     atomic.Int64
}

const testBucket = "audit-archive"

func startS3(t *testing.T) *fakeS3 {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(testBucket); err != nil {
		t.Fatal(err)
	}
	f := &fakeS3{t: t, backend: backend, handler: gofakes3.New(backend).Server()}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = l.Addr().String()
	f.serve(l)
	t.Cleanup(f.stop)
	return f
}

func (f *fakeS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.refuse.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>down for the test</Message></Error>`)
		return
	}
	if r.Method == http.MethodPut {
		f.puts.Add(1)
		if f.loseAcks.Load() > 0 && f.loseAcks.Add(-1) >= 0 {
			rec := &discardWriter{header: http.Header{}}
			f.handler.ServeHTTP(rec, r)
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
	}
	f.handler.ServeHTTP(w, r)
}

type discardWriter struct {
	header http.Header
	status int
}

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(status int)      { d.status = status }

func (f *fakeS3) serve(l net.Listener) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.srv = &http.Server{Handler: f}
	go f.srv.Serve(l)
}

func (f *fakeS3) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.srv != nil {
		f.srv.Close()
		f.srv = nil
	}
}

func (f *fakeS3) start() {
	var l net.Listener
	var err error
	for range 100 {
		if l, err = net.Listen("tcp", f.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		f.t.Errorf("restart fake S3 on %s: %v", f.addr, err)
		return
	}
	f.serve(l)
}

func (f *fakeS3) sink(t *testing.T) *Sink {
	t.Helper()
	s, err := New(Config{
		Bucket: testBucket, Prefix: "trail", Endpoint: "http://" + f.addr, PathStyle: true,
		AccessKeyID: "test", SecretAccessKey: "test-secret", Timeout: Duration(2 * time.Second),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

var keyPattern = regexp.MustCompile(`^trail/([^/]+)/(\d{4})/(\d{2})/(\d{2})/(\d{20})-(\d{20})\.ndjson\.gz$`)

// archivedBatch is what a receiver reads of one batch: its evidence
// object and, decompressed, the objects it names.
type archivedBatch struct {
	key      string
	evidence []byte
	objects  map[string][]byte
}

// readEvidence returns every batch under trail/_evidence/, in key
// (delivery) order, with the objects each names.
func readEvidence(t *testing.T, f *fakeS3) []archivedBatch {
	t.Helper()
	client := awss3.New(awss3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String("http://" + f.addr), UsePathStyle: true,
		Credentials:                aws.AnonymousCredentials{},
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
	ctx := context.Background()
	get := func(key string) []byte {
		obj, err := client.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(testBucket), Key: aws.String(key)})
		if err != nil {
			t.Fatalf("get %s: %v", key, err)
		}
		defer obj.Body.Close()
		b, err := io.ReadAll(obj.Body)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var keys []string
	p := awss3.NewListObjectsV2Paginator(client, &awss3.ListObjectsV2Input{Bucket: aws.String(testBucket), Prefix: aws.String("trail/" + EvidenceDir + "/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			keys = append(keys, *o.Key)
		}
	}
	slices.Sort(keys)
	var out []archivedBatch
	for _, key := range keys {
		b := archivedBatch{key: key, evidence: get(key), objects: map[string][]byte{}}
		var names struct{ Objects []struct{ Key string } }
		if err := json.Unmarshal(b.evidence, &names); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		for _, o := range names.Objects {
			zr, err := gzip.NewReader(bytes.NewReader(get(o.Key)))
			if err != nil {
				t.Fatalf("%s: %v", o.Key, err)
			}
			if b.objects[o.Key], err = io.ReadAll(zr); err != nil {
				t.Fatalf("%s: %v", o.Key, err)
			}
		}
		out = append(out, b)
	}
	return out
}

// readArchive lists the bucket and returns, per project directory, the
// events of its objects in key order, checking each object against its
// key on the way.
func readArchive(t *testing.T, f *fakeS3) map[string][]event.Event {
	t.Helper()
	client := awss3.New(awss3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String("http://" + f.addr), UsePathStyle: true,
		Credentials:                aws.AnonymousCredentials{},
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
	ctx := context.Background()
	var keys []string
	p := awss3.NewListObjectsV2Paginator(client, &awss3.ListObjectsV2Input{Bucket: aws.String(testBucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			keys = append(keys, *o.Key)
		}
	}
	slices.Sort(keys)
	out := map[string][]event.Event{}
	for _, key := range keys {
		if strings.HasPrefix(key, "trail/"+EvidenceDir+"/") {
			continue // readEvidence reads them
		}
		m := keyPattern.FindStringSubmatch(key)
		if m == nil {
			t.Fatalf("object key %q does not follow the layout", key)
		}
		obj, err := client.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(testBucket), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		if ct := aws.ToString(obj.ContentType); ct != ContentType {
			t.Errorf("%s: content type %q", key, ct)
		}
		zr, err := gzip.NewReader(obj.Body)
		if err != nil {
			t.Fatalf("%s is not gzip: %v", key, err)
		}
		var evs []event.Event
		sc := bufio.NewScanner(zr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var e event.Event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("%s: line %q: %v", key, sc.Text(), err)
			}
			evs = append(evs, e)
		}
		obj.Body.Close()
		if err := sc.Err(); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if len(evs) == 0 {
			t.Fatalf("%s is empty", key)
		}
		day := time.UnixMilli(evs[0].Occurred).UTC().Format("2006/01/02")
		if day != m[2]+"/"+m[3]+"/"+m[4] {
			t.Errorf("%s holds events of %s", key, day)
		}
		for _, e := range evs {
			if d := time.UnixMilli(e.Occurred).UTC().Format("2006/01/02"); d != day {
				t.Errorf("%s mixes days %s and %s", key, day, d)
			}
			if e.ProjectID != m[1] && !(m[1] == "company" && e.Level == event.LevelCompany) {
				t.Errorf("%s holds event %s of project %q", key, e.ID, e.ProjectID)
			}
		}
		out[m[1]] = append(out[m[1]], evs...)
	}
	return out
}

// checkArchive asserts that the archive holds every sent event exactly
// once, as sent, in its project's directory, and in sent order within each
// directory and day (a directory's objects list day by day, then by Seq).
func checkArchive(t *testing.T, sent []event.Event, got map[string][]event.Event) {
	t.Helper()
	want := map[string][]event.Event{}
	for _, e := range sent {
		dir := e.ProjectID
		if e.Level == event.LevelCompany {
			dir = "company"
		}
		want[dir] = append(want[dir], e)
	}
	day := func(e event.Event) string { return time.UnixMilli(e.Occurred).UTC().Format("2006/01/02") }
	for dir, evs := range want {
		slices.SortStableFunc(evs, func(a, b event.Event) int { return strings.Compare(day(a), day(b)) })
		if len(got[dir]) != len(evs) {
			t.Fatalf("%s: archive holds %d events, sent %d", dir, len(got[dir]), len(evs))
		}
		for i, e := range evs {
			g := got[dir][i]
			if g.ID != e.ID {
				t.Fatalf("%s: event %d is %s, want %s (order broken or duplicated)", dir, i, g.ID, e.ID)
			}
			wantJSON, _ := json.Marshal(e)
			gotJSON, _ := json.Marshal(g)
			if !bytes.Equal(wantJSON, gotJSON) {
				t.Fatalf("%s: event %s archived as %s, want %s", dir, e.ID, gotJSON, wantJSON)
			}
		}
	}
	for dir := range got {
		if _, ok := want[dir]; !ok {
			t.Fatalf("directory %s holds %d events nobody sent", dir, len(got[dir]))
		}
	}
}

func TestArchivesEveryEventOnceThroughOutages(t *testing.T) {
	f := startS3(t)
	s := f.sink(t)

	const batches, perBatch = 15, 300
	var sent []event.Event
	retried := 0
	for b := range batches {
		evs := streamtest.Mixed(b*perBatch, perBatch, time.Minute)
		batch := stream.Batch{ConnectorID: "c1", Events: evs}
		// An outage lasts until a Write has failed on it.
		outage := func(begin, end func()) {
			begin()
			if err := s.Write(context.Background(), batch); err == nil {
				t.Fatalf("batch %d: Write succeeded during the outage", b)
			}
			end()
		}
		switch b {
		case 3:
			// The server goes away and comes back with its data.
			outage(f.stop, f.start)
		case 7:
			// Objects are stored but the answers are lost: the retry must
			// overwrite them, not add copies.
			f.loseAcks.Store(4)
		case 11:
			// The service refuses for a while.
			outage(func() { f.refuse.Store(true) }, func() { f.refuse.Store(false) })
		}
		n := streamtest.Deliver(t, s, batch, 60*time.Second)
		if n > 1 || b == 3 || b == 11 {
			retried++
			t.Logf("batch %d: %d attempts", b, n)
		}
		sent = append(sent, evs...)
	}
	if retried < 3 {
		t.Fatalf("only %d batches needed a retry: the outages were not injected", retried)
	}

	checkArchive(t, sent, readArchive(t, f))
	t.Logf("%d events, %d batches retried, %d PUTs", len(sent), retried, f.puts.Load())
}

func TestConnectRefusesAMissingBucket(t *testing.T) {
	f := startS3(t)
	s, err := New(Config{Bucket: "no-such-bucket", Endpoint: "http://" + f.addr, PathStyle: true,
		AccessKeyID: "a", SecretAccessKey: "s", Timeout: Duration(2 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Connect(context.Background()); err == nil {
		t.Fatal("Connect succeeded for a bucket that does not exist")
	}
}
