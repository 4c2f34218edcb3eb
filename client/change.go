package client

import (
	"reflect"
	"slices"
	"sort"
)

// User is the part of a user that audit rows record changes of, named as
// in Descope's user model.
type User struct {
	LoginIDs      []string
	Name          string // display name
	GivenName     string
	MiddleName    string
	FamilyName    string
	Email         string
	Phone         string
	VerifiedEmail bool
	VerifiedPhone bool
	Status        string // enabled, disabled, invited
	Picture       string
	// Roles are project-level roles.
	Roles []string
	// Tenants maps a tenant id to the user's roles in it.
	Tenants map[string][]string
	// CustomAttributes hold any JSON values.
	CustomAttributes map[string]any
}

// ChangeOptions shape the Change map.
type ChangeOptions struct {
	// IncludeOld records a scalar field as {"old":…,"new":…} instead of its
	// new value alone (Descope's shape). List changes are always given as
	// added_* and removed_* keys.
	IncludeOld bool
}

// UserChange returns Descope's Change map of what differs between before
// and after, for data.Change of a UserModified event; it is empty when
// nothing changed. Keys: display_name, given_name, middle_name,
// family_name, email, phone, verified_email, verified_phone, status,
// picture, added_roles, removed_roles, added_multi_tenant_roles and
// removed_multi_tenant_roles ([{"tenant":"t1","roles":["r"]}]),
// added_tenants, removed_tenants, added_login_ids, removed_login_ids and
// custom_attribute_<name> (null when the attribute was removed).
//
//	change := client.UserChange(before, after, client.ChangeOptions{})
//	_, err := c.Audit().CreateEvent(ctx, client.CreateEventOptions{Action: "UserModified",
//		Data: map[string]any{"Change": change}, …})
func UserChange(before, after User, opts ChangeOptions) map[string]any {
	c := map[string]any{}
	scalar := func(key string, old, new any) {
		if reflect.DeepEqual(old, new) {
			return
		}
		if opts.IncludeOld {
			c[key] = map[string]any{"old": old, "new": new}
		} else {
			c[key] = new
		}
	}
	scalar("display_name", before.Name, after.Name)
	scalar("given_name", before.GivenName, after.GivenName)
	scalar("middle_name", before.MiddleName, after.MiddleName)
	scalar("family_name", before.FamilyName, after.FamilyName)
	scalar("email", before.Email, after.Email)
	scalar("phone", before.Phone, after.Phone)
	scalar("verified_email", before.VerifiedEmail, after.VerifiedEmail)
	scalar("verified_phone", before.VerifiedPhone, after.VerifiedPhone)
	scalar("status", before.Status, after.Status)
	scalar("picture", before.Picture, after.Picture)

	list := func(suffix string, old, new []string) {
		if added := listMinus(new, old); len(added) > 0 {
			c["added_"+suffix] = added
		}
		if removed := listMinus(old, new); len(removed) > 0 {
			c["removed_"+suffix] = removed
		}
	}
	list("roles", before.Roles, after.Roles)
	list("login_ids", before.LoginIDs, after.LoginIDs)
	list("tenants", sortedKeys(before.Tenants), sortedKeys(after.Tenants))

	var addedTR, removedTR []map[string]any
	for _, t := range sortedKeys(mergeKeys(before.Tenants, after.Tenants)) {
		if added := listMinus(after.Tenants[t], before.Tenants[t]); len(added) > 0 {
			addedTR = append(addedTR, map[string]any{"tenant": t, "roles": added})
		}
		if removed := listMinus(before.Tenants[t], after.Tenants[t]); len(removed) > 0 {
			removedTR = append(removedTR, map[string]any{"tenant": t, "roles": removed})
		}
	}
	if addedTR != nil {
		c["added_multi_tenant_roles"] = addedTR
	}
	if removedTR != nil {
		c["removed_multi_tenant_roles"] = removedTR
	}

	for _, name := range sortedKeys(mergeKeys(before.CustomAttributes, after.CustomAttributes)) {
		old, had := before.CustomAttributes[name]
		new, has := after.CustomAttributes[name]
		if had && !has {
			new = nil
		}
		scalar("custom_attribute_"+name, old, new)
	}
	return c
}

// listMinus is a − b, sorted and without duplicates.
func listMinus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) && !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	sort.Strings(out)
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func mergeKeys[V any](a, b map[string]V) map[string]V {
	out := make(map[string]V, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
