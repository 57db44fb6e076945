package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The fuzz targets hold Open, Verify and Rows to their promise: any input
// yields a clean one-line ErrInvalid, or rows that obey every rule of the
// format. Seeds live in testdata/fuzz/<Target>; `make fuzz` runs longer.

// seedManifest is a valid manifest's bytes.
func seedManifest(tb testing.TB, rows []Row) []byte {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "seed.parquet")
	w, err := Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	for _, r := range rows {
		if err := w.Write(r); err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := w.Commit(Meta{ToolVersion: "seed", PlannedAt: time.Unix(1700000000, 0), Now: 1700000000000,
		TokenCutoff: 1600000000000, CodeCutoff: honestCutoff(rows, StageCodeAge, 1600000000000),
		Flags: map[string]string{"maxTokenAge": "30 days"}, TopAccounts: honestTopAccounts(rows),
		Source: Source{Host: "db", Port: 3306, Database: "fxa"}}); err != nil {
		tb.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func FuzzManifest(f *testing.F) {
	good := seedManifest(f, sampleRows())
	f.Add(good)
	f.Add(seedManifest(f, nil))
	f.Add(good[:len(good)/2])
	f.Add([]byte("PAR1PAR1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "m.parquet")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		rows, version, err := readAllVersion(path)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		if msg := obeysRules(rows, version); msg != "" {
			t.Fatalf("accepted a manifest that breaks the rules: %s", msg)
		}
	})
}

// FuzzManifestRows writes arbitrary rows with metadata that honestly
// describes them, so the fuzzer explores the row rules rather than the
// Parquet decoder: Verify must accept exactly the row lists that obey the
// rules of the format version the file claims (each supported version is
// tried), and give back the rows unchanged.
func FuzzManifestRows(f *testing.F) {
	f.Add([]byte{0, 1, 1, 5, 0, 2, 1, 6, 4, 3, 2, 1, 6, 9, 1, 2})
	f.Add([]byte{0, 1, 1, 5, 0, 2, 2, 6, 0, 1, 1, 7})
	f.Add([]byte{0, 1, 1, 5, 4, 1, 1, 5})
	f.Add([]byte{6, 0xf1, 1, 5, 7, 1, 1, 5, 8, 2, 2, 2})
	f.Add([]byte{6, 2, 1, 5, 6, 1, 1, 6})
	f.Add([]byte{6, 2, 1, 5, 6, 2, 1, 6})
	f.Fuzz(func(t *testing.T, data []byte) {
		rows := decodeRows(data)
		for version := MinFormatVersion; version <= FormatVersion; version++ {
			path := writeRaw(t, toFileRows(rows), rawMetaVersion(rows, version))
			got, err := readAll(path)
			if err != nil {
				checkRefusal(t, err)
				if obeysRules(rows, version) == "" {
					t.Fatalf("version %d: refused rows that obey the rules: %v", version, err)
				}
				continue
			}
			if msg := obeysRules(rows, version); msg != "" {
				t.Fatalf("version %d: accepted rows that break the rules: %s", version, msg)
			}
			if !sameRows(got, rows) {
				t.Fatalf("version %d: rows changed on the way through the file", version)
			}
		}
	})
}

func checkRefusal(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("error is not ErrInvalid: %v", err)
	}
	if strings.ContainsAny(err.Error(), "\r\n") {
		t.Fatalf("error spans lines: %q", err)
	}
}

