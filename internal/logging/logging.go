// Package logging builds the *slog.Logger every command logs through
// (--logFormat): "text", the default, prints each message as the plain line
// the tool has always printed (no time, no level, no fields); "json" prints
// one JSON object per line with time, level, msg and the fields.
//
// Both redact: a registered secret (a DSN's or Redis URL's password) never
// reaches the output, in the message or any field, and as a safety net any
// password inside something shaped like a go-sql-driver DSN
// (user:PASS@tcp(...)) or a URL (scheme://user:PASS@host) is masked too. The
// discipline stays: log dbconn.Redact / sessioncache.Redact forms, never a
// raw DSN, and no session tokenId beyond what the manifest holds.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
)

// Format is a --logFormat value.
type Format string

const (
	Text Format = "text"
	JSON Format = "json"
)

// FlagUsage describes --logFormat for the commands' help.
const FlagUsage = "log lines on stderr: text (plain lines) or json (one JSON object per line: time, level, msg, fields)"

// ParseFormat reads a --logFormat value; "" is Text.
func ParseFormat(s string) (Format, error) {
	switch Format(strings.ToLower(strings.TrimSpace(s))) {
	case "", Text:
		return Text, nil
	case JSON:
		return JSON, nil
	}
	return "", fmt.Errorf("--logFormat %q: want text or json", s)
}

// Field names the commands use, so the same thing has the same key in every
// JSON line.
const (
	KeyRows     = "rows"    // rows done so far (or in a batch)
	KeyTotal    = "total"   // rows in the manifest
	KeyBatch    = "batch"   // batch number of this run
	KeyStage    = "stage"   // max-sessions, token-age, code-age
	KeyTable    = "table"   // FxA table
	KeyDeleted  = "deleted" // rows deleted
	KeyGone     = "gone"    // rows already gone
	KeySkipped  = "skipped" // rows kept by a guard
	KeyRate     = "rows_per_s"
	KeyETA      = "eta"
	KeyReason   = "reason"   // why apply waits or stops
	KeyAttempt  = "attempt"  // retry number
	KeyAttempts = "attempts" // retries allowed
	KeyDelay    = "delay"    // wait before the next attempt
	KeyError    = "error"
)

// Secrets is a set of strings never to print. It may grow after the logger
// is built (the DSN is parsed after the flags), and is safe for concurrent
// use.
type Secrets struct {
	mu  sync.Mutex
	all []string
	rep atomic.Pointer[strings.Replacer]
}

// Add registers secrets; empty strings are ignored.
func (s *Secrets) Add(secrets ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range secrets {
		if x != "" {
			s.all = append(s.all, x, mask)
		}
	}
	s.rep.Store(strings.NewReplacer(s.all...))
}

const mask = "xxxxx"

var (
	dsnPassword = regexp.MustCompile(`([^\s:@/()]*):\S*@(tcp6?|tcp4|unix|udp|)\(`)
	urlPassword = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]*):[^\s@/]*@`)
)

// Redact masks the passwords of DSN- and URL-shaped parts of s.
func Redact(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	s = dsnPassword.ReplaceAllString(s, "${1}:"+mask+"@${2}(")
	return urlPassword.ReplaceAllString(s, "${1}:"+mask+"@")
}

// Redact masks the registered secrets and the passwords of DSN- and
// URL-shaped parts of x; a nil Secrets masks only the latter.
func (s *Secrets) Redact(x string) string { return s.redact(x) }

func (s *Secrets) redact(x string) string {
	if s != nil {
		if r := s.rep.Load(); r != nil {
			x = r.Replace(x)
		}
	}
	return Redact(x)
}

// Options configure New.
type Options struct {
	Level   slog.Leveler // default slog.LevelInfo
	Secrets *Secrets     // may be nil
}

// New returns a logger writing to w (stderr in the commands) in format f.
func New(w io.Writer, f Format, o Options) *slog.Logger {
	if o.Level == nil {
		o.Level = slog.LevelInfo
	}
	var h slog.Handler
	if f == JSON {
		h = slog.NewJSONHandler(w, &slog.HandlerOptions{Level: o.Level, ReplaceAttr: plainDurations})
	} else {
		h = &textHandler{w: w, mu: &sync.Mutex{}, level: o.Level}
	}
	return slog.New(&redactHandler{next: h, secrets: o.Secrets})
}

// plainDurations writes durations as "1.5s" rather than nanoseconds, and
// the time in UTC.
func plainDurations(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey && a.Value.Kind() == slog.KindTime {
		return slog.Time(a.Key, a.Value.Time().UTC())
	}
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}

// textHandler prints the message alone, as the tool's lines always were.
type textHandler struct {
	w     io.Writer
	mu    *sync.Mutex
	level slog.Leveler
}

func (h *textHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *textHandler) Handle(_ context.Context, r slog.Record) error {
	msg := r.Message
	if !strings.HasSuffix(msg, "\n") {
		msg += "\n"
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, msg)
	return err
}

func (h *textHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *textHandler) WithGroup(string) slog.Handler      { return h }

// redactHandler masks secrets in the message and every field before the
// real handler sees them.
type redactHandler struct {
	next    slog.Handler
	secrets *Secrets
}

func (h *redactHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *redactHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, h.secrets.redact(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *redactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(as))
	for i, a := range as {
		clean[i] = h.attr(a)
	}
	return &redactHandler{next: h.next.WithAttrs(clean), secrets: h.secrets}
}

func (h *redactHandler) WithGroup(name string) slog.Handler {
	return &redactHandler{next: h.next.WithGroup(name), secrets: h.secrets}
}

func (h *redactHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.secrets.redact(v.String()))
	case slog.KindGroup:
		g := v.Group()
		clean := make([]any, len(g))
		for i, x := range g {
			clean[i] = h.attr(x)
		}
		return slog.Group(a.Key, clean...)
	case slog.KindAny:
		// An error, a Stringer or any other value: judged by its text,
		// and replaced by the redacted text when that differs.
		var s string
		switch x := v.Any().(type) {
		case error:
			s = x.Error()
		case fmt.Stringer:
			s = x.String()
		default:
			s = fmt.Sprintf("%+v", x)
		}
		if r := h.secrets.redact(s); r != s {
			return slog.String(a.Key, r)
		}
		if err, ok := v.Any().(error); ok {
			// The JSON handler would print an error's text anyway.
			return slog.String(a.Key, err.Error())
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// OneLine folds a message's white space (newlines included) into single
// spaces: every line the tool logs or prints about an error stays one line,
// as operators grep logs.
func OneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
