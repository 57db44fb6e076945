// Package sessioncache removes deleted sessions from FxA's Redis session
// cache.
//
// FxA keeps one string key per account, KeyPrefix + the uid in lowercase hex,
// holding a JSON object keyed by session tokenId in lowercase hex (the
// auth-server's touchSessionToken/pruneSessionTokens scripts read, rewrite and
// delete it). After apply deletes sessions, Remove takes exactly their
// tokenIds out of their accounts' objects:
//
//   - atomically with respect to the service's own writes: the new value is
//     computed here from the value read, and written by a Lua script only if
//     the key still holds that value (compared by SHA-1); if the service wrote
//     meanwhile, the account is read and computed again;
//   - the other members are kept byte for byte (see cut);
//   - the key is deleted when no member is left, and otherwise keeps its TTL;
//   - accounts are pipelined: a batch is two round trips per PipelineSize
//     accounts, plus retries;
//   - Redis errors are retried with backoff, then counted per account, never
//     panicked on; every round trip has a deadline, and after a Remove whose
//     accounts all failed for connection reasons the cleaner fails fast for
//     Cooldown before trying Redis again, so a dead Redis costs apply little.
package sessioncache

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"prune-tokens/internal/backoff"
)

// DefaultKeyPrefix is FxA's default (auth-server config
// redis.sessionTokens.prefix, env SESSIONS_REDIS_KEY_PREFIX). The uid follows
// it directly, with no separator.
const DefaultKeyPrefix = "fxa-auth-session"

// Lengths of the ids, as in the database.
const (
	UIDLen     = 16
	TokenIDLen = 32
)

// Defaults for Options.
const (
	DefaultTimeout      = 3 * time.Second
	DefaultRetries      = 3
	DefaultBackoff      = 100 * time.Millisecond
	DefaultPipelineSize = 500
	DefaultCooldown     = 30 * time.Second
	// maxConflicts bounds how often one account is recomputed because the
	// service kept writing it; past that it is counted as failed.
	maxConflicts = 20
)

// ErrUnavailable marks accounts not tried because Redis failed recently (see
// Options.Cooldown).
var ErrUnavailable = errors.New("redis unavailable recently; not tried")

// Options configures a Cleaner. Only URL is required.
type Options struct {
	// URL is redis://[user:password@]host:port/db, or rediss:// for TLS
	// (certificate verified against the system roots; SSL_CERT_FILE points
	// at a private CA). go-redis query parameters such as dial_timeout pass
	// through.
	URL string
	// KeyPrefix precedes the uid in hex; default DefaultKeyPrefix.
	KeyPrefix string
	// Timeout bounds each round trip (dial included) and sets go-redis'
	// read and write timeouts unless the URL sets them.
	Timeout time.Duration
	// Retries is how often a round trip that failed is repeated, after
	// Backoff, 2×Backoff, 4×Backoff... up to 1024×Backoff (±20%). A negative
	// value means none.
	Retries int
	Backoff time.Duration
	// PipelineSize is the number of accounts per pipeline.
	PipelineSize int
	// Cooldown is how long Remove fails fast after a call whose every
	// account failed for connection reasons; the first call after it tries
	// once, without retries. A negative value turns this off.
	Cooldown time.Duration
}

