// Package manifest is the only code that knows the plan file's format: a
// Parquet file of the rows to delete, stage by stage, with key/value metadata
// that records how the plan was made and a digest that proves the rows intact.
package manifest

import (
	"bytes"
	"fmt"
	"slices"
)

// Stages, in the order they appear in a manifest.
const (
	StageMaxSessions = "max-sessions"
	StageTokenAge    = "token-age"
	StageCodeAge     = "code-age"
)

// Tables a manifest may name. Nothing else is ever deleted.
const (
	TableSessionTokens        = "sessionTokens"
	TableAccountResetTokens   = "accountResetTokens"
	TablePasswordForgotTokens = "passwordForgotTokens"
	TablePasswordChangeTokens = "passwordChangeTokens"
	TableUnblockCodes         = "unblockCodes"
	TableSigninCodes          = "signinCodes"
)

// Section is one (stage, table) pair. A manifest lists its rows section by
// section, in the order of Sections.
type Section struct {
	Stage string
	Table string
}

func (s Section) String() string { return s.Stage + "/" + s.Table }

// sections is the allow-list of (stage, table) pairs, in manifest order. It
// decides what apply may delete, so no other package can change it.
var sections = []Section{
	{StageMaxSessions, TableSessionTokens},
	{StageTokenAge, TableAccountResetTokens},
	{StageTokenAge, TablePasswordForgotTokens},
	{StageTokenAge, TablePasswordChangeTokens},
	{StageTokenAge, TableSessionTokens},
	{StageCodeAge, TableUnblockCodes},
	{StageCodeAge, TableSigninCodes},
}

// Sections returns a copy of the allow-list of (stage, table) pairs, in
// manifest order.
func Sections() []Section { return slices.Clone(sections) }

// SectionIndex returns the position of (stage, table) in Sections, or -1 when
// the pair is not allowed.
func SectionIndex(stage, table string) int {
	for i, s := range sections {
		if s.Stage == stage && s.Table == table {
			return i
		}
	}
	return -1
}

// Lengths of the binary columns.
const (
	IDLen  = 32 // tokenId, unblockCodeHash, signinCodes.hash
	UIDLen = 16 // account id
)

// Row is one row to delete.
type Row struct {
	Stage     string
	Table     string
	ID        []byte // tokenId; unblockCodeHash for unblockCodes; hash for signinCodes
	UID       []byte // account id
	CreatedAt int64  // milliseconds since the Unix epoch
}

// Section returns the row's (stage, table).
func (r Row) Section() Section { return Section{r.Stage, r.Table} }

// Validate checks one row on its own: allowed section and id lengths.
func (r Row) Validate() error {
	if SectionIndex(r.Stage, r.Table) < 0 {
		return fmt.Errorf("stage %q with table %q is not allowed", r.Stage, r.Table)
	}
	if len(r.ID) != IDLen {
		return fmt.Errorf("%s id is %d bytes, want %d", r.Table, len(r.ID), IDLen)
	}
	if len(r.UID) != UIDLen {
		return fmt.Errorf("%s uid is %d bytes, want %d", r.Table, len(r.UID), UIDLen)
	}
	return nil
}

// Key is the table's primary key in column order: uid+unblockCodeHash for
// unblockCodes, the id otherwise. Rows of a token-age or code-age section are
// ordered by it (the order of the table's clustered index, so plan reads and
// apply deletes sequentially); max-sessions groups by (CreatedAt, Key).
func (r Row) Key() []byte {
	if r.Table == TableUnblockCodes {
		k := make([]byte, 0, len(r.UID)+len(r.ID))
		return append(append(k, r.UID...), r.ID...)
	}
	return r.ID
}

// CompareKey orders two rows of one table by primary key, as the server's
// clustered index does (binary columns compare bytewise).
func CompareKey(a, b Row) int {
	if a.Table == TableUnblockCodes {
		if c := bytes.Compare(a.UID, b.UID); c != 0 {
			return c
		}
	}
	return bytes.Compare(a.ID, b.ID)
}

// compareAge orders two rows by (CreatedAt, Key).
func compareAge(a, b Row) int {
	switch {
	case a.CreatedAt < b.CreatedAt:
		return -1
	case a.CreatedAt > b.CreatedAt:
		return 1
	}
	return bytes.Compare(a.Key(), b.Key())
}
