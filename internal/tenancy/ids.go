package tenancy

import (
	"crypto/rand"
	"encoding/base32"
)

// keyIDEncoding is RFC 4648 base32 without padding: 16 random bytes give
// exactly 26 characters, all safe in a header and a URL path.
var keyIDEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

const (
	keyIDPrefix   = "K"
	keyIDRandLen  = 26 // base32 characters after the prefix (128 bits)
	keyIDLen      = len(keyIDPrefix) + keyIDRandLen
	base62        = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	entityRandLen = 27 // base62 characters after the prefix (≈160 bits), as Descope's project IDs
)

// NewKeyID returns a fresh management key id: "K" and 26 base32 characters.
func NewKeyID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go ≥ 1.24)
	return keyIDPrefix + keyIDEncoding.EncodeToString(b[:])
}

// NewProjectID returns a fresh project id shaped like Descope's ("P2ab…"):
// "P" and 27 base62 characters.
func NewProjectID() string { return "P" + randomBase62(entityRandLen) }

// NewCompanyID returns a fresh company id: "C" and 27 base62 characters.
func NewCompanyID() string { return "C" + randomBase62(entityRandLen) }

// randomBase62 draws n uniform base62 characters. Bytes ≥ 248 are dropped
// rather than reduced modulo 62, which would favour the first characters.
func randomBase62(n int) string {
	out := make([]byte, 0, n)
	var buf [64]byte
	for len(out) < n {
		rand.Read(buf[:])
		for _, c := range buf {
			if c < 248 && len(out) < n {
				out = append(out, base62[c%62])
			}
		}
	}
	return string(out)
}
