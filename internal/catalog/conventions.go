package catalog

// SCIMActions are the values of data.scim_action on SCIMEvent rows.
var SCIMActions = []struct{ Name, Meaning string }{
	{"UserCreated", "POST /Users"},
	{"UserUpdated", "PUT /Users/{id} (the whole resource replaced)"},
	{"UserPatched", "PATCH /Users/{id}"},
	{"UserDeactivated", "PATCH or PUT /Users/{id} whose only change sets active to false (Okta, Entra deprovisioning)"},
	{"UserReactivated", "PATCH or PUT /Users/{id} whose only change sets active to true"},
	{"UserDeleted", "DELETE /Users/{id}"},
	{"UserRead", "GET /Users/{id}"},
	{"UsersListed", "GET /Users, usually with a filter such as userName eq \"…\""},
	{"GroupCreated", "POST /Groups"},
	{"GroupUpdated", "PUT /Groups/{id}"},
	{"GroupPatched", "PATCH /Groups/{id} that changes more than the members"},
	{"GroupMembersAdded", "PATCH /Groups/{id} that only adds members"},
	{"GroupMembersRemoved", "PATCH /Groups/{id} that only removes members"},
	{"GroupMembersChanged", "PATCH /Groups/{id} that adds and removes members"},
	{"GroupDeleted", "DELETE /Groups/{id}"},
	{"GroupRead", "GET /Groups/{id}"},
	{"GroupsListed", "GET /Groups"},
	{"SCIMRequest", "any other call (ServiceProviderConfig, Schemas, ResourceTypes, Bulk…)"},
}

const conventions = `## The data keys

### ` + "`Change`" + ` (field-level changes)
` + "`data.Change`" + ` maps a changed field to its new value, as Descope records ` + "`UserModified`" + `:
` + "`" + `{"display_name":"Ada L.","added_roles":["admin"]}` + "`" + `. When the sender also knows the old value
(the SDK's ` + "`UserChange`" + ` with ` + "`IncludeOld`" + `, or a SCIM call sent with ` + "`previous`" + `), a scalar field
is ` + "`" + `{"old":…,"new":…}` + "`" + ` instead: ` + "`" + `{"display_name":{"old":"Ada","new":"Ada L."}}` + "`" + `. A removed field has
the new value ` + "`null`" + `. Lists are never given old and new: they change through ` + "`added_*`" + ` and
` + "`removed_*`" + ` keys. The keys:

| key | value |
|---|---|
| ` + "`added_roles`, `removed_roles`" + ` | role names (project roles) |
| ` + "`added_multi_tenant_roles`, `removed_multi_tenant_roles`" + ` | ` + "`" + `[{"tenant":"t1","roles":["r"]}]` + "`" + ` |
| ` + "`added_tenants`, `removed_tenants`" + ` | tenant ids |
| ` + "`added_members`, `removed_members`" + ` | user ids (SCIM group membership) |
| ` + "`added_login_ids`, `removed_login_ids`" + ` | login ids |
| ` + "`roles`, `members`" + ` | the whole new list, when a SCIM replace set it and the old list was not sent |
| ` + "`display_name`, `given_name`, `middle_name`, `family_name`, `name`" + ` | strings |
| ` + "`email`, `phone`, `picture`, `user_name`, `external_id`" + ` | strings (SCIM: the primary, else first, e-mail and phone) |
| ` + "`verified_email`, `verified_phone`" + ` | booleans |
| ` + "`status`" + ` | ` + "`enabled`, `disabled`, `invited`" + ` (SCIM ` + "`active`" + ` true/false) |
| ` + "`password`" + ` | always ` + "`\"[REDACTED]\"`" + `: that it changed, never the value |
| ` + "`custom_attribute_<name>`" + ` | any JSON value (SCIM extension attributes such as the enterprise ` + "`department`" + `) |
| any other SCIM attribute | its name in snake_case (` + "`preferredLanguage`" + ` → ` + "`preferred_language`" + `) |

Search with ` + "`changedFields`" + ` (events whose Change has any of the keys) or free text (keys and string values
are tokens).

### ` + "`request_details`" + `
Filled at ingest when the sender passed the request context (docs/api.md, "Request context") and left it
unset: ` + "`" + `{"contentLength":0,"headers":{"http":{"origin":"…","referer":"…","user-agent":"…"}},"host":"…","method":"GET","uri":"/path?q","url":"https://host/path?q"}` + "`" + `.
Only origin, referer, user-agent and the server's allow-list of headers are kept; ` + "`Authorization`" + `,
` + "`Cookie`, `Set-Cookie`, `Proxy-Authorization`, `X-Api-Key`" + ` and any header whose name looks like a
credential (token, secret, password, session, auth, key, signature) are never stored.

### SCIMEvent
` + "`data.scim_action`" + ` (below), ` + "`data.scim_method`, `data.scim_path`, `data.scim_resource_type`" + ` (User, Group or
the path's resource), ` + "`data.scim_resource_id`" + `, ` + "`data.scim_filter`" + ` (a lookup's ` + "`?filter=`" + `), ` + "`data.scim_request`" + ` (the identity provider's body with
` + "`password`" + ` and other secrets replaced by ` + "`\"[REDACTED]\"`" + `), ` + "`data.scim_result`" + ` (the resource after the call;
absent on failure), ` + "`data.error`" + ` (the SCIM error on failure; the row's type is then ` + "`error`" + `), and
` + "`data.Change`" + `. Deletions and deactivations are ` + "`warn`" + `. When a row would pass 64 KiB, ` + "`scim_result`" + ` and
then ` + "`scim_request`" + ` are dropped and ` + "`data.scim_truncated`" + ` is true.

| scim_action | call |
|---|---|
`
