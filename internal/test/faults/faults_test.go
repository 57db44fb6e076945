package faults_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"prune-tokens/internal/test/appliertest"
	"prune-tokens/internal/test/clitest"
	"prune-tokens/internal/test/dbtest"
	"prune-tokens/manifest"
)

// TestBadFlagsOneLineExitTwo: every bad flag value is one line naming the
// flag, exit 2, and never echoes a password.
func TestBadFlagsOneLineExitTwo(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "p.parquet")
	dsn := "planner:Fl4gS3cret@tcp(127.0.0.1:1)/fxa"
	plan := func(extra ...string) []string {
		return append([]string{"plan", "--dsn", dsn, "--out", out}, extra...)
	}
	apply := func(extra ...string) []string {
		return append([]string{"apply", "--dsn", dsn, "--manifest", out, "--approve", appliertest.Approval(out)}, extra...)
	}
	cases := []struct {
		args []string
		env  []string
		want string
	}{
		{plan("--maxSessions", "-1"), nil, "--maxSessions"},
		{plan("--maxSessions", "ten"), nil, "--maxSessions"},
		{plan("--maxSessions", "1e3"), nil, "--maxSessions"},
		{plan("--maxSessions", "99999999999999999999"), nil, "--maxSessions"},
		{plan("--maxSessionsMaxAccounts", "-5"), nil, "--maxSessionsMaxAccounts"},
		{plan("--maxSessionsMaxDeletions", "1.5"), nil, "--maxSessionsMaxDeletions"},
		{plan("--maxTokenAgeWindowSize", "0x10"), nil, "--maxTokenAgeWindowSize"},
		{plan("--maxTokenAge", "30 fortnights"), nil, "--maxTokenAge"},
		{plan("--maxTokenAge", "-30 days"), nil, "--maxTokenAge"},
		{plan("--maxTokenAge", "-5m"), nil, "--maxTokenAge"},
		{plan("--maxCodeAge", "1.5 days"), nil, "--maxCodeAge"},
		{plan("--maxCodeAge", "100000 years"), nil, "--maxCodeAge"},
		{plan("--now", "yesterday"), nil, "--now"},
		{plan("--now", "-1"), nil, "--now"},
		{plan("--summary", out), nil, "same file"},
		{[]string{"plan", "--dsn", dsn}, nil, "--out"},
		{[]string{"plan", "--out", out}, nil, "DSN"},
		{[]string{"plan", "--dsn", "", "--out", out}, nil, "DSN"},
		{[]string{"plan", "--out", out}, []string{"PRUNE_TOKENS_DSN="}, "DSN"},
		{[]string{"plan", "--dsn", "planner:Fl4gS3cret@tcp(127.0.0.1:1)/", "--out", out}, nil, "names no database"},
		{[]string{"plan", "--dsn", "planner:Fl4gS3cret@tcp(127.0.0.1:1/fxa", "--out", out}, nil, "DSN"},
		{[]string{"plan", "--dsn", "planner:Fl4gS3cret@tcp(127.0.0.1:1)/fxa?tls=maybe", "--out", out}, nil, "DSN"},
		{[]string{"plan", "--dsn", "planner:Fl4gS3cret@tcp(127.0.0.1:1)/fxa?timeout=soon", "--out", out}, nil, "DSN"},
		{plan("--noSuchFlag"), nil, "noSuchFlag"},
		{apply("--batchSize", "0"), nil, "--batchSize"},
		{apply("--batchSize", "-100"), nil, "--batchSize"},
		{apply("--batchSize", "many"), nil, "--batchSize"},
		{apply("--maxSessionsBatchSize", "2.5"), nil, "--batchSize"},
		{apply("--wait", "-1s"), nil, "--wait"},
		{apply("--wait", "5 fortnights"), nil, "--wait"},
		{apply("--maxRuntime", "forever"), nil, "--maxRuntime"},
		{apply("--maxManifestAge", "-7 days"), nil, "--maxManifestAge"},
		{apply("--approve", "not-a-sha"), nil, "SHA-256"},
		{apply("--dryRun", "--checkpoint", filepath.Join(dir, "c")), nil, "--dryRun"},
		{apply("--checkpoint", out), nil, "same file"},
		{[]string{"apply", "--dsn", dsn}, nil, "--manifest"},
		{[]string{"apply", "--manifest", out, "--dsn", ""}, nil, "DSN"},
		{[]string{"inspect"}, nil, ""},
		{[]string{"inspect", out, "--format", "xml"}, nil, "xml"},
		{[]string{"prune"}, nil, "prune"},
	}
	for _, c := range cases {
		p := clitest.Run(t, c.env, c.args...)
		line := p.LastLine(t)
		if p.Code != 2 || !strings.Contains(line, c.want) {
			t.Errorf("%q: exit %d, %q; want exit 2 and a line naming %q", c.args, p.Code, line, c.want)
		}
		if n := strings.Count(strings.TrimSpace(p.Stderr.String()), "\n"); n > 0 && !strings.Contains(p.Stderr.String(), "USAGE") {
			t.Errorf("%q: %d extra stderr lines: %q", c.args, n, p.Stderr)
		}
		if strings.Contains(p.Stdout.String()+p.Stderr.String(), "Fl4gS3cret") {
			t.Errorf("%q: password in output: %s", c.args, p)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a refused command created the manifest")
	}
}

