package sandbox

import (
	"strings"
	"testing"
)

func TestSchemaWithoutSecondaryIndexes(t *testing.T) {
	full, lean := Schema(true), Schema(false)
	if len(full) != 9 || len(lean) != 9 {
		t.Fatalf("%d and %d statements, want 9", len(full), len(lean))
	}
	for i, s := range lean {
		if strings.Contains(s, "INDEX") || !strings.Contains(s, "PRIMARY KEY") || strings.Contains(s, ",\n)") {
			t.Errorf("lean statement %d:\n%s\n(from)\n%s", i, s, full[i])
		}
	}
}
