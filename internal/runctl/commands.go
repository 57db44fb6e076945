package runctl

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"prune-tokens/internal/duration"
	"prune-tokens/internal/logging"
)

// Commands lists what the control socket understands, for help and errors.
const Commands = "status, pause, resume, stop, batch-size=N, wait=DURATION, max-replica-lag=DURATION, max-load=VAR=N[,VAR=N]"

// command runs one line from the socket and returns the one-line reply:
// "ok: ..." or "error: ...". Accepted changes are logged.
func (c *Controller) command(line string) string {
	line = strings.TrimSpace(line)
	name, arg, hasArg := strings.Cut(line, "=")
	name = strings.ToLower(strings.TrimSpace(name))
	arg = strings.TrimSpace(arg)
	if line == "" {
		return "error: empty command; commands: " + Commands
	}
	if !hasArg {
		switch name {
		case "status":
			if c.o.Status != nil {
				prefix := ""
				if c.StopRequested() {
					prefix = "stopping: " + c.StopReason() + "; "
				}
				return "ok: " + prefix + logging.OneLine(c.o.Status())
			}
			return fmt.Sprintf("ok: %s; wait %s", c.State(), c.BatchWait())
		case "help":
			return "ok: commands: " + Commands
		case "pause":
			if c.socketPaused.Swap(true) {
				return "ok: already paused"
			}
			c.logf("control socket: pause")
			return "ok: pausing before the next batch"
		case "resume":
			was := c.socketPaused.Swap(false)
			if was {
				c.logf("control socket: resume")
			}
			if exists(c.o.PauseFile) {
				return fmt.Sprintf("ok: resumed on the socket, but the pause file %s still exists: still paused until it is removed", c.o.PauseFile)
			}
			if !was {
				return "ok: not paused"
			}
			return "ok: resuming"
		case "stop":
			c.stop("stop requested on the control socket")
			return "ok: stopping after the current batch"
		}
	} else {
		switch name {
		case "batch-size":
			n, err := strconv.Atoi(arg)
			if err != nil {
				return fmt.Sprintf("error: batch-size %q is not a whole number", arg)
			}
			if c.o.Limits == nil {
				return "error: batch-size cannot be changed in this run"
			}
			old, err := c.o.Limits.SetBatchSize(n)
			if err != nil {
				return "error: " + logging.OneLine(err.Error())
			}
			return c.changed("batch-size", strconv.Itoa(n), strconv.Itoa(old))
		case "wait":
			d, err := duration.Parse(arg)
			if err != nil {
				return "error: wait: " + logging.OneLine(err.Error())
			}
			old := time.Duration(c.wait.Swap(int64(d)))
			return c.changed("wait", d.String(), old.String())
		case "max-replica-lag":
			d, err := duration.Parse(arg)
			if err != nil {
				return "error: max-replica-lag: " + logging.OneLine(err.Error())
			}
			if c.o.Limits == nil {
				return "error: max-replica-lag cannot be changed in this run"
			}
			old, err := c.o.Limits.SetMaxReplicaLag(d)
			if err != nil {
				return "error: " + logging.OneLine(err.Error())
			}
			return c.changed("max-replica-lag", d.String(), old.String())
		case "max-load":
			if c.o.Limits == nil {
				return "error: max-load cannot be changed in this run"
			}
			old, err := c.o.Limits.SetMaxLoad(arg)
			if err != nil {
				return "error: max-load " + logging.OneLine(err.Error())
			}
			if arg == "" {
				arg = "none"
			}
			return c.changed("max-load", arg, old)
		}
	}
	return fmt.Sprintf("error: unknown command %q; commands: %s", truncate(line, 80), Commands)
}

func (c *Controller) changed(what, now, was string) string {
	msg := fmt.Sprintf("%s %s (was %s)", what, now, was)
	c.logf("control socket: %s", msg)
	return "ok: " + msg
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
