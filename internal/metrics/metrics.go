// Package metrics reports what prune-tokens does to StatsD, under the old
// FxA prune tool's metric names so that existing dashboards keep working,
// plus new ones (see names.go, the one place names are made).
//
// The rest of the code calls a Sink with domain events and never sees a
// metric name. Sending never blocks the caller and never fails it: events go
// through a bounded queue to one sender goroutine writing UDP datagrams, one
// metric per datagram (as hot-shots, the old tool's client, did without
// buffering); what cannot be queued or sent is counted in Dropped.
package metrics

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cactus/go-statsd-client/v5/statsd"
)

// Environment variables read by the commands for --statsd and
// --statsdPrefix.
const (
	EnvAddr   = "PRUNE_TOKENS_STATSD"
	EnvPrefix = "PRUNE_TOKENS_STATSD_PREFIX"
)

// DefaultPrefix is the old tool's: the FxA auth-server's statsd.prefix
// default (env STATSD_PREFIX there). Dashboards built on the old tool watch
// fxa-auth-server.prune-tokens.start and so on.
const DefaultPrefix = "fxa-auth-server."

// Batch is one committed (or failed) batch of apply.
type Batch struct {
	Stage, Table string // as in the manifest: "token-age", "sessionTokens"...
	Deleted      int64  // listed rows deleted
	Gone         int64  // listed rows already gone
	Skipped      int64  // listed rows a guard kept
	Unverified   int64  // unverifiedTokens rows deleted with their sessions
	Devices      int64  // devices rows deleted with their sessions
	Duration     time.Duration
	Err          error // the batch failed for good (after its retries)
}

// Cache is one session-cache cleanup (sessioncache.Result's counts).
type Cache struct {
	Removed     int // sessions taken out of the cache
	KeysDeleted int // keys deleted because nothing was left
	Failed      int // accounts left unclean
}

// Sink receives prune-tokens' events. Implementations are safe for
// concurrent use, never block for long and never fail.
type Sink interface {
	// RunStart: apply starts deleting (its checks passed).
	RunStart()
	// RunEnd: apply ends. err == nil for success (done, nothing to do, or
	// stopped by --maxRuntime); any error otherwise, including one before
	// RunStart (refused manifest, database unreachable), so that an alert
	// on prune-tokens.error sees a cron job that cannot start.
	RunEnd(err error)
	// BatchStart comes before each batch, BatchEnd after its commit or its
	// final failure.
	BatchStart(stage, table string)
	BatchEnd(b Batch)
	// Throttle reports time spent waiting, by reason ("wait" for --wait,
	// or whatever slowed apply down).
	Throttle(reason string, d time.Duration)
	// Remaining reports the manifest rows not processed yet.
	Remaining(rows int64)
	// LargeAccountsStart and LargeAccountsEnd wrap plan's search for the
	// accounts over --maxSessions.
	LargeAccountsStart()
	LargeAccountsEnd(accounts int, err error)
	// SessionCache reports a Redis session-cache cleanup.
	SessionCache(c Cache)
	// Close sends what is queued (waiting at most about a second) and
	// releases the socket.
	Close() error
}

// Nop is a Sink that does nothing (no --statsd).
type Nop struct{}

func (Nop) RunStart()                      {}
func (Nop) RunEnd(error)                   {}
func (Nop) BatchStart(string, string)      {}
func (Nop) BatchEnd(Batch)                 {}
func (Nop) Throttle(string, time.Duration) {}
func (Nop) Remaining(int64)                {}
func (Nop) LargeAccountsStart()            {}
func (Nop) LargeAccountsEnd(int, error)    {}
func (Nop) SessionCache(Cache)             {}
func (Nop) Close() error                   { return nil }
func (Nop) String() string                 { return "off" }

// Config is --statsd and --statsdPrefix.
type Config struct {
	Addr   string // HOST:PORT; empty turns metrics off
	Prefix string // prepended to every name; a dot is added if missing
}

