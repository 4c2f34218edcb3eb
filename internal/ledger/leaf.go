package ledger

import (
	"crypto/sha256"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/audittrail/audittrail/internal/event"
)

// hasher is RFC 6962's SHA-256 tree hasher: leaves H(0x00||d), nodes
// H(0x01||l||r).
var hasher = rfc6962.DefaultHasher

var rangeFactory = &compact.RangeFactory{Hash: hasher.HashChildren}

// TreeID names one Merkle tree: a project's events, or (ProjectID empty)
// the company-level events of a company.
// In JSON it is its String form.
type TreeID struct {
	CompanyID string
	ProjectID string
}

func (t TreeID) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

func (t *TreeID) UnmarshalText(b []byte) error {
	p, err := ParseTreeID(string(b))
	if err != nil {
		return err
	}
	*t = p
	return nil
}

// TreeOf returns the tree an event belongs to.
func TreeOf(e *event.Event) TreeID {
	if e.Level == event.LevelCompany {
		return TreeID{CompanyID: e.CompanyID}
	}
	return TreeID{CompanyID: e.CompanyID, ProjectID: e.ProjectID}
}

// String is "<company>/project/<project>" or "<company>/company". Company
// ids never hold '/' (tenancy makes them base62), so the form parses back
// unambiguously even if a project id did.
func (t TreeID) String() string {
	if t.ProjectID == "" {
		return t.CompanyID + "/company"
	}
	return t.CompanyID + "/project/" + t.ProjectID
}

// ParseTreeID is the inverse of TreeID.String.
func ParseTreeID(s string) (TreeID, error) {
	company, rest, ok := strings.Cut(s, "/")
	if ok && company != "" {
		if rest == "company" {
			return TreeID{CompanyID: company}, nil
		}
		if p, ok := strings.CutPrefix(rest, "project/"); ok && p != "" {
			return TreeID{CompanyID: company, ProjectID: p}, nil
		}
	}
	return TreeID{}, fmt.Errorf("%w: tree %q is not <company>/company or <company>/project/<project>", ErrBadTree, s)
}

// DefaultOriginPrefix starts every checkpoint's origin line.
const DefaultOriginPrefix = "audittrail"

// Origin is the first line of a tree's checkpoints: it names the log, so a
// checkpoint of one tree can never pass for another's.
func Origin(prefix string, t TreeID) string { return prefix + "/" + t.String() }

// TreeFromOrigin reads the tree back from an origin line with that prefix.
func TreeFromOrigin(prefix, origin string) (TreeID, error) {
	rest, ok := strings.CutPrefix(origin, prefix+"/")
	if !ok {
		return TreeID{}, fmt.Errorf("%w: origin %q does not start with %q", ErrBadTree, origin, prefix+"/")
	}
	return ParseTreeID(rest)
}

// ParseOrigin splits an origin line into its prefix and tree, reading the
// tree from the right since only the prefix may hold '/'.
func ParseOrigin(origin string) (prefix string, t TreeID, err error) {
	parts := strings.Split(origin, "/")
	n := len(parts)
	switch {
	case n >= 4 && parts[n-2] == "project" && parts[n-1] != "" && parts[n-3] != "":
		prefix, t = strings.Join(parts[:n-3], "/"), TreeID{CompanyID: parts[n-3], ProjectID: parts[n-1]}
	case n >= 3 && parts[n-1] == "company" && parts[n-2] != "":
		prefix, t = strings.Join(parts[:n-2], "/"), TreeID{CompanyID: parts[n-2]}
	}
	if prefix == "" {
		return "", TreeID{}, fmt.Errorf("%w: origin %q is not <prefix>/<company>/company or <prefix>/<company>/project/<project>", ErrBadTree, origin)
	}
	return prefix, t, nil
}

// LeafHash is the RFC 6962 leaf hash of a canonical event encoding.
func LeafHash(canonical []byte) []byte { return hasher.HashLeaf(canonical) }

// LeafHashFromJSON computes the leaf of an event from its wire JSON (one
// NDJSON export line, or the body of GET /v1/mgmt/audit/event/{id}).
func LeafHashFromJSON(wire []byte) ([]byte, error) {
	c, err := Canonicalize(wire)
	if err != nil {
		return nil, err
	}
	return LeafHash(c), nil
}

var leafBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// EventLeafHash is LeafHashFromJSON(json.Marshal(e)) computed without the
// round trip through encoding/json (a test holds the two equal).
func EventLeafHash(e *event.Event) ([]byte, error) {
	bp := leafBufPool.Get().(*[]byte)
	defer leafBufPool.Put(bp)
	buf := append((*bp)[:0], 0) // RFC 6962 leaf prefix
	buf, err := AppendEventCanonical(buf, e)
	*bp = buf
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(buf)
	return sum[:], nil
}

// AppendEventCanonical appends JCS(json.Marshal(e)): the members of the
// event's wire JSON in their canonical (sorted) order. Only `data`, free
// JSON, goes through the general canonicaliser.
func AppendEventCanonical(dst []byte, e *event.Event) ([]byte, error) {
	str := func(name, v string) {
		dst = append(dst, ',', '"')
		dst = append(dst, name...)
		dst = append(dst, '"', ':')
		dst = appendCanonicalString(dst, v)
	}
	list := func(name string, vs []string) {
		dst = append(dst, ',', '"')
		dst = append(dst, name...)
		dst = append(dst, '"', ':', '[')
		for i, v := range vs {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendCanonicalString(dst, v)
		}
		dst = append(dst, ']')
	}
	// Sorted member names: action, actorId, data, device, externalIds, geo,
	// id, level, method, occurred, projectId, remoteAddress, tenants, type,
	// userId (all ASCII, so byte order is UTF-16 order).
	dst = append(dst, `{"action":`...)
	dst = appendCanonicalString(dst, e.Action)
	str("actorId", e.ActorID)
	if len(e.Data) > 0 { // omitempty
		dst = append(dst, `,"data":`...)
		var err error
		if dst, err = AppendCanonical(dst, e.Data); err != nil {
			return dst, fmt.Errorf("event %s: data: %w", e.ID, err)
		}
	}
	str("device", e.Device)
	list("externalIds", e.LoginIDs)
	str("geo", e.Geo)
	str("id", e.ID)
	str("level", string(e.Level))
	str("method", e.Method)
	str("occurred", strconv.FormatInt(e.Occurred, 10))
	str("projectId", e.ProjectID)
	str("remoteAddress", e.RemoteAddress)
	list("tenants", e.Tenants)
	str("type", e.Type)
	str("userId", e.UserID)
	return append(dst, '}'), nil
}

// RootFromLeaves is the RFC 6962 root of a whole tree given every leaf hash
// in order (SHA-256 of nothing for an empty tree, as RFC 6962 defines): what a verifier holding a complete
// export compares with a checkpoint's root.
func RootFromLeaves(leaves [][]byte) []byte {
	r := rangeFactory.NewEmptyRange(0)
	for _, h := range leaves {
		if err := r.Append(h, nil); err != nil {
			panic(err) // Append fails only for ranges of different factories
		}
	}
	root, _ := r.GetRootHash(nil)
	if root == nil {
		return hasher.EmptyRoot()
	}
	return root
}
