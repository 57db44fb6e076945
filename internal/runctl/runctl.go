package runctl

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultPollEvery is how often the pause and stop files are looked at in
// the background (the apply loop also looks before each batch).
const DefaultPollEvery = 250 * time.Millisecond

// ErrStopRequested is the cause of a Context ended by a stop request.
var ErrStopRequested = errors.New("stop requested")

// Limits are the throttler's limits the control socket may change;
// *throttle.Throttler satisfies it. Each returns the previous value.
type Limits interface {
	SetBatchSize(n int) (old int, err error)
	SetMaxReplicaLag(d time.Duration) (old time.Duration, err error)
	SetMaxLoad(spec string) (old string, err error)
}

// Options configure run control; every part is optional.
type Options struct {
	PauseFile string // paused while this file exists
	StopFile  string // stop cleanly once it appears; refused if it exists at Start
	Socket    string // unix socket for line commands (mode 0600)

	Wait   time.Duration // the sleep between batches until wait=DURATION changes it
	Limits Limits        // nil: batch-size, max-replica-lag and max-load are refused
	// Status answers the status command; nil answers with State and the
	// wait.
	Status func() string
	// Logf gets a line for each accepted change and each pause or stop
	// file noticed.
	Logf      func(format string, args ...any)
	PollEvery time.Duration // 0 = DefaultPollEvery
}

// Controller is run control for one apply. Its methods are safe from any
// goroutine; the checks the apply loop makes before each batch
// (StopRequested, PauseReason, BatchWait) cost a stat of each file and a
// few atomic loads.
type Controller struct {
	o Options

	wait         atomic.Int64 // time.Duration
	socketPaused atomic.Bool

	stopOnce   sync.Once
	stopping   chan struct{}
	stopReason atomic.Pointer[string]

	sock      *socket
	quit      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// Start checks the files, opens the control socket (refusing a path that
// is in use, or is not a socket) and starts watching. Close it when the run
// ends.
func Start(o Options) (*Controller, error) {
	if o.PollEvery <= 0 {
		o.PollEvery = DefaultPollEvery
	}
	if o.Wait < 0 {
		return nil, fmt.Errorf("wait %s is negative", o.Wait)
	}
	if o.StopFile != "" {
		if _, err := os.Stat(o.StopFile); err == nil {
			return nil, fmt.Errorf("stop file %s already exists: apply would stop before its first batch; remove it to run", o.StopFile)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("stop file %s: %w", o.StopFile, err)
		}
	}
	if o.PauseFile != "" && o.PauseFile == o.StopFile {
		return nil, fmt.Errorf("the pause file and the stop file are both %s", o.PauseFile)
	}
	c := &Controller{o: o, stopping: make(chan struct{}), quit: make(chan struct{})}
	c.wait.Store(int64(o.Wait))
	if o.Socket != "" {
		s, err := listen(o.Socket, c.logf)
		if err != nil {
			return nil, err
		}
		c.sock = s
		c.wg.Go(func() { s.serve(c.command) })
	}
	if o.PauseFile != "" || o.StopFile != "" {
		c.wg.Go(c.watch)
	}
	return c, nil
}

// Close stops watching, closes the socket and its connections and removes
// the socket file. It leaves the pause and stop files alone: they are the
// operator's.
func (c *Controller) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.quit)
		if c.sock != nil {
			err = c.sock.close()
		}
		c.wg.Wait()
	})
	return err
}

func (c *Controller) logf(format string, args ...any) {
	if c.o.Logf != nil {
		c.o.Logf(format, args...)
	}
}

// exists reports whether path names something; an unreadable path counts
// as present, so a pause is never lost to a permission error.
func exists(path string) bool {
	if path == "" {
		return false
	}
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// PauseReason says why apply is paused ("pause file X exists", "paused on
// the control socket"), or "" when it is not. It looks at the pause file
// now. Safe on a nil Controller (no run control).
func (c *Controller) PauseReason() string {
	if c == nil {
		return ""
	}
	switch {
	case exists(c.o.PauseFile):
		return "pause file " + c.o.PauseFile + " exists"
	case c.socketPaused.Load():
		return "paused on the control socket"
	}
	return ""
}

// StopRequested says whether apply should stop cleanly before its next
// batch; it looks at the stop file now.
func (c *Controller) StopRequested() bool {
	if c == nil {
		return false
	}
	if c.o.StopFile != "" && exists(c.o.StopFile) {
		c.stop("stop file " + c.o.StopFile + " appeared")
	}
	select {
	case <-c.stopping:
		return true
	default:
		return false
	}
}

// StopReason says what asked apply to stop, or "".
func (c *Controller) StopReason() string {
	if p := c.stopReason.Load(); p != nil {
		return *p
	}
	return ""
}

// Stopping is closed when a stop is requested.
func (c *Controller) Stopping() <-chan struct{} { return c.stopping }

// Context returns a context that ends when parent does or when a stop is
// requested (context.Cause is then ErrStopRequested): pass it to the
// throttler's Wait and the sleep between batches, so that a stop does not
// wait for a throttle to clear.
func (c *Controller) Context(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	go func() {
		select {
		case <-c.stopping:
			cancel(ErrStopRequested)
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(context.Canceled) }
}

// BatchWait is the sleep between batches (--wait, or as wait= set it).
func (c *Controller) BatchWait() time.Duration { return time.Duration(c.wait.Load()) }

// State is "running", "paused: REASON" or "stopping: REASON".
func (c *Controller) State() string {
	if c.StopRequested() {
		return "stopping: " + c.StopReason()
	}
	if r := c.PauseReason(); r != "" {
		return "paused: " + r
	}
	return "running"
}

func (c *Controller) stop(reason string) {
	c.stopOnce.Do(func() {
		c.stopReason.Store(&reason)
		c.logf("%s: stopping after the current batch", reason)
		close(c.stopping)
	})
}

// watch looks at the files every PollEvery: a stop file ends Context even
// while the loop is held in a throttle, and pause file changes are logged.
func (c *Controller) watch() {
	tick := time.NewTicker(c.o.PollEvery)
	defer tick.Stop()
	paused := false
	for {
		if c.o.StopFile != "" && exists(c.o.StopFile) {
			c.stop("stop file " + c.o.StopFile + " appeared")
		}
		if c.o.PauseFile != "" {
			now := exists(c.o.PauseFile)
			switch {
			case now && !paused:
				c.logf("pause file %s exists: paused before the next batch", c.o.PauseFile)
			case !now && paused:
				c.logf("pause file %s removed: resuming", c.o.PauseFile)
			}
			paused = now
		}
		select {
		case <-c.quit:
			return
		case <-tick.C:
		}
	}
}
