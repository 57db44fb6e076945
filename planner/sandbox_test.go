package planner

import (
	"testing"
	"time"

	"prune-tokens/internal/test/dbtest"
	"prune-tokens/internal/test/sandboxtest"
	"prune-tokens/manifest"
)

// sandboxFixture exercises every statement plan sends: accounts over the
// session limit with ties in createdAt, devices under the same and under
// another uid, old and young tokens and codes of every table, one unblock
// hash under several accounts.
func sandboxFixture() *fixture {
	f := newFixture()
	id := 1
	for uid, n := range []int{14, 10, 4, 1, 1, 1, 1} {
		for i := range n {
			created := now - int64(40+i/2)*24*3600*1000 // pairs share a createdAt
			if i >= n-2 {
				created = now - int64(i)*1000 // young
			}
			f.session(id, uid, created)
			switch i % 4 {
			case 1:
				f.device(uid, 500+id, id)
			case 2:
				f.device(uid+100, 500+id, id) // another account's device protects nothing
			}
			id++
		}
	}
	for i, table := range []string{manifest.TableAccountResetTokens, manifest.TablePasswordForgotTokens, manifest.TablePasswordChangeTokens, "keyFetchTokens"} {
		for j := range 6 {
			f.token(table, id, 1000*(i+1)+j, now-int64(j%3)*20*24*3600*1000)
			id++
		}
	}
	for j := range 8 {
		f.unblock = append(f.unblock, row{id32(7), uid16(2000 + j), now - int64(j%2+1)*40*24*3600*1000})
		f.signin = append(f.signin, row{id32(id), uid16(j % 2), now - int64(j%3)*20*24*3600*1000})
		id++
	}
	f.unverifiedN = 4
	return f
}

// TestPlanOnSandbox runs plan's real statements, whatever they are, on the
// sandbox (go-mysql-server) as well as on MariaDB: both must list exactly
// what the model says (the second options add the window-bound statement).
// The sandbox refuses the consistent snapshot, and plan reports the fallback
// there, and only there.
func TestPlanOnSandbox(t *testing.T) {
	f := sandboxFixture()
	servers := map[string]*dbtest.DB{"MariaDB": dbtest.New(t), "sandbox": sandboxtest.New(t)}
	for _, db := range servers {
		f.insert(t, db)
	}
	for _, o := range []Options{
		{Now: now, MaxTokenAge: 30 * 24 * time.Hour, MaxCodeAge: 30 * 24 * time.Hour, MaxSessions: 3, MaxSessionsMaxAccounts: 1, MaxSessionsMaxDeletions: 100},
		{Now: now, MaxTokenAge: 30 * 24 * time.Hour, MaxCodeAge: 50 * 24 * time.Hour, MaxSessions: 2, MaxSessionsMaxAccounts: 5, MaxSessionsMaxDeletions: 3, MaxTokenAgeWindowSize: 2},
	} {
		want, top := f.expect(o)
		if len(want) < 15 {
			t.Fatalf("the model lists only %d rows: the fixture does not exercise the rules", len(want))
		}
		for name, db := range servers {
			p := runPlan(t, db, o)
			sameRows(t, p.rows, want)
			if len(p.res.TopAccounts) != len(top) {
				t.Errorf("%s: %d max-sessions accounts, model %d", name, len(p.res.TopAccounts), len(top))
			}
			if p.res.SnapshotFallback != (name == "sandbox") {
				t.Errorf("%s: SnapshotFallback = %v", name, p.res.SnapshotFallback)
			}
		}
	}
}
