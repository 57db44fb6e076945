package planner

import (
	"context"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"prune-tokens/internal/test/dbtest"
	"prune-tokens/manifest"
)

const now = int64(1_750_000_000_000)

func mrow(stage, table string, id, uid int, createdAt int64) manifest.Row {
	return manifest.Row{Stage: stage, Table: table, ID: id32(id), UID: uid16(uid), CreatedAt: createdAt}
}

// The cutoff is strict: a row created exactly at now-maxTokenAge stays, one
// created 1 ms earlier is listed, in every table of the token-age stage.
// keyFetchTokens are never listed, however old.
func TestTokenAgeCutoffIsStrict(t *testing.T) {
	db := dbtest.New(t)
	f := newFixture()
	age := 30 * 24 * time.Hour
	cutoff := now - age.Milliseconds()
	var want []manifest.Row
	for i, table := range []string{manifest.TableAccountResetTokens, manifest.TablePasswordForgotTokens, manifest.TablePasswordChangeTokens} {
		base := 100 * (i + 1)
		f.token(table, base+1, base+1, cutoff)   // kept: exactly at the cutoff
		f.token(table, base+2, base+2, cutoff-1) // listed
		f.token(table, base+3, base+3, cutoff+5) // kept
		f.token(table, base+4, base+4, 1)        // listed, oldest
		// primary-key order, whatever the ages
		want = append(want, mrow(manifest.StageTokenAge, table, base+2, base+2, cutoff-1), mrow(manifest.StageTokenAge, table, base+4, base+4, 1))
	}
	f.session(501, 5, cutoff)
	f.session(502, 5, cutoff-1)
	f.session(503, 6, cutoff+1)
	want = append(want, mrow(manifest.StageTokenAge, manifest.TableSessionTokens, 502, 5, cutoff-1))
	f.token("keyFetchTokens", 900, 9, 1)
	f.token("keyFetchTokens", 901, 9, cutoff-1)
	// Old codes stay: the code-age stage is off.
	f.unblock = append(f.unblock, row{id32(1), uid16(1), 1})
	f.signin = append(f.signin, row{id32(2), uid16(2), 1})
	f.insert(t, db)

	o := Options{Now: now, MaxTokenAge: age}
	p := runPlan(t, db, o)
	sameRows(t, p.rows, want)
	if p.res.TokenCutoff != cutoff || p.res.CodeCutoff != 0 {
		t.Errorf("cutoffs = %d, %d; want %d, 0", p.res.TokenCutoff, p.res.CodeCutoff, cutoff)
	}
	exp, _ := f.expect(o)
	sameRows(t, p.rows, exp)
}

func TestCodeAgeCutoffIsStrict(t *testing.T) {
	db := dbtest.New(t)
	f := newFixture()
	age := 7 * 24 * time.Hour
	cutoff := now - age.Milliseconds()
	// unblockCodes.createdAt is signed: a negative value is just very old.
	// Listed in primary-key order: (uid, hash) for unblockCodes.
	f.unblock = []row{
		{id32(1), uid16(2), cutoff - 1},
		{id32(2), uid16(1), cutoff - 1},
		{id32(3), uid16(1), cutoff},
		{id32(4), uid16(3), -5},
	}
	f.signin = []row{
		{id32(7), uid16(1), cutoff},
		{id32(8), uid16(1), cutoff - 1},
		{id32(6), uid16(2), cutoff - 1},
	}
	f.session(1, 1, 1) // token-age is off
	f.token(manifest.TableAccountResetTokens, 2, 1, 1)
	f.insert(t, db)

	p := runPlan(t, db, Options{Now: now, MaxCodeAge: age})
	sameRows(t, p.rows, []manifest.Row{
		mrow(manifest.StageCodeAge, manifest.TableUnblockCodes, 2, 1, cutoff-1),
		mrow(manifest.StageCodeAge, manifest.TableUnblockCodes, 1, 2, cutoff-1),
		mrow(manifest.StageCodeAge, manifest.TableUnblockCodes, 4, 3, -5),
		mrow(manifest.StageCodeAge, manifest.TableSigninCodes, 6, 2, cutoff-1),
		mrow(manifest.StageCodeAge, manifest.TableSigninCodes, 8, 1, cutoff-1),
	})
	if p.meta.CodeCutoff != cutoff {
		t.Errorf("code cutoff in metadata = %d, want %d", p.meta.CodeCutoff, cutoff)
	}
}