func (o Options) withDefaults() Options {
	if o.KeyPrefix == "" {
		o.KeyPrefix = DefaultKeyPrefix
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Retries == 0 {
		o.Retries = DefaultRetries
	} else if o.Retries < 0 {
		o.Retries = 0
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.PipelineSize <= 0 {
		o.PipelineSize = DefaultPipelineSize
	}
	if o.Cooldown == 0 {
		o.Cooldown = DefaultCooldown
	}
	return o
}

// Item is one account and the session tokenIds deleted from it.
type Item struct {
	UID      []byte   // 16 bytes
	TokenIDs [][]byte // 32 bytes each
}

// Result counts what a Remove did. Counts add up over calls with Add.
type Result struct {
	Accounts    int // distinct accounts asked for
	Touched     int // accounts whose key was rewritten or deleted
	Removed     int // tokenIds taken out of the cache
	KeysDeleted int // keys deleted because no session was left in them
	NotCached   int // tokenIds the cache did not hold (nothing to do)
	Failed      int // accounts left as they were: see Unclean and the error
	Retries     int // round trips repeated after a Redis error
	Conflicts   int // accounts recomputed because the service wrote meanwhile
	// Unclean holds the failed accounts with the tokenIds asked for, so that
	// a caller can report them or try again later.
	Unclean []Item
}

// Add adds o's counts to r.
func (r *Result) Add(o Result) {
	r.Accounts += o.Accounts
	r.Touched += o.Touched
	r.Removed += o.Removed
	r.KeysDeleted += o.KeysDeleted
	r.NotCached += o.NotCached
	r.Failed += o.Failed
	r.Retries += o.Retries
	r.Conflicts += o.Conflicts
	r.Unclean = append(r.Unclean, o.Unclean...)
}

// Cleaner removes sessions from the cache. It is safe for concurrent use.
type Cleaner struct {
	o      Options
	rdb    *redis.Client
	target string // redacted URL

	mu        sync.Mutex
	loaded    bool      // the CAS script is in Redis' script cache
	downUntil time.Time // fail fast until then
	down      bool      // the last call failed for connection reasons

	// afterRead, when set (by tests), runs between the read and the write
	// of each round: the window in which the service may write.
	afterRead func()
}

var quietClient sync.Once

// Open prepares a Cleaner. It does not connect: Redis trouble must not stop
// apply, so it shows up as failures of Remove (and of Ping, to warn early).
// Errors never contain the URL or its password.
func Open(opts Options) (*Cleaner, error) {
	o := opts.withDefaults()
	ro, err := parseURL(o.URL)
	if err != nil {
		return nil, err
	}
	quietClient.Do(func() {
		// go-redis logs pool trouble to stderr on its own; Remove reports
		// every failure itself.
		redis.SetLogger(silent{})
	})
	if ro.DialTimeout == 0 {
		ro.DialTimeout = o.Timeout
	}
	if ro.ReadTimeout == 0 {
		ro.ReadTimeout = o.Timeout
	}
	if ro.WriteTimeout == 0 {
		ro.WriteTimeout = o.Timeout
	}
	if ro.PoolTimeout == 0 {
		ro.PoolTimeout = o.Timeout
	}
	// Retries are ours (counted, with our backoff and deadline).
	ro.MaxRetries = -1
	ro.DialerRetries = 1
	ro.ContextTimeoutEnabled = true
	ro.PoolSize = 2
	ro.DisableIdentity = true
	ro.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return &Cleaner{o: o, rdb: redis.NewClient(ro), target: Redact(o.URL)}, nil
}

// parseURL is go-redis' ParseURL with errors that cannot echo the password
// (net/url quotes the whole URL in its errors).
func parseURL(raw string) (*redis.Options, error) {
	if raw == "" {
		return nil, errors.New("no Redis URL given")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("the Redis URL does not parse (a password with special characters must be percent-encoded)")
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, fmt.Errorf("the Redis URL must start with redis:// or rediss://, not %q", u.Scheme+"://")
	}
	ro, err := redis.ParseURL(raw)
	if err != nil {
		// go-redis names the offending part (scheme, path, option), never
		// the userinfo; strip its prefix and keep it short.
		return nil, fmt.Errorf("bad Redis URL: %s", strings.TrimPrefix(err.Error(), "redis: "))
	}
	return ro, nil
}

// Redact formats a Redis URL with its password (and any password query
// parameter) replaced by xxxxx, for messages and logs. A URL that does not
// parse is not shown at all.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(Redis URL hidden: it does not parse)"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	if q := u.Query(); len(q) > 0 {
		changed := false
		for k := range q {
			if strings.Contains(strings.ToLower(k), "pass") {
				q.Set(k, "xxxxx")
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	return u.String()
}

// Target is the redacted URL, for messages.
func (c *Cleaner) Target() string { return c.target }

// Key is the cache key of an account.
func (c *Cleaner) Key(uid []byte) string { return c.o.KeyPrefix + hex.EncodeToString(uid) }

// Close releases the connections.
func (c *Cleaner) Close() error { return c.rdb.Close() }

// Ping checks that Redis answers, within Timeout.
func (c *Cleaner) Ping(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	if err := c.rdb.Ping(pctx).Err(); err != nil {
		return fmt.Errorf("redis %s: %w", c.target, err)
	}
	return nil
}

// casScript writes a value computed from the value read, only if the key
// still holds that value: KEYS[1] is the key, ARGV[1] the SHA-1 (hex) of the
// value read, ARGV[2] the new value, or "" to delete the key. It returns 1
// when it wrote, 2 when it deleted, 0 when the value changed meanwhile (the
// caller reads again). The TTL is read and set again rather than SET KEEPTTL
// so that Redis before 6.0 works too.
const casScript = `
local cur = redis.call('GET', KEYS[1])
if not cur or redis.sha1hex(cur) ~= ARGV[1] then
  return 0
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
  return 2
end
local ttl = redis.call('PTTL', KEYS[1])
redis.call('SET', KEYS[1], ARGV[2])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
`

var cas = redis.NewScript(casScript)

// account is the work for one key.
type account struct {
	item      Item
	key       string
	drop      map[string]bool
	attempts  int // failed round trips so far
	conflicts int
	err       error // last error
	// outcome of the last read and computation
	newVal  string // "" = delete
	sum     string // SHA-1 hex of the value read
	removed int
	missing int
	// unsure is set when a write failed without an answer: it may have
	// happened. The next read tells, so that the counts stay exact.
	unsure bool
}

// done counts a write that happened.
func (a *account) done(res *Result, deleted bool) {
	res.Touched++
	res.Removed += a.removed
	res.NotCached += a.missing
	if deleted {
		res.KeysDeleted++
	}
}

// Remove takes the items' tokenIds out of their accounts' cache entries. The
// error is nil when every account was cleaned (or had nothing cached);
// otherwise it summarizes the failures, which Result counts (Failed,
// Unclean). It returns early when ctx ends, counting what was not done as
// failed.
func (c *Cleaner) Remove(ctx context.Context, items []Item) (Result, error) {
	var res Result
	accts, bad := c.group(items)
	res.Accounts = len(accts) + len(bad)
	var failed []*account
	failed = append(failed, bad...)

	retries := c.o.Retries
	c.mu.Lock()
	if c.down && c.o.Cooldown > 0 {
		if time.Now().Before(c.downUntil) {
			c.mu.Unlock()
			for _, a := range accts {
				a.err = ErrUnavailable
			}
			return c.finish(res, append(failed, accts...))
		}
		// A probe: one try, so a still-dead Redis costs one timeout.
		retries = 0
	}
	c.mu.Unlock()

	pending := accts
	for len(pending) > 0 {
		if err := ctx.Err(); err != nil {
			for _, a := range pending {
				a.err = err
			}
			failed = append(failed, pending...)
			break
		}
		var again []*account
		errored := false
		for start := 0; start < len(pending); start += c.o.PipelineSize {
			chunk := pending[start:min(start+c.o.PipelineSize, len(pending))]
			for _, a := range c.round(ctx, chunk, &res) {
				switch {
				case a.err == nil: // conflict: read again at once
					if a.conflicts > maxConflicts {
						a.err = fmt.Errorf("the service rewrote the entry %d times while it was being cleaned", a.conflicts)
						failed = append(failed, a)
						continue
					}
					again = append(again, a)
				case !isTransient(a.err) || a.attempts > retries:
					failed = append(failed, a)
				case isNoScript(a.err):
					// The script cache was flushed: load it again at once.
					again = append(again, a)
				default:
					errored = true
					again = append(again, a)
				}
			}
		}
		if errored {
			attempt := 0
			for _, a := range again {
				attempt = max(attempt, a.attempts)
			}
			res.Retries++
			wait := backoff.Jitter(backoff.Step(c.o.Backoff, c.o.Backoff<<10, attempt))
			if !backoff.Sleep(ctx, wait) {
				for _, a := range again {
					a.err = ctx.Err()
				}
				failed = append(failed, again...)
				break
			}
		}
		pending = again
	}
	c.trip(ctx, failed, res.Accounts)
	return c.finish(res, failed)
}

// trip fails Remove fast for a while after a call whose every account failed
// for connection reasons, and ends that as soon as a call gets through.
func (c *Cleaner) trip(ctx context.Context, failed []*account, accounts int) {
	if ctx.Err() != nil || accounts == 0 {
		return
	}
	dead := len(failed) == accounts
	for _, a := range failed {
		// An answer from Redis, even an error, means it is there.
		if !isTransient(a.err) || redis.HasErrorPrefix(a.err, "") {
			dead = false
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down = dead
	if dead {
		c.downUntil = time.Now().Add(c.o.Cooldown)
	}
}

func (c *Cleaner) finish(res Result, failed []*account) (Result, error) {
	if len(failed) == 0 {
		return res, nil
	}
	res.Failed = len(failed)
	for _, a := range failed {
		res.Unclean = append(res.Unclean, a.item)
	}
	first := failed[0]
	return res, fmt.Errorf("session cache %s: %d of %d accounts not cleaned; first: key %s: %w",
		c.target, len(failed), res.Accounts, first.key, first.err)
}

// group merges the items by account and checks the ids' lengths.
func (c *Cleaner) group(items []Item) (ok, bad []*account) {
	byKey := map[string]*account{}
	for _, it := range items {
		if len(it.UID) != UIDLen {
			bad = append(bad, &account{item: it, key: "(none)", err: fmt.Errorf("uid of %d bytes, want %d", len(it.UID), UIDLen)})
			continue
		}
		var wrong error
		for _, id := range it.TokenIDs {
			if len(id) != TokenIDLen {
				wrong = fmt.Errorf("tokenId of %d bytes, want %d", len(id), TokenIDLen)
				break
			}
		}
		key := c.Key(it.UID)
		if wrong != nil {
			bad = append(bad, &account{item: it, key: key, err: wrong})
			continue
		}
		a := byKey[key]
		if a == nil {
			a = &account{item: Item{UID: it.UID}, key: key, drop: map[string]bool{}}
			byKey[key] = a
			ok = append(ok, a)
		}
		for _, id := range it.TokenIDs {
			h := hex.EncodeToString(id)
			if !a.drop[h] {
				a.drop[h] = true
				a.item.TokenIDs = append(a.item.TokenIDs, id)
			}
		}
	}
	return ok, bad
}

// round reads the chunk's keys, computes their new values and writes them,
// in two pipelines. It returns the accounts to look at again, each with err
// set when a Redis error, nil when a conflict, is the reason; the others are
// done and counted in res.
func (c *Cleaner) round(ctx context.Context, chunk []*account, res *Result) (again []*account) {
	fail := func(a *account, err error) {
		a.err = err
		a.attempts++
		again = append(again, a)
	}
	// 1. Read.
	rctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	pipe := c.rdb.Pipeline()
	gets := make([]*redis.StringCmd, len(chunk))
	for i, a := range chunk {
		gets[i] = pipe.Get(rctx, a.key)
	}
	_, _ = pipe.Exec(rctx)
	cancel()
	if c.afterRead != nil {
		c.afterRead()
	}

	var writes []*account
	for i, a := range chunk {
		a.err = nil
		val, err := gets[i].Result()
		if a.unsure && err == nil || errors.Is(err, redis.Nil) {
			// Did the write whose answer was lost happen?
			wrote := a.unsure && a.newVal == "" && errors.Is(err, redis.Nil) ||
				a.unsure && a.newVal != "" && err == nil && val == a.newVal
			a.unsure = false
			if wrote {
				a.done(res, a.newVal == "")
				continue
			}
		}
		switch {
		case errors.Is(err, redis.Nil):
			// Nothing cached for the account: nothing to do.
			res.NotCached += len(a.drop)
			continue
		case err != nil:
			fail(a, fmt.Errorf("GET: %w", err))
			continue
		}
		out, removed, left, err := cut([]byte(val), a.drop)
		if err != nil {
			// Permanent: the value is not FxA's format; leave it alone.
			a.err = err
			again = append(again, a)
			continue
		}
		if len(removed) == 0 {
			res.NotCached += len(a.drop)
			continue
		}
		sum := sha1.Sum([]byte(val))
		a.sum = hex.EncodeToString(sum[:])
		a.newVal = ""
		if left > 0 {
			a.newVal = string(out)
		}
		a.removed = len(removed)
		a.missing = len(a.drop) - len(removed)
		writes = append(writes, a)
	}
	if len(writes) == 0 {
		return again
	}

	// 2. Write where the value is still the one read.
	if err := c.ensureScript(ctx); err != nil {
		for _, a := range writes {
			fail(a, fmt.Errorf("SCRIPT LOAD: %w", err))
		}
		return again
	}
	wctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	pipe = c.rdb.Pipeline()
	runs := make([]*redis.Cmd, len(writes))
	for i, a := range writes {
		runs[i] = cas.EvalSha(wctx, pipe, []string{a.key}, a.sum, a.newVal)
	}
	_, _ = pipe.Exec(wctx)
	for i, a := range writes {
		n, err := runs[i].Int()
		switch {
		case isNoScript(err):
			c.mu.Lock()
			c.loaded = false
			c.mu.Unlock()
			fail(a, err)
		case err != nil:
			a.unsure = true
			fail(a, fmt.Errorf("EVALSHA: %w", err))
		case n == 0:
			a.conflicts++
			res.Conflicts++
			again = append(again, a)
		default:
			a.done(res, n == 2)
		}
	}
	return again
}

func (c *Cleaner) ensureScript(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.loaded {
		return nil
	}
	lctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	if err := cas.Load(lctx, c.rdb).Err(); err != nil {
		return err
	}
	c.loaded = true
	return nil
}

func isNoScript(err error) bool { return redis.HasErrorPrefix(err, "NOSCRIPT") }

// isTransient says whether a failed round trip is worth repeating: anything
// but an answer from Redis that will not change (wrong type, denied by ACL,
// a value that is not FxA's).
func isTransient(err error) bool {
	if errors.Is(err, errNotObject) || errors.Is(err, context.Canceled) {
		return false
	}
	var re redis.Error
	if errors.As(err, &re) {
		for _, p := range []string{"LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "READONLY", "CLUSTERDOWN", "NOREPLICAS", "NOSCRIPT"} {
			if redis.HasErrorPrefix(err, p) {
				return true
			}
		}
		return false
	}
	return true
}

type silent struct{}

func (silent) Printf(context.Context, string, ...any) {}
