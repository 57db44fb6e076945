package throttle

import (
	"strings"
	"testing"
)

func TestParseThresholds(t *testing.T) {
	good := map[string]string{
		"Threads_running=25":                            "Threads_running=25",
		" Threads_running = 25 , Threads_connected=500": "Threads_running=25,Threads_connected=500",
		"Threads_running:25":                            "Threads_running=25",
		"":                                              "none",
		"none":                                          "none",
		"Innodb_row_lock_current_waits=0":               "Innodb_row_lock_current_waits=0",
	}
	for in, want := range good {
		ts, err := ParseThresholds(in)
		if err != nil {
			t.Errorf("ParseThresholds(%q): %v", in, err)
			continue
		}
		if got := ts.String(); got != want {
			t.Errorf("ParseThresholds(%q) = %s, want %s", in, got, want)
		}
	}
	// Each error is one line naming the bad part.
	bad := map[string]string{
		"Threads_running":                         `"Threads_running" has no limit`,
		"Threads_running=abc":                     `limit "abc" of Threads_running`,
		"Threads_running=-1":                      `limit "-1" of Threads_running`,
		"Threads_running=25,":                     "empty entry",
		"Threads_running=25,,Threads_connected=5": "empty entry",
		"Threads_running=25,threads_RUNNING=30":   "threads_RUNNING is given twice",
		"Threads running=25":                      `"Threads running" is not a status variable name`,
		"x'; DROP TABLE t; --=1":                  "is not a status variable name",
		"=5":                                      `"" is not a status variable name`,
		"Threads_running=99999999999999999999":    `limit "99999999999999999999"`,
	}
	for in, want := range bad {
		_, err := ParseThresholds(in)
		if err == nil {
			t.Errorf("ParseThresholds(%q) accepted", in)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, want) || strings.Contains(msg, "\n") {
			t.Errorf("ParseThresholds(%q) = %q, want one line containing %q", in, msg, want)
		}
	}
}
