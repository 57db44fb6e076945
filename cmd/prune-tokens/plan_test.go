package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"prune-tokens/internal/test/clitest"
	"prune-tokens/internal/test/dbtest"
	"prune-tokens/internal/test/faultproxy"
	"prune-tokens/manifest"
)

// seedPlanDB fills a test database with rows every stage lists, and rows it
// must not.
func seedPlanDB(t *testing.T, db *dbtest.DB) {
	t.Helper()
	stmts := []string{
		// uid 01: 12 sessions (max-sessions with --maxSessions 10), one old session of uid 02,
		// one recent, one with a device.
		`INSERT INTO sessionTokens (tokenId, tokenData, uid, createdAt) VALUES
		 (UNHEX(SHA2('s1',256)), UNHEX(SHA2('d',256)), UNHEX('01010101010101010101010101010101'), 1000),
		 (UNHEX(SHA2('s2',256)), UNHEX(SHA2('d',256)), UNHEX('01010101010101010101010101010101'), 1000),
		 (UNHEX(SHA2('s3',256)), UNHEX(SHA2('d',256)), UNHEX('01010101010101010101010101010101'), 1001),
		 (UNHEX(SHA2('s4',256)), UNHEX(SHA2('d',256)), UNHEX('01010101010101010101010101010101'), 1002),
		 (UNHEX(SHA2('s5',256)), UNHEX(SHA2('d',256)), UNHEX('01010101010101010101010101010101'), 1003),
		 (UNHEX(SHA2('s6',256)), UNHEX(SHA2('d',256)), UNHEX('01010101010101010101010101010101'), 1004),
		 (UNHEX(SHA2('s7',256)), UNHEX(SHA2('d',256)), UNHEX('01010101010101010101010101010101'), 1005),
		 (UNHEX(SHA2('s8',256)), UNHEX(SHA2('d',256)), UNHEX('01010101010101010101010101010101'), 1006),
		 (UNHEX(SHA2('s9',256)), UNHEX(SHA2('d',256)), UNHEX('01010101010101010101010101010101'), 1007),
		 (UNHEX(SHA2('sa',256)), UNHEX(SHA2('d',256)), UNHEX('01010101010101010101010101010101'), 1008),
		 (UNHEX(SHA2('sb',256)), UNHEX(SHA2('d',256)), UNHEX('01010101010101010101010101010101'), 1009),
		 (UNHEX(SHA2('sc',256)), UNHEX(SHA2('d',256)), UNHEX('01010101010101010101010101010101'), 1010),
		 (UNHEX(SHA2('t1',256)), UNHEX(SHA2('d',256)), UNHEX('02020202020202020202020202020202'), 500),
		 (UNHEX(SHA2('t2',256)), UNHEX(SHA2('d',256)), UNHEX('02020202020202020202020202020202'), 1700000000000),
		 (UNHEX(SHA2('t3',256)), UNHEX(SHA2('d',256)), UNHEX('02020202020202020202020202020202'), 600)`,
		`INSERT INTO devices (uid, id, sessionTokenId) VALUES (UNHEX('02020202020202020202020202020202'), UNHEX('0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d'), UNHEX(SHA2('t3',256)))`,
		`INSERT INTO unverifiedTokens (tokenId, tokenVerificationId, uid) VALUES (UNHEX(SHA2('t1',256)), UNHEX('0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e'), UNHEX('02020202020202020202020202020202'))`,
		`INSERT INTO passwordForgotTokens (tokenId, tokenData, uid, passCode, createdAt, tries) VALUES
		 (UNHEX(SHA2('p1',256)), UNHEX(SHA2('d',256)), UNHEX('03030303030303030303030303030303'), UNHEX('0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f'), 700, 1)`,
		`INSERT INTO keyFetchTokens (tokenId, authKey, uid, keyBundle, createdAt) VALUES
		 (UNHEX(SHA2('k1',256)), UNHEX(SHA2('d',256)), UNHEX('03030303030303030303030303030303'), REPEAT('x', 96), 1)`,
		`INSERT INTO unblockCodes (uid, unblockCodeHash, createdAt) VALUES
		 (UNHEX('04040404040404040404040404040404'), UNHEX(SHA2('u1',256)), -3),
		 (UNHEX('05050505050505050505050505050505'), UNHEX(SHA2('u2',256)), 800)`,
		`INSERT INTO signinCodes (hash, uid, createdAt) VALUES
		 (UNHEX(SHA2('c1',256)), UNHEX('04040404040404040404040404040404'), 900),
		 (UNHEX(SHA2('c2',256)), UNHEX('04040404040404040404040404040404'), 1700000000000)`,
	}
	for _, s := range stmts {
		if _, err := db.SQL.Exec(s); err != nil {
			t.Fatalf("seed: %v\n%s", err, s)
		}
	}
}

