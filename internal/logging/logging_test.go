package logging

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

const status = "apply: 120000/200000 rows (60.0%), 9500 rows/s, ETA 8s; deleted 119800, already gone 150, skipped by guard 50"

// logSome logs what apply logs: a status line with its fields, a retry
// with an error, lines from a logger with attributes and a group.
func logSome(l *slog.Logger) {
	l.Info(status, KeyRows, 120000, KeyTotal, 200000, KeyRate, 9500.0, KeyETA, 8*time.Second,
		KeyDeleted, 119800, KeyGone, 150, KeySkipped, 50)
	l.Warn("transient error at row 4000 (token-age/sessionTokens): Error 1205 (HY000): Lock wait timeout exceeded; retry 2 of 8 in 500ms",
		KeyRows, 4000, KeyStage, "token-age", KeyTable, "sessionTokens", KeyAttempt, 2, KeyAttempts, 8,
		KeyDelay, 500*time.Millisecond, KeyError, errors.New("Error 1205 (HY000): Lock wait timeout exceeded"))
	l.Debug("not shown at the default level")
	b := l.With(KeyBatch, 7).WithGroup("cache")
	b.Info(`session cache: 3 accounts not cleaned ("quoted", ünïcode, tab	here)`, "failed", 3, "removed", 997)
	l.Info("two\nlines")
}

func TestTextIsThePlainLines(t *testing.T) {
	var buf bytes.Buffer
	logSome(New(&buf, Text, Options{}))
	want := status + "\n" +
		"transient error at row 4000 (token-age/sessionTokens): Error 1205 (HY000): Lock wait timeout exceeded; retry 2 of 8 in 500ms\n" +
		`session cache: 3 accounts not cleaned ("quoted", ünïcode, tab	here)` + "\n" +
		"two\nlines\n"
	if buf.String() != want {
		t.Errorf("text output:\n%s\nwant:\n%s", buf.String(), want)
	}
	buf.Reset()
	New(&buf, Text, Options{Level: slog.LevelDebug}).Debug("shown")
	if buf.String() != "shown\n" {
		t.Errorf("debug at debug level: %q", buf.String())
	}
}

// TestJSONLines parses every line.
func TestJSONLines(t *testing.T) {
	var buf bytes.Buffer
	before := time.Now().Add(-time.Second)
	logSome(New(&buf, JSON, Options{}))
	var lines []map[string]any
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %d is not one JSON object: %v\n%s", len(lines)+1, err, sc.Text())
		}
		ts, err := time.Parse(time.RFC3339Nano, fmt.Sprint(m["time"]))
		if err != nil || ts.Before(before) || !strings.HasSuffix(fmt.Sprint(m["time"]), "Z") {
			t.Errorf("line %d: time %v: %v", len(lines)+1, m["time"], err)
		}
		if m["level"] == nil || m["msg"] == nil {
			t.Errorf("line %d lacks level or msg: %s", len(lines)+1, sc.Text())
		}
		lines = append(lines, m)
	}
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 4:\n%s", len(lines), buf.String())
	}
	st := lines[0]
	if st["level"] != "INFO" || st["msg"] != status || st["rows"] != 120000.0 || st["total"] != 200000.0 ||
		st["eta"] != "8s" || st["deleted"] != 119800.0 || st["gone"] != 150.0 || st["skipped"] != 50.0 {
		t.Errorf("status line: %v", st)
	}
	rt := lines[1]
	if rt["level"] != "WARN" || rt["stage"] != "token-age" || rt["table"] != "sessionTokens" || rt["attempt"] != 2.0 ||
		rt["delay"] != "500ms" || rt["error"] != "Error 1205 (HY000): Lock wait timeout exceeded" {
		t.Errorf("retry line: %v", rt)
	}
	ca := lines[2]
	if g, _ := ca["cache"].(map[string]any); ca["batch"] != 7.0 || g["failed"] != 3.0 || g["removed"] != 997.0 {
		t.Errorf("grouped line: %v", ca)
	}
	if lines[3]["msg"] != "two\nlines" {
		t.Errorf("two-line message: %v", lines[3])
	}
}

