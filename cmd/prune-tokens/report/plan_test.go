package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"prune-tokens/manifest"
)

func sampleMeta() *manifest.Meta {
	return &manifest.Meta{
		FormatVersion: 1, ToolVersion: "v1.2.3", PlannedAt: time.Date(2026, 11, 24, 9, 30, 0, 0, time.UTC),
		Now: 1764000000000, TokenCutoff: 1764000000000 - 30*86400000,
		Flags: map[string]string{"maxTokenAge": "30 days", "maxCodeAge": "0", "maxSessions": "500",
			"maxSessionsMaxAccounts": "100", "maxSessionsMaxDeletions": "100000", "maxTokenAgeWindowSize": "0"},
		Source:      manifest.Source{Host: "db.internal", Port: 3306, Database: "fxa", ServerVersion: "10.11.6-MariaDB", ServerID: 7},
		TopAccounts: []manifest.Account{{UID: "00112233445566778899aabbccddeeff", Sessions: 120000, ToDelete: 100000}},
		RowCount:    100042,
		Stats: []manifest.SectionStats{
			{Stage: "max-sessions", Table: "sessionTokens", Rows: 100000, Accounts: 1, Oldest: 1600000000000, Newest: 1700000000000},
			{Stage: "token-age", Table: "sessionTokens", Rows: 42, Accounts: 123456, AccountsApprox: true, Oldest: 1600000000001, Newest: 1761000000000},
		},
		RowsSHA256: strings.Repeat("ab", 32),
	}
}

const fileSHA = "f00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeed"

func render(t *testing.T, f Format) string {
	t.Helper()
	var b bytes.Buffer
	if err := Plan(&b, PlanSummary{Path: "plan.parquet", FileSHA256: fileSHA, Meta: sampleMeta()}, f); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestTableSummary(t *testing.T) {
	out := render(t, FormatTable)
	for _, want := range []string{
		"Manifest SHA-256 (approve this): " + fileSHA,
		"db.internal:3306/fxa (server 10.11.6-MariaDB, server_id 7)",
		"createdAt < 2025-10-25 16:00:00.000Z", // the token cutoff as a date
		"maxTokenAge 30 days",
		"keep the newest 500 sessions",
		"≈123456", // an estimated account count is marked
		"2020-09-13 12:26:40.001Z",
		"00112233445566778899aabbccddeeff",
		"passwordChangeTokens", // a stage that ran shows its empty tables
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "unblockCodes") {
		t.Errorf("code-age is off, yet its tables are listed:\n%s", out)
	}
	if !regexpLine(out, `code-age\s*│\s*off`) {
		t.Errorf("code-age not shown as off:\n%s", out)
	}
}

func regexpLine(s, pat string) bool {
	re := regexp.MustCompile(pat)
	for _, l := range strings.Split(s, "\n") {
		if re.MatchString(l) {
			return true
		}
	}
	return false
}

func TestMarkdownSummary(t *testing.T) {
	out := render(t, FormatMarkdown)
	for _, want := range []string{
		"**Approve this manifest by its SHA-256:** `" + fileSHA + "`",
		"| `00112233445566778899aabbccddeeff` |",
		"| **total**",
		"\n\n≈ marks an estimate",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "┌") {
		t.Errorf("markdown has box drawing:\n%s", out)
	}
}

func TestJSONSummary(t *testing.T) {
	var got struct {
		FileSHA256     string `json:"file_sha256"`
		TokenCutoffUTC string `json:"token_cutoff_utc"`
		RowCount       int64  `json:"row_count"`
		Sections       []struct {
			Stage, Table   string
			Rows           int64
			AccountsApprox bool `json:"accounts_approx"`
		}
		TopAccounts []manifest.Account `json:"max_sessions_accounts"`
		Flags       map[string]string
	}
	if err := json.Unmarshal([]byte(render(t, FormatJSON)), &got); err != nil {
		t.Fatal(err)
	}
	if got.FileSHA256 != fileSHA || got.RowCount != 100042 || got.TokenCutoffUTC != "2025-10-25 16:00:00.000Z" ||
		len(got.TopAccounts) != 1 || got.TopAccounts[0].ToDelete != 100000 || got.Flags["maxTokenAge"] != "30 days" {
		t.Errorf("json summary: %+v", got)
	}
	// every token-age table (the stage ran) and nothing of code-age (off)
	if len(got.Sections) != 5 || got.Sections[4].Rows != 42 || !got.Sections[4].AccountsApprox || got.Sections[1].Rows != 0 {
		t.Errorf("sections: %+v", got.Sections)
	}
}

func TestEmptyPlan(t *testing.T) {
	m := &manifest.Meta{Now: 1764000000000, Flags: map[string]string{"maxSessions": "0"}, RowsSHA256: "x"}
	var b bytes.Buffer
	if err := Plan(&b, PlanSummary{Path: "p", FileSHA256: fileSHA, Meta: m}, FormatTable); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Contains(out, "max-sessions accounts") || strings.Contains(out, "≈") || !strings.Contains(out, "Rows to delete:   0") {
		t.Errorf("empty plan summary:\n%s", out)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteErrorsAreReturned(t *testing.T) {
	for _, f := range []Format{FormatTable, FormatMarkdown, FormatJSON} {
		err := Plan(failWriter{}, PlanSummary{Path: "p", FileSHA256: fileSHA, Meta: sampleMeta()}, f)
		if err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("%s: err = %v", f, err)
		}
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"table": FormatTable, "Markdown": FormatMarkdown, "md": FormatMarkdown, "json": FormatJSON} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseFormat("yaml"); err == nil || !strings.Contains(err.Error(), `"yaml"`) {
		t.Errorf("ParseFormat(yaml) err = %v", err)
	}
}
