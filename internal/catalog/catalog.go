// Package catalog is the list of known audit actions: Descope's project-level
// actions, the company-level actions audittrail records itself, and
// SCIMEvent. The console suggests action names from it and docs/events.md is
// generated from it. Senders may still use action names it does not list.
package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/httpapi"
	"github.com/audittrail/audittrail/internal/stream/streamhttp"
	"github.com/audittrail/audittrail/internal/tenancy"
)

// Action describes one known action.
type Action struct {
	Action      string      `json:"action"`
	Type        string      `json:"type"`
	Level       event.Level `json:"level"`
	Description string      `json:"description"`
	// DataKeys are the keys of `data` an event of this action carries when
	// its sender knows them; any may be absent.
	DataKeys []string `json:"dataKeys"`
}

// Keys every project-level event may carry in data, from Descope's
// conventions; listed once here rather than on every action.
var requestKeys = []string{"correlation_id", "request_details"}

func project(action, typ, desc string, keys ...string) Action {
	return Action{Action: action, Type: typ, Level: event.LevelProject, Description: desc,
		DataKeys: append(slices.Clone(keys), requestKeys...)}
}

func company(action, typ, desc string, keys ...string) Action {
	if keys == nil {
		keys = []string{}
	}
	return Action{Action: action, Type: typ, Level: event.LevelCompany, Description: desc, DataKeys: keys}
}

// SCIMEvent is the action of rows recorded from SCIM operations.
const SCIMEvent = "SCIMEvent"

var actions = []Action{
	// Descope's project-level actions (its public audit event list).
	project("UserCreated", event.TypeInfo, "A user was created; the actor is the user itself on self sign-up, else the admin or management key."),
	project("UsersCreated", event.TypeInfo, "Several users were created in one call."),
	project("UserDeleted", event.TypeInfo, "A user was deleted."),
	project("UsersDeleted", event.TypeInfo, "Several users were deleted in one call."),
	project("UserModified", event.TypeInfo, "A user was modified; data.Change holds the fields that changed.", "Change"),
	project("UsersModified", event.TypeInfo, "Several users were modified in one call.", "Change"),
	project("AccessKeyCreated", event.TypeInfo, "An access key was created."),
	project("AccessKeyDeleted", event.TypeInfo, "An access key was deleted."),
	project("AccessKeyModified", event.TypeInfo, "An access key was modified.", "Change"),
	project("AccessKeysDeleted", event.TypeInfo, "Several access keys were deleted in one call."),
	project("LoginSucceed", event.TypeInfo, "A user logged in; the method is Impersonate when an admin impersonated the user."),
	project("LoginFailed", event.TypeWarn, "A login failed; the reason is in data.error_message.", "error_message"),
	project("LoginExceedMaxAttempts", event.TypeWarn, "A user reached the maximum number of login attempts and was disabled.", "error_message"),
	project("LoginStarted", event.TypeInfo, "A multi-step login (SSO, passkey, OTP, magic link…) started."),
	project("LoginStartedFailed", event.TypeWarn, "A multi-step login could not start or was not completed correctly.", "error_message"),
	project("UserRefresh", event.TypeInfo, "A user's session was refreshed (verbose mode only)."),
	project("PermissionCreated", event.TypeInfo, "A permission was created.", "permission_id"),
	project("PermissionModified", event.TypeInfo, "A permission was modified.", "permission_id"),
	project("PermissionDeleted", event.TypeWarn, "A permission was deleted.", "permission_id"),
	project(SCIMEvent, event.TypeInfo, "An identity provider made a SCIM 2.0 call; type is error when the call failed.",
		"scim_action", "scim_request", "scim_result", "error", "Change"),

	// Company-level actions audittrail records for its own admin API.
	company(httpapi.ActionProjectCreated, event.TypeInfo, "A project was created.", "projectId", "name"),
	company(httpapi.ActionProjectDeleted, event.TypeWarn, "A project was deleted.", "projectId", "name"),
	company(httpapi.ActionManagementKeyCreated, event.TypeInfo, "A management key was created.", "keyId", "name", "role", "projectIds"),
	company(httpapi.ActionManagementKeyRevoked, event.TypeWarn, "A management key was revoked.", "keyId", "name"),
	company(httpapi.ActionManagementKeyRotated, event.TypeInfo, "A management key's secret was replaced.", "keyId", "name"),
	company(httpapi.ActionCompanySettingsModified, event.TypeInfo, "Company settings changed; data.Change holds {old,new} per setting.", "Change"),

	// Company-level actions the connector API records (also for
	// project-level connectors, named by projectId; "" is company-wide).
	// None carries the destination config: it holds credentials.
	company(streamhttp.ActionConnectorCreated, event.TypeInfo, "A stream connector was created (also through Descope's createAuditWebhook).", connectorKeys...),
	company(streamhttp.ActionConnectorModified, event.TypeInfo, "A stream connector was changed; data.changed names the fields, never their values (config counts as changed when a new one was sent).", append(connectorKeys, "changed")...),
	company(streamhttp.ActionConnectorDeleted, event.TypeWarn, "A stream connector was deleted.", connectorKeys...),
	company(streamhttp.ActionConnectorPaused, event.TypeWarn, "A stream connector was paused by a management call.", connectorKeys...),
	company(streamhttp.ActionConnectorResumed, event.TypeInfo, "A stream connector was resumed (also after an automatic pause).", connectorKeys...),
	company(streamhttp.ActionConnectorTested, event.TypeInfo, "A test event was sent to a stream connector's destination; data.ok tells whether it was accepted.", append(connectorKeys, "ok")...),
	company(streamhttp.ActionConnectorAutoPaused, event.TypeWarn, "A stream connector paused itself after its destination failed for --stream-auto-pause-after (actor: audittrail); nothing is delivered until it is resumed.", append(connectorKeys, "failingForSeconds")...),
	company(streamhttp.ActionConnectorReplayed, event.TypeInfo, "A stream connector was rewound to redeliver events from data.from; data.cursor is its new position.", append(connectorKeys, "from", "cursor")...),
}

