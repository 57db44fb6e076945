package schema

import (
	"strings"
	"testing"
)

func TestSchemaStatements(t *testing.T) {
	stmts := SchemaStatements()
	if len(stmts) != 9 {
		t.Fatalf("%d statements, want the nine FxA tables", len(stmts))
	}
	for _, s := range stmts {
		if !strings.HasPrefix(s, "CREATE TABLE ") || strings.HasSuffix(s, ";") || strings.Contains(s, "--") {
			t.Errorf("statement not a clean CREATE TABLE:\n%s", s)
		}
	}
}