// New returns a Nop for an empty address, or a StatsD sink. An error means a
// malformed address or prefix (a bad flag); a host that does not resolve is
// not an error: the sink keeps trying (every 30 s) and counts what it drops.
func New(cfg Config) (Sink, error) {
	if cfg.Addr == "" {
		return Nop{}, nil
	}
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil || host == "" {
		return nil, fmt.Errorf("--statsd %q: want HOST:PORT", cfg.Addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return nil, fmt.Errorf("--statsd %q: bad port %q", cfg.Addr, port)
	}
	prefix := cfg.Prefix
	if prefix != "" {
		if err := statsd.CheckName(prefix); err != nil {
			return nil, fmt.Errorf("--statsdPrefix %q: only letters, digits, '-', '_' and '.'", prefix)
		}
		if !strings.HasSuffix(prefix, ".") {
			prefix += "."
		}
	}
	s := &StatsD{addr: cfg.Addr, prefix: prefix, queue: make(chan metric, queueLen), done: make(chan struct{})}
	go s.run()
	return s, nil
}

const (
	queueLen      = 4096
	resolveEvery  = 30 * time.Second
	closeDeadline = time.Second
)

type kind byte

const (
	counter kind = iota
	timer
	gauge
)

type metric struct {
	kind  kind
	name  string
	value int64
}

// StatsD is the Sink that sends to a StatsD server.
type StatsD struct {
	addr, prefix string
	queue        chan metric
	done         chan struct{}
	closeOnce    sync.Once
	closed       atomic.Bool
	mu           sync.RWMutex // held for reading while enqueueing, for writing to close the queue

	sentN, droppedN atomic.Int64
}

// Dropped is the number of metrics that could not be queued or sent.
func (s *StatsD) Dropped() int64 { return s.droppedN.Load() }

// Sent is the number of datagrams written.
func (s *StatsD) Sent() int64 { return s.sentN.Load() }

func (s *StatsD) String() string { return s.addr + " prefix " + strconv.Quote(s.prefix) }

func (s *StatsD) put(k kind, name string, v int64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		s.droppedN.Add(1)
		return
	}
	select {
	case s.queue <- metric{k, s.prefix + name, v}:
	default:
		s.droppedN.Add(1)
	}
}

func (s *StatsD) inc(name string, v int64) { s.put(counter, name, v) }

// incIf sends a count only when it is not zero, as the old tool did for its
// .complete.* counters.
func (s *StatsD) incIf(name string, v int64) {
	if v != 0 {
		s.put(counter, name, v)
	}
}

func (s *StatsD) run() {
	defer close(s.done)
	var c statsd.Statter
	var lastTry time.Time
	for m := range s.queue {
		if c == nil && time.Since(lastTry) >= resolveEvery {
			lastTry = time.Now()
			c, _ = statsd.NewClientWithConfig(&statsd.ClientConfig{Address: s.addr})
		}
		if c == nil {
			s.droppedN.Add(1)
			continue
		}
		var err error
		switch m.kind {
		case counter:
			err = c.Inc(m.name, m.value, 1)
		case timer:
			err = c.Timing(m.name, m.value, 1)
		case gauge:
			err = c.Gauge(m.name, m.value, 1)
		}
		if err != nil {
			s.droppedN.Add(1)
		} else {
			s.sentN.Add(1)
		}
	}
	if c != nil {
		_ = c.Close()
	}
}

// Close sends what is queued, waiting at most about a second.
func (s *StatsD) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed.Store(true)
		close(s.queue)
		s.mu.Unlock()
	})
	select {
	case <-s.done:
		return nil
	case <-time.After(closeDeadline):
		return errors.New("statsd: gave up sending the last metrics")
	}
}

func (s *StatsD) RunStart() { s.inc(PruneStart, 1) }

func (s *StatsD) RunEnd(err error) {
	if err != nil {
		s.inc(PruneError, 1)
		return
	}
	s.inc(PruneEnd, 1)
}

func (s *StatsD) BatchStart(stage, _ string) {
	if stage == StageMaxSessions {
		s.inc(LimitStart, 1)
	}
}

func (s *StatsD) BatchEnd(b Batch) {
	t := tableName(b.Table)
	if b.Stage == StageMaxSessions {
		if b.Err != nil {
			s.inc(LimitError, 1)
		} else {
			s.inc(LimitEnd, 1)
		}
		s.incIf(LimitDeletions, b.Deleted)
	} else {
		s.incIf(PruneDeleted+t+DeletedSuffix, b.Deleted)
	}
	s.incIf(Gone+t, b.Gone)
	s.incIf(Skipped+t, b.Skipped)
	s.incIf(AlsoDeleted+UnverifiedName, b.Unverified)
	s.incIf(AlsoDeleted+DevicesName, b.Devices)
	s.put(timer, BatchDuration, b.Duration.Milliseconds())
}

func (s *StatsD) Throttle(reason string, d time.Duration) {
	s.put(timer, Throttle+clean(reason), d.Milliseconds())
}

func (s *StatsD) Remaining(rows int64) { s.put(gauge, RowsRemaining, max(rows, 0)) }

func (s *StatsD) LargeAccountsStart() { s.inc(FindLargeStart, 1) }

func (s *StatsD) LargeAccountsEnd(accounts int, err error) {
	if err != nil {
		s.inc(FindLargeError, 1)
		return
	}
	s.inc(FindLargeEnd, 1)
	s.incIf(FindLargeAccounts, int64(accounts))
}

func (s *StatsD) SessionCache(c Cache) {
	s.incIf(CacheRemoved, int64(c.Removed))
	s.incIf(CacheKeys, int64(c.KeysDeleted))
	s.incIf(CacheFailed, int64(c.Failed))
}
