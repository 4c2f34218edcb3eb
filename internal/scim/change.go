package scim

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
)

// Redacted replaces secrets in what is stored.
const Redacted = "[REDACTED]"

// Change keys shared with client.UserChange (Descope's names).
const (
	keyStatus   = "status"
	keyEmail    = "email"
	keyPhone    = "phone"
	keyPicture  = "picture"
	keyPassword = "password"
	keyRoles    = "roles"
	keyMembers  = "members"
	customKey   = "custom_attribute_"
)

// listKeys are the multi-valued fields whose changes are recorded as
// added_<key> and removed_<key>, never as old and new.
var listKeys = []string{keyRoles, keyMembers}

// nameKeys maps the sub-attributes of the SCIM complex attribute "name".
var nameKeys = map[string]string{
	"givenname": "given_name", "familyname": "family_name", "middlename": "middle_name",
	"formatted": "name", "honorificprefix": "honorific_prefix", "honorificsuffix": "honorific_suffix",
}

// coreKeys maps core attributes whose Descope name is not their snake case.
var coreKeys = map[string]string{
	"username": "user_name", "displayname": "display_name", "externalid": "external_id",
	"active": keyStatus, "emails": keyEmail, "phonenumbers": keyPhone, "photos": keyPicture,
	"password": keyPassword, "roles": keyRoles, "members": keyMembers,
}

// ignored attributes are server-managed or read-only: never a change.
var ignored = map[string]bool{"id": true, "schemas": true, "meta": true, "groups": true}

// snake turns a SCIM attribute name into Descope's key style.
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// changeKey is the Change key of a path; sub is the sub-attribute used to
// pick a value out of a complex attribute ("" for the whole value).
func changeKey(p Path) string {
	if p.URI != "" {
		return customKey + p.Attr
	}
	attr := strings.ToLower(p.Attr)
	if attr == "name" && p.SubAttr != "" {
		if k, ok := nameKeys[strings.ToLower(p.SubAttr)]; ok {
			return k
		}
		return snake(p.SubAttr)
	}
	if k, ok := coreKeys[attr]; ok {
		return k
	}
	return snake(p.Attr)
}

// fields flattens a User or Group resource into Change keys and values:
// the value a field has, comparable with reflect-free equality (JSON values).
func fields(res map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range res {
		lk := strings.ToLower(k)
		switch {
		case ignored[lk]:
		case strings.HasPrefix(lk, "urn:"):
			ext, ok := v.(map[string]any)
			if !ok {
				continue
			}
			for sk, sv := range ext {
				out[customKey+sk] = scalarOf(sv)
			}
		case lk == "name":
			if m, ok := v.(map[string]any); ok {
				for sk, sv := range m {
					out[changeKey(Path{Attr: "name", SubAttr: sk})] = sv
				}
			}
		default:
			key := changeKey(Path{Attr: k})
			out[key] = fieldValue(key, v)
		}
	}
	return out
}

// fieldValue is the recorded value of a whole attribute.
func fieldValue(key string, v any) any {
	switch key {
	case keyStatus:
		return status(v)
	case keyPassword:
		return Redacted
	case keyEmail, keyPhone, keyPicture:
		return primaryValue(v)
	case keyRoles, keyMembers:
		return values(v)
	}
	return v
}

// status maps SCIM active (a boolean, or "True"/"False" as Entra has sent)
// to Descope's user status.
func status(v any) any {
	switch v := v.(type) {
	case bool:
		if v {
			return "enabled"
		}
		return "disabled"
	case string:
		switch strings.ToLower(v) {
		case "true":
			return "enabled"
		case "false":
			return "disabled"
		}
	}
	return v
}

// primaryValue picks the primary entry's value of a multi-valued attribute,
// else the first; a plain string is its own value.
func primaryValue(v any) any {
	switch v := v.(type) {
	case string, nil:
		return v
	case map[string]any:
		return getFold(v, "value")
	case []any:
		var first any
		for _, e := range v {
			m, ok := e.(map[string]any)
			if !ok {
				continue
			}
			if first == nil {
				first = getFold(m, "value")
			}
			if p, _ := getFold(m, "primary").(bool); p {
				return getFold(m, "value")
			}
			if p, _ := getFold(m, "primary").(string); strings.EqualFold(p, "true") {
				return getFold(m, "value")
			}
		}
		return first
	}
	return v
}

