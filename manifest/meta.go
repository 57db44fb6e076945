package manifest

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// FormatVersion is the manifest format this build writes. Version 2 orders
// the token-age and code-age sections by primary key (version 1 ordered them
// by createdAt), so that plan reads and apply deletes along each table's
// clustered index.
const FormatVersion = 2

// MinFormatVersion is the oldest format this build still reads and applies:
// a manifest approved before an upgrade must not be stranded by it. A reader
// refuses any other version: a newer file may carry rules it does not know.
const MinFormatVersion = 1

// Metadata keys, all under one prefix so they are easy to find with other
// Parquet readers (DuckDB: parquet_kv_metadata).
const (
	keyPrefix          = "prune-tokens."
	keyFormatVersion   = keyPrefix + "format_version"
	keyToolVersion     = keyPrefix + "tool_version"
	keyPlannedAt       = keyPrefix + "planned_at"
	keyNow             = keyPrefix + "now"
	keyNowUTC          = keyPrefix + "now_utc"
	keyTokenCutoff     = keyPrefix + "token_cutoff"
	keyTokenCutoffUTC  = keyPrefix + "token_cutoff_utc"
	keyCodeCutoff      = keyPrefix + "code_cutoff"
	keyCodeCutoffUTC   = keyPrefix + "code_cutoff_utc"
	keyFlags           = keyPrefix + "flags"
	keySource          = keyPrefix + "source"
	keyTopAccounts     = keyPrefix + "max_sessions_accounts"
	keyRowCount        = keyPrefix + "row_count"
	keyCounts          = keyPrefix + "counts"
	keyStats           = keyPrefix + "stats"
	keyRowsSHA256      = keyPrefix + "rows_sha256"
	keyDigestAlgorithm = keyPrefix + "rows_digest"
	keyRowOrder        = keyPrefix + "row_order"
	keySnapshot        = keyPrefix + "snapshot"
)

// Values of Meta.Snapshot: how plan read the database.
const (
	// SnapshotConsistent: every stage read one consistent snapshot
	// (REPEATABLE READ, START TRANSACTION WITH CONSISTENT SNAPSHOT).
	SnapshotConsistent = "consistent"
	// SnapshotNone: the server refused the snapshot or the isolation
	// level, so the stages may have seen different states of a database
	// being written.
	SnapshotNone = "none"
)

// digestAlgorithm names how RowsSHA256 is computed (see tally.go).
const digestAlgorithm = "sha256 over rows in file order: per row, uvarint-length-prefixed stage, table_name, id, uid, then created_at as 8 bytes big-endian"

// rowOrder describes the order rules of FormatVersion for other readers;
// the verifier enforces them whatever this text says.
const rowOrder = "sections in the order max-sessions/sessionTokens, token-age/accountResetTokens, token-age/passwordForgotTokens, token-age/passwordChangeTokens, token-age/sessionTokens, code-age/unblockCodes, code-age/signinCodes; max-sessions rows grouped by account, most sessions first, each group ascending by (created_at, id); every other section strictly ascending by primary key (id; uid then id for unblockCodes)"

// Source describes the database a plan was made from. It never holds a
// password.
type Source struct {
	Host          string `json:"host"`
	Port          int    `json:"port"`
	Database      string `json:"database"`
	ServerVersion string `json:"server_version"`
	ServerID      uint64 `json:"server_id"`
}

func (s Source) String() string {
	return fmt.Sprintf("%s:%d/%s (server %s, server_id %d)", s.Host, s.Port, s.Database, s.ServerVersion, s.ServerID)
}

// Account is one large account the max-sessions stage trims.
type Account struct {
	UID      string `json:"uid"` // lowercase hex
	Sessions int64  `json:"sessions"`
	ToDelete int64  `json:"to_delete"`
}

