package applier

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"prune-tokens/internal/dbconn"
	"prune-tokens/internal/logging"
	"prune-tokens/internal/runctl"
	"prune-tokens/internal/throttle"
)

// governor holds apply to what the database can take and what the operator
// says: the throttler (replica lag, load, purge backlog, batch duration)
// and run control (pause and stop files, the control socket). It is asked
// before every batch, when no transaction is open.
type governor struct {
	thr      *throttle.Throttler
	ctl      *runctl.Controller
	replicas []*sql.DB
	// spent is the time held per reason already reported to metrics.
	spent map[string]time.Duration
	// runCtx ends with the run's context or when an operator asks apply to
	// stop; waits and sleeps use it, never a batch's statements.
	runCtx    context.Context
	cancelRun context.CancelFunc
}

// errStopRequested says an operator asked apply to stop (stop file or
// socket): a clean stop, like --maxRuntime.
var errStopRequested = errors.New("stop requested")

// newGovernor connects to the replicas, builds the throttler and run
// control, and runs the throttler's privilege preflight. Every error is a
// refusal: nothing was deleted yet.
func newGovernor(ctx context.Context, o Options, db *sql.DB, log func(string, ...any), rows func() string) (g *governor, err error) {
	g = &governor{spent: map[string]time.Duration{}}
	defer func() {
		if err != nil {
			g.close()
		}
	}()
	var reps []throttle.Replica
	for _, cfg := range o.Replicas {
		rdb, err := dbconn.Open(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("replica %s: %w", dbconn.Target(cfg), err)
		}
		g.replicas = append(g.replicas, rdb)
		reps = append(reps, throttle.Replica{Name: cfg.Addr, DB: rdb})
	}
	// The throttle reads zero as its default and Off as "none"; an
	// operator's zero means none.
	maxHistory, maxBatchTime := o.MaxHistoryLength, o.MaxBatchTime
	if maxHistory == 0 {
		maxHistory = throttle.Off
	} else if !throttle.HasHistoryLength(ctx, db) {
		// Holding for ever, or deleting unchecked, would both be wrong.
		return nil, fmt.Errorf("--maxHistoryLength %d: the server reports no InnoDB history list length (Innodb_history_list_length, or information_schema.INNODB_METRICS, which needs GRANT PROCESS ON *.*); grant it, or pass --maxHistoryLength 0 to not check it", maxHistory)
	}
	if maxBatchTime == 0 {
		maxBatchTime = throttle.Off
	}
	g.thr, err = throttle.New(throttle.Config{Primary: db, Replicas: reps,
		MaxReplicaLag: o.MaxReplicaLag, HeartbeatTable: o.HeartbeatTable,
		MaxLoad: o.MaxLoad, CriticalLoad: o.CriticalLoad, MaxHistoryLength: maxHistory,
		BatchSize: o.BatchSize, BatchSizeCap: MaxBatchSize, MaxBatchTime: maxBatchTime,
		// A primary that cannot be read holds apply (fail closed), but no
		// longer than a batch would retry a database it cannot reach.
		PrimaryPatience: o.Retry.budget(),
		Pause:           func() string { return g.ctl.PauseReason() }, Logf: log})
	if err != nil {
		return nil, err
	}
	// The socket's status command may come before Start returns: it reads
	// only the throttler, which is complete by now, and rows' own figures.
	thr := g.thr
	status := func() string {
		st := thr.Status()
		return rows() + "; " + st.String() + "; " + st.Details()
	}
	g.ctl, err = runctl.Start(runctl.Options{PauseFile: o.PauseFile, StopFile: o.StopFile, Socket: o.ControlSocket,
		Wait: o.Wait, Limits: g.thr, Status: status, Logf: log})
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, throttle.DefaultReadTimeout+statementSlack)
	defer cancel()
	if needs, err := g.thr.Preflight(pctx); err != nil {
		// Say how to fix it: the GRANT of each privilege that is missing.
		var grants []string
		for _, n := range needs {
			if n.Problem != "" && n.Grant != "" && strings.Contains(n.Problem, n.Privilege) {
				grants = append(grants, n.Grant+" (on "+n.Server+")")
			}
		}
		if len(grants) > 0 {
			return nil, fmt.Errorf("throttle signals: %w; to grant what is missing: %s", err, strings.Join(grants, "; "))
		}
		return nil, fmt.Errorf("throttle signals: %w", err)
	}
	g.runCtx, g.cancelRun = g.ctl.Context(ctx)
	return g, nil
}

func (g *governor) close() {
	if g == nil {
		return
	}
	if g.cancelRun != nil {
		g.cancelRun()
	}
	if g.ctl != nil {
		g.ctl.Close()
	}
	for _, r := range g.replicas {
		r.Close()
	}
}