// hostileCase is a manifest apply must refuse before deleting anything.
type hostileCase struct {
	name  string
	write func(t *testing.T, path string)
	want  string
}

func hostileCases(good string, rows []manifest.Row) []hostileCase {
	kv := func(t *testing.T) map[string]string { return readKV(t, good) }
	edited := func(f func([]manifest.Row) []manifest.Row) []manifest.Row {
		c := make([]manifest.Row, len(rows))
		for i, r := range rows {
			r.ID, r.UID = bytes.Clone(r.ID), bytes.Clone(r.UID)
			c[i] = r
		}
		return f(c)
	}
	last := len(rows) - 1
	rowsCase := func(name, want string, f func([]manifest.Row) []manifest.Row) hostileCase {
		return hostileCase{name, func(t *testing.T, p string) {
			r := edited(f)
			writeParquet(t, p, toFileRows(r), honestKV(kv(t), r))
		}, want}
	}
	metaCase := func(name, want, key, value string) hostileCase {
		return hostileCase{name, func(t *testing.T, p string) {
			m := kv(t)
			m[key] = value
			writeParquet(t, p, toFileRows(rows), m)
		}, want}
	}
	return []hostileCase{
		rowsCase("keyFetchTokens row", "not allowed", func(r []manifest.Row) []manifest.Row { r[last].Table = "keyFetchTokens"; return r }),
		rowsCase("devices table", "not allowed", func(r []manifest.Row) []manifest.Row { r[last].Table = "devices"; return r }),
		rowsCase("SQL as table name", "not allowed", func(r []manifest.Row) []manifest.Row {
			r[last].Table = "signinCodes` WHERE 1=1; DELETE FROM accounts; --"
			return r
		}),
		rowsCase("unknown stage", "not allowed", func(r []manifest.Row) []manifest.Row { r[0].Stage = "all-sessions"; return r }),
		rowsCase("id 31 bytes", "31 bytes", func(r []manifest.Row) []manifest.Row { r[last].ID = r[last].ID[:31]; return r }),
		rowsCase("uid 17 bytes", "17 bytes", func(r []manifest.Row) []manifest.Row { r[0].UID = append(r[0].UID, 1); return r }),
		rowsCase("duplicate row", "duplicate", func(r []manifest.Row) []manifest.Row { return append(r, r[last]) }),
		rowsCase("rows out of order", "out of order", func(r []manifest.Row) []manifest.Row { r[last], r[last-1] = r[last-1], r[last]; return r }),
		{"created_at as text", func(t *testing.T, p string) {
			type row struct {
				Stage     string `parquet:"stage"`
				TableName string `parquet:"table_name"`
				ID        []byte `parquet:"id"`
				UID       []byte `parquet:"uid"`
				CreatedAt string `parquet:"created_at"`
			}
			var in []row
			for _, r := range rows {
				in = append(in, row{r.Stage, r.Table, r.ID, r.UID, strconv.FormatInt(r.CreatedAt, 10)})
			}
			writeParquet(t, p, in, kv(t))
		}, "created_at"},
		{"uid column missing", func(t *testing.T, p string) {
			type row struct {
				Stage     string `parquet:"stage"`
				TableName string `parquet:"table_name"`
				ID        []byte `parquet:"id"`
				CreatedAt int64  `parquet:"created_at"`
			}
			var in []row
			for _, r := range rows {
				in = append(in, row{r.Stage, r.Table, r.ID, r.CreatedAt})
			}
			writeParquet(t, p, in, kv(t))
		}, "uid"},
		{"tampered createdAt under the original digest", func(t *testing.T, p string) {
			r := edited(func(r []manifest.Row) []manifest.Row { r[last].CreatedAt--; return r })
			writeParquet(t, p, toFileRows(r), kv(t))
		}, "digest"},
		{"row dropped under the original metadata", func(t *testing.T, p string) {
			writeParquet(t, p, toFileRows(rows[:last]), kv(t))
		}, "rows"},
		metaCase("future format version", "format version 3", "prune-tokens.format_version", "3"),
		metaCase("row_count contradicts rows", "row_count", "prune-tokens.row_count", strconv.Itoa(len(rows)+1)),
		metaCase("digest of nothing", "digest", "prune-tokens.rows_sha256", strings.Repeat("0", 64)),
		{"byte flipped mid-file", func(t *testing.T, p string) {
			b, _ := os.ReadFile(good)
			b[len(b)/3] ^= 0xff
			b[len(b)/3+1] ^= 0xff
			os.WriteFile(p, b, 0o600)
		}, ""},
		{"truncated", func(t *testing.T, p string) {
			b, _ := os.ReadFile(good)
			os.WriteFile(p, b[:len(b)-100], 0o600)
		}, "Parquet"},
		{"empty", func(t *testing.T, p string) { os.WriteFile(p, nil, 0o600) }, "empty"},
		{"CSV", func(t *testing.T, p string) {
			os.WriteFile(p, []byte("stage,table_name,id\ntoken-age,sessionTokens,00\n"), 0o600)
		}, "Parquet"},
		{"directory", func(t *testing.T, p string) { os.Mkdir(p, 0o700) }, "not a regular file"},
		// Opening a FIFO would block until someone writes to it.
		{"FIFO", func(t *testing.T, p string) { syscall.Mkfifo(p, 0o600) }, "not a regular file"},
	}
}

