// Package throttle decides, before each batch apply deletes, whether the
// database can take it, and how large it may be. It watches replica lag,
// load and the purge backlog on demand (no background polling), holds the
// batch while any limit is exceeded or any signal cannot be read (fail
// closed), names every reason at once, and shrinks batches that take too
// long.
//
// It learns from gh-ost's throttler (reasons, critical load checked twice,
// limits changed at run time), pt-archiver's --check-slave-lag,
// pt-online-schema-change's --max-load/--critical-load and Vitess's tablet
// throttler (a reading reused for a short while). Unlike gh-ost it reports
// every reason, not the first, and reads when batches ask (a reading that
// passed is taken again in the background once it is 3/4 CacheFor old,
// while batches go on), never on a timer, so a decision is never older
// than CacheFor.
//
// # Signals
//
//   - Replica lag, per replica (Config.Replicas), the worst counting: by
//     default Seconds_Behind_Master from SHOW REPLICA STATUS (SHOW SLAVE
//     STATUS on servers that only know that; of several channels the worst;
//     on MariaDB the default connection). Whole seconds only.
//   - With Config.HeartbeatTable "db.table": a pt-heartbeat table read on
//     each replica, to the microsecond (see Heartbeat table below).
//   - Lag NULL (replication stopped: STOP SLAVE, STOP SLAVE SQL_THREAD, an
//     SQL error), an empty SHOW REPLICA STATUS (not a replica), a missing
//     heartbeat row, a refused read or no answer within ReadTimeout (5 s):
//     held, with that reason, until it reads again.
//   - Load: MaxLoad thresholds on any global status variables
//     ("Threads_running=25,Threads_connected=500", ParseThresholds), held
//     while any value is above its limit. CriticalLoad: above on every check
//     for CriticalConfirm (1 s; at least two checks, the first and the last
//     a second apart): Wait returns ErrCriticalLoad. While unconfirmed it
//     holds like max load, so nothing is deleted while it is exceeded.
//   - Purge backlog: held while InnoDB's history list length
//     (Innodb_history_list_length from the same SHOW GLOBAL STATUS; where
//     that variable does not exist, as on MySQL, or with
//     Config.HistoryFromMetrics, trx_rseg_history_len from
//     information_schema.INNODB_METRICS) is above MaxHistoryLength
//     (1,000,000); once held, until it is below 80% of it.
//   - Batch duration: see Sizer. MaxBatchTime (500ms).
//   - Config.Pause: an operator's pause (runctl), shown and accounted like a
//     limit.
//
// # Heartbeat table
//
// Lag = the primary's clock now - ts of the primary's row (server_id = the
// primary's @@server_id), read on each replica. The primary's clock is
// estimated from one SELECT UTC_TIMESTAMP(6) a minute, so apply's host
// clock need not be in sync with it. The schema pt-heartbeat
// --create-table makes serves; only these columns are read:
//
//	CREATE TABLE heartbeat (
//	  ts        varchar(26)  NOT NULL,  -- UTC 'YYYY-MM-DDTHH:MM:SS.ffffff', or DATETIME(6) holding UTC
//	  server_id int unsigned NOT NULL PRIMARY KEY
//	);
//
// It must be written on the primary, in UTC, several times a second:
// pt-heartbeat --update --utc --interval 0.1 -D db --table heartbeat, or
// REPLACE INTO db.heartbeat (ts, server_id) VALUES (UTC_TIMESTAMP(6),
// @@server_id) from any scheduler. The reading includes the writer's
// interval, so it errs high, on the safe side.
//
// # How the apply loop calls it
//
// Build it once the database is connected, run Preflight before the first
// delete (its error goes out as an init error, exit 2), then, with no
// transaction open:
//
//	thr, err := throttle.New(throttle.Config{Primary: db, Replicas: reps,
//		MaxLoad: load, CriticalLoad: crit, BatchSize: o.BatchSize,
//		Pause: func() string { return ctl.PauseReason() }, Logf: prog.logf})
//	ctl, err := runctl.Start(... Limits: thr ...) // see package runctl
//	if _, err := thr.Preflight(ctx); err != nil { return initErr }
//	runCtx, cancel := ctl.Context(ctx) // ends on a stop request too
//	defer cancel()
//	for more rows {
//		if ctl.StopRequested() { stop cleanly: exit 0, "rerun to continue" }
//		if err := thr.Wait(runCtx); err != nil {
//			switch {
//			case errors.Is(err, throttle.ErrCriticalLoad): stop, exit 3 (checkpoint current)
//			case ctl.StopRequested(): stop cleanly, exit 0
//			case deadline passed: --maxRuntime, exit 0
//			default: interrupted, exit 3
//			}
//		}
//		n := thr.BatchSize()          // rows for this batch
//		start := time.Now()
//		... SELECT FOR UPDATE, DELETE, COMMIT of up to n rows ...
//		thr.Observe(rowsInBatch, time.Since(start)) // statements to commit, not the wait
//		sleep ctl.BatchWait() on runCtx
//	}
//	outcome: thr.Status().Spent() // "throttled 42s: replica lag (replica-2) 30s, ..."
//
// The status line shows thr.Status().String() (state and every reason) and
// Details() (batch size, lag, load, history length) beside rows/s and ETA.
// Hand thr to runctl as its Limits: batch-size=, max-replica-lag= and
// max-load= then change it while Wait and the batches run.
//
// Give Primary its own pool or one with at least two idle connections, so
// a check does not dial: the pinned connection holding the named lock is
// not used. Replica pools need a DSN timeout= (connect) for a dead host to
// count as unreadable quickly; reads are bounded by ReadTimeout.
//
// # What it costs the servers
//
// A check sends, concurrently: one SHOW GLOBAL STATUS ... WHERE
// Variable_name IN (...) to the primary for all load variables and the
// history length together; on MySQL one more single-row SELECT from
// INNODB_METRICS; one SHOW REPLICA STATUS (an in-memory read) or one
// primary-key SELECT of the heartbeat row per replica: each a fraction of
// a millisecond on loopback (docs/benchmarks.md), though SHOW GLOBAL STATUS
// grows with connections (the server sums every connection's counters). A
// reading that passed
// is reused for CacheFor (100ms), and taken again in the background once
// it is 75ms old, so even at batch size 1 the servers see at most about
// thirteen checks a second, and the apply loop waits for a check only
// when a reading got older than CacheFor without a Wait asking (the first
// batch, or after a slow one) or while held. While held, one check each CheckEvery
// (250ms). Preflight runs each read once. Heartbeat mode adds one SELECT
// @@server_id, UTC_TIMESTAMP(6) on the primary a minute.
//
// # Privileges
//
//   - Load and Innodb_history_list_length (SHOW GLOBAL STATUS): none.
//   - History length from INNODB_METRICS (MySQL, or HistoryFromMetrics):
//     GRANT PROCESS ON *.* on the primary.
//   - Replica lag from SHOW REPLICA STATUS, on each replica: MariaDB 10.5.9
//     and later GRANT SLAVE MONITOR ON *.* (alias REPLICA MONITOR); MariaDB
//     10.5.2 to 10.5.8 REPLICATION SLAVE ADMIN; MariaDB before 10.5 and
//     MySQL REPLICATION CLIENT.
//   - Heartbeat lag: GRANT SELECT ON db.heartbeat, on each replica (granted
//     on the primary, it replicates).
//
// Preflight lists each need with the GRANT for the connected account and
// says which are missing. Global privileges count from login, so after
// granting, start apply again.
package throttle
