// Package s3 archives the trail to Amazon S3 or an S3-compatible store as
// gzip-compressed NDJSON objects, one event JSON per line, keyed
//
//	<prefix>/<projectId or "company">/<yyyy>/<mm>/<dd>/<first-seq>-<last-seq>.ndjson.gz
//
// A batch is split by project and by the UTC day the event occurred; each
// part becomes one object whose lines are in ingest (Seq) order. Seqs are
// zero-padded to 20 digits, so listing a project's day returns its objects
// in ingest order. The key is a function of the events alone and the body
// is byte-for-byte reproducible (gzip without a timestamp), so the engine
// retrying a batch overwrites the same objects with the same bytes: a
// retried batch leaves no duplicate. Only a batch cut differently after a
// restart (say 1-100 then 1-150) can repeat events across two objects;
// every line carries the event id for dedupe.
package s3

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/stream"
)

// ErrNotConnected: Write was called before Connect.
var ErrNotConnected = errors.New("s3: not connected")

// ContentType of every object: the body is a gzip file, and no
// Content-Encoding is set so that a download keeps the .gz as it is.
const ContentType = "application/gzip"

var _ stream.Sink = (*Sink)(nil)

// Sink uploads batches to one bucket.
type Sink struct {
	cfg Config

	mu     sync.Mutex
	client *s3.Client
	http   *http.Client
}

// New validates cfg and returns an unconnected sink.
func New(cfg Config) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Sink{cfg: cfg}, nil
}

// Factory builds a sink from its JSON configuration.
func Factory(raw json.RawMessage) (stream.Sink, error) {
	cfg, err := ParseConfig(raw)
	if err != nil {
		return nil, err
	}
	return New(cfg)
}

func (s *Sink) newClient() (*s3.Client, *http.Client) {
	hc := &http.Client{Timeout: time.Duration(s.cfg.Timeout)}
	opts := s3.Options{
		Region:       s.cfg.Region,
		Credentials:  aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(s.cfg.AccessKeyID, s.cfg.SecretAccessKey, s.cfg.SessionToken)),
		UsePathStyle: s.cfg.PathStyle,
		// Many S3-compatible stores refuse the SDK's default trailing
		// checksums; Content-MD5 (set on every put) protects the body.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		// The engine owns retries with backoff; the SDK's own would wait up
		// to 20 s between tries inside one Write.
		RetryMaxAttempts: 1,
		HTTPClient:       hc,
	}
	if s.cfg.Endpoint != "" {
		opts.BaseEndpoint = aws.String(s.cfg.Endpoint)
	}
	return s3.New(opts), hc
}

// Connect checks that the bucket exists and the credentials may use it.
func (s *Sink) Connect(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeLocked()
	client, hc := s.newClient()
	ctx, cancel := context.WithTimeout(ctx, time.Duration(s.cfg.Timeout))
	defer cancel()
	if _, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.cfg.Bucket)}); err != nil {
		hc.CloseIdleConnections()
		return fmt.Errorf("s3: bucket %s: %w", s.cfg.Bucket, err)
	}
	s.client, s.http = client, hc
	return nil
}

// Object is one upload: the events of one project and day of a batch.
type Object struct {
	Key    string
	Events []event.Event
}

// Objects splits a batch into the objects Write uploads, in the order of
// their first event.
func Objects(prefix string, events []event.Event) []Object {
	type groupKey struct {
		project string
		day     string
	}
	index := map[groupKey]int{}
	var out []Object
	for _, e := range events {
		project := companyKeyPart
		if e.Level != event.LevelCompany && e.ProjectID != "" {
			project = strings.ReplaceAll(e.ProjectID, "/", "_")
		}
		k := groupKey{project, time.UnixMilli(e.Occurred).UTC().Format("2006/01/02")}
		i, ok := index[k]
		if !ok {
			i = len(out)
			index[k] = i
			out = append(out, Object{Key: prefix + "/" + k.project + "/" + k.day + "/"})
		}
		out[i].Events = append(out[i].Events, e)
	}
	for i := range out {
		evs := out[i].Events
		out[i].Key += fmt.Sprintf("%020d-%020d.ndjson.gz", evs[0].Seq, evs[len(evs)-1].Seq)
	}
	return out
}