// A device protects a session only under the session's own uid.
func TestDeviceProtectsOnlyUnderSameUID(t *testing.T) {
	db := dbtest.New(t)
	f := newFixture()
	f.session(1, 1, 10) // has a device: kept
	f.device(1, 1, 1)
	f.session(2, 1, 11) // device row names it, but under uid 2: listed
	f.device(2, 2, 2)
	f.session(3, 3, 12) // no device: listed
	f.device(3, 3, 99)  // a device of uid 3 for another session
	f.insert(t, db)

	p := runPlan(t, db, Options{Now: now, MaxTokenAge: time.Hour})
	sameRows(t, p.rows, []manifest.Row{
		mrow(manifest.StageTokenAge, manifest.TableSessionTokens, 2, 1, 11),
		mrow(manifest.StageTokenAge, manifest.TableSessionTokens, 3, 3, 12),
	})
}

// max-sessions keeps each account's newest maxSessions sessions; ties in
// createdAt go by tokenId (lower = older) at the keep boundary and at the
// maxSessionsMaxDeletions boundary. Accounts come most sessions first; an
// account over the limit but outside maxSessionsMaxAccounts is not trimmed.
func TestMaxSessions(t *testing.T) {
	db := dbtest.New(t)
	f := newFixture()
	// uid 1: 6 sessions, keep 2. The 4th and 5th oldest tie at createdAt 40:
	// tokenId 103 is older than 109, so 103 goes and 109 stays. Inserted in
	// an order unlike either sort.
	f.session(109, 1, 40)
	f.session(150, 1, 50)
	f.session(130, 1, 30)
	f.session(103, 1, 40)
	f.session(110, 1, 10)
	f.session(120, 1, 20)
	// uid 2: 8 sessions, keep 2, but at most 3 deletions: the 3rd and 4th
	// oldest tie at createdAt 7 (tokenIds 202 < 205 < 208).
	for i, s := range []struct {
		id int
		at int64
	}{{208, 7}, {201, 5}, {205, 7}, {206, 6}, {202, 7}, {230, 30}, {240, 40}, {250, 50}} {
		_ = i
		f.session(s.id, 2, s.at)
	}
	// uid 3: 4 sessions, over the limit, but only 2 accounts are trimmed.
	for i := 0; i < 4; i++ {
		f.session(300+i, 3, int64(1+i))
	}
	// uid 4: exactly maxSessions: untouched.
	f.session(401, 4, 1)
	f.session(402, 4, 2)
	f.insert(t, db)

	o := Options{Now: now, MaxSessions: 2, MaxSessionsMaxAccounts: 2, MaxSessionsMaxDeletions: 3}
	p := runPlan(t, db, o)
	ms := func(id, uid int, at int64) manifest.Row {
		return mrow(manifest.StageMaxSessions, manifest.TableSessionTokens, id, uid, at)
	}
	sameRows(t, p.rows, []manifest.Row{
		ms(201, 2, 5), ms(206, 2, 6), ms(202, 2, 7), // uid 2 first: 8 sessions
		ms(110, 1, 10), ms(120, 1, 20), ms(130, 1, 30),
	})
	_ = p
	wantTop := []manifest.Account{
		{UID: "00000000000000000000000000000002", Sessions: 8, ToDelete: 3},
		{UID: "00000000000000000000000000000001", Sessions: 6, ToDelete: 3},
	}
	if !reflect.DeepEqual(p.res.TopAccounts, wantTop) || !reflect.DeepEqual(p.meta.TopAccounts, wantTop) {
		t.Errorf("top accounts = %+v, want %+v", p.res.TopAccounts, wantTop)
	}

	// With room for every deletion, the keep boundary decides the tie at 40.
	o.MaxSessionsMaxDeletions = 100
	p = runPlan(t, db, o)
	sameRows(t, p.rows, []manifest.Row{
		ms(201, 2, 5), ms(206, 2, 6), ms(202, 2, 7), ms(205, 2, 7), ms(208, 2, 7), ms(230, 2, 30),
		ms(110, 1, 10), ms(120, 1, 20), ms(130, 1, 30), ms(103, 1, 40),
	})
	exp, top := f.expect(o)
	sameRows(t, p.rows, exp)
	if !reflect.DeepEqual(p.res.TopAccounts, top) {
		t.Errorf("top accounts = %+v, model says %+v", p.res.TopAccounts, top)
	}
}

