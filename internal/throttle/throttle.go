package throttle

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Defaults, as issue 11 and the README give them.
const (
	DefaultMaxReplicaLag    = time.Second
	DefaultMaxHistoryLength = 1_000_000
	DefaultMaxBatchTime     = 500 * time.Millisecond
	DefaultCheckEvery       = 250 * time.Millisecond
	DefaultCacheFor         = 100 * time.Millisecond
	DefaultReadTimeout      = 5 * time.Second
	DefaultCriticalConfirm  = time.Second
	// ResumeHistoryFraction: once throttled on history length, apply waits
	// until it is below this share of the limit, so that it does not flap
	// on and off around the limit while purge works.
	ResumeHistoryFraction = 0.8
)

// ErrCriticalLoad is returned (wrapped, naming the variables) by Wait when
// a CriticalLoad threshold was exceeded on checks at least CriticalConfirm
// apart: the caller stops cleanly (exit 3) with its checkpoint current.
var ErrCriticalLoad = errors.New("critical load")

// ErrPrimaryUnreadable is returned (wrapped, with the last read error) by
// Wait when the primary's status could not be read for PrimaryPatience: the
// database apply deletes from is gone, and holding for ever would hide it.
var ErrPrimaryUnreadable = errors.New("primary unreadable")

// Replica is one replica to watch.
type Replica struct {
	Name string  // in reasons and status: "replica-2"; "" = "replica-N" by position
	DB   *sql.DB // a pool on the replica
}

// Config sets up a Throttler. The zero value of each optional field means
// its default.
type Config struct {
	// Primary is the server apply deletes from: load and history length are
	// read there (a pool; the throttler never uses a connection holding a
	// transaction). May be nil only when MaxLoad and CriticalLoad are empty
	// and MaxHistoryLength is Off, with no heartbeat table.
	Primary  *sql.DB
	Replicas []Replica

	MaxReplicaLag time.Duration // 0 = DefaultMaxReplicaLag
	// HeartbeatTable ("db.table") reads lag from a pt-heartbeat table on each
	// replica instead of SHOW REPLICA STATUS (see the package doc).
	HeartbeatTable string

	MaxLoad      Thresholds // pause while any is exceeded
	CriticalLoad Thresholds // stop (ErrCriticalLoad) when any stays exceeded
	// MaxHistoryLength pauses while the history list length is above it;
	// 0 = DefaultMaxHistoryLength, Off = not checked.
	MaxHistoryLength int64
	// HistoryFromMetrics reads the history length from
	// information_schema.INNODB_METRICS (needs PROCESS) even where the
	// status variable exists; without it, INNODB_METRICS is used only where
	// the status variable is missing (MySQL).
	HistoryFromMetrics bool

	BatchSize    int           // largest batch size (rows); at least 1
	BatchSizeCap int           // largest SetBatchSize accepts; 0 = 10000 (the applier's MaxBatchSize)
	MaxBatchTime time.Duration // 0 = DefaultMaxBatchTime, Off = fixed batch size

	CheckEvery      time.Duration // re-check interval while throttled; 0 = DefaultCheckEvery
	CacheFor        time.Duration // reuse a passing reading this long; 0 = DefaultCacheFor, Off = every call
	ReadTimeout     time.Duration // a server that does not answer in this long throttles; 0 = DefaultReadTimeout
	CriticalConfirm time.Duration // 0 = DefaultCriticalConfirm
	// PrimaryPatience is how long the primary may stay unreadable (each
	// check holds meanwhile) before Wait gives up with
	// ErrPrimaryUnreadable; 0 = hold for ever.
	PrimaryPatience time.Duration

	// Pause, when set, is asked on every Wait; a non-empty answer (say,
	// "pause file /run/x exists") holds apply like any other reason.
	Pause func() string
	// Logf, when set, gets one line for each change of throttle state,
	// batch size or limit.
	Logf func(format string, args ...any)
}

// limits are the values an operator may change while apply runs.
type limits struct {
	maxLag       time.Duration
	maxLoad      Thresholds
	criticalLoad Thresholds
	maxHistory   int64 // ≤ 0: off
}

