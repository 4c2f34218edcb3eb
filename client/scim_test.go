package client_test

import (
	"context"
	"encoding/json"
	"log"
	"os"

	"github.com/audittrail/audittrail/client"
)

// A SCIM server records each call an identity provider made, after
// answering it. The server redacts the password and derives data.Change
// ({"status":"disabled"} here) and data.scim_action (UserDeactivated).
func ExampleAudit_RecordSCIM() {
	c, err := client.New(client.Config{
		BaseURL:       "http://127.0.0.1:8080",
		ProjectID:     os.Getenv("AUDITTRAIL_PROJECT_ID"),
		ManagementKey: os.Getenv("AUDITTRAIL_MANAGEMENT_KEY"),
	})
	if err != nil {
		log.Fatal(err)
	}
	body := json.RawMessage(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		"Operations":[{"op":"replace","value":{"active":false}}]}`)
	id, err := c.Audit().RecordSCIM(context.Background(), client.SCIMOperation{
		Method:   "PATCH",
		Path:     "/scim/v2/Users/2819c223",
		Request:  body,
		ActorID:  "okta",
		TenantID: "acme",
		RequestContext: &client.RequestContext{
			IP: "203.0.113.7", UserAgent: "Okta SCIM Client 1.0.0",
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	log.Println("recorded", id)
}
