// Package runctl lets an operator steer a running apply without killing it:
//
//   - a pause file (--pauseFile): paused while it exists;
//
//   - a stop file (--stopFile): once it appears, the batch in flight
//     finishes and apply stops cleanly, as at --maxRuntime (exit 0, "rerun
//     to continue"). A stop file already there at Start is refused, so a
//     forgotten one does not make every rerun stop at once;
//
//   - a control socket (--controlSocket, a unix socket created with mode
//     0600): one command a line, one reply a line, "ok: ..." or
//     "error: ...".
//
// The socket's commands:
//
//	status                    the state and the caller's status line
//	pause, resume             pause before the next batch; lift that pause
//	stop                      stop cleanly after the current batch
//	batch-size=N              largest batch size (1..10000), and the next batch's
//	wait=DURATION             sleep between batches (500ms, 2s, a number of ms)
//	max-replica-lag=DURATION  replaces --maxReplicaLag
//	max-load=VAR=N[,VAR=N]    replaces --maxLoad; empty for none
//	help                      lists them
//
// For example: echo pause | socat - UNIX-CONNECT:/run/prune.sock (or
// nc -U). Each accepted change is logged through Options.Logf; a refused
// one changes nothing. A live socket at the path is refused, a stale one
// (its process gone) replaced, and anything that is not a socket left
// alone. Close removes the socket.
//
// The apply loop asks before each batch (StopRequested, and the throttler
// asks PauseReason): a stat of each file and a few atomic loads. A
// background look every 250 ms ends the run's Context when a stop file
// appears, so a stop also ends a Wait held by a throttle or a pause. See
// package throttle for the loop; the two are joined like this:
//
//	var ctl *runctl.Controller
//	thr, err := throttle.New(throttle.Config{...,
//		Pause: func() string { return ctl.PauseReason() }})
//	ctl, err = runctl.Start(runctl.Options{PauseFile: o.PauseFile,
//		StopFile: o.StopFile, Socket: o.ControlSocket, Wait: o.Wait,
//		Limits: thr, Logf: prog.logf,
//		Status: func() string { st := thr.Status(); return st.String() + "; " + st.Details() + "; " + rowsAndETA() }})
//	if err != nil { init error, exit 2 }
//	defer ctl.Close()
package runctl
