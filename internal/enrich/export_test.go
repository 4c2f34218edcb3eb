package enrich

// WriteGeoDB builds a small country database for tests of other packages'
// wiring (203.0.113.0/24 → IL, 198.51.100.0/24 → DE, 2001:db8::/32 → FR).
var WriteGeoDB = writeGeoDB