// decodeRows turns fuzz bytes into rows, 4 bytes a row, from small alphabets
// so that duplicates, bad sections and bad lengths come up often.
func decodeRows(data []byte) []Row {
	extra := []Section{{StageTokenAge, "keyFetchTokens"}, {"code-age ", TableSigninCodes}}
	var rows []Row
	for ; len(data) >= 4; data = data[4:] {
		var sec Section
		if i := int(data[0]) % (len(sections) + len(extra)); i < len(sections) {
			sec = sections[i]
		} else {
			sec = extra[i-len(sections)]
		}
		idLen, uidLen := IDLen, UIDLen
		if data[1]&0xf0 == 0xf0 {
			idLen = int(data[1]&0x0f) * 3
		}
		if data[2]&0x80 != 0 {
			uidLen = int(data[2]&0x1f) + 1
		}
		rows = append(rows, Row{Stage: sec.Stage, Table: sec.Table,
			ID: bytes.Repeat([]byte{data[1] & 0x0f}, idLen), UID: bytes.Repeat([]byte{data[2] & 0x03}, uidLen),
			CreatedAt: int64(int8(data[3]))})
	}
	return rows
}

// obeysRules is an independent statement of the row rules of a format
// version, written without the tally: "" when rows form a valid manifest
// body. Every version: each primary key at most once per table in the whole
// file (a session token in at most one of max-sessions and token-age),
// sections in order, max-sessions grouped by account with each group
// ascending by (createdAt, key). Other sections: ascending primary key
// (version 2) or ascending (createdAt, key) (version 1).
func obeysRules(rows []Row, version int) string {
	type key struct{ table, key string }
	seen := map[key]bool{}
	groupsDone := map[string]bool{}
	lastSec := -1
	for i, r := range rows {
		if err := r.Validate(); err != nil {
			return fmt.Sprintf("row %d: %v", i, err)
		}
		sec := SectionIndex(r.Stage, r.Table)
		if sec < lastSec {
			return fmt.Sprintf("row %d: section order", i)
		}
		k := key{r.Table, string(r.Key())}
		if seen[k] {
			return fmt.Sprintf("row %d: duplicate key", i)
		}
		seen[k] = true
		if i > 0 && sec == lastSec {
			p := rows[i-1]
			switch {
			case r.Stage == StageMaxSessions && !bytes.Equal(p.UID, r.UID):
				if groupsDone[string(r.UID)] {
					return fmt.Sprintf("row %d: account regrouped", i)
				}
				groupsDone[string(p.UID)] = true
			case r.Stage == StageMaxSessions || version == 1:
				if compareAge(p, r) >= 0 {
					return fmt.Sprintf("row %d: order by (createdAt, key)", i)
				}
			default:
				if bytes.Compare(p.Key(), r.Key()) >= 0 {
					return fmt.Sprintf("row %d: order by key", i)
				}
			}
		}
		lastSec = sec
	}
	return ""
}

// TestWriteFuzzSeeds regenerates testdata/fuzz/FuzzManifest from real
// manifests: PRUNE_TOKENS_WRITE_SEEDS=1 go test -run TestWriteFuzzSeeds ./manifest/
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("PRUNE_TOKENS_WRITE_SEEDS") == "" {
		t.Skip("set PRUNE_TOKENS_WRITE_SEEDS=1 to regenerate the seed corpus")
	}
	rows := sampleRows()
	big := func() []Row {
		var out []Row
		for i := 0; i < 3000; i++ {
			id := bytes.Repeat([]byte{byte(i)}, IDLen)
			id[0], id[1] = byte(i>>8), byte(i)
			out = append(out, Row{StageTokenAge, TableSessionTokens, id, id[:UIDLen], int64(i)})
		}
		return out
	}()
	seeds := map[string][]byte{
		"valid-sample":     seedManifest(t, rows),
		"valid-empty":      seedManifest(t, nil),
		"valid-one-row":    seedManifest(t, rows[len(rows)-1:]),
		"valid-3000-rows":  seedManifest(t, big),
		"truncated-half":   seedManifest(t, rows)[:len(seedManifest(t, rows))/2],
		"raw-wrong-length": readFile(t, writeRaw(t, toFileRows(append(rows[:1:1], Row{StageCodeAge, TableSigninCodes, []byte{1}, rows[0].UID, 1})), nil)),
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzManifest")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range seeds {
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func readFile(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