// A session both max-sessions and token-age would claim is listed once, by
// max-sessions; the account's kept sessions that are old (and have no
// device) still go by token-age, as does an over-limit account outside the
// top accounts. A device does not save a session from max-sessions.
func TestSessionClaimedByBothStagesListedOnce(t *testing.T) {
	db := dbtest.New(t)
	f := newFixture()
	for i := 0; i < 5; i++ {
		f.session(100+i, 1, int64(10+i)) // all old
	}
	f.device(1, 1, 100) // the oldest has a device: max-sessions still lists it
	f.device(1, 2, 104) // the newest has a device: token-age must keep it
	for i := 0; i < 3; i++ {
		f.session(200+i, 2, int64(10+i)) // over the limit, not in the top 1
	}
	f.session(300, 3, 11)
	f.insert(t, db)

	o := Options{Now: now, MaxTokenAge: time.Hour, MaxSessions: 2, MaxSessionsMaxAccounts: 1, MaxSessionsMaxDeletions: 100}
	p := runPlan(t, db, o)
	ms, ta := manifest.StageMaxSessions, manifest.StageTokenAge
	st := manifest.TableSessionTokens
	sameRows(t, p.rows, []manifest.Row{
		mrow(ms, st, 100, 1, 10), mrow(ms, st, 101, 1, 11), mrow(ms, st, 102, 1, 12),
		mrow(ta, st, 103, 1, 13), mrow(ta, st, 200, 2, 10), mrow(ta, st, 201, 2, 11), mrow(ta, st, 202, 2, 12), mrow(ta, st, 300, 3, 11),
	})
}

// maxTokenAgeWindowSize caps the session tokens token-age lists, oldest
// first; sessions max-sessions claimed do not count against it, and the
// other token tables are not capped.
func TestTokenAgeWindowSize(t *testing.T) {
	db := dbtest.New(t)
	f := newFixture()
	for i := 0; i < 4; i++ {
		f.session(100+i, 1, int64(10+i))
	}
	for i := 0; i < 6; i++ {
		f.session(200+i, 2, int64(20+i))
	}
	for i := 0; i < 3; i++ {
		f.token(manifest.TablePasswordChangeTokens, 300+i, 300+i, int64(i+1))
	}
	f.insert(t, db)

	o := Options{Now: now, MaxTokenAge: time.Hour, MaxSessions: 3, MaxSessionsMaxAccounts: 1, MaxSessionsMaxDeletions: 10, MaxTokenAgeWindowSize: 3}
	p := runPlan(t, db, o)
	exp, _ := f.expect(o)
	sameRows(t, p.rows, exp)
	if got := p.meta.Count(manifest.Section{Stage: manifest.StageTokenAge, Table: manifest.TableSessionTokens}); got != 3 {
		t.Errorf("token-age sessions = %d, want 3", got)
	}
	if got := p.meta.Count(manifest.Section{Stage: manifest.StageTokenAge, Table: manifest.TablePasswordChangeTokens}); got != 3 {
		t.Errorf("token-age passwordChangeTokens = %d, want 3", got)
	}
}

