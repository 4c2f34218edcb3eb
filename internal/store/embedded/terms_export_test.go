package embedded

import (
	"fmt"
	"slices"

	"github.com/audittrail/audittrail/internal/event"
)

// referenceKeys is the posting keys of e, sorted, built from the
// definitions in package event (Tokenize, DataStrings, ChangedFields)
// rather than the key builder's fast paths.
func referenceKeys(e *event.Event) []string {
	keys := []string{pkey(keyCompany, e.CompanyID)}
	switch e.Level {
	case event.LevelProject:
		keys = append(keys, pkey(keyProject, e.ProjectID))
	case event.LevelCompany:
		keys = append(keys, pkey(keyLevelComp, ""))
	}
	for f, v := range map[byte]string{keyUser: e.UserID, keyAction: e.Action, keyActor: e.ActorID,
		keyDevice: e.Device, keyType: e.Type, keyMethod: e.Method, keyGeo: e.Geo, keyAddr: e.RemoteAddress} {
		keys = append(keys, pkey(f, v))
	}
	for _, s := range e.LoginIDs {
		keys = append(keys, pkey(keyLoginID, s))
	}
	for _, s := range e.Tenants {
		keys = append(keys, pkey(keyTenant, s))
	}
	if len(e.Tenants) == 0 {
		keys = append(keys, pkey(keyNoTenant, ""))
	}
	for _, t := range e.Tokens() {
		keys = append(keys, pkey(keyToken, t))
	}
	for _, f := range e.ChangedFields() {
		keys = append(keys, pkey(keyChanged, f))
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// CheckIndexKeys reports the first event of evs whose posting keys
// (indexEvents, as Append computes them) are not referenceKeys'.
func CheckIndexKeys(evs []event.Event) error {
	keys := make([]eventKeys, len(evs))
	indexEvents(evs, keys, nil)
	for i := range evs {
		got := make([]string, keys[i].len())
		for j := range got {
			got[j] = string(keys[i].key(j))
			if keys[i].hashes[j] != postingHash(got[j]) {
				return fmt.Errorf("event %d: key %q has hash %x, want %x", i, got[j], keys[i].hashes[j], postingHash(got[j]))
			}
		}
		slices.Sort(got)
		if len(slices.Compact(slices.Clone(got))) != len(got) {
			return fmt.Errorf("event %d: repeated keys %q", i, got)
		}
		if want := referenceKeys(&evs[i]); !slices.Equal(got, want) {
			return fmt.Errorf("event %d (%s): keys %q, want %q", i, evs[i].ID, got, want)
		}
	}
	return nil
}