// TestHostileManifestsRefusedByApply: every hostile manifest ends in exit 2
// with one line, no checkpoint, and every table unchanged.
func TestHostileManifestsRefusedByApply(t *testing.T) {
	db := dbtest.New(t)
	f := appliertest.New(t, db, 41, appliertest.Small)
	dir := t.TempDir()
	good, _ := f.Manifest(t, dir)
	before := db.Checksums(t)
	for i, c := range hostileCases(good, f.Rows) {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, "hostile-"+strconv.Itoa(i)+".parquet")
			c.write(t, path)
			cp := path + ".cp"
			p := clitest.Run(t, nil, applyArgs(db.DSN, path, cp)...)
			line := p.LastLine(t)
			if p.Code != 2 || !strings.Contains(line, c.want) {
				t.Errorf("exit %d, %q; want exit 2 naming %q\n%s", p.Code, line, c.want, p)
			}
			if !strings.Contains(line, "refused") && !strings.Contains(line, "invalid") {
				t.Errorf("line does not say the manifest was refused: %q", line)
			}
			if _, err := os.Stat(cp); err == nil {
				t.Error("a checkpoint was created for a refused manifest")
			}
			if got := db.Checksums(t); !sameSums(got, before) {
				t.Fatalf("tables changed: %v -> %v", before, got)
			}
		})
	}
	// The untouched manifest still applies: the refusals above were about
	// the files, not the database.
	p := clitest.Run(t, nil, applyArgs(db.DSN, good, good+".cp")...)
	if p.Code != 0 {
		t.Fatalf("good manifest: %s", p)
	}
	f.Check(t)
}