// Each age (and maxSessions) set to 0 turns its stages off; all three off
// gives an empty, valid manifest.
func TestZeroTurnsStagesOff(t *testing.T) {
	db := dbtest.New(t)
	f := newFixture()
	for i := 0; i < 5; i++ {
		f.session(100+i, 1, int64(i+1))
	}
	f.token(manifest.TableAccountResetTokens, 1, 1, 1)
	f.unblock = append(f.unblock, row{id32(2), uid16(1), 1})
	f.signin = append(f.signin, row{id32(3), uid16(1), 1})
	f.insert(t, db)

	stages := func(p planned) map[string]int64 {
		m := map[string]int64{}
		for _, s := range p.meta.Stats {
			m[s.Stage] += s.Rows
		}
		return m
	}
	for name, c := range map[string]struct {
		o    Options
		want map[string]int64
	}{
		"all off":          {Options{Now: now, MaxSessionsMaxAccounts: 100, MaxSessionsMaxDeletions: 100}, map[string]int64{}},
		"maxSessions only": {Options{Now: now, MaxSessions: 1, MaxSessionsMaxAccounts: 100, MaxSessionsMaxDeletions: 100}, map[string]int64{"max-sessions": 4}},
		"tokens only":      {Options{Now: now, MaxTokenAge: time.Hour}, map[string]int64{"token-age": 6}},
		"codes only":       {Options{Now: now, MaxCodeAge: time.Hour}, map[string]int64{"code-age": 2}},
	} {
		t.Run(name, func(t *testing.T) {
			p := runPlan(t, db, c.o)
			if got := stages(p); !reflect.DeepEqual(got, c.want) {
				t.Errorf("rows per stage = %v, want %v", got, c.want)
			}
		})
	}
}

// A random data set with many createdAt ties, checked against the model,
// and with every table left unchanged.
func TestRandomAgainstModel(t *testing.T) {
	db := dbtest.New(t)
	rng := rand.New(rand.NewPCG(7, 11))
	f := newFixture()
	at := func() int64 { return now - int64(rng.IntN(12))*1000 } // 12 distinct instants: many ties
	id := 1
	for i := 0; i < 400; i++ {
		// a few large accounts and a long tail
		uid := 1 + rng.IntN(40)
		if rng.IntN(3) == 0 {
			uid = 1 + rng.IntN(3)
		}
		f.session(id, uid, at())
		if rng.IntN(3) == 0 {
			f.device(uid, id, id)
		} else if rng.IntN(10) == 0 {
			f.device(uid+1000, id, id) // device under another uid
		}
		id++
	}
	f.unverifiedN = 80
	for i, table := range []string{manifest.TableAccountResetTokens, manifest.TablePasswordForgotTokens, manifest.TablePasswordChangeTokens, "keyFetchTokens"} {
		for u := 0; u < 30; u++ {
			f.token(table, id, 10000*(i+1)+u, at())
			id++
		}
	}
	for i := 0; i < 60; i++ {
		f.unblock = append(f.unblock, row{id32(rng.IntN(5)), uid16(id), at()}) // same hash under many uids
		id++
		f.signin = append(f.signin, row{id32(id), uid16(rng.IntN(5)), at()})
		id++
	}
	f.insert(t, db)
	before := db.Checksums(t)

	// Window sizes that end inside a createdAt tie check that the oldest
	// n are found by (createdAt, tokenId), whatever order the rows are
	// then listed in.
	for _, o := range []Options{
		{Now: now, MaxTokenAge: 5 * time.Second, MaxCodeAge: 3 * time.Second, MaxSessions: 20, MaxSessionsMaxAccounts: 2, MaxSessionsMaxDeletions: 50},
		{Now: now, MaxTokenAge: 5 * time.Second, MaxCodeAge: 3 * time.Second, MaxSessions: 5, MaxSessionsMaxAccounts: 100, MaxSessionsMaxDeletions: 7, MaxTokenAgeWindowSize: 9},
		{Now: now, MaxTokenAge: 5 * time.Second, MaxSessions: 5, MaxSessionsMaxAccounts: 100, MaxSessionsMaxDeletions: 7, MaxTokenAgeWindowSize: 1},
		{Now: now, MaxTokenAge: 5 * time.Second, MaxSessions: 20, MaxSessionsMaxAccounts: 2, MaxSessionsMaxDeletions: 50, MaxTokenAgeWindowSize: 37},
		{Now: now, MaxTokenAge: 5 * time.Second, MaxTokenAgeWindowSize: 100000},
	} {
		p := runPlan(t, db, o)
		exp, top := f.expect(o)
		sameRows(t, p.rows, exp)
		if !reflect.DeepEqual(p.res.TopAccounts, top) {
			t.Errorf("%+v: top accounts = %+v, model %+v", o, p.res.TopAccounts, top)
		}
		if len(p.rows) < 9 {
			t.Fatalf("only %d rows listed: the data set does not exercise the rules", len(p.rows))
		}
	}
	if after := db.Checksums(t); !reflect.DeepEqual(before, after) {
		t.Errorf("plan changed the database:\n before %v\n after  %v", before, after)
	}
}

