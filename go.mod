module github.com/audittrail/audittrail

go 1.26
