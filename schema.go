// Package prunetokens holds what every part of the module shares as data:
// the FxA schema of testdata/schema.sql, embedded so that a binary (the
// sandbox) carries it without the source tree.
package prunetokens

import (
	_ "embed"
	"strings"
)

// Schema is testdata/schema.sql: the nine FxA tables prune-tokens reads or
// touches, in portable MySQL.
//
//go:embed testdata/schema.sql
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