// Encode renders events as gzip NDJSON. The output depends on the events
// only, so a retried upload is byte-identical.
func Encode(events []event.Event) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	for i := range events {
		line, err := json.Marshal(&events[i])
		if err != nil {
			return nil, fmt.Errorf("s3: encode event %s: %w", events[i].ID, err)
		}
		zw.Write(line)
		zw.Write([]byte{'\n'})
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("s3: gzip: %w", err)
	}
	return buf.Bytes(), nil
}

// Write uploads every object of the batch and returns nil once S3 stored
// each one.
func (s *Sink) Write(ctx context.Context, b stream.Batch) error {
	s.mu.Lock()
	client := s.client
	s.mu.Unlock()
	if client == nil {
		return ErrNotConnected
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(s.cfg.Timeout))
	defer cancel()

	objects := Objects(s.cfg.Prefix, b.Events)
	errs := make([]error, len(objects))
	sem := make(chan struct{}, s.cfg.Concurrency)
	var wg sync.WaitGroup
	for i, o := range objects {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = s.put(ctx, client, o)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// After the objects it names: a receiver that finds the evidence finds
	// them too.
	return s.putEvidence(ctx, client, b, objects)
}

// EvidenceDir is where, under the prefix, each batch's evidence object
// goes. Hive, Spark and Athena skip paths starting with "_", so a table
// over the prefix still reads events only.
const EvidenceDir = "_evidence"

// EvidenceKey is the key of the evidence object of the batch of events
// first to last (Seqs, zero-padded so that listing returns batches in
// delivery order).
func EvidenceKey(prefix string, first, last uint64) string {
	return fmt.Sprintf("%s/%s/%020d-%020d.json", prefix, EvidenceDir, first, last)
}

// EvidenceBody is the evidence object of a batch (client.S3Evidence): the
// batch's evidence as the ledger made it, and for each object which of
// its proofs the object's lines are.
func EvidenceBody(b stream.Batch, objects []Object) ([]byte, error) {
	type objectLines struct {
		Key   string `json:"key"`
		Lines []int  `json:"lines"`
	}
	pos := make(map[uint64]int, len(b.Events))
	for i := range b.Events {
		pos[b.Events[i].Seq] = i
	}
	out := struct {
		Objects  []objectLines   `json:"objects"`
		Evidence json.RawMessage `json:"evidence"`
	}{Objects: make([]objectLines, len(objects)), Evidence: b.Evidence}
	for i, o := range objects {
		lines := make([]int, len(o.Events))
		for j := range o.Events {
			lines[j] = pos[o.Events[j].Seq]
		}
		out.Objects[i] = objectLines{Key: o.Key, Lines: lines}
	}
	return json.Marshal(out)
}

func (s *Sink) putEvidence(ctx context.Context, client *s3.Client, b stream.Batch, objects []Object) error {
	if len(b.Evidence) == 0 || len(b.Events) == 0 {
		return nil
	}
	body, err := EvidenceBody(b, objects)
	if err != nil {
		return fmt.Errorf("s3: encode evidence: %w", err)
	}
	key := EvidenceKey(s.cfg.Prefix, b.Events[0].Seq, b.Events[len(b.Events)-1].Seq)
	return s.upload(ctx, client, key, body, "application/json")
}

func (s *Sink) put(ctx context.Context, client *s3.Client, o Object) error {
	body, err := Encode(o.Events)
	if err != nil {
		return err
	}
	return s.upload(ctx, client, o.Key, body, ContentType)
}

func (s *Sink) upload(ctx context.Context, client *s3.Client, key string, body []byte, contentType string) error {
	sum := md5.Sum(body)
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.cfg.Bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentMD5:    aws.String(base64.StdEncoding.EncodeToString(sum[:])),
		ContentType:   aws.String(contentType),
	}
	if s.cfg.ServerSideEncryption != "" {
		in.ServerSideEncryption = types.ServerSideEncryption(s.cfg.ServerSideEncryption)
	}
	if s.cfg.KMSKeyID != "" {
		in.SSEKMSKeyId = aws.String(s.cfg.KMSKeyID)
	}
	if s.cfg.StorageClass != "" {
		in.StorageClass = types.StorageClass(s.cfg.StorageClass)
	}
	if _, err := client.PutObject(ctx, in); err != nil {
		return fmt.Errorf("s3: put %s: %w", key, err)
	}
	return nil
}

// Close drops the client's idle keep-alive connections.
func (s *Sink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeLocked()
	return nil
}

func (s *Sink) closeLocked() {
	if s.http != nil {
		s.http.CloseIdleConnections()
	}
	s.client, s.http = nil, nil
}
