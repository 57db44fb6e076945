// Package report renders what people read about a manifest: the summary plan
// prints, --summary writes for the change ticket, inspect shows again from
// the file alone, and apply shows before it deletes. One renderer for all of
// them, so the reviewer sees the same numbers everywhere.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"

	"prune-tokens/internal/duration"
	"prune-tokens/manifest"
)

// Format is how a summary is rendered.
type Format string

// Formats.
const (
	FormatTable    Format = "table"
	FormatMarkdown Format = "markdown"
	FormatJSON     Format = "json"
)

// ParseFormat accepts table, markdown (or md) and json.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "table", "text", "":
		return FormatTable, nil
	case "markdown", "md":
		return FormatMarkdown, nil
	case "json":
		return FormatJSON, nil
	}
	return "", fmt.Errorf("unknown format %q (want table, markdown or json)", s)
}

// PlanSummary is everything a plan summary shows: the manifest's metadata,
// where the file is, and its SHA-256, which is what a reviewer approves.
type PlanSummary struct {
	Path       string
	FileSHA256 string
	Meta       *manifest.Meta
}

// Plan writes the summary of a manifest in format f.
func Plan(w io.Writer, s PlanSummary, f Format) error {
	switch f {
	case FormatJSON:
		return planJSON(w, s)
	case FormatMarkdown:
		return planText(w, s, true)
	case FormatTable, "":
		return planText(w, s, false)
	}
	return fmt.Errorf("unknown format %q", f)
}

// approx marks an estimated account count.
const approx = "≈"

// sectionRow is one line of the per-stage table; rows of stages that are on
// but found nothing are shown with 0, so a reviewer sees the stage ran.
type sectionRow struct {
	manifest.SectionStats
	present bool
}

func sectionRows(m *manifest.Meta) []sectionRow {
	on := stagesOn(m)
	var out []sectionRow
	for _, sec := range manifest.Sections() {
		var found *manifest.SectionStats
		for i := range m.Stats {
			if m.Stats[i].Stage == sec.Stage && m.Stats[i].Table == sec.Table {
				found = &m.Stats[i]
			}
		}
		switch {
		case found != nil:
			out = append(out, sectionRow{*found, true})
		case on[sec.Stage]:
			out = append(out, sectionRow{manifest.SectionStats{Stage: sec.Stage, Table: sec.Table}, false})
		}
	}
	return out
}

// stagesOn reads which stages the plan ran from its cutoffs and flags.
func stagesOn(m *manifest.Meta) map[string]bool {
	on := map[string]bool{
		manifest.StageTokenAge: m.TokenCutoff != 0,
		manifest.StageCodeAge:  m.CodeCutoff != 0,
	}
	if n, err := strconv.ParseInt(m.Flags["maxSessions"], 10, 64); err == nil && n > 0 {
		on[manifest.StageMaxSessions] = true
	}
	for _, s := range m.Stats {
		on[s.Stage] = true
	}
	return on
}

func accounts(s manifest.SectionStats) string {
	n := strconv.FormatInt(s.Accounts, 10)
	if s.AccountsApprox {
		return approx + n
	}
	return n
}

func utcOrDash(ms int64, present bool) string {
	if !present {
		return "-"
	}
	return manifest.UTC(ms)
}

func flag(m *manifest.Meta, name string) string {
	if v, ok := m.Flags[name]; ok {
		return v
	}
	return "?"
}

// rules is the table of what each stage was asked to do, with the absolute
// cutoffs, so the reviewer sees dates rather than "30 days".
func rules(m *manifest.Meta) [][]string {
	on := stagesOn(m)
	ms := []string{manifest.StageMaxSessions, "off", "-"}
	if on[manifest.StageMaxSessions] {
		ms[1] = fmt.Sprintf("keep the newest %s sessions of the %s largest accounts over it, at most %s deletions each",
			flag(m, "maxSessions"), flag(m, "maxSessionsMaxAccounts"), flag(m, "maxSessionsMaxDeletions"))
	}
	ta := []string{manifest.StageTokenAge, "off", "-"}
	if on[manifest.StageTokenAge] {
		ta[1] = "maxTokenAge " + flag(m, "maxTokenAge") + suspect(m, "maxTokenAge")
		if w := m.Flags["maxTokenAgeWindowSize"]; w != "" && w != "0" {
			ta[1] += ", at most " + w + " session tokens"
		}
		ta[2] = "createdAt < " + manifest.UTC(m.TokenCutoff)
	}
	ca := []string{manifest.StageCodeAge, "off", "-"}
	if on[manifest.StageCodeAge] {
		ca[1] = "maxCodeAge " + flag(m, "maxCodeAge") + suspect(m, "maxCodeAge")
		ca[2] = "createdAt < " + manifest.UTC(m.CodeCutoff)
	}
	return [][]string{ms, ta, ca}
}