// planFlags plans with every stage on at a fixed instant.
func planFlags(dsn, out string) []string {
	return []string{"plan", "--dsn", dsn, "--out", out, "--now", "2023-11-14T22:13:20Z",
		"--maxTokenAge", "1 year", "--maxCodeAge", "30-days", "--maxSessions", "10", "--maxSessionsMaxAccounts", "5"}
}

// userWithPassword creates a MariaDB user that may only SELECT in db, so a
// test can prove plan needs nothing more, and that its password never shows.
func userWithPassword(t *testing.T, db *dbtest.DB) (dsn, password string) {
	t.Helper()
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	user := "pt_ro_" + hex.EncodeToString(rnd[:])
	password = "Pw-" + hex.EncodeToString(rnd[:]) + "-s3cret"
	for _, s := range []string{
		fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", user, password),
		fmt.Sprintf("GRANT SELECT ON `%s`.* TO '%s'@'%%'", db.Name, user),
	} {
		if _, err := db.SQL.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	t.Cleanup(func() { db.SQL.Exec(fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", user)) })
	cfg, err := mysql.ParseDSN(db.DSN)
	if err != nil {
		t.Fatal(err)
	}
	cfg.User, cfg.Passwd = user, password
	return cfg.FormatDSN(), password
}

func TestPlanEndToEnd(t *testing.T) {
	db := dbtest.New(t)
	seedPlanDB(t, db)
	before := db.Checksums(t)
	dsn, password := userWithPassword(t, db)
	dir := t.TempDir()
	out, summary := filepath.Join(dir, "plan.parquet"), filepath.Join(dir, "plan.md")

	code, stdout, stderr := run(t, append(planFlags(dsn, out), "--summary", summary)...)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if after := db.Checksums(t); !reflect.DeepEqual(before, after) {
		t.Errorf("plan changed the database: %v -> %v", before, after)
	}
	sum, err := manifest.FileSHA256(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, "Manifest SHA-256 (approve this): "+sum) {
		t.Errorf("stdout lacks the file's SHA-256 %s:\n%s", sum, stdout)
	}
	md, err := os.ReadFile(summary)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "`"+sum+"`") || !strings.Contains(string(md), "| max-sessions | sessionTokens") {
		t.Errorf("summary file:\n%s", md)
	}
	for _, p := range []string{out, summary} {
		if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", p, st.Mode().Perm())
		}
	}
	raw, _ := os.ReadFile(out)
	for what, b := range map[string][]byte{"stdout": []byte(stdout), "stderr": []byte(stderr), "summary": md, "manifest": raw} {
		if bytes.Contains(b, []byte(password)) {
			t.Errorf("the password appears in %s", what)
		}
	}

	r, err := manifest.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Verify(); err != nil {
		t.Fatal(err)
	}
	m := r.Meta()
	counts := map[string]int64{}
	for _, s := range m.Stats {
		counts[s.Stage+"/"+s.Table] = s.Rows
	}
	want := map[string]int64{
		"max-sessions/sessionTokens":     2, // 12 sessions, keep 10
		"token-age/passwordForgotTokens": 1,
		"token-age/sessionTokens":        11, // the other 10 of uid 01 and t1; t3 has a device, t2 is new
		// keyFetchTokens k1 is older than everything, and never listed
		"code-age/unblockCodes":          2,
		"code-age/signinCodes":           1,
		"token-age/accountResetTokens":   0,
		"token-age/passwordChangeTokens": 0,
	}
	if len(counts) != 5 {
		t.Errorf("sections %v, want the 5 above", counts)
	}
	for k, n := range want {
		if counts[k] != n {
			t.Errorf("%s: %d rows, want %d (all: %v)", k, counts[k], n, counts)
		}
	}
	if m.Now != 1700000000000 || m.TokenCutoff != 1700000000000-365*86400000 || m.CodeCutoff != 1700000000000-30*86400000 {
		t.Errorf("now/cutoffs = %d %d %d", m.Now, m.TokenCutoff, m.CodeCutoff)
	}
	for _, f := range []string{"out", "summary", "now", "maxTokenAge", "maxCodeAge", "maxSessions", "maxSessionsMaxAccounts",
		"maxSessionsMaxDeletions", "maxTokenAgeWindowSize", "dsn"} {
		if _, ok := m.Flags[f]; !ok {
			t.Errorf("metadata flags lack %s: %v", f, m.Flags)
		}
	}
	if m.Flags["maxSessionsMaxDeletions"] != "100000" || m.Flags["maxTokenAge"] != "1 year" {
		t.Errorf("flags = %v", m.Flags)
	}
	if m.Source.Database != db.Name || m.Source.ServerVersion == "" || m.Source.Port != 3306 {
		t.Errorf("source = %+v", m.Source)
	}
	if m.Snapshot != manifest.SnapshotConsistent || !strings.Contains(stdout, "Read:             one consistent snapshot") {
		t.Errorf("snapshot %q; stdout:\n%s", m.Snapshot, stdout)
	}
	if len(m.TopAccounts) != 1 || m.TopAccounts[0].UID != "01010101010101010101010101010101" || m.TopAccounts[0].Sessions != 12 || m.TopAccounts[0].ToDelete != 2 {
		t.Errorf("top accounts = %+v", m.TopAccounts)
	}

	// inspect shows the same summary from the file alone
	code, insp, stderr := run(t, "inspect", out)
	if code != exitOK || insp != stdout {
		t.Errorf("inspect: exit %d, %s\n--- inspect:\n%s\n--- plan:\n%s", code, stderr, insp, stdout)
	}
	code, inspMD, _ := run(t, "inspect", out, "--format", "markdown")
	if code != exitOK || inspMD != string(md) {
		t.Errorf("inspect --format markdown differs from --summary:\n%s\n---\n%s", inspMD, md)
	}
}

// oneLineError checks the documented failure shape: the exit code, one line
// on stderr that contains each of want, nothing on stdout.
func oneLineError(t *testing.T, args []string, code int, stdout, stderr string, wantCode int, want ...string) {
	t.Helper()
	if code != wantCode {
		t.Errorf("%q: exit %d, want %d; stderr %q", args, code, wantCode, stderr)
	}
	if lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n"); len(lines) != 1 || !strings.HasPrefix(stderr, "prune-tokens: ") {
		t.Errorf("%q: stderr is not one prefixed line: %q", args, stderr)
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Errorf("%q: stderr %q lacks %q", args, stderr, w)
		}
	}
	if stdout != "" {
		t.Errorf("%q: stdout %q, want nothing", args, stdout)
	}
}

