package manifest

import (
	"encoding/hex"
	"fmt"
)

// rules checks each row against the rules the manifest records for itself:
// the cutoffs, the stages that were on, and the max-sessions accounts. The
// digest only proves the rows are the ones the metadata describes; anyone who
// edits the rows can recompute it. These checks make a file whose rows break
// its own recorded rules fail Verify, so the summary a reviewer approves
// (the cutoffs, the max-sessions table) is a true account of every row.
type rules struct {
	meta *Meta
	// maxSessions is the recorded --maxSessions, or -1 when the file does
	// not record it as a number.
	maxSessions int64
	// wantGroups are the max-sessions accounts that must have a group, in
	// manifest order, with the number of rows each must have.
	wantGroups []Account
	group      int   // index into wantGroups of the current group, -1 before the first
	groupRows  int64 // rows of the current group so far
}

func newRules(m *Meta) (*rules, error) {
	ru := &rules{meta: m, maxSessions: -1, group: -1}
	if n, ok := m.MaxSessions(); ok {
		ru.maxSessions = n
	}
	for i, a := range m.TopAccounts {
		switch {
		case len(a.UID) != 2*UIDLen:
			return nil, fmt.Errorf("max_sessions_accounts[%d]: uid %q is not %d bytes of hex", i, a.UID, UIDLen)
		case a.ToDelete > a.Sessions:
			return nil, fmt.Errorf("max_sessions_accounts[%d] (%s): deletes %d of its %d sessions", i, a.UID, a.ToDelete, a.Sessions)
		case ru.maxSessions >= 0 && a.ToDelete > 0 && a.Sessions-a.ToDelete < ru.maxSessions:
			return nil, fmt.Errorf("max_sessions_accounts[%d] (%s): deletes %d of its %d sessions, leaving fewer than maxSessions %d", i, a.UID, a.ToDelete, a.Sessions, ru.maxSessions)
		case i > 0 && a.Sessions > m.TopAccounts[i-1].Sessions:
			return nil, fmt.Errorf("max_sessions_accounts[%d] (%s): %d sessions after an account with %d: not most sessions first", i, a.UID, a.Sessions, m.TopAccounts[i-1].Sessions)
		}
		if _, err := hex.DecodeString(a.UID); err != nil {
			return nil, fmt.Errorf("max_sessions_accounts[%d]: uid %q is not hex", i, a.UID)
		}
		if a.ToDelete > 0 {
			ru.wantGroups = append(ru.wantGroups, a)
		}
	}
	if len(m.TopAccounts) > 0 && ru.maxSessions == 0 {
		return nil, fmt.Errorf("max_sessions_accounts lists %d accounts, but max-sessions was off (maxSessions 0)", len(m.TopAccounts))
	}
	return ru, nil
}

// check checks one row, given in file order after the tally accepted it;
// first says it starts a new max-sessions group.
func (ru *rules) check(r Row, first bool) error {
	switch r.Stage {
	case StageTokenAge:
		return ru.cutoff(r, ru.meta.TokenCutoff, "token_cutoff")
	case StageCodeAge:
		return ru.cutoff(r, ru.meta.CodeCutoff, "code_cutoff")
	case StageMaxSessions:
		if first {
			if err := ru.endGroup(); err != nil {
				return err
			}
			ru.group++
			if ru.group >= len(ru.wantGroups) {
				if len(ru.wantGroups) == 0 {
					return fmt.Errorf("%s row of account %x, but the manifest records no max-sessions accounts: the stage was off", r.Section(), r.UID)
				}
				return fmt.Errorf("%s group of account %x is not in max_sessions_accounts (which lists %d)", r.Section(), r.UID, len(ru.wantGroups))
			}
			if want := ru.wantGroups[ru.group].UID; hex.EncodeToString(r.UID) != want {
				return fmt.Errorf("%s group %d is account %x; max_sessions_accounts has %s there", r.Section(), ru.group+1, r.UID, want)
			}
		}
		ru.groupRows++
		return nil
	}
	return nil
}

func (ru *rules) cutoff(r Row, cutoff int64, key string) error {
	switch {
	case cutoff == 0:
		return fmt.Errorf("%s row, but the %s stage was off (no %s)", r.Section(), r.Stage, key)
	case r.CreatedAt >= cutoff:
		return fmt.Errorf("%s row %x created at %s, not before the %s %s", r.Section(), r.Key(), UTC(r.CreatedAt), key, UTC(cutoff))
	}
	return nil
}

func (ru *rules) endGroup() error {
	if ru.group < 0 {
		return nil
	}
	if a := ru.wantGroups[ru.group]; ru.groupRows != a.ToDelete {
		return fmt.Errorf("%s/%s group of account %s holds %d rows; max_sessions_accounts says to_delete %d", StageMaxSessions, TableSessionTokens, a.UID, ru.groupRows, a.ToDelete)
	}
	ru.groupRows = 0
	return nil
}

// finish checks what only the end of the file shows: every recorded
// max-sessions account got its group.
func (ru *rules) finish() error {
	if err := ru.endGroup(); err != nil {
		return err
	}
	if n := ru.group + 1; n < len(ru.wantGroups) {
		return fmt.Errorf("max_sessions_accounts lists %d accounts with sessions to delete, the rows hold %d groups", len(ru.wantGroups), n)
	}
	return nil
}
