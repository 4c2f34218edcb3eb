package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/audittrail/audittrail/internal/event"
)

// readBody reads the whole body, at most limit bytes (413 beyond), and
// refuses a content type that is not JSON. An absent Content-Type is
// accepted: several HTTP clients send none with a JSON body.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, Errorf(CodeMediaType, "Content-Type must be application/json, not %q", ct)
		}
	}
	if r.ContentLength > limit {
		return nil, &Error{Code: CodeTooLarge, Message: fmt.Sprintf("request body is larger than %d bytes", limit)}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, &Error{Code: CodeBadRequest, Message: "could not read the request body", Err: err}
	}
	return body, nil
}

// DecodeJSON reads a JSON request body of at most limit bytes into v with
// the checks of the built-in routes (content type, size, UTF-8, no
// trailing data), for handlers mounted by other packages. Unknown keys are
// refused unless allowUnknown.
func DecodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any, allowUnknown bool) error {
	body, err := readBody(w, r, limit)
	if err != nil {
		return err
	}
	return decodeStrict(body, v, allowUnknown)
}

// decodeStrict parses one JSON value into v. It refuses what encoding/json
// lets through silently: invalid UTF-8 (which it would replace), NUL
// characters, and anything after the value. Unknown keys are ignored only
// when allowUnknown is set (the Descope endpoints: SDKs send keys of newer
// API versions).
func decodeStrict(body []byte, v any, allowUnknown bool) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return Errorf(CodeBadRequest, "the request body is empty; send a JSON object")
	}
	if !utf8.Valid(body) {
		return Errorf(CodeBadRequest, "the request body is not valid UTF-8")
	}
	if hasNUL(body) {
		return Errorf(CodeBadRequest, "the request body holds a NUL character")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if !allowUnknown {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Errorf(CodeBadRequest, "unexpected data after the JSON value")
	}
	return nil
}

// jsonError turns a decoding error into a client error naming the field.
func jsonError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	var apiErr *Error
	switch {
	case errors.As(err, &apiErr):
		return apiErr
	case errors.As(err, &typeErr):
		// event.Event decodes through an embedded alias type, whose name
		// encoding/json puts in the path.
		field := strings.TrimPrefix(typeErr.Field, "eventJSON.")
		if field == "" {
			return Errorf(CodeBadRequest, "the request body must be a JSON object")
		}
		return &Error{Code: CodeInvalidArgument, field: true,
			Message: fmt.Sprintf("%s: must be %s, not %s", field, typeName(typeErr.Type.String()), typeErr.Value)}
	case errors.As(err, &syntaxErr):
		return Errorf(CodeBadRequest, "malformed JSON at byte %d: %s", syntaxErr.Offset, syntaxErr.Error())
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return Errorf(CodeBadRequest, "malformed JSON: unexpected end of the body")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, uerr := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		if uerr != nil {
			name = strings.TrimPrefix(err.Error(), "json: unknown field ")
		}
		return &Error{Code: CodeInvalidArgument, Message: name + ": unknown field", field: true}
	default:
		var fieldErr *event.FieldError
		if errors.As(err, &fieldErr) {
			return &Error{Code: CodeInvalidArgument, Message: fieldErr.Error(), field: true}
		}
		return Errorf(CodeBadRequest, "malformed JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
}

func typeName(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "map["), strings.HasPrefix(goType, "struct"), strings.Contains(goType, "."):
		return "an object"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "an integer"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "bool":
		return "true or false"
	case goType == "string":
		return "a string"
	}
	return goType
}

// hasNUL finds a raw NUL byte or a \u0000 escape that is not itself
// escaped (\\u0000 is a backslash followed by text).
func hasNUL(b []byte) bool {
	if bytes.IndexByte(b, 0) >= 0 {
		return true
	}
	for i := 0; ; {
		j := bytes.Index(b[i:], []byte(`u0000`))
		if j < 0 {
			return false
		}
		j += i
		backslashes := 0
		for k := j - 1; k >= 0 && b[k] == '\\'; k-- {
			backslashes++
		}
		if backslashes%2 == 1 {
			return true
		}
		i = j + 5
	}
}

// checkList bounds a filter list: how many values and how long each.
func checkList(field string, list []string, maxLen int) error {
	if len(list) > maxLen {
		return Errorf(CodeInvalidArgument, "%s: more than %d values", field, maxLen)
	}
	for i, s := range list {
		if len(s) > 1024 {
			return Errorf(CodeInvalidArgument, "%s[%d]: longer than 1024 bytes", field, i)
		}
	}
	return nil
}
