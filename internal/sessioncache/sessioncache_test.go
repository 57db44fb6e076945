package sessioncache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"prune-tokens/internal/test/faultproxy"
	"prune-tokens/internal/test/redistest"
)

func id(n int) []byte { b := make([]byte, n); _, _ = rand.Read(b); return b }

// entry is a session as FxA's touchSessionToken packs it: lastAccessTime,
// location (city, state, stateCode, country, countryCode), uaBrowser,
// uaBrowserVersion, uaOS, uaOSVersion, uaDeviceType, uaFormFactor.
func entry(last int64) string {
	return fmt.Sprintf(`[%d,["Berlin","Berlin","BE","Germany","DE"],"Firefox","120.0","Linux",null,null,null]`, last)
}

// object builds a cached value from ids (hex) in order.
func object(ids []string, val func(string) string) string {
	parts := make([]string, len(ids))
	for i, k := range ids {
		parts[i] = fmt.Sprintf("%q:%s", k, val(k))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func open(t *testing.T, sp *redistest.Space, opts Options) *Cleaner {
	t.Helper()
	opts.URL = sp.URL
	opts.KeyPrefix = sp.Prefix
	c, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func hexes(ids [][]byte) []string {
	s := make([]string, len(ids))
	for i, b := range ids {
		s[i] = hex.EncodeToString(b)
	}
	return s
}

func TestRemove(t *testing.T) {
	sp := redistest.New(t)
	ctx := context.Background()
	c := open(t, sp, Options{})
	rc := sp.Client

	// a: five sessions, two removed, with a TTL. b: both removed. other: not
	// asked about. none: nothing cached.
	uidA, uidB, uidOther, uidNone := id(16), id(16), id(16), id(16)
	a := [][]byte{id(32), id(32), id(32), id(32), id(32)}
	b := [][]byte{id(32), id(32)}
	val := func(string) string { return entry(1795600000000) }
	valA := object(hexes(a), val)
	rc.Set(ctx, c.Key(uidA), valA, 0)
	rc.PExpire(ctx, c.Key(uidA), time.Hour)
	rc.Set(ctx, c.Key(uidB), object(hexes(b), val), 0)
	valOther := object(hexes([][]byte{a[0], b[0]}), val) // the same tokenIds under another account
	rc.Set(ctx, c.Key(uidOther), valOther, 0)

	absent := id(32) // asked for, not cached
	res, err := c.Remove(ctx, []Item{
		{UID: uidA, TokenIDs: [][]byte{a[1], a[3], absent}},
		{UID: uidB, TokenIDs: b},
		{UID: uidNone, TokenIDs: [][]byte{id(32)}},
		{UID: uidA, TokenIDs: [][]byte{a[1]}}, // the same account again
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Result{Accounts: 3, Touched: 2, Removed: 4, KeysDeleted: 1, NotCached: 2}
	if res.Accounts != want.Accounts || res.Touched != want.Touched || res.Removed != want.Removed ||
		res.KeysDeleted != want.KeysDeleted || res.NotCached != want.NotCached || res.Failed != 0 {
		t.Errorf("result %+v, want %+v", res, want)
	}

	h := hexes(a)
	if got := rc.Get(ctx, c.Key(uidA)).Val(); got != object([]string{h[0], h[2], h[4]}, val) {
		t.Errorf("account a holds %s", got)
	}
	if ttl := rc.PTTL(ctx, c.Key(uidA)).Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("account a's TTL is %v after the rewrite, want it kept (≤ 1h)", ttl)
	}
	if n := rc.Exists(ctx, c.Key(uidB)).Val(); n != 0 {
		t.Errorf("account b's key still exists with nothing left in it")
	}
	if got := rc.Get(ctx, c.Key(uidOther)).Val(); got != valOther {
		t.Errorf("another account's key changed: %s", got)
	}
	if keys := sp.Keys(t); len(keys) != 2 {
		t.Errorf("keys left: %v, want a's and other's", keys)
	}

	// Again: idempotent, nothing left to do.
	res, err = c.Remove(ctx, []Item{{UID: uidA, TokenIDs: [][]byte{a[1], a[3]}}, {UID: uidB, TokenIDs: b}})
	if err != nil || res.Touched != 0 || res.Removed != 0 || res.NotCached != 4 {
		t.Errorf("second Remove: %+v, %v", res, err)
	}
}

// TestRemoveKeepsOtherEntriesByteForByte: what FxA's cjson would rewrite
// stays as it was.
func TestRemoveKeepsOtherEntriesByteForByte(t *testing.T) {
	sp := redistest.New(t)
	ctx := context.Background()
	c := open(t, sp, Options{})
	uid, gone := id(16), id(32)
	odd := `{"` + hex.EncodeToString(id(32)) + `":[1795600000000.0,12345678901234567890,[],"a\/b","\u00e9",null,1e2],` +
		`"` + hex.EncodeToString(gone) + `":[1],` +
		`"` + hex.EncodeToString(id(32)) + `":{"lastAccessTime":0.1}}`
	sp.Client.Set(ctx, c.Key(uid), odd, 0)
	if _, err := c.Remove(ctx, []Item{{UID: uid, TokenIDs: [][]byte{gone}}}); err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(odd, `"`+hex.EncodeToString(gone)+`":[1],`, "", 1)
	if got := sp.Client.Get(ctx, c.Key(uid)).Val(); got != want {
		t.Errorf("value after Remove:\n%s\nwant\n%s", got, want)
	}
	// The reason not to do it in Lua with cjson, as FxA's pruneSessionTokens
	// does: it changes the entries that stay.
	reenc := sp.Client.Eval(ctx, `return cjson.encode(cjson.decode(ARGV[1]))`, nil, want).Val()
	if reenc == want {
		t.Errorf("cjson kept %s as it was: the byte-for-byte care would be moot", want)
	}
	t.Logf("cjson would have written %s", reenc)
}

// TestRemoveWithConcurrentWriter: the service keeps writing the same keys,
// FxA's way (read, cjson decode, change one session, encode, SET), while
// Remove runs. Every write of the service survives, and no removed session.
func TestRemoveWithConcurrentWriter(t *testing.T) {
	sp := redistest.New(t)
	ctx := context.Background()
	c := open(t, sp, Options{PipelineSize: 7})

	// The service's touchSessionToken, reduced: set one session's entry in
	// the account's object, keep the TTL.
	touch := redis.NewScript(`
local tokens = {}
local v = redis.call('GET', KEYS[1])
if v then tokens = cjson.decode(v) end
tokens[ARGV[1]] = cjson.decode(ARGV[2])
redis.call('SET', KEYS[1], cjson.encode(tokens), 'KEEPTTL')
`)
	const accounts, sessions = 40, 12
	type acct struct {
		uid              []byte
		keep, drop       []string
		wrote            map[string]int64 // the service's last write per session
		removeIDs        [][]byte
		touchedAfterRead bool
	}
	var as []*acct
	var items []Item
	for i := 0; i < accounts; i++ {
		a := &acct{uid: id(16), wrote: map[string]int64{}}
		ids := make([][]byte, sessions)
		for j := range ids {
			ids[j] = id(32)
		}
		h := hexes(ids)
		a.keep, a.drop = h[:sessions/2], h[sessions/2:]
		a.removeIDs = ids[sessions/2:]
		sp.Client.Set(ctx, c.Key(a.uid), object(h, func(string) string { return entry(1) }), time.Hour)
		as = append(as, a)
		items = append(items, Item{UID: a.uid, TokenIDs: a.removeIDs})
	}

	var mu sync.Mutex
	n := int64(1000)
	write := func(a *acct) {
		mu.Lock()
		defer mu.Unlock()
		n++
		// Alternately change a kept session and add a new one.
		sess := a.keep[int(n)%len(a.keep)]
		if n%2 == 0 {
			sess = hex.EncodeToString(id(32))
		}
		if err := touch.Run(ctx, sp.Client, []string{c.Key(a.uid)}, sess, fmt.Sprintf("[%d]", n)).Err(); err != nil && !errors.Is(err, redis.Nil) {
			t.Errorf("service write: %v", err)
			return
		}
		a.wrote[sess] = n
	}
	// Deterministic conflicts: the first round of reads is followed by a
	// service write to every account in it, before Remove writes.
	first := true
	c.afterRead = func() {
		if first {
			first = false
			for _, a := range as[:7] {
				write(a)
			}
		}
	}
	// And a service writing all along.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			write(as[i%len(as)])
		}
	}()
	res, err := c.Remove(ctx, items)
	close(stop)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if res.Conflicts < 7 {
		t.Errorf("%d conflicts; the writes between read and write must cause at least 7", res.Conflicts)
	}
	if res.Removed != accounts*sessions/2 || res.Touched != accounts || res.Failed != 0 {
		t.Errorf("result %+v", res)
	}
	for _, a := range as {
		raw := sp.Client.Get(ctx, c.Key(a.uid)).Val()
		var got map[string]json.RawMessage
		if err := json.Unmarshal([]byte(raw), &got); err != nil {
			t.Fatalf("account %x: %v: %s", a.uid, err, raw)
		}
		for _, k := range a.drop {
			if _, ok := got[k]; ok {
				t.Errorf("account %x still holds removed session %s", a.uid, k)
			}
		}
		for _, k := range a.keep {
			if _, ok := got[k]; !ok {
				t.Errorf("account %x lost kept session %s", a.uid, k)
			}
		}
		for k, v := range a.wrote {
			if string(got[k]) != fmt.Sprintf("[%d]", v) {
				t.Errorf("account %x session %s holds %s, the service last wrote [%d]", a.uid, k, got[k], v)
			}
		}
		if ttl := sp.Client.PTTL(ctx, c.Key(a.uid)).Val(); ttl <= 0 {
			t.Errorf("account %x lost its TTL", a.uid)
		}
	}
	t.Logf("%d service writes during Remove; %+v", n-1000, res)
}

func TestRemoveLeavesWhatItCannotRead(t *testing.T) {
	sp := redistest.New(t)
	ctx := context.Background()
	c := open(t, sp, Options{})
	notJSON, hash, fine := id(16), id(16), id(16)
	tok := id(32)
	sp.Client.Set(ctx, c.Key(notJSON), "not json "+hex.EncodeToString(tok), 0)
	sp.Client.HSet(ctx, c.Key(hash), hex.EncodeToString(tok), "1")
	sp.Client.Set(ctx, c.Key(fine), object(hexes([][]byte{tok}), func(string) string { return "1" }), 0)
	res, err := c.Remove(ctx, []Item{
		{UID: notJSON, TokenIDs: [][]byte{tok}},
		{UID: hash, TokenIDs: [][]byte{tok}},
		{UID: fine, TokenIDs: [][]byte{tok}},
		{UID: id(15), TokenIDs: [][]byte{tok}},      // bad uid
		{UID: id(16), TokenIDs: [][]byte{tok[:31]}}, // bad tokenId
	})
	if err == nil || res.Failed != 4 || len(res.Unclean) != 4 || res.KeysDeleted != 1 || res.Retries != 0 {
		t.Fatalf("Remove: %+v, %v; want 4 failed, no retries, fine's key deleted", res, err)
	}
	t.Log(err)
	if v := sp.Client.Get(ctx, c.Key(notJSON)).Val(); v != "not json "+hex.EncodeToString(tok) {
		t.Errorf("a value that is not JSON was changed: %q", v)
	}
	if v := sp.Client.HGetAll(ctx, c.Key(hash)).Val(); len(v) != 1 {
		t.Errorf("a hash was changed: %v", v)
	}
}

// freePort returns a loopback address nothing listens on.
func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// within fails the test if f does not return in a generous bound: it
// guards against blocking forever, not against slowness.
func within[T any](t *testing.T, d time.Duration, f func() T) T {
	t.Helper()
	ch := make(chan T, 1)
	go func() { ch <- f() }()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("still blocked after %s", d)
		panic("unreachable")
	}
}

type outcome struct {
	res Result
	err error
}

func TestRemoveRedisDown(t *testing.T) {
	ctx := context.Background()
	items := []Item{{UID: id(16), TokenIDs: [][]byte{id(32)}}, {UID: id(16), TokenIDs: [][]byte{id(32), id(32)}}}

	t.Run("refused", func(t *testing.T) {
		c, err := Open(Options{URL: "redis://:s3cret-pw@" + freePort(t) + "/0", Backoff: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		o := within(t, time.Minute, func() outcome { r, err := c.Remove(ctx, items); return outcome{r, err} })
		if o.err == nil || o.res.Failed != 2 || len(o.res.Unclean) != 2 || o.res.Retries != DefaultRetries {
			t.Fatalf("Remove with Redis down: %+v, %v; want 2 failed after %d retries", o.res, o.err, DefaultRetries)
		}
		if strings.Contains(o.err.Error(), "s3cret-pw") {
			t.Errorf("error shows the password: %v", o.err)
		}
		t.Log(o.err)
		// Within the cooldown, the next call does not try.
		o = within(t, time.Minute, func() outcome { r, err := c.Remove(ctx, items); return outcome{r, err} })
		if !errors.Is(o.err, ErrUnavailable) || o.res.Failed != 2 || o.res.Retries != 0 {
			t.Fatalf("Remove within the cooldown: %+v, %v; want ErrUnavailable", o.res, o.err)
		}
	})

	t.Run("hung", func(t *testing.T) {
		// A server that accepts and never answers.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		var conns []net.Conn
		var mu sync.Mutex
		go func() {
			for {
				cn, err := l.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns = append(conns, cn)
				mu.Unlock()
			}
		}()
		defer func() {
			mu.Lock()
			for _, cn := range conns {
				cn.Close()
			}
			mu.Unlock()
		}()
		c, err := Open(Options{URL: "redis://" + l.Addr().String() + "/0", Timeout: 200 * time.Millisecond, Retries: 1, Backoff: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		o := within(t, time.Minute, func() outcome { r, err := c.Remove(ctx, items); return outcome{r, err} })
		if o.err == nil || o.res.Failed != 2 || o.res.Retries != 1 {
			t.Fatalf("Remove with a hung Redis: %+v, %v", o.res, o.err)
		}
		t.Log(o.err)
	})

	t.Run("comes back", func(t *testing.T) {
		sp := redistest.New(t)
		c := open(t, sp, Options{Cooldown: time.Nanosecond})
		uid, tok := id(16), id(32)
		sp.Client.Set(ctx, c.Key(uid), object(hexes([][]byte{tok}), func(string) string { return "1" }), 0)
		// Pretend the last call found Redis dead: after the cooldown the
		// next one tries (once) and gets through.
		c.down, c.downUntil = true, time.Now()
		res, err := c.Remove(ctx, []Item{{UID: uid, TokenIDs: [][]byte{tok}}})
		if err != nil || res.KeysDeleted != 1 || c.down {
			t.Fatalf("Remove after the cooldown: %+v, %v (down %v)", res, err, c.down)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		c, err := Open(Options{URL: "redis://" + freePort(t) + "/0"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		o := within(t, time.Minute, func() outcome { r, err := c.Remove(cctx, items); return outcome{r, err} })
		if !errors.Is(o.err, context.Canceled) || o.res.Failed != 2 {
			t.Fatalf("Remove with a cancelled context: %+v, %v", o.res, o.err)
		}
	})
}

func TestOpenAndRedactNeverShowThePassword(t *testing.T) {
	const pw = "pa55-W0rd"
	for _, u := range []string{
		"redis://user:" + pw + "@host:6379/0",
		"rediss://:" + pw + "@host:6380/2",
		"redis://:" + pw + "@ho st:6379/0",        // does not parse
		"redis://:" + pw + "%zz@host:6379/0",      // bad escape
		"redis://:" + pw + "@host:6379/x",         // bad db
		"redis://:" + pw + "@host:6379/0?bogus=1", // unknown option
		"http://:" + pw + "@host:6379/0",          // wrong scheme
		"redis://host:6379/0?password=" + pw,
	} {
		r := Redact(u)
		if strings.Contains(r, pw) {
			t.Errorf("Redact(%q) = %q", u, r)
		}
		_, err := Open(Options{URL: u})
		if err != nil && strings.Contains(err.Error(), pw) {
			t.Errorf("Open(%q): %v", u, err)
		}
		t.Logf("%s -> %s; %v", u, r, err)
	}
	if r := Redact("rediss://u:" + pw + "@h:6380/1"); r != "rediss://u:xxxxx@h:6380/1" {
		t.Errorf("Redact = %q", r)
	}
	c, err := Open(Options{URL: "rediss://:" + pw + "@127.0.0.1:6380/1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.rdb.Options().TLSConfig == nil || c.rdb.Options().Password != pw || c.rdb.Options().DB != 1 {
		t.Errorf("rediss:// URL: TLS %v, DB %d", c.rdb.Options().TLSConfig != nil, c.rdb.Options().DB)
	}
	if _, err := Open(Options{}); err == nil {
		t.Error("Open without a URL succeeded")
	}
}

// TestRemoveRecovers: a connection cut between read and write, and a
// flushed script cache, cost a retry each, and the result is exact.
func TestRemoveRecovers(t *testing.T) {
	sp := redistest.New(t)
	ctx := context.Background()
	opt, err := redis.ParseURL(sp.URL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := faultproxy.Start(opt.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := Open(Options{URL: fmt.Sprintf("redis://%s/%d", p.Addr(), opt.DB), KeyPrefix: sp.Prefix, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	var items []Item
	for i := 0; i < 30; i++ {
		uid, keep, drop := id(16), id(32), id(32)
		sp.Client.Set(ctx, c.Key(uid), object(hexes([][]byte{keep, drop}), func(string) string { return "[1]" }), 0)
		items = append(items, Item{UID: uid, TokenIDs: [][]byte{drop}})
	}
	// Redis goes away between a read and its write, and comes back while
	// the next read fails: two retries.
	round := 0
	c.afterRead = func() {
		round++
		switch round {
		case 1:
			p.Refuse(true)
			p.CutAll()
		case 2:
			p.Refuse(false)
		}
	}
	res, err := c.Remove(ctx, items[:10])
	if err != nil || res.Removed != 10 || res.Touched != 10 || res.Retries != 2 {
		t.Fatalf("Remove across an outage: %+v, %v; want 10 removed after 2 retries", res, err)
	}

	// The script cache is flushed between a read and its write: the script
	// is loaded again, at once.
	round = 0
	c.afterRead = func() {
		round++
		if round == 1 {
			if err := sp.Client.ScriptFlush(ctx).Err(); err != nil {
				t.Error(err)
			}
		}
	}
	res, err = c.Remove(ctx, items[10:15])
	if err != nil || res.Removed != 5 || res.Retries != 0 || round != 2 {
		t.Fatalf("Remove across a script flush: %+v, %v, %d rounds; want 5 removed in 2 rounds", res, err, round)
	}
	if ok := sp.Client.ScriptExists(ctx, cas.Hash()).Val(); len(ok) != 1 || !ok[0] {
		t.Errorf("the script was not loaded again")
	}

	// Random cuts, some after a command reached Redis before its answer was
	// lost: the end state is exact, and so are the counts (a write whose
	// answer was lost is found done by the next read).
	c.afterRead = nil
	p.SetPolicy(faultproxy.Policy{Prob: 0.3, Seed: 7})
	c.o.Retries = 50
	c.o.PipelineSize = 2
	res, err = c.Remove(ctx, items[15:])
	if err != nil || res.Removed != 15 || res.NotCached != 0 || res.Retries == 0 {
		t.Fatalf("Remove with random cuts: %+v, %v; want 15 removed, after retries", res, err)
	}
	t.Logf("random cuts: %d cuts, %+v", p.Cuts(), res)
	for _, it := range items {
		v := sp.Client.Get(ctx, c.Key(it.UID)).Val()
		if strings.Contains(v, hex.EncodeToString(it.TokenIDs[0])) || strings.Count(v, ":") != 1 {
			t.Errorf("account %x holds %s", it.UID, v)
		}
	}
}

// TestLeastPrivilege: the ACL the README documents is enough.
func TestLeastPrivilege(t *testing.T) {
	sp := redistest.New(t)
	ctx := context.Background()
	user, pw := "pt-test-"+hex.EncodeToString(id(4)), hex.EncodeToString(id(12))
	acl := []any{"ACL", "SETUSER", user, "on", ">" + pw, "~" + sp.Prefix + "*",
		"+get", "+evalsha", "+script|load", "+ping", "+pttl", "+set", "+pexpire", "+del"}
	if err := sp.Client.Do(ctx, acl...).Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Client.Do(context.Background(), "ACL", "DELUSER", user) })
	opt, err := redis.ParseURL(sp.URL)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Open(Options{URL: fmt.Sprintf("redis://%s:%s@%s/%d", user, pw, opt.Addr, opt.DB), KeyPrefix: sp.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	uid, keep, drop, alone := id(16), id(32), id(32), id(16)
	sp.Client.Set(ctx, c.Key(uid), object(hexes([][]byte{keep, drop}), func(string) string { return "[1]" }), time.Hour)
	sp.Client.Set(ctx, c.Key(alone), object(hexes([][]byte{drop}), func(string) string { return "[1]" }), 0)
	res, err := c.Remove(ctx, []Item{{UID: uid, TokenIDs: [][]byte{drop}}, {UID: alone, TokenIDs: [][]byte{drop}}})
	if err != nil || res.Removed != 2 || res.KeysDeleted != 1 {
		t.Fatalf("Remove as %s: %+v, %v", user, res, err)
	}
	// A key outside the prefix is out of reach, and says so.
	c2, err := Open(Options{URL: fmt.Sprintf("redis://%s:%s@%s/%d", user, pw, opt.Addr, opt.DB), KeyPrefix: "elsewhere-"})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if res, err := c2.Remove(ctx, []Item{{UID: uid, TokenIDs: [][]byte{drop}}}); err == nil || res.Failed != 1 || res.Retries != 0 {
		t.Errorf("Remove outside the ACL's keys: %+v, %v", res, err)
	} else {
		t.Log(err)
	}
}