// SectionStats summarises the rows of one (stage, table).
type SectionStats struct {
	Stage    string `json:"stage"`
	Table    string `json:"table"`
	Rows     int64  `json:"rows"`
	Accounts int64  `json:"accounts"`
	// AccountsApprox is true when Accounts is a HyperLogLog estimate: exact
	// counting stops at exactAccountsLimit distinct accounts to bound memory.
	AccountsApprox bool  `json:"accounts_approx,omitempty"`
	Oldest         int64 `json:"oldest_created_at"`
	Newest         int64 `json:"newest_created_at"`
}

// Meta is what a manifest records besides its rows. The planner fills the
// descriptive fields; the Writer fills the ones derived from the rows
// (RowCount, Stats, RowsSHA256) so they can never disagree with the rows.
type Meta struct {
	FormatVersion int
	ToolVersion   string
	PlannedAt     time.Time // wall-clock time the plan was made
	Now           int64     // planning instant, ms since the epoch
	TokenCutoff   int64     // ms; 0 when the token-age stage is off
	CodeCutoff    int64     // ms; 0 when the code-age stage is off
	Flags         map[string]string
	Source        Source
	TopAccounts   []Account
	// Snapshot is SnapshotConsistent or SnapshotNone; "" in files written
	// before plan recorded it.
	Snapshot string

	RowCount   int64
	Stats      []SectionStats // one per section present, in manifest order
	RowsSHA256 string         // hex
}

// Count returns the number of rows of a section.
func (m *Meta) Count(s Section) int64 {
	for _, st := range m.Stats {
		if st.Stage == s.Stage && st.Table == s.Table {
			return st.Rows
		}
	}
	return 0
}

// MaxSessions is the --maxSessions the plan ran with, as its flags record
// it; false when they do not record it as a whole number.
func (m *Meta) MaxSessions() (int64, bool) {
	v, ok := m.Flags["maxSessions"]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// SnapshotText says for people how the plan read the database.
func (m *Meta) SnapshotText() string {
	switch m.Snapshot {
	case SnapshotConsistent:
		return "one consistent snapshot"
	case SnapshotNone:
		return "NOT one consistent snapshot (the server refused it): the stages may have seen different states of the database"
	}
	return "not recorded (planned by an earlier version)"
}

// UTC formats a millisecond timestamp for people.
func UTC(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05.000Z")
}

func (m *Meta) keyValues() ([][2]string, error) {
	kv := [][2]string{
		{keyFormatVersion, strconv.Itoa(FormatVersion)},
		{keyToolVersion, m.ToolVersion},
		{keyPlannedAt, m.PlannedAt.UTC().Format(time.RFC3339Nano)},
		{keyNow, strconv.FormatInt(m.Now, 10)},
		{keyNowUTC, UTC(m.Now)},
		{keyTokenCutoff, strconv.FormatInt(m.TokenCutoff, 10)},
		{keyCodeCutoff, strconv.FormatInt(m.CodeCutoff, 10)},
		{keyRowCount, strconv.FormatInt(m.RowCount, 10)},
		{keyRowsSHA256, m.RowsSHA256},
		{keyDigestAlgorithm, digestAlgorithm},
		{keyRowOrder, rowOrder},
	}
	if m.TokenCutoff != 0 {
		kv = append(kv, [2]string{keyTokenCutoffUTC, UTC(m.TokenCutoff)})
	}
	if m.Snapshot != "" {
		kv = append(kv, [2]string{keySnapshot, m.Snapshot})
	}
	if m.CodeCutoff != 0 {
		kv = append(kv, [2]string{keyCodeCutoffUTC, UTC(m.CodeCutoff)})
	}
	counts := map[string]int64{}
	for _, s := range m.Stats {
		counts[Section{s.Stage, s.Table}.String()] = s.Rows
	}
	top := m.TopAccounts
	if top == nil {
		top = []Account{}
	}
	stats := m.Stats
	if stats == nil {
		stats = []SectionStats{}
	}
	for _, j := range []struct {
		key string
		v   any
	}{{keyFlags, m.Flags}, {keySource, m.Source}, {keyTopAccounts, top}, {keyCounts, counts}, {keyStats, stats}} {
		b, err := json.Marshal(j.v)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", j.key, err)
		}
		kv = append(kv, [2]string{j.key, string(b)})
	}
	return kv, nil
}