// Bad flags fail before any connection (the DSN points at a closed port,
// which would give another message) and leave no file behind.
func TestPlanBadFlags(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "p.parquet")
	dsn := "u:pw@tcp(127.0.0.1:1)/fxa"
	base := []string{"plan", "--dsn", dsn, "--out", out}
	cases := []struct {
		extra []string
		want  []string
	}{
		{[]string{"--maxTokenAge", "5 parsecs"}, []string{"--maxTokenAge", `"5 parsecs"`}},
		{[]string{"--maxCodeAge", "-1"}, []string{"--maxCodeAge", `"-1"`}},
		{[]string{"--maxCodeAge", "-3h"}, []string{"--maxCodeAge", `"-3h"`}},
		{[]string{"--maxSessions", "-1"}, []string{"--maxSessions", `"-1"`}},
		{[]string{"--maxSessions", "ten"}, []string{"--maxSessions", `"ten"`}},
		{[]string{"--maxSessionsMaxAccounts", "1.5"}, []string{"--maxSessionsMaxAccounts", `"1.5"`}},
		{[]string{"--maxSessionsMaxDeletions", "99999999999999999999"}, []string{"--maxSessionsMaxDeletions"}},
		{[]string{"--maxTokenAgeWindowSize", "-3"}, []string{"--maxTokenAgeWindowSize", `"-3"`}},
		{[]string{"--now", "yesterday"}, []string{"--now", `"yesterday"`}},
		{[]string{"--now", "0"}, []string{"--now", `"0"`}},
		{[]string{"--now", "1000", "--maxTokenAge", "1 day"}, []string{"--maxTokenAge", "before 1970"}},
		{[]string{"--maxTokenAge", "500us"}, []string{"--maxTokenAge", "millisecond"}},
		{[]string{"extra-arg"}, []string{"no arguments", `"extra-arg"`}},
	}
	for _, c := range cases {
		args := append(append([]string{}, base...), c.extra...)
		code, stdout, stderr := run(t, args...)
		oneLineError(t, args, code, stdout, stderr, exitInit, c.want...)
		if strings.Contains(stderr, "pw@") || strings.Contains(stderr, "connect") {
			t.Errorf("%q: got as far as connecting: %q", args, stderr)
		}
	}
	for _, args := range [][]string{
		{"plan", "--dsn", dsn},                 // no --out
		{"plan", "--out", out, "--dsn", ""},    // no DSN
		{"plan", "--out", out, "--dsn", "x@/"}, // DSN without a database
		{"plan", "--out", out, "--dsn", dsn, "--summary", out},
	} {
		t.Setenv("PRUNE_TOKENS_DSN", "")
		code, stdout, stderr := run(t, args...)
		oneLineError(t, args, code, stdout, stderr, exitInit)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left files: %v", ents)
	}
}