// statusNames are the status variables a check reads for the thresholds.
func (l limits) statusNames() []string {
	var names []string
	for _, ts := range []Thresholds{l.maxLoad, l.criticalLoad} {
		for _, t := range ts {
			if !slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, t.Name) }) {
				names = append(names, t.Name)
			}
		}
	}
	return names
}

// Throttler decides before each batch whether apply may go on, and how
// large the batch may be. Wait and Observe are meant for the one goroutine
// that runs the batches; Status, Limits and the Set methods are safe from
// any goroutine.
type Throttler struct {
	cfg       Config
	replicas  []*replica
	heartbeat string // quoted `db`.`table`, or ""

	// checking holds a token while a Wait or a background reading runs:
	// one check at a time. A channel rather than a mutex, so that a Wait
	// whose context ends while a background reading holds it (a server not
	// answering, up to ReadTimeout) returns at once.
	checking    chan struct{}
	primaryLost time.Time // first unreadable primary reading of the current spell (while checking)

	mu             sync.Mutex
	lim            limits
	sizer          *Sizer
	last           *reading // latest reading
	lastThrottled  bool
	refreshing     bool      // a background reading is under way (refresh)
	historyHeld    bool      // throttled on history: wait for 80% of the limit
	criticalSince  time.Time // first reading of the current critical streak
	metricsHistory bool      // read history from INNODB_METRICS
	clock          *primaryClock
	status         Status
	loggedKeys     []string                 // reason keys last logged
	spent          map[string]time.Duration // throttled time per reason key
	spentTotal     time.Duration
	heldSince      time.Time // start of the current throttled spell
	heldKeys       []string  // its reason keys
}

