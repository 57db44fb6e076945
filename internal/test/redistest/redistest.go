// Package redistest gives integration tests their own key space on the real
// Redis server named by PRUNE_TOKENS_TEST_REDIS (default
// redis://127.0.0.1:6379/0): a unique key prefix whose keys are deleted when
// the test ends.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultURL is the server the tests use when PRUNE_TOKENS_TEST_REDIS is unset.
const DefaultURL = "redis://127.0.0.1:6379/0"

// URL returns the configured test server.
func URL() string {
	if v := os.Getenv("PRUNE_TOKENS_TEST_REDIS"); v != "" {
		return v
	}
	return DefaultURL
}

// Space is one test's key space.
type Space struct {
	URL    string
	Prefix string        // every key of the test starts with it
	Client *redis.Client // for setting up and inspecting keys
}

// New returns a fresh key space. Without a server it fails the test when CI
// is set (CI must never skip an integration test) and skips it otherwise.
func New(t testing.TB) *Space {
	t.Helper()
	u := URL()
	opt, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("PRUNE_TOKENS_TEST_REDIS does not parse: %v", err)
	}
	opt.DialTimeout = 3 * time.Second
	c := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		if os.Getenv("CI") != "" {
			t.Fatalf("Redis at %s not reachable (CI requires it): %v", opt.Addr, err)
		}
		t.Skipf("Redis at %s not reachable; set PRUNE_TOKENS_TEST_REDIS: %v", opt.Addr, err)
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	s := &Space{URL: u, Prefix: "pt-test-" + hex.EncodeToString(rnd[:]) + "-", Client: c}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, k := range s.Keys(t) {
			if err := c.Del(ctx, k).Err(); err != nil {
				t.Errorf("clean up Redis key %s: %v", k, err)
			}
		}
		c.Close()
	})
	return s
}

// Keys lists the keys of the space.
func (s *Space) Keys(t testing.TB) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var keys []string
	it := s.Client.Scan(ctx, 0, s.Prefix+"*", 1000).Iterator()
	for it.Next(ctx) {
		keys = append(keys, it.Val())
	}
	if err := it.Err(); err != nil {
		t.Fatalf("scan %s*: %v", s.Prefix, err)
	}
	return keys
}