// TestUnwritableCheckpointRefusedBeforeDeleting: a checkpoint that cannot be
// created stops apply before the first delete (root ignores permission bits,
// so the path goes through a regular file instead).
func TestUnwritableCheckpointRefusedBeforeDeleting(t *testing.T) {
	db := dbtest.New(t)
	f := appliertest.New(t, db, 43, appliertest.Small)
	dir := t.TempDir()
	path, _ := f.Manifest(t, dir)
	file := filepath.Join(dir, "a-file")
	os.WriteFile(file, []byte("x"), 0o600)
	before := db.Checksums(t)
	for _, cp := range []string{filepath.Join(file, "checkpoint"), filepath.Join(dir, "no", "such", "dir", "checkpoint"), dir} {
		p := clitest.Run(t, nil, applyArgs(db.DSN, path, cp)...)
		line := p.LastLine(t)
		if p.Code != 2 || !strings.Contains(line, "checkpoint") {
			t.Errorf("checkpoint %s: exit %d, %q; want exit 2 naming the checkpoint", cp, p.Code, line)
		}
		if got := db.Checksums(t); !sameSums(got, before) {
			t.Fatalf("checkpoint %s: tables changed", cp)
		}
	}
}

// randomSecret is a password no output could contain by chance.
func randomSecret() string {
	b := make([]byte, 9)
	_, _ = rand.Read(b)
	return "Pw_" + hex.EncodeToString(b) + "_Zq"
}

// user creates a MySQL user for the test's database with the given grants
// and drops it at cleanup.
func user(t *testing.T, db *dbtest.DB, name, pass string, grants ...string) {
	t.Helper()
	mustExec(t, db.SQL, "CREATE USER '"+name+"'@'%' IDENTIFIED BY '"+pass+"'")
	t.Cleanup(func() { db.SQL.Exec("DROP USER IF EXISTS '" + name + "'@'%'") })
	for _, g := range grants {
		mustExec(t, db.SQL, strings.ReplaceAll(g, "DB", "`"+db.Name+"`")+" TO '"+name+"'@'%'")
	}
}

func uniqueName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// planFlags plan what appliertest fixtures list.
func planFlags(out string) []string {
	return []string{"--out", out, "--now", strconv.FormatInt(appliertest.Now, 10),
		"--maxTokenAge", "30 days", "--maxCodeAge", "30 days", "--maxSessions", "5"}
}

// Grants the README documents.
var (
	planGrants = []string{
		"GRANT SELECT ON DB.sessionTokens", "GRANT SELECT ON DB.devices",
		"GRANT SELECT ON DB.accountResetTokens", "GRANT SELECT ON DB.passwordForgotTokens",
		"GRANT SELECT ON DB.passwordChangeTokens", "GRANT SELECT ON DB.unblockCodes",
		"GRANT SELECT ON DB.signinCodes",
	}
	applyGrants = []string{
		"GRANT SELECT, DELETE ON DB.sessionTokens", "GRANT SELECT, DELETE ON DB.unverifiedTokens",
		"GRANT SELECT, DELETE ON DB.devices", "GRANT SELECT, DELETE ON DB.accountResetTokens",
		"GRANT SELECT, DELETE ON DB.passwordForgotTokens", "GRANT SELECT, DELETE ON DB.passwordChangeTokens",
		"GRANT SELECT, DELETE ON DB.unblockCodes", "GRANT SELECT, DELETE ON DB.signinCodes",
	}
)