// suspect marks an age given as a bare number under a day: milliseconds,
// as the old tool read it, which lists nearly every row.
func suspect(m *manifest.Meta, name string) string {
	if meaning, ok := duration.SuspectBare(m.Flags[name]); ok {
		return " (WARNING: " + meaning + ")"
	}
	return ""
}

func planText(w io.Writer, s PlanSummary, md bool) error {
	m := s.Meta
	ew := &errWriter{w: w}
	heading := func(text string) {
		if md {
			fmt.Fprintf(ew, "\n### %s\n\n", text)
		} else {
			fmt.Fprintf(ew, "\n%s\n", text)
		}
	}
	code := func(v string) string {
		if md {
			return "`" + v + "`"
		}
		return v
	}
	if md {
		fmt.Fprintf(ew, "## prune-tokens plan %s\n\n", code(s.Path))
	} else {
		fmt.Fprintf(ew, "Manifest %s\n", s.Path)
	}
	lines := [][2]string{
		{"Manifest SHA-256", code(s.FileSHA256)},
		{"Planned at", m.PlannedAt.UTC().Format("2006-01-02 15:04:05Z") + " by prune-tokens " + m.ToolVersion +
			" (manifest format " + strconv.Itoa(m.FormatVersion) + ")"},
		{"Source", m.Source.String()},
		{"Read", m.SnapshotText()},
		{"Now", manifest.UTC(m.Now) + " (" + strconv.FormatInt(m.Now, 10) + ")"},
		{"Rows to delete", strconv.FormatInt(m.RowCount, 10)},
	}
	for _, l := range lines {
		if md {
			fmt.Fprintf(ew, "- **%s:** %s\n", l[0], l[1])
		} else {
			fmt.Fprintf(ew, "  %-17s %s\n", l[0]+":", l[1])
		}
	}

	heading("Rules")
	table(ew, md, []string{"Stage", "Rule", "Cutoff (UTC)"}, rules(m), nil)

	heading("Rows per stage and table")
	var body [][]string
	for _, r := range sectionRows(m) {
		body = append(body, []string{r.Stage, r.Table, strconv.FormatInt(r.Rows, 10), accounts(r.SectionStats),
			utcOrDash(r.Oldest, r.present), utcOrDash(r.Newest, r.present)})
	}
	table(ew, md, []string{"Stage", "Table", "Rows", "Accounts", "Oldest createdAt (UTC)", "Newest createdAt (UTC)"}, body,
		[]string{"total", "", strconv.FormatInt(m.RowCount, 10), "", "", ""}, 2, 3)
	for _, st := range m.Stats {
		if st.AccountsApprox {
			if md {
				fmt.Fprintln(ew) // a line right after a Markdown table would join it
			}
			fmt.Fprintf(ew, "%s marks an estimate (HyperLogLog): past %d distinct accounts a section's accounts are estimated, to bound memory.\n", approx, 100000)
			break
		}
	}

	if len(m.TopAccounts) > 0 {
		heading("max-sessions accounts")
		body = body[:0]
		for _, a := range m.TopAccounts {
			body = append(body, []string{code(a.UID), strconv.FormatInt(a.Sessions, 10), strconv.FormatInt(a.ToDelete, 10)})
		}
		table(ew, md, []string{"uid", "Sessions now", "Sessions to delete"}, body, nil, 1, 2)
	}

	if md {
		fmt.Fprintf(ew, "\n**Approve this manifest by its SHA-256:** `%s`\n", s.FileSHA256)
	} else {
		fmt.Fprintf(ew, "\nManifest SHA-256 (approve this): %s\n", s.FileSHA256)
	}
	return ew.err
}