type conf struct{ DSN string }

// TestNoPassword: a password never reaches a line, in either format,
// wherever it is: registered as a secret, or inside a DSN or URL.
func TestNoPassword(t *testing.T) {
	const pw = "Hunter2-s3cret"
	dsn := "prune_apply:" + pw + "@tcp(db.internal:3306)/fxa?tls=true"
	redisURL := "rediss://:" + pw + "@cache.internal:6380/0"
	log := func(l *slog.Logger) {
		l.Info("connect to " + dsn)
		l.Info("redis " + redisURL)
		l.Info("password is "+pw, "dsn", dsn, "url", redisURL, "pw", pw)
		l.Error("failed", "error", fmt.Errorf("open %s: refused", dsn), "conf", conf{DSN: dsn},
			slog.Group("g", "dsn", dsn, slog.Group("h", "pw", pw)))
		l.With("dsn", dsn).WithGroup("x").Info("with", "url", redisURL)
	}
	for _, f := range []Format{Text, JSON} {
		for _, registered := range []bool{true, false} {
			var buf bytes.Buffer
			sec := &Secrets{}
			if registered {
				sec.Add(pw, "")
			}
			l := New(&buf, f, Options{Secrets: sec})
			if registered {
				log(l)
			} else {
				// Unregistered: only the DSN and URL shapes are caught.
				l.Info("connect to "+dsn, "dsn", dsn, "error", errors.New(redisURL+": refused"))
				l.With("url", redisURL).Info(redisURL)
			}
			out := buf.String()
			if strings.Contains(out, pw) || strings.Contains(out, "s3cret") {
				t.Errorf("%s, registered %v: password in output:\n%s", f, registered, out)
			}
			if !strings.Contains(out, "xxxxx") {
				t.Errorf("%s: nothing masked:\n%s", f, out)
			}
			t.Logf("%s, registered %v:\n%s", f, registered, out)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"u:p@tcp(h:3306)/db":                        "u:xxxxx@tcp(h:3306)/db",
		"at u:p:w@x@tcp(h:3306)/db?tls=true, again": "at u:xxxxx@tcp(h:3306)/db?tls=true, again",
		"root@tcp(127.0.0.1:3306)/":                 "root@tcp(127.0.0.1:3306)/",
		"u:p@unix(/run/mysqld.sock)/db":             "u:xxxxx@unix(/run/mysqld.sock)/db",
		"u:p@/db":                                   "u:p@/db", // no address: not a DSN shape this catches
		"redis://:pw@h:6379/0 and rediss://u:pw@h/": "redis://:xxxxx@h:6379/0 and rediss://u:xxxxx@h/",
		"redis://h:6379/0":                          "redis://h:6379/0",
		"rows 10:20 @ 5/s":                          "rows 10:20 @ 5/s",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"": Text, "text": Text, "JSON": JSON, " json ": JSON} {
		if f, err := ParseFormat(in); err != nil || f != want {
			t.Errorf("ParseFormat(%q) = %q, %v", in, f, err)
		}
	}
	if _, err := ParseFormat("yaml"); err == nil || !strings.Contains(err.Error(), "--logFormat") {
		t.Errorf("ParseFormat(yaml): %v", err)
	}
}

// Lines from several goroutines never interleave.
func TestConcurrentLines(t *testing.T) {
	for _, f := range []Format{Text, JSON} {
		var buf bytes.Buffer
		l := New(&buf, f, Options{Secrets: &Secrets{}})
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 200; i++ {
					l.Info(strings.Repeat("x", 100), "g", g)
				}
			}()
		}
		wg.Wait()
		for i, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
			if f == Text && line != strings.Repeat("x", 100) || f == JSON && !json.Valid([]byte(line)) {
				t.Fatalf("%s line %d torn: %q", f, i, line)
			}
		}
	}
}

func TestOneLine(t *testing.T) {
	if got := OneLine("  dial tcp:\n\tconnection  refused \r\n"); got != "dial tcp: connection refused" {
		t.Errorf("OneLine = %q", got)
	}
}