// TestLeastPrivilege: plan runs as a user with only SELECT on the tables it
// reads, apply as one with only SELECT and DELETE on the tables it deletes
// from; neither gets more, and each fails cleanly without its grants.
func TestLeastPrivilege(t *testing.T) {
	db := dbtest.New(t)
	f := appliertest.New(t, db, 47, appliertest.Small)
	planner, applier, weak := uniqueName("pt_plan_"), uniqueName("pt_apply_"), uniqueName("pt_weak_")
	pass := randomSecret()
	user(t, db, planner, pass, planGrants...)
	user(t, db, applier, pass, applyGrants...)
	// One grant short: no SELECT on devices.
	user(t, db, weak, pass, append(planGrants[:1:1], planGrants[2:]...)...)
	dir := t.TempDir()
	before := db.Checksums(t)

	out := filepath.Join(dir, "plan.parquet")
	p := clitest.Run(t, nil, append([]string{"plan", "--dsn", withUser(t, db.DSN, planner, pass)}, planFlags(out)...)...)
	if p.Code != 0 {
		t.Fatalf("plan as a SELECT-only user: %s", p)
	}
	if got := db.Checksums(t); !sameSums(got, before) {
		t.Fatal("plan changed the database")
	}

	// The planner's account cannot delete: apply refuses before the first
	// batch (exit 2), naming the denied command, and nothing is gone.
	p = clitest.Run(t, nil, applyArgs(withUser(t, db.DSN, planner, pass), out, filepath.Join(dir, "ro.cp"))...)
	t.Logf("apply as the SELECT-only user: exit %d: %s", p.Code, p.LastLine(t))
	if line := p.LastLine(t); p.Code != 2 || !strings.Contains(line, "command denied") || !strings.Contains(line, "lacks privileges") {
		t.Errorf("apply as the SELECT-only user: exit %d, %q; want exit 2 naming the denied command", p.Code, line)
	}
	// A dry run with the same account says so up front (it then stops at
	// the first read of a table plan never needed).
	p = clitest.Run(t, nil, "apply", "--dsn", withUser(t, db.DSN, planner, pass), "--manifest", out, "--dryRun")
	if !strings.Contains(p.Stdout.String(), "warning     the database user lacks privileges") {
		t.Errorf("dry run as the SELECT-only user: %s; want a privilege warning", p)
	}
	if got := db.Checksums(t); !sameSums(got, before) {
		t.Fatal("apply without DELETE changed the database")
	}

	// A planner without SELECT on devices fails cleanly and leaves no manifest.
	weakOut := filepath.Join(dir, "weak.parquet")
	p = clitest.Run(t, nil, append([]string{"plan", "--dsn", withUser(t, db.DSN, weak, pass)}, planFlags(weakOut)...)...)
	if line := p.LastLine(t); p.Code == 0 || !strings.Contains(line, "denied") {
		t.Errorf("plan without SELECT on devices: exit %d, %q", p.Code, line)
	}
	if _, err := os.Stat(weakOut); err == nil {
		t.Error("a failed plan left a manifest")
	}

	p = clitest.Run(t, nil, applyArgs(withUser(t, db.DSN, applier, pass), out, filepath.Join(dir, "rw.cp"))...)
	if p.Code != 0 {
		t.Fatalf("apply as a SELECT, DELETE user: %s", p)
	}
	f.Check(t)
}