// table renders one table; the columns listed in right are numbers and are
// right-aligned so magnitudes line up.
func table(w io.Writer, md bool, header []string, rows [][]string, footer []string, right ...int) {
	align := make([]tw.Align, len(header))
	for i := range align {
		align[i] = tw.AlignLeft
	}
	for _, i := range right {
		align[i] = tw.AlignRight
	}
	opts := []tablewriter.Option{
		tablewriter.WithRowAlignmentConfig(tw.CellAlignment{PerColumn: align}),
		tablewriter.WithFooterAlignmentConfig(tw.CellAlignment{PerColumn: align}),
		// Header words are shown as written: column names like createdAt
		// and uid are identifiers, not titles.
		tablewriter.WithHeaderAutoFormat(tw.Off),
		tablewriter.WithFooterAutoFormat(tw.Off),
		tablewriter.WithRowAutoWrap(tw.WrapNone),
	}
	if md {
		opts = append(opts, tablewriter.WithRenderer(renderer.NewMarkdown()))
	}
	t := tablewriter.NewTable(w, opts...)
	t.Header(header)
	for _, r := range rows {
		_ = t.Append(r)
	}
	if footer != nil {
		if md {
			// Markdown has no footer row; a bold last row reads the same.
			f := make([]string, len(footer))
			for i, c := range footer {
				if c != "" {
					f[i] = "**" + c + "**"
				}
			}
			_ = t.Append(f)
		} else {
			t.Footer(footer)
		}
	}
	_ = t.Render()
}

// planJSON is the machine-readable summary: the metadata as recorded, plus
// the file's path and SHA-256.
func planJSON(w io.Writer, s PlanSummary) error {
	m := s.Meta
	type stage struct {
		manifest.SectionStats
		OldestUTC string `json:"oldest_created_at_utc,omitempty"`
		NewestUTC string `json:"newest_created_at_utc,omitempty"`
	}
	out := struct {
		Manifest       string             `json:"manifest"`
		FileSHA256     string             `json:"file_sha256"`
		FormatVersion  int                `json:"format_version"`
		ToolVersion    string             `json:"tool_version"`
		PlannedAt      string             `json:"planned_at"`
		Now            int64              `json:"now"`
		NowUTC         string             `json:"now_utc"`
		TokenCutoff    int64              `json:"token_cutoff"`
		TokenCutoffUTC string             `json:"token_cutoff_utc,omitempty"`
		CodeCutoff     int64              `json:"code_cutoff"`
		CodeCutoffUTC  string             `json:"code_cutoff_utc,omitempty"`
		Flags          map[string]string  `json:"flags"`
		Source         manifest.Source    `json:"source"`
		RowCount       int64              `json:"row_count"`
		RowsSHA256     string             `json:"rows_sha256"`
		Sections       []stage            `json:"sections"`
		TopAccounts    []manifest.Account `json:"max_sessions_accounts"`
		Snapshot       string             `json:"snapshot"`
	}{
		Manifest: s.Path, FileSHA256: s.FileSHA256, FormatVersion: m.FormatVersion, ToolVersion: m.ToolVersion,
		PlannedAt: m.PlannedAt.UTC().Format("2006-01-02T15:04:05.000Z07:00"), Now: m.Now, NowUTC: manifest.UTC(m.Now),
		TokenCutoff: m.TokenCutoff, CodeCutoff: m.CodeCutoff, Flags: m.Flags, Source: m.Source,
		RowCount: m.RowCount, RowsSHA256: m.RowsSHA256, Sections: []stage{}, TopAccounts: m.TopAccounts,
		Snapshot: m.Snapshot,
	}
	if m.TokenCutoff != 0 {
		out.TokenCutoffUTC = manifest.UTC(m.TokenCutoff)
	}
	if m.CodeCutoff != 0 {
		out.CodeCutoffUTC = manifest.UTC(m.CodeCutoff)
	}
	if out.TopAccounts == nil {
		out.TopAccounts = []manifest.Account{}
	}
	for _, r := range sectionRows(m) {
		st := stage{SectionStats: r.SectionStats}
		if r.present {
			st.OldestUTC, st.NewestUTC = manifest.UTC(r.Oldest), manifest.UTC(r.Newest)
		}
		out.Sections = append(out.Sections, st)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	return nil
}

// errWriter keeps the first write error so rendering code stays linear.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	if err != nil {
		e.err = fmt.Errorf("write summary: %w", err)
	}
	return n, err
}