func TestPlanRefusesExistingOutputBeforeConnecting(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "old.parquet")
	os.WriteFile(existing, []byte("evidence"), 0o600)
	dsn := "u:pw@tcp(127.0.0.1:1)/fxa" // closed port: reaching it would fail differently
	for _, args := range [][]string{
		{"plan", "--dsn", dsn, "--out", existing},
		{"plan", "--dsn", dsn, "--out", filepath.Join(dir, "new.parquet"), "--summary", existing},
	} {
		code, stdout, stderr := run(t, args...)
		oneLineError(t, args, code, stdout, stderr, exitInit, existing, "already exists")
	}
	if b, _ := os.ReadFile(existing); string(b) != "evidence" {
		t.Errorf("existing file changed: %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("files: %v", ents)
	}
}

// An unreachable database fails with exit 2 within the connect timeout,
// whether the port is closed or a server accepts and never answers; the
// password never appears and no manifest is left.
func TestPlanUnreachableDatabase(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()

	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var held []net.Conn // accepted, never answered
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	defer func() { silent.Close(); <-done }()

	const password = "Sup3r-s3cret-pw"
	for name, addr := range map[string]string{"closed port": closedAddr, "silent server": silent.Addr().String()} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "p.parquet")
			args := []string{"plan", "--out", out, "--maxTokenAge", "30 days"}
			t.Setenv("PRUNE_TOKENS_DSN", "fxa:"+password+"@tcp("+addr+")/fxa?timeout=1s")
			code, stdout, stderr := run(t, args...)
			oneLineError(t, args, code, stdout, stderr, exitInit, "connect to "+addr+"/fxa")
			if strings.Contains(stderr, password) {
				t.Errorf("password in stderr: %q", stderr)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("left files: %v", ents)
			}
		})
	}
}

// An error while scanning exits 3 and leaves no manifest, not even a
// temporary file.
func TestPlanScanErrorLeavesNoManifest(t *testing.T) {
	db := dbtest.New(t)
	seedPlanDB(t, db)
	if _, err := db.SQL.Exec("DROP TABLE signinCodes"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "p.parquet")
	args := planFlags(db.DSN, out)
	code, stdout, stderr := run(t, args...)
	oneLineError(t, args, code, stdout, stderr, exitOperation, "code-age", "signinCodes")
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left files: %v", ents)
	}
}

