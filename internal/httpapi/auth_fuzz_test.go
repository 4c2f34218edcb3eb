package httpapi_test

import (
	"strings"
	"testing"

	"github.com/audittrail/audittrail/internal/httpapi"
)

// FuzzParseAuthorization: the Authorization header decoder accepts only
// what it can say back: no space, tab or colon inside the parts, bounded
// lengths, and the canonical form parses to the same credentials.
func FuzzParseAuthorization(f *testing.F) {
	for _, s := range []string{"Bearer P1:K1.abc", "Bearer K1.abc", "bearer  P:K ", "Basic dTpw", "Bearer :k", "Bearer p:", "Bearer a:b:c", "Bearer \x00:\xff", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		c, err := httpapi.ParseAuthorization(header)
		if err != nil {
			return
		}
		if c.ManagementKey == "" || len(c.ManagementKey) > 512 || len(c.ProjectID) > 128 ||
			strings.ContainsAny(c.ManagementKey+c.ProjectID, " \t:") {
			t.Fatalf("ParseAuthorization(%q) accepted %+v", header, c)
		}
		canon := "Bearer " + c.ManagementKey
		if c.ProjectID != "" {
			canon = "Bearer " + c.ProjectID + ":" + c.ManagementKey
		}
		again, err := httpapi.ParseAuthorization(canon)
		if err != nil || again != c {
			t.Fatalf("ParseAuthorization(%q) = %+v, but its canonical form %q gives %+v, %v", header, c, canon, again, err)
		}
	})
}
