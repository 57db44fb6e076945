package manifest

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func id(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

// sampleRows is a small valid manifest body: every section, in order.
func sampleRows() []Row {
	var rows []Row
	// max-sessions: two accounts, each group oldest first
	for _, u := range []byte{9, 3} {
		for i := 0; i < 3; i++ {
			rows = append(rows, Row{StageMaxSessions, TableSessionTokens, id(byte(i+1)|u<<4, 32), id(u, 16), 1000 + int64(i)})
		}
	}
	for _, s := range sections[1:] {
		for i := 0; i < 4; i++ {
			rows = append(rows, Row{s.Stage, s.Table, id(byte(0xa0+i), 32), id(byte(i), 16), 500 + int64(i/2)})
		}
	}
	return rows
}

func writeManifest(t *testing.T, rows []Row) (string, *Meta) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "plan.parquet")
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	m, err := w.Commit(Meta{ToolVersion: "test", PlannedAt: time.Unix(1700000000, 0), Now: 1700000000000,
		TokenCutoff: 1600000000000, CodeCutoff: honestCutoff(rows, StageCodeAge, 1600000000000),
		Flags: map[string]string{"maxTokenAge": "30 days"}, TopAccounts: honestTopAccounts(rows),
		Source: Source{Host: "db", Port: 3306, Database: "fxa"}})
	if err != nil {
		t.Fatal(err)
	}
	return path, m
}

func TestRoundTrip(t *testing.T) {
	rows := sampleRows()
	path, m := writeManifest(t, rows)
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Verify(); err != nil {
		t.Fatal(err)
	}
	got := r.Meta()
	if got.RowsSHA256 != m.RowsSHA256 || got.RowCount != int64(len(rows)) || got.Flags["maxTokenAge"] != "30 days" || got.Source.Host != "db" {
		t.Fatalf("meta mismatch: %+v", got)
	}
	if got.Count(Section{StageMaxSessions, TableSessionTokens}) != 6 {
		t.Errorf("count = %d", got.Count(Section{StageMaxSessions, TableSessionTokens}))
	}
	if got.Stats[0].Accounts != 2 {
		t.Errorf("accounts = %d, want 2", got.Stats[0].Accounts)
	}
	// every start index yields exactly the tail of the rows
	for from := 0; from <= len(rows); from++ {
		it := r.Rows(int64(from))
		i := from
		for row, ok := it.Next(); ok; row, ok = it.Next() {
			if !bytes.Equal(row.ID, rows[i].ID) || row.Table != rows[i].Table || row.CreatedAt != rows[i].CreatedAt {
				t.Fatalf("from %d: row %d = %+v, want %+v", from, i, row, rows[i])
			}
			i++
		}
		if it.Err() != nil || i != len(rows) {
			t.Fatalf("from %d: stopped at %d, err %v", from, i, it.Err())
		}
	}
}

func TestNeverOverwrites(t *testing.T) {
	path, _ := writeManifest(t, sampleRows())
	before, _ := os.ReadFile(path)
	if _, err := Create(path); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("Create on existing file: %v", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("existing manifest changed")
	}
}

func TestAbortLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(filepath.Join(dir, "p.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	_ = w.Write(sampleRows()[0])
	w.Abort()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left %v", ents)
	}
}

func TestWriterRejectsBadOrder(t *testing.T) {
	cases := map[string][]Row{
		"duplicate":                  {{StageCodeAge, TableSigninCodes, id(1, 32), id(1, 16), 5}, {StageCodeAge, TableSigninCodes, id(1, 32), id(1, 16), 5}},
		"key descending":             {{StageCodeAge, TableSigninCodes, id(2, 32), id(1, 16), 4}, {StageCodeAge, TableSigninCodes, id(1, 32), id(1, 16), 5}},
		"key again, other createdAt": {{StageTokenAge, TableSessionTokens, id(1, 32), id(1, 16), 5}, {StageTokenAge, TableSessionTokens, id(1, 32), id(1, 16), 4}},
		"older in group":             {{StageMaxSessions, TableSessionTokens, id(1, 32), id(1, 16), 5}, {StageMaxSessions, TableSessionTokens, id(2, 32), id(1, 16), 4}},
		"section order":              {{StageCodeAge, TableSigninCodes, id(1, 32), id(1, 16), 5}, {StageTokenAge, TableSessionTokens, id(2, 32), id(1, 16), 6}},
		"unknown table":              {{StageCodeAge, "keyFetchTokens", id(1, 32), id(1, 16), 5}},
		"short id":                   {{StageCodeAge, TableSigninCodes, id(1, 31), id(1, 16), 5}},
		"both stages":                {{StageMaxSessions, TableSessionTokens, id(1, 32), id(1, 16), 5}, {StageTokenAge, TableSessionTokens, id(1, 32), id(1, 16), 5}},
		"account regroups":           {{StageMaxSessions, TableSessionTokens, id(1, 32), id(1, 16), 5}, {StageMaxSessions, TableSessionTokens, id(2, 32), id(2, 16), 5}, {StageMaxSessions, TableSessionTokens, id(3, 32), id(1, 16), 6}},
	}
	for name, rows := range cases {
		t.Run(name, func(t *testing.T) {
			w, err := Create(filepath.Join(t.TempDir(), "p.parquet"))
			if err != nil {
				t.Fatal(err)
			}
			defer w.Abort()
			var werr error
			for _, r := range rows {
				if werr = w.Write(r); werr != nil {
					break
				}
			}
			if werr == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestOpenRefusesBrokenFiles(t *testing.T) {
	path, _ := writeManifest(t, sampleRows())
	good, _ := os.ReadFile(path)
	dir := t.TempDir()
	cases := map[string][]byte{
		"empty":       {},
		"not parquet": []byte("stage,table_name\nmax-sessions,sessionTokens\n"),
		"truncated":   good[:len(good)/2],
		"no footer":   good[:len(good)-8],
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
			os.WriteFile(p, b, 0o600)
			r, err := Open(p)
			if err == nil {
				err = r.Verify()
				r.Close()
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

// TestSectionsIsACopy: the allow-list of what apply may delete cannot be
// widened by a caller that edits what Sections returns.
func TestSectionsIsACopy(t *testing.T) {
	s := Sections()
	s[0] = Section{"any-stage", "accounts"}
	if SectionIndex("any-stage", "accounts") != -1 || Sections()[0] == s[0] {
		t.Fatal("editing the result of Sections changed the allow-list")
	}
}
