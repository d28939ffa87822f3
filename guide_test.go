package flamingo

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The front-end guide documents the wire protocol for client authors. These tests read
// events.go itself, so a new event type, error code, end reason or payload field fails
// them until the guide mentions it.

const guideFile = "FRONTEND_GUIDE.md"

// protocolConsts returns the values of the string constants declared in events.go with
// one of the named types, by type name.
func protocolConsts(t *testing.T, typeNames ...string) map[string][]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "events.go", nil, parser.SkipObjectResolution)
	require.NoError(t, err)
	want := make(map[string]bool)
	for _, n := range typeNames {
		want[n] = true
	}
	found := make(map[string][]string)
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			typ, ok := vs.Type.(*ast.Ident)
			if !ok || !want[typ.Name] {
				continue
			}
			for _, v := range vs.Values {
				lit, ok := v.(*ast.BasicLit)
				require.True(t, ok && lit.Kind == token.STRING, "a %s constant that is not a string literal", typ.Name)
				s, err := strconv.Unquote(lit.Value)
				require.NoError(t, err)
				found[typ.Name] = append(found[typ.Name], s)
			}
		}
	}
	return found
}

// payloadFieldNames returns the JSON names of the fields of every struct type declared
// in events.go.
func payloadFieldNames(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "events.go", nil, parser.SkipObjectResolution)
	require.NoError(t, err)
	var names []string
	ast.Inspect(f, func(n ast.Node) bool {
		st, ok := n.(*ast.StructType)
		if !ok {
			return true
		}
		for _, field := range st.Fields.List {
			if field.Tag == nil {
				continue
			}
			tag, err := strconv.Unquote(field.Tag.Value)
			require.NoError(t, err)
			name, _, _ := strings.Cut(reflect.StructTag(tag).Get("json"), ",")
			if name != "" && name != "-" {
				names = append(names, name)
			}
		}
		return true
	})
	return names
}

func readGuide(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(guideFile)
	require.NoError(t, err)
	return string(b)
}

// missingFrom returns the values that the guide does not mention in backquotes.
func missingFrom(guide string, values []string) []string {
	var missing []string
	for _, v := range values {
		if !strings.Contains(guide, "`"+v+"`") {
			missing = append(missing, v)
		}
	}
	return missing
}

func TestFrontendGuideMentionsEveryEventTypeAndErrorCode(t *testing.T) {
	guide := readGuide(t)
	consts := protocolConsts(t, "EventType", "ErrorCode")
	// Guard against a parse that silently finds nothing: v1 has 16 events, 15 codes.
	require.GreaterOrEqual(t, len(consts["EventType"]), 16, "EventType constants found in events.go")
	require.GreaterOrEqual(t, len(consts["ErrorCode"]), 15, "ErrorCode constants found in events.go")
	for _, typeName := range []string{"EventType", "ErrorCode"} {
		assert.Empty(t, missingFrom(guide, consts[typeName]), "%s values missing from %s", typeName, guideFile)
	}
}

func TestFrontendGuideMentionsEveryEndReasonAndPayloadField(t *testing.T) {
	guide := readGuide(t)
	reasons := protocolConsts(t, "EndReason")["EndReason"]
	require.NotEmpty(t, reasons, "EndReason constants found in events.go")
	assert.Empty(t, missingFrom(guide, reasons), "EndReason values missing from %s", guideFile)
	fields := payloadFieldNames(t)
	require.Contains(t, fields, "chat_id", "payload fields found in events.go")
	assert.Empty(t, missingFrom(guide, fields), "payload fields missing from %s", guideFile)
}
