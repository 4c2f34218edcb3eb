package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/audittrail/audittrail/client"
)

// A Splunk HEC connector for the whole company, PII masked, failed logins
// only; then a test delivery and its health.
func ExampleConnectors_Create() {
	// No project: an admin key's connector covers every project.
	c, _ := client.New(client.Config{ManagementKey: "K….…"})
	ctx := context.Background()
	conn, err := c.Connectors().Create(ctx, client.ConnectorOptions{
		Name:    "splunk",
		Type:    client.ConnectorSplunk,
		MaskPII: true,
		Filters: []client.ConnectorFilter{{FilterType: "actions", Operator: "includes", Values: []string{"LoginFailed"}}},
		Config:  map[string]any{"url": "https://splunk.example.com:8088", "token": "…", "index": "security"},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Connectors().Test(ctx, conn.ID); errors.Is(err, client.ErrDestinationFailed) {
		log.Fatalf("Splunk refused the test event: %v", err)
	}
	h, _ := c.Connectors().Health(ctx, conn.ID)
	fmt.Printf("%s: %s, %d delivered, %d behind\n", conn.Name, h.State, h.Delivered, h.LagEvents)
}

// Descope's createAuditWebhook: the same call a Descope SDK makes.
func ExampleConnectors_SetAuditWebhook() {
	c, _ := client.New(client.Config{ProjectID: "P…", ManagementKey: "K….…"})
	id, err := c.Connectors().SetAuditWebhook(context.Background(), client.AuditWebhook{
		Name:           "siem",
		URL:            "https://siem.example.com/audit",
		Authentication: &client.WebhookAuthentication{BearerToken: "…"},
		HMACSecret:     "…", // x-descope-webhook-s256 signs each body
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("webhook", id)
}

// Replay the last day to a connector after its destination lost data.
func ExampleConnectors_Replay() {
	c, _ := client.New(client.Config{ManagementKey: "K….…"})
	cursor, err := c.Connectors().Replay(context.Background(), "<connector id>", time.Now().Add(-24*time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("delivery restarts after sequence number", cursor)
}
