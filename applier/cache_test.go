package applier

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"prune-tokens/internal/sessioncache"
	"prune-tokens/internal/test/appliertest"
	"prune-tokens/internal/test/dbtest"
	"prune-tokens/internal/test/redistest"
	"prune-tokens/manifest"
)

// cacheAllSessions fills the Redis session cache as FxA would: one key per
// account holding every session of the account in the database.
func cacheAllSessions(t *testing.T, db *dbtest.DB, space *redistest.Space) {
	t.Helper()
	for uid, ids := range sessionsByAccount(t, db) {
		entries := map[string]any{}
		for _, id := range ids {
			entries[id] = map[string]any{"lastAccessTime": 1700000000000, "uaBrowser": "Firefox"}
		}
		b, _ := json.Marshal(entries)
		if err := space.Client.Set(context.Background(), space.Prefix+uid, b, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// sessionsByAccount reads every session in the database, by account (hex).
func sessionsByAccount(t *testing.T, db *dbtest.DB) map[string][]string {
	t.Helper()
	rows, err := db.SQL.Query("SELECT uid, tokenId FROM sessionTokens")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var uid, id []byte
		if err := rows.Scan(&uid, &id); err != nil {
			t.Fatal(err)
		}
		out[hex.EncodeToString(uid)] = append(out[hex.EncodeToString(uid)], hex.EncodeToString(id))
	}
	return out
}

// checkCacheMatchesDatabase: every account's cached sessions are exactly
// its sessions left in the database; an account with none has no key.
func checkCacheMatchesDatabase(t *testing.T, db *dbtest.DB, space *redistest.Space, accounts map[string]bool) {
	t.Helper()
	left := sessionsByAccount(t, db)
	for uid := range accounts {
		v, err := space.Client.Get(context.Background(), space.Prefix+uid).Bytes()
		want := map[string]bool{}
		for _, id := range left[uid] {
			want[id] = true
		}
		if len(want) == 0 {
			if err == nil {
				t.Errorf("account %s has no session left, but its cache key remains: %s", uid, v)
			}
			continue
		}
		if err != nil {
			t.Errorf("account %s: cache key gone although %d sessions remain: %v", uid, len(want), err)
			continue
		}
		var got map[string]json.RawMessage
		if err := json.Unmarshal(v, &got); err != nil {
			t.Fatalf("account %s: cache value is no longer JSON: %v", uid, err)
		}
		for id := range got {
			if !want[id] {
				t.Errorf("account %s: cache still holds session %s, no longer in the database", uid, id)
			}
		}
		for id := range want {
			if _, ok := got[id]; !ok {
				t.Errorf("account %s: cache lost session %s, still in the database", uid, id)
			}
		}
	}
}

// TestApplyCleansSessionCache: after apply, each account's cache entry holds
// exactly its sessions still in the database: those apply deleted and those
// already gone are removed, those a guard kept and those never listed stay,
// and a key with nothing left is deleted.
func TestApplyCleansSessionCache(t *testing.T) {
	db := dbtest.New(t)
	space := redistest.New(t)
	f := appliertest.New(t, db, 31, appliertest.Small)
	path, _ := f.Manifest(t, t.TempDir())
	cacheAllSessions(t, db, space)
	accounts := map[string]bool{}
	for uid := range sessionsByAccount(t, db) {
		accounts[uid] = true
	}
	ta := f.Listed(manifest.StageTokenAge, manifest.TableSessionTokens)
	f.AddDevice(t, ta[0].UID, ta[0].ID) // kept by the guard: stays cached
	f.Expect("sessionTokens", ta[0].ID, true)
	if f.Deps(ta[0]) > 0 {
		f.Expect("unverifiedTokens", ta[0].ID, true)
	}
	f.DeleteListed(t, f.Listed(manifest.StageMaxSessions, manifest.TableSessionTokens)[0]) // already gone: leaves the cache too

	cache, err := sessioncache.Open(sessioncache.Options{URL: space.URL, KeyPrefix: space.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	o := options(t, db, path)
	o.Cache = cache
	var out bytes.Buffer
	o.Out = &out
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	f.Check(t)
	checkCacheMatchesDatabase(t, db, space, accounts)
	sessions := section(res, manifest.StageMaxSessions, manifest.TableSessionTokens).Planned +
		section(res, manifest.StageTokenAge, manifest.TableSessionTokens).Planned
	if res.Cache == nil || res.Cache.Removed != int(sessions)-1 || res.Cache.Failed != 0 || res.Cache.KeysDeleted == 0 {
		t.Errorf("cache result %+v, want %d removed (all listed sessions but the one kept), some keys deleted", res.Cache, sessions-1)
	}
}

// TestCacheOnlyRunCleansWhatApplyCouldNot: with Redis unreachable, apply
// still deletes everything and counts every account it could not clean; a
// cache-only run later leaves the cache exactly matching the database, and
// running it again changes nothing.
func TestCacheOnlyRunCleansWhatApplyCouldNot(t *testing.T) {
	db := dbtest.New(t)
	space := redistest.New(t)
	f := appliertest.New(t, db, 32, appliertest.Small)
	path, _ := f.Manifest(t, t.TempDir())
	cacheAllSessions(t, db, space)
	accounts := map[string]bool{}
	for uid := range sessionsByAccount(t, db) {
		accounts[uid] = true
	}
	down, err := sessioncache.Open(sessioncache.Options{URL: "redis://127.0.0.1:1/0", KeyPrefix: space.Prefix, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	o := options(t, db, path)
	o.Cache = down
	var log bytes.Buffer
	o.Log = &log
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("apply must not stop for Redis: %v", err)
	}
	f.Check(t)
	if res.Cache.Failed == 0 || !strings.Contains(log.String(), "session cache") {
		t.Fatalf("failures not counted or logged: %+v\n%s", res.Cache, log.String())
	}

	up, err := sessioncache.Open(sessioncache.Options{URL: space.URL, KeyPrefix: space.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	before := db.Checksums(t)
	o = options(t, db, path)
	o.Cache = up
	o.RedisOnly = true
	for i := 0; i < 2; i++ {
		res, err = Run(context.Background(), o)
		if err != nil {
			t.Fatalf("cache-only run %d: %v", i, err)
		}
		checkCacheMatchesDatabase(t, db, space, accounts)
		if i == 1 && res.Cache.Removed != 0 {
			t.Errorf("second cache-only run removed %d entries; it must be idempotent", res.Cache.Removed)
		}
	}
	if !equalMaps(before, db.Checksums(t)) {
		t.Fatal("a cache-only run changed the database")
	}
}