// scalarOf reduces an extension value like manager {"value":"id"} to its value.
func scalarOf(v any) any {
	if m, ok := v.(map[string]any); ok {
		if x := getFold(m, "value"); x != nil {
			return x
		}
	}
	return v
}

// values lists the "value" of each entry of a multi-valued attribute
// (member or role ids), sorted and distinct.
func values(v any) []string {
	var out []string
	for _, e := range asList(v) {
		switch e := e.(type) {
		case string:
			out = append(out, e)
		case map[string]any:
			if s, ok := getFold(e, "value").(string); ok {
				out = append(out, s)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// changes accumulates a Change map.
type changes struct {
	m   map[string]any
	old map[string]any // fields of the previous resource; nil when unknown
}

func newChanges(previous map[string]any) *changes {
	c := &changes{m: map[string]any{}}
	if previous != nil {
		c.old = fields(previous)
	}
	return c
}

// set records a scalar field's new value, with the old one when known.
func (c *changes) set(key string, v any) {
	if key == keyPassword {
		v = Redacted
	}
	if c.old != nil && key != keyPassword {
		old := c.old[key]
		if jsonEqual(old, v) {
			return
		}
		c.m[key] = map[string]any{"old": old, "new": v}
		return
	}
	c.m[key] = v
}

func (c *changes) addTo(key string, ids []string) {
	if len(ids) == 0 {
		return
	}
	cur, _ := c.m[key].([]string)
	cur = append(cur, ids...)
	slices.Sort(cur)
	c.m[key] = slices.Compact(cur)
}

// replaceList records a whole new list: as added and removed entries when
// the old list is known, else as the list itself.
func (c *changes) replaceList(key string, now []string) {
	if c.old == nil {
		c.m[key] = now
		return
	}
	before, _ := c.old[key].([]string)
	c.addTo("added_"+key, minus(now, before))
	c.addTo("removed_"+key, minus(before, now))
}

func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// diff records every field that differs between two resources (PUT).
func (c *changes) diff(before, after map[string]any) {
	fb, fa := fields(before), fields(after)
	for _, key := range listKeys {
		b, _ := fb[key].([]string)
		a, _ := fa[key].([]string)
		c.addTo("added_"+key, minus(a, b))
		c.addTo("removed_"+key, minus(b, a))
		delete(fb, key)
		delete(fa, key)
	}
	for k, v := range fa {
		if k == keyPassword {
			c.m[k] = Redacted
			continue
		}
		if !jsonEqual(fb[k], v) {
			c.m[k] = map[string]any{"old": fb[k], "new": v}
		}
	}
	for k, v := range fb {
		if _, ok := fa[k]; !ok && k != keyPassword {
			c.m[k] = map[string]any{"old": v, "new": nil}
		}
	}
}

// PatchOp is one operation of a SCIM PATCH body.
type PatchOp struct {
	Op    string
	Path  string
	Value any
}

// ErrPatch is returned for a PATCH body that holds no valid operations.
var ErrPatch = fmt.Errorf("scim: invalid PATCH body")

// patchOps reads the Operations of a PatchOp body; keys and op names are
// case-insensitive (Entra sends "Operations" and "Replace").
func patchOps(body map[string]any) ([]PatchOp, error) {
	raw, ok := getFold(body, "Operations").([]any)
	if !ok {
		return nil, fmt.Errorf("%w: no Operations array", ErrPatch)
	}
	ops := make([]PatchOp, 0, len(raw))
	for i, r := range raw {
		m, ok := r.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%w: Operations[%d] is not an object", ErrPatch, i)
		}
		op, _ := getFold(m, "op").(string)
		op = strings.ToLower(op)
		if op != "add" && op != "replace" && op != "remove" {
			return nil, fmt.Errorf("%w: Operations[%d].op %q", ErrPatch, i, op)
		}
		path, _ := getFold(m, "path").(string)
		ops = append(ops, PatchOp{Op: op, Path: path, Value: getFold(m, "value")})
	}
	return ops, nil
}

// applyOp records the change one PATCH operation makes.
func (c *changes) applyOp(op PatchOp) error {
	if op.Path == "" {
		// No path: the value is an object of attribute → value (Okta's
		// {"active":false}, Entra's {"name.givenName":"x"} and
		// {"urn:…:User:department":"x"}).
		m, ok := op.Value.(map[string]any)
		if !ok {
			if op.Op == "remove" {
				return fmt.Errorf("%w: remove needs a path", ErrPatch)
			}
			return fmt.Errorf("%w: %s without path needs an object value", ErrPatch, op.Op)
		}
		for k, v := range m {
			if ext, ok := v.(map[string]any); ok && strings.HasPrefix(strings.ToLower(k), "urn:") {
				for sk, sv := range ext {
					if err := c.applyOp(PatchOp{Op: op.Op, Path: k + ":" + sk, Value: sv}); err != nil {
						return err
					}
				}
				continue
			}
			if ignored[strings.ToLower(k)] {
				continue
			}
			if err := c.applyOp(PatchOp{Op: op.Op, Path: k, Value: v}); err != nil {
				return err
			}
		}
		return nil
	}
	p, err := ParsePath(op.Path)
	if err != nil {
		return err
	}
	if p.URI == "" && ignored[strings.ToLower(p.Attr)] {
		return nil
	}
	if p.URI == "" && strings.EqualFold(p.Attr, "name") && p.SubAttr == "" {
		m, _ := op.Value.(map[string]any)
		if op.Op == "remove" {
			for _, k := range []string{"given_name", "family_name", "middle_name", "name"} {
				if c.old == nil || c.old[k] != nil {
					c.set(k, nil)
				}
			}
			return nil
		}
		for sk, sv := range m {
			c.set(changeKey(Path{Attr: "name", SubAttr: sk}), sv)
		}
		return nil
	}
	key := changeKey(p)
	if slices.Contains(listKeys, key) {
		return c.applyListOp(key, op, p)
	}
	if op.Op == "remove" {
		c.set(key, nil)
		return nil
	}
	v := op.Value
	switch {
	case key == keyStatus:
		v = status(v)
	case p.URI != "":
		v = scalarOf(v)
	case key == keyEmail || key == keyPhone || key == keyPicture:
		v = primaryValue(v)
	}
	c.set(key, v)
	return nil
}

func (c *changes) applyListOp(key string, op PatchOp, p Path) error {
	switch op.Op {
	case "add":
		c.addTo("added_"+key, values(op.Value))
	case "replace":
		if p.Filter != nil {
			// roles[value eq "a"] replaced: a removed, the new value added.
			c.addTo("removed_"+key, filterValues(p.Filter))
			c.addTo("added_"+key, values(op.Value))
			return nil
		}
		c.replaceList(key, values(op.Value))
	case "remove":
		switch {
		case p.Filter != nil: // Okta: members[value eq "id"]
			c.addTo("removed_"+key, filterValues(p.Filter))
		case op.Value != nil: // Entra: path members, value [{"value":"id"}]
			c.addTo("removed_"+key, values(op.Value))
		case c.old != nil: // every member removed
			before, _ := c.old[key].([]string)
			c.addTo("removed_"+key, before)
		default:
			c.m[key] = []string{}
		}
	}
	return nil
}

// filterValues collects the values a filter names by `value eq "…"`
// (joined with or, or narrowed with and), the form IdPs use to name
// members and roles.
func filterValues(f *Filter) []string {
	switch f.Op {
	case OpOr, OpAnd: // members[value eq "u1" and type eq "User"] names u1
		return append(filterValues(f.Left), filterValues(f.Right)...)
	case OpEq:
		if s, ok := f.Value.(string); ok && strings.EqualFold(f.Attr, "value") {
			return []string{s}
		}
	}
	return nil
}

func jsonEqual(a, b any) bool {
	switch a := a.(type) {
	case []string:
		bs, ok := b.([]string)
		return ok && slices.Equal(a, bs)
	case map[string]any:
		bm, ok := b.(map[string]any)
		if !ok || len(a) != len(bm) {
			return false
		}
		for k, v := range a {
			if !jsonEqual(v, bm[k]) {
				return false
			}
		}
		return true
	case []any:
		bl, ok := b.([]any)
		if !ok || len(a) != len(bl) {
			return false
		}
		for i := range a {
			if !jsonEqual(a[i], bl[i]) {
				return false
			}
		}
		return true
	}
	return a == b
}
