package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/audittrail/audittrail/internal/store"
)

func TestTsqueryLiteral(t *testing.T) {
	for in, want := range map[string]string{
		"abc":  `'abc':*`,
		"東京":   `'東京':*`,
		"it's": `'it''s':*`,
		`a\b`:  `'a\\b':*`,
	} {
		if got := tsqueryLiteral(in); got != want {
			t.Errorf("tsqueryLiteral(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestTokenColumnsCutsLongTokens(t *testing.T) {
	long := strings.Repeat("ä", 1500) // 3000 bytes
	tv, kept := tokenColumns([]string{"a", long, "b", long + "x"})
	if len(tv.Lexemes) != 3 || tv.Lexemes[0].Word != "a" || tv.Lexemes[1].Word != "b" {
		t.Fatalf("lexemes %.40v", tv.Lexemes)
	}
	cut := tv.Lexemes[2].Word
	if len(cut) > maxLexemeBytes || !utf8.ValidString(cut) || !strings.HasPrefix(long, cut) {
		t.Fatalf("cut token is %d bytes, valid %v", len(cut), utf8.ValidString(cut))
	}
	if len(kept) != 2 || kept[0] != long {
		t.Fatalf("long tokens kept: %d", len(kept))
	}
}

func TestClassify(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		err         error
		unavailable bool
	}{
		{&pgconn.PgError{Code: "57P01"}, true}, // admin shutdown
		{&pgconn.PgError{Code: "53100"}, true}, // disk full
		{&pgconn.PgError{Code: "08006"}, true},
		{&pgconn.PgError{Code: "40001"}, true},
		{&pgconn.PgError{Code: "23505"}, false}, // unique violation: a bug, not an outage
		{&pgconn.PgError{Code: "42P01"}, false},
		{fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), true},
		{errors.New("cannot encode"), false},
	} {
		err := classify(ctx, "op", tc.err)
		if got := errors.Is(err, store.ErrUnavailable); got != tc.unavailable {
			t.Errorf("classify(%v): unavailable %v, want %v", tc.err, got, tc.unavailable)
		}
		if !errors.Is(err, tc.err) {
			t.Errorf("classify(%v) lost the cause: %v", tc.err, err)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := classify(cancelled, "op", context.Canceled); !errors.Is(err, context.Canceled) || errors.Is(err, store.ErrUnavailable) {
		t.Errorf("cancelled: %v", err)
	}
}
