package applier

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"prune-tokens/internal/logging"
)

// ProgressMode chooses how apply shows progress on its log writer.
type ProgressMode int

const (
	ProgressAuto  ProgressMode = iota // a bar on a terminal, status lines otherwise
	ProgressBar                       // always a bar
	ProgressLines                     // a status line every StatusEvery
	ProgressOff                       // nothing but the start and end
)

// progress reports rows done while apply runs: a bar on a terminal (w),
// otherwise a status line on the logger every so often.
type progress struct {
	log       *slog.Logger
	w         io.Writer
	bar       *progressbar.ProgressBar
	every     time.Duration
	verb      string
	start     time.Time
	last      time.Time
	startRows int64
	total     int64
	// extra adds the throttle's state and figures to each status line.
	extra func() (string, []any)
	// last* are the latest figures, for status requests from other
	// goroutines (the control socket).
	lastMu     sync.Mutex
	lastDone   int64
	lastCounts Counts
}

func newProgress(log *slog.Logger, w io.Writer, mode ProgressMode, every time.Duration, verb string, startRows, total int64) *progress {
	now := time.Now()
	p := &progress{log: log, w: w, every: every, verb: verb, start: now, last: now, startRows: startRows, total: total}
	if mode == ProgressAuto {
		mode = ProgressLines
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			mode = ProgressBar
		}
	}
	switch mode {
	case ProgressBar:
		desc := verb
		if startRows > 0 {
			desc = fmt.Sprintf("%s (from row %d)", verb, startRows)
		}
		// The bar counts this run's rows, so its rate and ETA are honest
		// after a resume.
		p.bar = progressbar.NewOptions64(total-startRows,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(desc),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("rows"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionSetRenderBlankState(true),
		)
	case ProgressOff:
		p.every = 0
	}
	return p
}

// update is called after each batch with the rows done so far (resumed rows
// included) and the counters over the whole manifest.
func (p *progress) update(done int64, c Counts) {
	p.lastMu.Lock()
	p.lastDone, p.lastCounts = done, c
	p.lastMu.Unlock()
	if p.bar != nil {
		_ = p.bar.Set64(done - p.startRows)
		return
	}
	if p.every <= 0 || time.Since(p.last) < p.every {
		return
	}
	p.last = time.Now()
	msg, attrs := p.status(done, c)
	p.log.Info(msg, attrs...)
}

// status is the one-line summary for logs, and its fields.
func (p *progress) status(done int64, c Counts) (string, []any) {
	msg, attrs := p.base(done, c)
	if p.extra != nil {
		m, a := p.extra()
		msg += "; " + m
		attrs = append(attrs, a...)
	}
	return msg, attrs
}

// base is the status line without the throttle's part.
func (p *progress) base(done int64, c Counts) (string, []any) {
	pct := 100.0
	if p.total > 0 {
		pct = 100 * float64(done) / float64(p.total)
	}
	el := time.Since(p.start)
	rate := 0.0
	if el > 0 {
		rate = float64(done-p.startRows) / el.Seconds()
	}
	eta := "unknown"
	if rate > 0 {
		eta = time.Duration(float64(p.total-done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	msg := fmt.Sprintf("%s: %d/%d rows (%.1f%%), %.0f rows/s, ETA %s; deleted %d, already gone %d, skipped by guard %d",
		p.verb, done, p.total, pct, rate, eta, c.Deleted, c.Gone, c.Skipped)
	attrs := []any{logging.KeyRows, done, logging.KeyTotal, p.total, logging.KeyRate, int64(rate), logging.KeyETA, eta,
		logging.KeyDeleted, c.Deleted, logging.KeyGone, c.Gone, logging.KeySkipped, c.Skipped}
	return msg, attrs
}

// latest is the status line of the latest figures, without the throttle's
// part; any goroutine may ask.
func (p *progress) latest() string {
	p.lastMu.Lock()
	done, c := p.lastDone, p.lastCounts
	p.lastMu.Unlock()
	if done < p.startRows {
		done = p.startRows
	}
	msg, _ := p.base(done, c)
	return msg
}

// held logs a status line while apply is held before a batch (the bar, if
// any, is left as it is: it shows no state).
func (p *progress) held(done int64, c Counts) {
	if p.bar != nil {
		return
	}
	p.last = time.Now()
	msg, attrs := p.status(done, c)
	p.log.Info(msg, attrs...)
}

// warn logs a warning without tearing the bar.
func (p *progress) warn(msg string, args ...any) {
	p.clearBar()
	p.log.Warn(msg, args...)
}

// info logs a line without tearing the bar.
func (p *progress) info(msg string, args ...any) {
	p.clearBar()
	p.log.Info(msg, args...)
}

func (p *progress) clearBar() {
	if p.bar != nil {
		_ = p.bar.Clear()
	}
}

// finish ends the bar, leaving the line for the final table.
func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Exit()
		fmt.Fprintln(p.w)
	}
}