// describeControl is the header line of the operator's controls, "" when
// none was given.
func describeControl(o Options) string {
	var parts []string
	if o.PauseFile != "" {
		parts = append(parts, "paused while "+o.PauseFile+" exists")
	}
	if o.StopFile != "" {
		parts = append(parts, "stops when "+o.StopFile+" appears")
	}
	if o.ControlSocket != "" {
		parts = append(parts, "commands on "+o.ControlSocket+" (echo help | nc -U "+o.ControlSocket+")")
	}
	return strings.Join(parts, "; ")
}

// describe is the header line of the limits in force.
func (g *governor) describe(o Options) string {
	l := g.thr.Limits()
	var parts []string
	if len(o.Replicas) > 0 {
		names := make([]string, len(o.Replicas))
		for i, c := range o.Replicas {
			names[i] = c.Addr
		}
		how := "SHOW REPLICA STATUS"
		if o.HeartbeatTable != "" {
			how = "heartbeat " + o.HeartbeatTable
		}
		parts = append(parts, fmt.Sprintf("replica lag ≤ %s (%s; %s)", l.MaxReplicaLag, strings.Join(names, ", "), how))
	}
	if len(l.MaxLoad) > 0 {
		parts = append(parts, "load "+l.MaxLoad.String())
	}
	if len(l.CriticalLoad) > 0 {
		parts = append(parts, "stop at "+l.CriticalLoad.String())
	}
	if l.MaxHistoryLength > 0 {
		parts = append(parts, fmt.Sprintf("history length ≤ %d", l.MaxHistoryLength))
	}
	if l.MaxBatchTime > 0 {
		parts = append(parts, fmt.Sprintf("batch time ≤ %s", l.MaxBatchTime))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}

// gate is asked before each batch: it returns when the batch may run, or
// errStopRequested, an error wrapping throttle.ErrCriticalLoad or
// throttle.ErrPrimaryUnreadable, errOutOfTime or ErrInterrupted. While held it logs a status line every every.
func (g *governor) gate(ctx context.Context, deadline time.Time, every time.Duration, status func()) error {
	for {
		if g.ctl.StopRequested() {
			return errStopRequested
		}
		if ctx.Err() != nil {
			return ErrInterrupted
		}
		err := g.wait(ctx, deadline, every)
		switch {
		case err == nil:
			if g.ctl.StopRequested() {
				return errStopRequested
			}
			return nil
		case errors.Is(err, throttle.ErrCriticalLoad), errors.Is(err, throttle.ErrPrimaryUnreadable):
			return err
		case g.ctl.StopRequested():
			return errStopRequested
		case ctx.Err() != nil:
			return ErrInterrupted
		case !deadline.IsZero() && !time.Now().Before(deadline):
			return errOutOfTime
		}
		// Still held after every: say so, and keep waiting.
		status()
	}
}

// wait is one throttler Wait, ended also by a stop request, the deadline,
// or every passing (so the caller can log a status line).
func (g *governor) wait(ctx context.Context, deadline time.Time, every time.Duration) error {
	wctx := g.runCtx
	if !deadline.IsZero() {
		var c context.CancelFunc
		wctx, c = context.WithDeadline(wctx, deadline)
		defer c()
	}
	if every > 0 {
		var c context.CancelFunc
		wctx, c = context.WithTimeout(wctx, every)
		defer c()
	}
	return g.thr.Wait(wctx)
}

// newlySpent returns the time held per reason since the last call, for
// metrics and the outcome.
func (g *governor) newlySpent() map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, rt := range g.thr.Status().ThrottledFor {
		if d := rt.Time - g.spent[rt.Reason]; d > 0 {
			out[rt.Reason] = d
			g.spent[rt.Reason] = rt.Time
		}
	}
	return out
}

// statusParts are the throttle's state and figures for the status line.
func (g *governor) statusParts() (string, []any) {
	st := g.thr.Status()
	attrs := []any{"state", string(st.State), "batch_size", st.BatchSize}
	if len(st.Reasons) > 0 {
		attrs = append(attrs, logging.KeyReason, strings.Join(st.Reasons, "; "))
	}
	if st.Lag >= 0 {
		attrs = append(attrs, "lag", st.Lag, "lag_replica", st.LagReplica)
	}
	for _, r := range st.Load {
		attrs = append(attrs, r.Name, r.Value)
	}
	if st.HistoryLength >= 0 {
		attrs = append(attrs, "history_length", st.HistoryLength)
	}
	state := st.String()
	if g.ctl.StopRequested() {
		state = "stopping: " + g.ctl.StopReason()
	}
	return state + "; " + st.Details(), attrs
}
