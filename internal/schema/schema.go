// Package schema is the FxA schema of schema.sql that the tests, the sandbox
// and the benchmark build their databases from, embedded so that a binary
// (the sandbox) carries it without the source tree.
package schema

import (
	_ "embed"
	"strings"
)

// Schema is schema.sql: the nine FxA tables prune-tokens reads or
// touches, in portable MySQL.
//
//go:embed schema.sql
var Schema string

// SchemaStatements splits Schema into its CREATE TABLE statements (without
// the trailing semicolons), for drivers that run one statement per call.
func SchemaStatements() []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(Schema, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(strings.TrimSpace(line), ";") {
			if s := strings.TrimSpace(cur.String()); s != ";" {
				out = append(out, strings.TrimSuffix(s, ";"))
			}
			cur.Reset()
		}
	}
	return out
}
