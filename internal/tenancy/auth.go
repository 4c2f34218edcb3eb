package tenancy

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Errors of authentication and authorisation. Every reason a key is refused
// wraps ErrUnauthenticated (HTTP 401), so the log can tell them apart while
// the client learns only that the key is not good; ErrForbidden (403) means
// a valid key that may not do this.
var (
	ErrUnauthenticated = errors.New("tenancy: unauthenticated")
	ErrMalformedKey    = fmt.Errorf("%w: malformed management key", ErrUnauthenticated)
	ErrUnknownKey      = fmt.Errorf("%w: unknown management key", ErrUnauthenticated)
	ErrWrongSecret     = fmt.Errorf("%w: wrong management key secret", ErrUnauthenticated)
	ErrKeyRevoked      = fmt.Errorf("%w: management key revoked", ErrUnauthenticated)
	ErrKeyExpired      = fmt.Errorf("%w: management key expired", ErrUnauthenticated)

	ErrForbidden = errors.New("tenancy: forbidden")
	// ErrUnknownProject wraps ErrNotFound (HTTP 404). Another company's
	// project is reported the same way, so a key cannot probe which
	// project IDs exist elsewhere.
	ErrUnknownProject = fmt.Errorf("%w: unknown project", ErrNotFound)
	// ErrInvalid: a request the caller should not repeat as is (unknown
	// role, settings out of range, rotating a revoked key); HTTP 400.
	ErrInvalid = errors.New("tenancy: invalid")
	// ErrClosed: the directory was closed.
	ErrClosed = errors.New("tenancy: closed")
)

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool { return roleRank(r) > 0 }

// Allows reports whether a key of role r may do what needs role need:
// admin ⊇ writer ⊇ reader. An unknown role, held or needed, allows
// nothing: a typo in a route's role must fail closed.
func (r Role) Allows(need Role) bool {
	return roleRank(r) > 0 && roleRank(need) > 0 && roleRank(r) >= roleRank(need)
}

func roleRank(r Role) int {
	switch r {
	case RoleReader:
		return 1
	case RoleWriter:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// Management key format: "<key id>.<secret>", the secret being 32 random
// bytes in unpadded base64url (43 characters).
const (
	secretBytes  = 32
	secretLen    = 43
	maxKeyLength = keyIDLen + 1 + secretLen
)

// NewKeySecret returns a fresh management key for keyID, to show the user
// once, and the hash to store.
func NewKeySecret(keyID string) (managementKey string, hash []byte) {
	var b [secretBytes]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go ≥ 1.24)
	managementKey = keyID + "." + base64.RawURLEncoding.EncodeToString(b[:])
	return managementKey, HashKey(managementKey)
}

// ParseKey splits a presented management key into its id and secret,
// refusing anything not shaped like what NewKeySecret makes, so that
// garbage never reaches the directory.
func ParseKey(managementKey string) (keyID, secret string, err error) {
	if len(managementKey) != maxKeyLength {
		return "", "", ErrMalformedKey
	}
	keyID, secret, ok := strings.Cut(managementKey, ".")
	if !ok || len(keyID) != keyIDLen || !strings.HasPrefix(keyID, keyIDPrefix) || len(secret) != secretLen {
		return "", "", ErrMalformedKey
	}
	// The decoders skip \r and \n, so the alphabets are checked first.
	if !onlyFrom(keyID[len(keyIDPrefix):], base32Alphabet) || !onlyFrom(secret, base64URLAlphabet) {
		return "", "", ErrMalformedKey
	}
	// Strict decoding refuses a last character whose unused bits are set,
	// so each key has exactly one spelling.
	if _, err := base64.RawURLEncoding.Strict().DecodeString(secret); err != nil {
		return "", "", ErrMalformedKey
	}
	return keyID, secret, nil
}

const (
	base32Alphabet    = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	base64URLAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
)

func onlyFrom(s, alphabet string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(alphabet, s[i]) < 0 {
			return false
		}
	}
	return true
}

// HashKey is the stored form of a management key: SHA-256 of the whole key
// (id and secret, so a hash is bound to its id). A fast hash is right here,
// unlike for passwords: the secret is 256 uniformly random bits, so no
// amount of hashing speed makes guessing feasible, while a slow KDF (bcrypt,
// argon2) would cost CPU on every API call and hand attackers a cheap way
// to load the server.
func HashKey(managementKey string) []byte {
	h := sha256.Sum256([]byte(managementKey))
	return h[:]
}

// AuthenticateKey returns the stored key for a presented management key,
// or an error wrapping ErrUnauthenticated: malformed, unknown, wrong
// secret, revoked, expired. Directory failures are returned as they are.
// There is no cache, so a revoked or rotated key is refused at once.
func AuthenticateKey(ctx context.Context, dir Directory, managementKey string) (Key, error) {
	keyID, _, err := ParseKey(managementKey)
	if err != nil {
		return Key{}, err
	}
	k, err := dir.Key(ctx, keyID)
	if errors.Is(err, ErrNotFound) {
		// Key ids are not secret (they appear as actorId in events), so
		// answering an unknown id faster than a wrong secret leaks nothing.
		return Key{}, ErrUnknownKey
	}
	if err != nil {
		return Key{}, fmt.Errorf("look up key %s: %w", keyID, err)
	}
	if len(k.Hash) != sha256.Size || subtle.ConstantTimeCompare(HashKey(managementKey), k.Hash) != 1 {
		return Key{}, ErrWrongSecret
	}
	if !k.Revoked.IsZero() {
		return Key{}, ErrKeyRevoked
	}
	if !k.Expires.IsZero() && !time.Now().Before(k.Expires) {
		return Key{}, ErrKeyExpired
	}
	return k, nil
}

