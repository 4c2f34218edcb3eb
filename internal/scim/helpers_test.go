package scim_test

import (
	"errors"
	"strings"

	"github.com/audittrail/audittrail/client"
)

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func asError(err error, target **client.Error) bool { return errors.As(err, target) }