// parseMeta reads Meta back from key/value metadata.
func parseMeta(lookup func(string) (string, bool)) (*Meta, error) {
	get := func(k string) (string, error) {
		v, ok := lookup(k)
		if !ok {
			return "", fmt.Errorf("metadata %s is missing", k)
		}
		return v, nil
	}
	getInt := func(k string) (int64, error) {
		v, err := get(k)
		if err != nil {
			return 0, err
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("metadata %s=%q is not an integer", k, v)
		}
		return n, nil
	}
	getJSON := func(k string, dst any) error {
		v, err := get(k)
		if err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(v), dst); err != nil {
			return fmt.Errorf("metadata %s is not valid JSON: %v", k, err)
		}
		return nil
	}

	m := &Meta{}
	fv, err := getInt(keyFormatVersion)
	if err != nil {
		return nil, err
	}
	if fv < MinFormatVersion || fv > FormatVersion {
		return nil, fmt.Errorf("manifest format version %d is not supported (this build reads versions %d to %d)", fv, MinFormatVersion, FormatVersion)
	}
	m.FormatVersion = int(fv)
	if m.ToolVersion, err = get(keyToolVersion); err != nil {
		return nil, err
	}
	pa, err := get(keyPlannedAt)
	if err != nil {
		return nil, err
	}
	if m.PlannedAt, err = time.Parse(time.RFC3339Nano, pa); err != nil {
		return nil, fmt.Errorf("metadata %s=%q is not an RFC 3339 time", keyPlannedAt, pa)
	}
	for _, f := range []struct {
		k   string
		dst *int64
	}{{keyNow, &m.Now}, {keyTokenCutoff, &m.TokenCutoff}, {keyCodeCutoff, &m.CodeCutoff}, {keyRowCount, &m.RowCount}} {
		if *f.dst, err = getInt(f.k); err != nil {
			return nil, err
		}
	}
	if m.RowsSHA256, err = get(keyRowsSHA256); err != nil {
		return nil, err
	}
	if v, ok := lookup(keySnapshot); ok {
		if v != SnapshotConsistent && v != SnapshotNone {
			return nil, fmt.Errorf("metadata %s=%q is neither %q nor %q", keySnapshot, v, SnapshotConsistent, SnapshotNone)
		}
		m.Snapshot = v
	}
	if err := getJSON(keyFlags, &m.Flags); err != nil {
		return nil, err
	}
	if err := getJSON(keySource, &m.Source); err != nil {
		return nil, err
	}
	if err := getJSON(keyTopAccounts, &m.TopAccounts); err != nil {
		return nil, err
	}
	if err := getJSON(keyStats, &m.Stats); err != nil {
		return nil, err
	}
	var counts map[string]int64
	if err := getJSON(keyCounts, &counts); err != nil {
		return nil, err
	}
	// counts and stats are two views of the same numbers; a file where they
	// disagree was edited by hand.
	var statRows int64
	seen := map[string]bool{}
	for _, s := range m.Stats {
		sec := Section{s.Stage, s.Table}
		if SectionIndex(s.Stage, s.Table) < 0 {
			return nil, fmt.Errorf("metadata %s names %s, which is not allowed", keyStats, sec)
		}
		if seen[sec.String()] {
			return nil, fmt.Errorf("metadata %s lists %s twice", keyStats, sec)
		}
		seen[sec.String()] = true
		if counts[sec.String()] != s.Rows {
			return nil, fmt.Errorf("metadata %s says %d rows for %s but %s says %d", keyCounts, counts[sec.String()], sec, keyStats, s.Rows)
		}
		statRows += s.Rows
	}
	for k, n := range counts {
		if !seen[k] && n != 0 {
			return nil, fmt.Errorf("metadata %s names %s, which %s does not list", keyCounts, k, keyStats)
		}
	}
	if statRows != m.RowCount {
		return nil, fmt.Errorf("metadata %s=%d but the per-section counts add up to %d", keyRowCount, m.RowCount, statRows)
	}
	return m, nil
}