// TestPlanCtrlCStopsTheServerStatement: Ctrl-C while plan's statement runs
// on the server (here held up by a table lock, as behind a DDL; in
// production a long scan) ends plan promptly with exit 3, leaves no file
// under --out, and leaves no statement of plan's running on the server.
func TestPlanCtrlCStopsTheServerStatement(t *testing.T) {
	db := dbtest.New(t)
	seedPlanDB(t, db)
	db.LockTableWrite(t, "sessionTokens")
	dir := t.TempDir()
	out := filepath.Join(dir, "p.parquet")
	statements := func() int {
		var n int
		if err := db.SQL.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = ? AND COMMAND = 'Query' AND INFO LIKE 'SELECT %sessionTokens%' AND ID <> CONNECTION_ID()", db.Name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	p := clitest.Start(t, nil, planFlags(db.DSN, out)...)
	p.WaitFor(t, "plan's statement on the server", func() bool { return statements() > 0 })
	if err := p.Cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done:
	case <-time.After(20 * time.Second):
		t.Fatal("plan still running 20 s after Ctrl-C")
	}
	if p.Code != exitOperation {
		t.Fatalf("Ctrl-C: %s", p)
	}
	if line := oneErrorLine(t, p.Stderr.String()); !strings.Contains(line, "canceled") {
		t.Errorf("Ctrl-C message: %q", line)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left files: %v", ents)
	}
	if n := statements(); n != 0 {
		t.Errorf("%d of plan's statements still running on the server after it exited", n)
	}
}

// DuckDB, an independent Parquet reader, reads a manifest row by row as
// prune-tokens wrote it, with its key/value metadata. In CI a missing node
// or DuckDB install fails the test; elsewhere it skips.
func TestDuckDBReadsManifest(t *testing.T) {
	script := filepath.Join(dbtest.RepoRoot(), "testdata", "duckdb", "read-manifest.mjs")
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(dbtest.RepoRoot(), "testdata", "duckdb", "node_modules", "@duckdb", "node-api"))
	}
	if err != nil {
		dbtest.Unavailable(t, "node or DuckDB not installed (make test runs npm ci --prefix testdata/duckdb): %v", err)
	}

	db := dbtest.New(t)
	seedPlanDB(t, db)
	out := filepath.Join(t.TempDir(), "plan.parquet")
	if code, _, stderr := run(t, planFlags(db.DSN, out)...); code != exitOK {
		t.Fatalf("plan: exit %d: %s", code, stderr)
	}

	cmd := exec.Command(node, script, out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		// The script exits 1 when the digest it recomputes differs from
		// the file's metadata.
		t.Fatalf("node %s: %v\n%s", script, err, stderr.String())
	}
	var duck struct {
		Columns []struct {
			Name string `json:"column_name"`
			Type string `json:"column_type"`
		}
		Rows []struct {
			Stage     string `json:"stage"`
			Table     string `json:"table_name"`
			ID        string `json:"id"`
			UID       string `json:"uid"`
			CreatedAt string `json:"created_at"`
		}
		Metadata   map[string]string
		RowsSHA256 string `json:"rows_sha256"` // recomputed by the script from the README's definition
	}
	if err := json.Unmarshal(raw, &duck); err != nil {
		t.Fatalf("DuckDB output: %v\n%s", err, raw)
	}
	var cols []string
	for _, c := range duck.Columns {
		cols = append(cols, c.Name+" "+c.Type)
	}
	if want := []string{"stage VARCHAR", "table_name VARCHAR", "id BLOB", "uid BLOB", "created_at BIGINT"}; !reflect.DeepEqual(cols, want) {
		t.Errorf("DuckDB columns %v, want %v", cols, want)
	}

	r, err := manifest.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	it := r.Rows(0)
	i := 0
	for row, ok := it.Next(); ok; row, ok = it.Next() {
		if i >= len(duck.Rows) {
			t.Fatalf("DuckDB read %d rows, the manifest has more", len(duck.Rows))
		}
		d := duck.Rows[i]
		if d.Stage != row.Stage || d.Table != row.Table || d.ID != hex.EncodeToString(row.ID) || d.UID != hex.EncodeToString(row.UID) ||
			d.CreatedAt != fmt.Sprint(row.CreatedAt) {
			t.Errorf("row %d: DuckDB %+v, prune-tokens %s %s %x %x %d", i, d, row.Stage, row.Table, row.ID, row.UID, row.CreatedAt)
		}
		i++
	}
	if it.Err() != nil {
		t.Fatal(it.Err())
	}
	if i != len(duck.Rows) || i != 17 {
		t.Errorf("prune-tokens read %d rows, DuckDB %d, want 17", i, len(duck.Rows))
	}
	m := r.Meta()
	// The digest, recomputed from the rows DuckDB read by the README's
	// definition, matches the file's metadata (and what prune-tokens read).
	if duck.RowsSHA256 == "" || duck.RowsSHA256 != duck.Metadata["prune-tokens.rows_sha256"] || duck.RowsSHA256 != m.RowsSHA256 {
		t.Errorf("rows digest recomputed with DuckDB %q, file metadata %q, prune-tokens %q",
			duck.RowsSHA256, duck.Metadata["prune-tokens.rows_sha256"], m.RowsSHA256)
	}
	for k, want := range map[string]string{
		"prune-tokens.format_version": "2",
		"prune-tokens.rows_sha256":    m.RowsSHA256,
		"prune-tokens.row_count":      fmt.Sprint(m.RowCount),
		"prune-tokens.now":            "1700000000000",
		"prune-tokens.token_cutoff":   fmt.Sprint(m.TokenCutoff),
	} {
		if duck.Metadata[k] != want {
			t.Errorf("DuckDB metadata %s = %q, want %q", k, duck.Metadata[k], want)
		}
	}
	var flags map[string]string
	if err := json.Unmarshal([]byte(duck.Metadata["prune-tokens.flags"]), &flags); err != nil || flags["maxCodeAge"] != "30-days" {
		t.Errorf("DuckDB flags metadata %q: %v", duck.Metadata["prune-tokens.flags"], err)
	}
}