// TestSecretsNeverLeak runs every command, successful and failing, with a
// distinctive password and greps every byte of output and of every file
// for it. Files holding account ids are owner-only.
func TestSecretsNeverLeak(t *testing.T) {
	db := dbtest.New(t)
	appliertest.New(t, db, 53, appliertest.Small)
	name, pass := uniqueName("pt_sec_"), randomSecret()
	user(t, db, name, pass, "GRANT ALL ON DB.*")
	dsn := withUser(t, db.DSN, name, pass)
	dir := t.TempDir()
	out, summary, cp := filepath.Join(dir, "plan.parquet"), filepath.Join(dir, "plan.md"), filepath.Join(dir, "plan.cp")

	var procs []*clitest.Proc
	check := func(p *clitest.Proc, wantCode int) {
		t.Helper()
		procs = append(procs, p)
		if p.Code != wantCode {
			t.Errorf("%q: exit %d, want %d\n%s", p.Cmd.Args[1:], p.Code, wantCode, p)
		}
	}
	check(clitest.Run(t, nil, append([]string{"plan", "--dsn", dsn, "--summary", summary}, planFlags(out)...)...), 0)
	check(clitest.Run(t, nil, "inspect", out, "--format", "json"), 0)
	check(clitest.Run(t, nil, "inspect", out, "--format", "markdown"), 0)
	check(clitest.Run(t, []string{"PRUNE_TOKENS_DSN=" + dsn}, "apply", "--manifest", out, "--dryRun"), 0)
	// JSON logs, a report, and a session cache (with its own password,
	// unreachable, so its failures are logged) on the run that deletes.
	redisURL := "redis://:" + pass + "@127.0.0.1:1/0"
	report := filepath.Join(dir, "report.json")
	check(clitest.Run(t, nil, append(applyArgs(dsn, out, cp), "--logFormat", "json", "--report", report, "--redis", redisURL)...), 0)
	check(clitest.Run(t, nil, applyArgs(dsn, out, cp)...), 0) // already complete
	// Failures: wrong password, unknown database, unreachable server, an
	// existing output, a refused manifest.
	wrong := withUser(t, db.DSN, name, pass+"x")
	check(clitest.Run(t, nil, append([]string{"plan", "--dsn", wrong}, planFlags(filepath.Join(dir, "x.parquet"))...)...), 2)
	cfgNoDB := strings.Replace(dsn, "/"+db.Name, "/no_such_db_"+name, 1)
	check(clitest.Run(t, nil, append([]string{"plan", "--dsn", cfgNoDB}, planFlags(filepath.Join(dir, "y.parquet"))...)...), 2)
	check(clitest.Run(t, nil, append([]string{"plan", "--dsn", withAddr(t, dsn, "127.0.0.1:1")}, planFlags(filepath.Join(dir, "z.parquet"))...)...), 2)
	check(clitest.Run(t, nil, append([]string{"plan", "--dsn", dsn}, planFlags(out)...)...), 2)
	check(clitest.Run(t, nil, applyArgs(withAddr(t, dsn, "127.0.0.1:1"), out, cp)...), 2)
	check(clitest.Run(t, nil, applyArgs(wrong, out, filepath.Join(dir, "w.cp"))...), 2)
	check(clitest.Run(t, []string{"PRUNE_TOKENS_DSN=" + wrong}, "apply", "--manifest", out, "--approve", strings.Repeat("ab", 32)), 2)
	check(clitest.Run(t, []string{"PRUNE_TOKENS_DSN=" + wrong, "PRUNE_TOKENS_REDIS=" + redisURL}, "apply", "--manifest", out, "--approve", appliertest.Approval(out), "--logFormat", "json", "--report", report, "--redisOnly"), 2)
	check(clitest.Run(t, []string{"PRUNE_TOKENS_REDIS=redis://:" + pass + "@127.0.0.1:1/0?no_such_option=1"}, "apply", "--dsn", dsn, "--manifest", out, "--approve", appliertest.Approval(out), "--redisOnly"), 2)
	check(clitest.Run(t, nil, append([]string{"plan", "--dsn", wrong, "--logFormat", "json"}, planFlags(filepath.Join(dir, "j.parquet"))...)...), 2)

	for _, p := range procs {
		if strings.Contains(p.Stdout.String()+p.Stderr.String(), pass) {
			t.Errorf("%q: password in output:\n%s", p.Cmd.Args[1:], p)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := 0
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files++
		if bytes.Contains(b, []byte(pass)) {
			t.Errorf("%s holds the password", e.Name())
		}
		st, _ := os.Stat(p)
		if st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v; want owner-only (0600)", e.Name(), st.Mode().Perm())
		}
	}
	for _, want := range []string{out, summary, cp, report} {
		if _, err := os.Stat(want); err != nil {
			t.Errorf("expected artifact %s: %v", want, err)
		}
	}
	t.Logf("%d runs, %d files checked", len(procs), files)
}

// TestTLSParametersPassThrough: tls= in the DSN reaches the driver:
// "preferred" falls back to plaintext on a server without TLS, and an
// unknown value is a DSN error. (That requiring TLS from a server without it
// fails is TestTLSRequiredButNotOffered, on a private server that surely has
// none: the shared one may or may not.)
func TestTLSParametersPassThrough(t *testing.T) {
	db := dbtest.New(t)
	appliertest.New(t, db, 59, appliertest.Small)
	dir := t.TempDir()
	withTLS := func(v string) string {
		return db.DSN + "&tls=" + v
	}
	if !strings.Contains(db.DSN, "?") {
		t.Fatalf("test DSN has no parameters: %s", db.DSN)
	}
	p := clitest.Run(t, nil, append([]string{"plan", "--dsn", withTLS("preferred")}, planFlags(filepath.Join(dir, "c.parquet"))...)...)
	if p.Code != 0 {
		t.Errorf("tls=preferred: %s", p)
	}
	p = clitest.Run(t, nil, append([]string{"plan", "--dsn", withTLS("sometimes")}, planFlags(filepath.Join(dir, "d.parquet"))...)...)
	// The driver's own message names the value, not the parameter.
	if line := p.LastLine(t); p.Code != 2 || !strings.Contains(line, "bad DSN") || !strings.Contains(line, "sometimes") {
		t.Errorf("tls=sometimes: exit %d, %q; want exit 2, a bad DSN naming the value", p.Code, line)
	}
}
