package metrics

import (
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"prune-tokens/manifest"
)

// listen returns a UDP socket on loopback and a function reading n
// datagrams from it, then checking that no more came.
func listen(t *testing.T) (string, func(n int) []string) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String(), func(n int) []string {
		t.Helper()
		var got []string
		buf := make([]byte, 65536)
		// The deadline only ends the wait for packets that never come; all
		// were written before Close returned.
		_ = pc.SetReadDeadline(time.Now().Add(10 * time.Second))
		for len(got) < n {
			k, _, err := pc.ReadFrom(buf)
			if err != nil {
				t.Fatalf("after %d of %d packets: %v\n%s", len(got), n, err, strings.Join(got, "\n"))
			}
			got = append(got, string(buf[:k]))
		}
		_ = pc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if k, _, err := pc.ReadFrom(buf); err == nil {
			t.Errorf("unexpected packet %q after %d", buf[:k], n)
		}
		return got
	}
}

func check(t *testing.T, got, want []string) {
	t.Helper()
	// One sender writes them in order; compare sorted all the same, as
	// UDP does not promise order.
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		t.Errorf("packets:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestApplyRun(t *testing.T) {
	addr, read := listen(t)
	s, err := New(Config{Addr: addr, Prefix: DefaultPrefix})
	if err != nil {
		t.Fatal(err)
	}
	s.RunStart()
	s.BatchStart("max-sessions", "sessionTokens")
	s.BatchEnd(Batch{Stage: "max-sessions", Table: "sessionTokens", Deleted: 997, Gone: 2, Skipped: 1, Unverified: 150, Devices: 40, Duration: 1500 * time.Millisecond})
	s.Throttle("wait", 500*time.Millisecond)
	s.BatchStart("max-sessions", "sessionTokens")
	s.BatchEnd(Batch{Stage: "max-sessions", Table: "sessionTokens", Duration: 20 * time.Millisecond, Err: errors.New("lock wait timeout")})
	for _, tb := range []string{"accountResetTokens", "passwordForgotTokens", "passwordChangeTokens", "sessionTokens"} {
		s.BatchStart("token-age", tb)
		s.BatchEnd(Batch{Stage: "token-age", Table: tb, Deleted: 10, Duration: 7 * time.Millisecond})
	}
	s.BatchStart("code-age", "unblockCodes")
	s.BatchEnd(Batch{Stage: "code-age", Table: "unblockCodes", Deleted: 3, Gone: 4, Duration: 5 * time.Millisecond})
	s.BatchEnd(Batch{Stage: "code-age", Table: "signinCodes", Deleted: 0, Skipped: 6, Duration: 5 * time.Millisecond})
	s.Throttle("Replication lag (replica-2)", 2*time.Second)
	s.Remaining(1234)
	s.SessionCache(Cache{Removed: 997, KeysDeleted: 3, Failed: 0})
	s.RunEnd(nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	p := "fxa-auth-server."
	want := []string{
		p + "prune-tokens.start:1|c",
		p + "limit-sessions.start:1|c",
		p + "limit-sessions.end:1|c",
		p + "limit-sessions.complete.total-deletions:997|c",
		p + "prune-tokens.already-gone.session-tokens:2|c",
		p + "prune-tokens.skipped-by-guard.session-tokens:1|c",
		p + "prune-tokens.also-deleted.unverified-tokens:150|c",
		p + "prune-tokens.also-deleted.devices:40|c",
		p + "prune-tokens.batch.duration:1500|ms",
		p + "prune-tokens.throttle.wait:500|ms",
		p + "limit-sessions.start:1|c",
		p + "limit-sessions.error:1|c",
		p + "prune-tokens.batch.duration:20|ms",
		p + "prune-tokens.complete.account-reset-tokens-deleted:10|c",
		p + "prune-tokens.batch.duration:7|ms",
		p + "prune-tokens.complete.password-forgot-tokens-deleted:10|c",
		p + "prune-tokens.batch.duration:7|ms",
		p + "prune-tokens.complete.password-change-tokens-deleted:10|c",
		p + "prune-tokens.batch.duration:7|ms",
		p + "prune-tokens.complete.session-tokens-deleted:10|c",
		p + "prune-tokens.batch.duration:7|ms",
		p + "prune-tokens.complete.unblock-codes-deleted:3|c",
		p + "prune-tokens.already-gone.unblock-codes:4|c",
		p + "prune-tokens.batch.duration:5|ms",
		// No deletion: no .complete packet, as the old tool.
		p + "prune-tokens.skipped-by-guard.sign-in-codes:6|c",
		p + "prune-tokens.batch.duration:5|ms",
		p + "prune-tokens.throttle.replication-lag-replica-2:2000|ms",
		p + "prune-tokens.rows-remaining:1234|g",
		p + "prune-tokens.session-cache.removed:997|c",
		p + "prune-tokens.session-cache.keys-deleted:3|c",
		p + "prune-tokens.end:1|c",
	}
	check(t, read(len(want)), want)
	if d := s.(*StatsD).Dropped(); d != 0 {
		t.Errorf("%d dropped", d)
	}
}

func TestFailuresAndPlan(t *testing.T) {
	addr, read := listen(t)
	s, err := New(Config{Addr: addr, Prefix: "stage"})
	if err != nil {
		t.Fatal(err)
	}
	s.LargeAccountsStart()
	s.LargeAccountsEnd(17, nil)
	s.LargeAccountsStart()
	s.LargeAccountsEnd(0, nil)
	s.LargeAccountsStart()
	s.LargeAccountsEnd(0, errors.New("gone away"))
	s.SessionCache(Cache{Failed: 12})
	s.RunEnd(errors.New("manifest refused")) // before any start: still an error
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check(t, read(9), []string{
		"stage.find-large-accounts.start:1|c",
		"stage.find-large-accounts.end:1|c",
		"stage.find-large-accounts.complete.total-accounts:17|c",
		"stage.find-large-accounts.start:1|c",
		"stage.find-large-accounts.end:1|c",
		"stage.find-large-accounts.start:1|c",
		"stage.find-large-accounts.error:1|c",
		"stage.prune-tokens.session-cache.failed:12|c",
		"stage.prune-tokens.error:1|c",
	})
	// After Close, events are dropped, not sent, and do not block.
	s.RunStart()
	if d := s.(*StatsD).Dropped(); d != 1 {
		t.Errorf("dropped %d after Close, want 1", d)
	}
}

func TestNoPrefix(t *testing.T) {
	addr, read := listen(t)
	s, err := New(Config{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	s.RunStart()
	s.Close()
	check(t, read(1), []string{"prune-tokens.start:1|c"})
}

func TestConfig(t *testing.T) {
	if s, err := New(Config{}); err != nil || s != (Nop{}) {
		t.Errorf("no address: %v, %v; want Nop", s, err)
	}
	for _, c := range []Config{
		{Addr: "statsd"}, {Addr: ":8125"}, {Addr: "statsd:0"}, {Addr: "statsd:x"}, {Addr: "statsd:70000"},
		{Addr: "statsd:8125", Prefix: "fxa auth"}, {Addr: "statsd:8125", Prefix: "a:b|c"},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		} else {
			t.Log(err)
		}
	}
}

// A host that does not resolve never fails or blocks the caller: metrics
// are dropped and counted.
func TestNeverFails(t *testing.T) {
	s, err := New(Config{Addr: "statsd.invalid:8125"})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3*queueLen; i++ {
		s.Remaining(int64(i))
	}
	// Close may give up waiting for a resolver that hangs; it returns.
	err = s.Close()
	st := s.(*StatsD)
	if st.Sent() != 0 || st.Dropped() == 0 {
		t.Errorf("sent %d, dropped %d (Close: %v)", st.Sent(), st.Dropped(), err)
	}
}

// Every table a manifest can list has the old tool's spelling.
func TestEveryManifestTableHasAName(t *testing.T) {
	for _, sec := range manifest.Sections() {
		if _, ok := tableNames[sec.Table]; !ok {
			t.Errorf("no metric name for table %s", sec.Table)
		}
	}
	if got := tableName("someNewTable"); got != "some-new-table" {
		t.Errorf("tableName(someNewTable) = %q", got)
	}
}