// TestPlanRecordsNoConsistentSnapshot: when the server keeps plan's session
// below REPEATABLE READ (here it refuses the SET, and the session starts at
// READ COMMITTED), the stages cannot share one snapshot; the manifest says
// so, and so do plan's summary, inspect and apply's header, so the
// reviewer learns it, not only a log line.
func TestPlanRecordsNoConsistentSnapshot(t *testing.T) {
	db := dbtest.New(t)
	seedPlanDB(t, db)
	proxy, cfg := faultproxy.Between(t, db.DSN)
	proxy.Garble("SET SESSION TRANSACTION ISOLATION LEVEL")
	cfg.Params = map[string]string{"tx_isolation": "'READ-COMMITTED'"}
	out := filepath.Join(t.TempDir(), "plan.parquet")
	code, stdout, stderr := run(t, planFlags(cfg.FormatDSN(), out)...)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	const want = "NOT one consistent snapshot"
	if !strings.Contains(stdout, want) {
		t.Errorf("plan's summary does not say %q:\n%s", want, stdout)
	}
	if _, insp, _ := run(t, "inspect", out); !strings.Contains(insp, want) {
		t.Errorf("inspect does not say %q:\n%s", want, insp)
	}
	_, js, _ := run(t, "inspect", out, "--format", "json")
	if !strings.Contains(js, `"snapshot": "none"`) && !strings.Contains(js, `"snapshot":"none"`) {
		t.Errorf("inspect --format json lacks the snapshot: %s", js)
	}
	_, dry, _ := run(t, "apply", "--dsn", db.DSN, "--manifest", out, "--dryRun", "--maxManifestAge", "0")
	if !strings.Contains(dry, want) {
		t.Errorf("apply's header does not say %q:\n%s", want, dry)
	}
}

// TestPlanWarnsOnBareShortAge: "--maxTokenAge 30" is 30 milliseconds, as
// the old tool read it, and plans the deletion of nearly every session.
// plan still accepts it, but says so on stderr and marks the rules table
// of its summary (and so of inspect) with what it means.
func TestPlanWarnsOnBareShortAge(t *testing.T) {
	db := dbtest.New(t)
	seedPlanDB(t, db)
	out := filepath.Join(t.TempDir(), "plan.parquet")
	args := append(planFlags(db.DSN, out), "--maxTokenAge", "30")
	code, stdout, stderr := run(t, args...)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	const meaning = "30 ms; did you mean 30-days?"
	if !strings.Contains(stderr, "--maxTokenAge 30 is "+meaning) {
		t.Errorf("no warning on stderr:\n%s", stderr)
	}
	if strings.Contains(stderr, "--maxCodeAge") {
		t.Errorf("warned about --maxCodeAge 30-days, which is meant:\n%s", stderr)
	}
	for what, text := range map[string]string{"plan": stdout, "inspect": func() string { _, s, _ := run(t, "inspect", out); return s }()} {
		if !strings.Contains(text, "maxTokenAge 30 (WARNING: "+meaning+")") {
			t.Errorf("%s's rules table lacks the mark:\n%s", what, text)
		}
	}
}