// New checks cfg and returns a Throttler. It does not touch the servers;
// call Preflight for that before the first batch.
func New(cfg Config) (*Throttler, error) {
	if cfg.MaxReplicaLag == 0 {
		cfg.MaxReplicaLag = DefaultMaxReplicaLag
	}
	if cfg.MaxHistoryLength == 0 {
		cfg.MaxHistoryLength = DefaultMaxHistoryLength
	}
	if cfg.MaxBatchTime == 0 {
		cfg.MaxBatchTime = DefaultMaxBatchTime
	}
	if cfg.CheckEvery <= 0 {
		cfg.CheckEvery = DefaultCheckEvery
	}
	if cfg.CacheFor == 0 {
		cfg.CacheFor = DefaultCacheFor
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if cfg.BatchSizeCap <= 0 {
		cfg.BatchSizeCap = 10000
	}
	if cfg.CriticalConfirm <= 0 {
		cfg.CriticalConfirm = DefaultCriticalConfirm
	}
	switch {
	case cfg.MaxReplicaLag < 0:
		return nil, fmt.Errorf("max replica lag %s is negative", cfg.MaxReplicaLag)
	case cfg.BatchSize < 1 || cfg.BatchSize > cfg.BatchSizeCap:
		return nil, fmt.Errorf("batch size %d is out of range (1..%d)", cfg.BatchSize, cfg.BatchSizeCap)
	case cfg.MaxHistoryLength < 0 && cfg.MaxHistoryLength != Off:
		return nil, fmt.Errorf("max history length %d is negative", cfg.MaxHistoryLength)
	}
	for _, ts := range []Thresholds{cfg.MaxLoad, cfg.CriticalLoad} {
		for _, th := range ts {
			if !validName(th.Name) || th.Limit < 0 {
				return nil, fmt.Errorf("load threshold %s=%d: bad name or negative limit", th.Name, th.Limit)
			}
		}
	}
	t := &Throttler{cfg: cfg, spent: map[string]time.Duration{}, metricsHistory: cfg.HistoryFromMetrics, checking: make(chan struct{}, 1),
		lim: limits{maxLag: cfg.MaxReplicaLag, maxLoad: slices.Clone(cfg.MaxLoad),
			criticalLoad: slices.Clone(cfg.CriticalLoad), maxHistory: max(0, cfg.MaxHistoryLength)},
		sizer: NewSizer(cfg.BatchSize, cfg.MaxBatchTime)}
	if cfg.HeartbeatTable != "" {
		q, err := quoteTable(cfg.HeartbeatTable)
		if err != nil {
			return nil, err
		}
		t.heartbeat = q
	}
	needPrimary := t.heartbeat != "" && len(cfg.Replicas) > 0 || len(t.lim.statusNames()) > 0 || t.lim.maxHistory > 0
	if cfg.Primary == nil && needPrimary {
		return nil, errors.New("no primary database given for the load, history length or heartbeat checks")
	}
	seen := map[string]bool{}
	for i, r := range cfg.Replicas {
		if r.DB == nil {
			return nil, fmt.Errorf("replica %d has no database", i+1)
		}
		if r.Name == "" {
			r.Name = fmt.Sprintf("replica-%d", i+1)
		}
		if seen[r.Name] {
			return nil, fmt.Errorf("two replicas are named %q", r.Name)
		}
		seen[r.Name] = true
		t.replicas = append(t.replicas, &replica{Replica: r})
	}
	t.status = Status{State: Running, BatchSize: t.sizer.Size(), Lag: -1, HistoryLength: -1}
	return t, nil
}

// quoteTable turns "db.table" into `db`.`table`, admitting plain
// identifiers only.
func quoteTable(s string) (string, error) {
	db, tbl, ok := strings.Cut(s, ".")
	if !ok || !validIdent(db) || !validIdent(tbl) {
		return "", fmt.Errorf("heartbeat table %q: want DATABASE.TABLE (letters, digits, _ and $)", s)
	}
	return "`" + db + "`.`" + tbl + "`", nil
}

func validIdent(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

func (t *Throttler) logf(format string, args ...any) {
	if t.cfg.Logf != nil {
		t.cfg.Logf(format, args...)
	}
}

// Wait returns nil when the next batch may run: at once when nothing is
// exceeded (one check, or a reading younger than CacheFor), otherwise after
// re-checking every CheckEvery until nothing is. It returns an error
// wrapping ErrCriticalLoad when a critical threshold stayed exceeded for
// CriticalConfirm, one wrapping ErrPrimaryUnreadable when the primary could
// not be read for PrimaryPatience, or ctx's error when ctx ends first (end it on a stop
// request or at the run's time limit). Call it with no transaction open.
func (t *Throttler) Wait(ctx context.Context) error {
	select {
	case t.checking <- struct{}{}:
	case <-ctx.Done():
		t.account(time.Now(), nil)
		return ctx.Err()
	}
	defer func() { <-t.checking }()
	fresh := false
	for {
		if err := ctx.Err(); err != nil {
			t.account(time.Now(), nil)
			return err
		}
		r := t.reading(ctx, fresh)
		if err := ctx.Err(); err != nil {
			t.account(time.Now(), nil)
			return err
		}
		now := time.Now()
		t.account(now, nil)
		v := t.judge(r)
		if v.log != "" {
			t.logf("%s", v.log)
		}
		if v.critical != "" {
			return fmt.Errorf("%w: %s", ErrCriticalLoad, v.critical)
		}
		switch {
		case r.primaryErr == nil:
			t.primaryLost = time.Time{}
		case t.primaryLost.IsZero():
			t.primaryLost = now
		case t.cfg.PrimaryPatience > 0 && now.Sub(t.primaryLost) >= t.cfg.PrimaryPatience:
			return fmt.Errorf("%w for %s: %v", ErrPrimaryUnreadable, now.Sub(t.primaryLost).Round(time.Second), r.primaryErr)
		}
		t.account(now, v.reasons)
		if len(v.reasons) == 0 {
			return nil
		}
		timer := time.NewTimer(t.cfg.CheckEvery)
		select {
		case <-ctx.Done():
			timer.Stop()
			t.account(time.Now(), nil)
			return ctx.Err()
		case <-timer.C:
		}
		fresh = true
	}
}

// reading returns the last reading while it is young and passed, else a
// new one.
func (t *Throttler) reading(ctx context.Context, fresh bool) *reading {
	t.mu.Lock()
	last, throttled, lim := t.last, t.lastThrottled, t.limitsLocked()
	t.mu.Unlock()
	if !fresh && last != nil && !throttled && t.cfg.CacheFor > 0 {
		if age := time.Since(last.at); age < t.cfg.CacheFor {
			if age >= t.cfg.CacheFor*3/4 {
				t.refresh()
			}
			return last
		}
	}
	r := t.read(ctx, lim)
	t.mu.Lock()
	t.last = r
	t.mu.Unlock()
	return r
}

// refresh takes a new reading in the background, once the Wait that asked
// for it has returned (one check at a time), for the Waits to come: a
// reading that passed is reused for CacheFor, and one taken once it is
// three quarters that old lets the apply loop go on without waiting for a
// check. A Wait still never decides on a reading older than CacheFor.
func (t *Throttler) refresh() {
	t.mu.Lock()
	if t.refreshing {
		t.mu.Unlock()
		return
	}
	t.refreshing = true
	t.mu.Unlock()
	go func() {
		t.checking <- struct{}{}
		defer func() { <-t.checking }()
		t.mu.Lock()
		lim, last := t.limitsLocked(), t.last
		t.mu.Unlock()
		var r *reading
		// A Wait may have read meanwhile.
		if last == nil || time.Since(last.at) >= t.cfg.CacheFor*3/4 {
			// Each server read is bounded by ReadTimeout; the reading is
			// judged, like any other, by the next Wait.
			r = t.read(context.Background(), lim)
		}
		t.mu.Lock()
		if r != nil {
			t.last = r
		}
		t.refreshing = false
		t.mu.Unlock()
	}()
}

func (t *Throttler) limitsLocked() limits {
	l := t.lim
	l.maxLoad, l.criticalLoad = slices.Clone(l.maxLoad), slices.Clone(l.criticalLoad)
	return l
}

// reason is one cause of throttling: key is stable across checks (for
// accounting and logging), text carries the values.
type reason struct{ key, text string }

// verdict is a reading judged against the limits.
type verdict struct {
	reasons  []reason
	critical string // set when critical load is confirmed
	log      string // the change of state to log, if any
}

// judge weighs r against the current limits, updates the hysteresis and
// critical streak, and publishes the status.
func (t *Throttler) judge(r *reading) verdict {
	pause := ""
	if t.cfg.Pause != nil {
		pause = t.cfg.Pause()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	lim := t.lim
	var v verdict
	add := func(key, format string, args ...any) {
		v.reasons = append(v.reasons, reason{key, fmt.Sprintf(format, args...)})
	}
	if pause != "" {
		add("paused", "%s", pause)
	}

	st := Status{Lag: -1, HistoryLength: r.history, BatchSize: t.sizer.Size(), CheckedAt: r.at}
	// Replicas, worst lag first.
	reps := slices.Clone(r.replicas)
	slices.SortStableFunc(reps, func(a, b replicaReading) int { return int(b.lag - a.lag) })
	for _, rr := range reps {
		switch {
		case rr.err != nil:
			add("replica unreadable ("+rr.name+")", "replica unreadable (%s): %s", rr.name, oneLine(rr.err.Error()))
		case rr.stopped != "":
			add("replication stopped ("+rr.name+")", "replication stopped (%s): %s", rr.name, rr.stopped)
		case rr.known:
			if rr.lag > st.Lag {
				st.Lag, st.LagReplica = rr.lag, rr.name
			}
			if rr.lag > lim.maxLag {
				add("replica lag ("+rr.name+")", "replica lag %s > %s (%s)", fmtDur(rr.lag), fmtDur(lim.maxLag), rr.name)
			}
		}
	}

	// Load.
	if r.primaryErr != nil {
		add("primary unreadable", "primary status unreadable: %s", oneLine(r.primaryErr.Error()))
	}
	for _, n := range lim.statusNames() {
		k := strings.ToLower(n)
		if val, ok := r.status[k]; ok {
			st.Load = append(st.Load, Reading{Name: n, Value: val})
		}
	}
	for _, th := range lim.maxLoad {
		k := strings.ToLower(th.Name)
		if why, bad := r.bad[k]; bad {
			add(th.Name, "%s: %s", th.Name, why)
		} else if val, ok := r.status[k]; ok && val > th.Limit {
			add(th.Name, "%s %d > %d", th.Name, val, th.Limit)
		}
	}
	var critical []string
	for _, th := range lim.criticalLoad {
		k := strings.ToLower(th.Name)
		if why, bad := r.bad[k]; bad {
			add("critical "+th.Name, "critical load %s: %s", th.Name, why)
		} else if val, ok := r.status[k]; ok && val > th.Limit {
			critical = append(critical, fmt.Sprintf("%s %d > %d", th.Name, val, th.Limit))
		}
	}
	if len(critical) == 0 {
		t.criticalSince = time.Time{}
	} else {
		if t.criticalSince.IsZero() || r.at.Before(t.criticalSince) {
			t.criticalSince = r.at
		}
		held := r.at.Sub(t.criticalSince)
		if held >= t.cfg.CriticalConfirm {
			v.critical = fmt.Sprintf("%s, exceeded on checks %s apart", strings.Join(critical, "; "), fmtDur(held))
		}
		add("critical load", "critical load %s (stopping if still exceeded %s after the first check)",
			strings.Join(critical, "; "), fmtDur(t.cfg.CriticalConfirm))
	}

	// Purge backlog, with hysteresis.
	switch {
	case lim.maxHistory <= 0:
		t.historyHeld = false
	case r.historyErr != nil:
		add("history length", "history length unreadable: %s", oneLine(r.historyErr.Error()))
	case r.history < 0:
		// Not read (the primary was unreadable: said above).
	default:
		resume := int64(float64(lim.maxHistory) * ResumeHistoryFraction)
		if r.history > lim.maxHistory || t.historyHeld && r.history >= resume {
			t.historyHeld = true
			if r.history > lim.maxHistory {
				add("history length", "history length %d > %d", r.history, lim.maxHistory)
			} else {
				add("history length", "history length %d, waiting for < %d (80%% of %d)", r.history, resume, lim.maxHistory)
			}
		} else {
			t.historyHeld = false
		}
	}

	switch {
	case v.critical != "":
		st.State = Critical
	case pause != "":
		st.State = Paused
	case len(v.reasons) > 0:
		st.State = Throttled
	default:
		st.State = Running
	}
	for _, rs := range v.reasons {
		st.Reasons = append(st.Reasons, rs.text)
	}
	// Time spent is filled in by Status from t.spent.
	t.status = st
	t.lastThrottled = len(v.reasons) > 0
	v.log = t.changeLocked(v.reasons)
	return v
}

// changeLocked returns a line to log when the set of reasons changed (not
// when only their values did), else "".
func (t *Throttler) changeLocked(rs []reason) string {
	keys := make([]string, len(rs))
	for i, r := range rs {
		keys[i] = r.key
	}
	if slices.Equal(keys, t.loggedKeys) {
		return ""
	}
	prev := t.loggedKeys
	t.loggedKeys = keys
	if len(rs) == 0 {
		if len(prev) == 0 {
			return ""
		}
		return fmt.Sprintf("throttle: clear, resuming (held %s in all so far)", fmtDur(t.spentTotal))
	}
	return "throttle: " + t.status.String()
}

// account adds the time since the previous check to each reason that held
// then; rs are the reasons from now on (nil: none, or Wait is returning).
func (t *Throttler) account(now time.Time, rs []reason) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.heldSince.IsZero() {
		d := now.Sub(t.heldSince)
		t.spentTotal += d
		for _, k := range t.heldKeys {
			t.spent[k] += d
		}
	}
	t.heldSince, t.heldKeys = time.Time{}, nil
	if len(rs) > 0 {
		t.heldSince = now
		for _, r := range rs {
			t.heldKeys = append(t.heldKeys, r.key)
		}
	}
}