// Principal is an authenticated caller.
type Principal struct {
	KeyID     string
	CompanyID string
	Role      Role
	// ProjectID is the project the call named; "" for calls naming none.
	ProjectID string
	// ProjectIDs is the key's scope; empty means every project.
	ProjectIDs []string
}

// AllProjects reports whether the key may act on every project of its
// company, and so on company-level events.
func (p Principal) AllProjects() bool { return len(p.ProjectIDs) == 0 }

// MayUseProject reports whether the key is scoped to project id.
func (p Principal) MayUseProject(id string) bool {
	return p.AllProjects() || slices.Contains(p.ProjectIDs, id)
}

// Require returns ErrForbidden unless the principal's role allows need.
func (p Principal) Require(need Role) error {
	if !p.Role.Allows(need) {
		return fmt.Errorf("%w: role %q may not do what needs %q", ErrForbidden, p.Role, need)
	}
	return nil
}

// Authenticate checks a management key presented for projectID ("" for a
// call that names no project): the key must exist, match its hash, be
// neither revoked nor expired; the project must exist in the key's company
// (else ErrUnknownProject) and be within the key's scope (else
// ErrForbidden). The role is checked afterwards with Principal.Require.
func Authenticate(ctx context.Context, dir Directory, projectID, managementKey string) (Principal, error) {
	k, err := AuthenticateKey(ctx, dir, managementKey)
	if err != nil {
		return Principal{}, err
	}
	p := Principal{KeyID: k.ID, CompanyID: k.CompanyID, Role: k.Role, ProjectID: projectID, ProjectIDs: k.ProjectIDs}
	if projectID == "" {
		return p, nil
	}
	proj, err := dir.Project(ctx, projectID)
	switch {
	case errors.Is(err, ErrNotFound) || (err == nil && proj.CompanyID != k.CompanyID):
		return Principal{}, ErrUnknownProject
	case err != nil:
		return Principal{}, fmt.Errorf("look up project %s: %w", projectID, err)
	}
	if !p.MayUseProject(projectID) {
		return Principal{}, fmt.Errorf("%w: key %s is not scoped to project %s", ErrForbidden, k.ID, projectID)
	}
	return p, nil
}

// Issuer makes management keys: it owns the key format and the hash, the
// directory only stores the result.
type Issuer struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (i Issuer) now() time.Time {
	if i.Now != nil {
		return i.Now()
	}
	return time.Now()
}

// NewKey fills the ID (when empty), Hash and Created (when zero) of k and
// returns it with the management key, which is shown once and never stored.
// It checks the role and that CompanyID is set; storing is the caller's.
func (i Issuer) NewKey(k Key) (Key, string, error) {
	if k.CompanyID == "" {
		return Key{}, "", fmt.Errorf("%w: key without a company", ErrInvalid)
	}
	if !k.Role.Valid() {
		return Key{}, "", fmt.Errorf("%w: role must be %q, %q or %q", ErrInvalid, RoleAdmin, RoleWriter, RoleReader)
	}
	if k.ID == "" {
		k.ID = NewKeyID()
	}
	if k.Created.IsZero() {
		k.Created = i.now().UTC()
	}
	k.ProjectIDs = slices.Clone(k.ProjectIDs)
	secret, hash := NewKeySecret(k.ID)
	k.Hash = hash
	return k, secret, nil
}

// Rotate gives k a new secret under the same id and stamps Rotated; once
// the caller stores it, the old secret stops working. A revoked key stays
// revoked.
func (i Issuer) Rotate(k Key) (Key, string, error) {
	if !k.Revoked.IsZero() {
		return Key{}, "", fmt.Errorf("%w: key %s is revoked", ErrInvalid, k.ID)
	}
	secret, hash := NewKeySecret(k.ID)
	k.Hash = hash
	k.Rotated = i.now().UTC()
	k.ProjectIDs = slices.Clone(k.ProjectIDs)
	return k, secret, nil
}

// Bounds of company settings.
const (
	MaxSearchWindowDays = 3650
	MaxRetentionDays    = 36500
)

// Validate checks settings an admin sent.
func (s Settings) Validate() error {
	switch {
	case s.SearchWindowDays < 1 || s.SearchWindowDays > MaxSearchWindowDays:
		return fmt.Errorf("%w: searchWindowDays must be between 1 and %d", ErrInvalid, MaxSearchWindowDays)
	case s.RetentionDays < s.SearchWindowDays || s.RetentionDays > MaxRetentionDays:
		return fmt.Errorf("%w: retentionDays must be between searchWindowDays and %d", ErrInvalid, MaxRetentionDays)
	case s.SearchRateLimit != nil && *s.SearchRateLimit < 0:
		return fmt.Errorf("%w: searchRateLimit must not be negative", ErrInvalid)
	}
	return nil
}