// connectorKeys name the connector in every connector event's data.
var connectorKeys = []string{"connectorId", "name", "type", "projectId"}

// All returns the catalogue: project-level actions first, then company-level,
// each in a stable order.
func All() []Action {
	out := make([]Action, len(actions))
	for i, a := range actions {
		a.DataKeys = slices.Clone(a.DataKeys)
		out[i] = a
	}
	return out
}

// Lookup finds an action by its exact name.
func Lookup(name string) (Action, bool) {
	for _, a := range actions {
		if a.Action == name {
			a.DataKeys = slices.Clone(a.DataKeys)
			return a, true
		}
	}
	return Action{}, false
}

// Register mounts GET /v1/mgmt/audit/actions. Any key may read it (the
// catalogue is the same for every project), so it needs no project.
func Register(api *httpapi.API) {
	api.Handle("GET /v1/mgmt/audit/actions", tenancy.RoleReader, false, http.HandlerFunc(serveActions))
}

var actionsJSON = mustMarshal(map[string]any{"actions": All()})

func serveActions(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "max-age=3600")
	_, _ = w.Write(actionsJSON)
}

// Markdown renders docs/events.md. A test keeps the committed file equal to
// it, so the docs and the server never disagree.
func Markdown() []byte {
	var b bytes.Buffer
	b.WriteString("# Audit events\n\n")
	b.WriteString("<!-- Generated from internal/catalog by `go test ./internal/catalog -update`; do not edit by hand. -->\n\n")
	b.WriteString("The actions audittrail knows, served at `GET /v1/mgmt/audit/actions`. Senders may use other\n")
	b.WriteString("action names; these are the ones Descope emits and the ones audittrail records itself.\n")
	b.WriteString("Project-level events may also carry `correlation_id` and `request_details` (see below).\n\n")
	for _, level := range []event.Level{event.LevelProject, event.LevelCompany} {
		fmt.Fprintf(&b, "## %s-level actions\n\n", titleCase(string(level)))
		b.WriteString("| action | type | meaning | data keys |\n|---|---|---|---|\n")
		for _, a := range actions {
			if a.Level != level {
				continue
			}
			keys := make([]string, 0, len(a.DataKeys))
			for _, k := range a.DataKeys {
				if level == event.LevelProject && slices.Contains(requestKeys, k) {
					continue
				}
				keys = append(keys, "`"+k+"`")
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", a.Action, a.Type, a.Description, strings.Join(keys, ", "))
		}
		b.WriteString("\n")
	}
	b.WriteString(conventions)
	for _, a := range SCIMActions {
		fmt.Fprintf(&b, "| `%s` | %s |\n", a.Name, a.Meaning)
	}
	return b.Bytes()
}

func titleCase(s string) string { return strings.ToUpper(s[:1]) + s[1:] }

func mustMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