// Rows written by another client after the snapshot began are not listed,
// even though later stages had not read their tables yet.
func TestStagesShareOneSnapshot(t *testing.T) {
	db := dbtest.New(t)
	f := newFixture()
	for i := 0; i < 3; i++ {
		f.session(100+i, 1, int64(10+i))
	}
	f.insert(t, db)
	o := Options{Now: now, MaxTokenAge: time.Hour, MaxCodeAge: time.Hour, MaxSessions: 2, MaxSessionsMaxAccounts: 10, MaxSessionsMaxDeletions: 10}
	withLate := o
	withLate.afterStage = func(stage string) {
		late := newFixture()
		late.session(900, 9, 1)
		late.token(manifest.TableAccountResetTokens, 901, 9, 1)
		late.signin = append(late.signin, row{id32(902), uid16(9), 1})
		late.insert(t, db)
	}
	p := runPlan(t, db, withLate)
	exp, _ := f.expect(o) // the model without the late rows
	sameRows(t, p.rows, exp)
	if db.Count(t, "sessionTokens") != 4 {
		t.Fatal("the late row was not inserted: the test proves nothing")
	}
}

func TestCancelStopsPlan(t *testing.T) {
	db := dbtest.New(t)
	f := newFixture()
	for i := 0; i < 50; i++ {
		f.session(i+1, i%3, int64(i))
	}
	f.insert(t, db)
	ctx, cancel := context.WithCancel(context.Background())
	w, err := manifest.Create(filepath.Join(t.TempDir(), "p.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	_, err = Plan(ctx, db.SQL, Options{Now: now, MaxTokenAge: time.Hour, MaxSessions: 1, MaxSessionsMaxAccounts: 5, MaxSessionsMaxDeletions: 5,
		afterStage: func(string) { cancel() }}, w)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	// The pool is still usable: the pinned connection was returned or dropped.
	if n := db.Count(t, "sessionTokens"); n != 50 {
		t.Fatalf("sessionTokens = %d", n)
	}
}

// TestCancelKillsRunningStatement: a statement the server is still running
// when plan is cancelled (here one waiting for a table lock, as behind a
// DDL; in production a long scan or the GROUP BY) does not outlive plan.
// Without the kill, the server would keep it, and its snapshot, after the
// client hung up.
func TestCancelKillsRunningStatement(t *testing.T) {
	db := dbtest.New(t)
	f := newFixture()
	for i := 0; i < 5; i++ {
		f.session(i+1, 1, int64(i))
	}
	f.insert(t, db)
	db.LockTableWrite(t, "sessionTokens")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := manifest.Create(filepath.Join(t.TempDir(), "p.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	done := make(chan error, 1)
	go func() {
		_, err := Plan(ctx, db.SQL, Options{Now: now, MaxTokenAge: time.Hour, MaxSessions: 1, MaxSessionsMaxAccounts: 5, MaxSessionsMaxDeletions: 5}, w)
		done <- err
	}()
	waiting := func() int {
		var n int
		if err := db.SQL.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = ? AND INFO LIKE 'SELECT uid, COUNT(*)%'", db.Name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	deadline := time.Now().Add(30 * time.Second)
	for waiting() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("plan's statement never reached the server")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("plan did not return after cancel")
	}
	// The statement is gone from the server once Plan returned.
	if n := waiting(); n != 0 {
		t.Fatalf("%d plan statements still on the server after Plan returned", n)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{
		{Now: 0},
		{Now: now, MaxTokenAge: -time.Second},
		{Now: now, MaxCodeAge: -time.Second},
		{Now: now, MaxSessions: -1},
		{Now: now, MaxTokenAgeWindowSize: -1},
	} {
		if o.Validate() == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}
