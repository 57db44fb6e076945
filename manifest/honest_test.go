package manifest

import "encoding/hex"

// honestTopAccounts is the max_sessions_accounts metadata that truly
// describes rows' max-sessions groups: each group's account, in file order,
// with its row count to delete and, so that the list is most sessions
// first, sessions no fewer than any later group's.
func honestTopAccounts(rows []Row) []Account {
	var top []Account
	for i, r := range rows {
		if r.Stage != StageMaxSessions {
			continue
		}
		if i == 0 || rows[i-1].Stage != StageMaxSessions || string(rows[i-1].UID) != string(r.UID) {
			top = append(top, Account{UID: hex.EncodeToString(r.UID)})
		}
		top[len(top)-1].ToDelete++
	}
	var most int64
	for i := len(top) - 1; i >= 0; i-- {
		most = max(most, top[i].ToDelete)
		top[i].Sessions = most + 5
	}
	return top
}

// honestCutoff is a cutoff no earlier than floor that every row of stage
// is strictly older than.
func honestCutoff(rows []Row, stage string, floor int64) int64 {
	c := floor
	for _, r := range rows {
		if r.Stage == stage && r.CreatedAt >= c {
			c = r.CreatedAt + 1
		}
	}
	return c
}
