package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/audittrail/audittrail/client"
)

func ExampleAudit_SearchAll() {
	c, err := client.New(client.Config{
		BaseURL:       "http://127.0.0.1:8080",
		ProjectID:     os.Getenv("AUDITTRAIL_PROJECT_ID"),
		ManagementKey: os.Getenv("AUDITTRAIL_MANAGEMENT_KEY"),
	})
	if err != nil {
		log.Fatal(err)
	}
	records, total, err := c.Audit().SearchAll(context.Background(), client.SearchOptions{
		Actions: []string{"LoginFailed"},
		From:    time.Now().Add(-24 * time.Hour),
		Size:    100,
	})
	var apiErr *client.Error
	switch {
	case errors.As(err, &apiErr) && errors.Is(err, client.ErrRateLimited):
		log.Printf("rate limited, retry in %s", apiErr.RetryAfter)
	case err != nil:
		log.Fatal(err)
	}
	fmt.Printf("showing %d of %d failed logins\n", len(records), total)
}

func ExampleAudit_All() {
	c, _ := client.New(client.Config{ProjectID: "P…", ManagementKey: "K….…"})
	for r, err := range c.Audit().All(context.Background(), client.SearchOptions{Tenants: []string{"acme"}}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(r.Occurred.Format(time.RFC3339), r.Action, r.UserID)
	}
}

func ExampleAudit_Export() {
	c, _ := client.New(client.Config{ProjectID: "P…", ManagementKey: "K….…"})
	f, err := os.Create("audit.ndjson")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	n, err := c.Audit().Export(context.Background(), client.ExportOptions{
		SearchOptions: client.SearchOptions{From: time.Now().AddDate(0, 0, -30)},
		Progress: func(p client.ExportProgress) {
			if p.Done {
				log.Printf("%d of %d events", p.Records, p.Total)
			}
		},
	}, client.FormatNDJSON, f)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("exported", n)
}

func ExampleAudit_Ingest() {
	c, _ := client.New(client.Config{ProjectID: "P…", ManagementKey: "K….…"})
	ids, err := c.Audit().Ingest(context.Background(), []client.Record{
		// A client id makes a retried batch safe: a known id is not stored twice.
		{ID: "order-42-refund", Action: "RefundIssued", ActorID: "u-7", Tenants: []string{"acme"},
			Data: map[string]any{"amount": 12.5}},
		{Action: "ReportExported", Type: client.TypeWarn, ActorID: "u-9", Occurred: time.Now().Add(-time.Minute)},
	})
	if err != nil {
		log.Fatal(err) // nothing of the batch was stored
	}
	fmt.Println(ids)
}
