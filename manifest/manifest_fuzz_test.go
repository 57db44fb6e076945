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
		TokenCutoff: 1600000000000, Flags: map[string]string{"maxTokenAge": "30 days"},
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
		rows, err := readAll(path)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		if msg := obeysRules(rows); msg != "" {
			t.Fatalf("accepted a manifest that breaks the rules: %s", msg)
		}
	})
}

// FuzzManifestRows writes arbitrary rows with metadata that honestly
// describes them, so the fuzzer explores the row rules rather than the
// Parquet decoder: Verify must accept exactly the row lists that obey the
// rules, and give back the rows unchanged.
func FuzzManifestRows(f *testing.F) {
	f.Add([]byte{0, 1, 1, 5, 0, 2, 1, 6, 4, 3, 2, 1, 6, 9, 1, 2})
	f.Add([]byte{0, 1, 1, 5, 0, 2, 2, 6, 0, 1, 1, 7})
	f.Add([]byte{0, 1, 1, 5, 4, 1, 1, 5})
	f.Add([]byte{6, 0xf1, 1, 5, 7, 1, 1, 5, 8, 2, 2, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		rows := decodeRows(data)
		path := writeRaw(t, toFileRows(rows), rawMeta(rows))
		got, err := readAll(path)
		if err != nil {
			checkRefusal(t, err)
			if obeysRules(rows) == "" {
				t.Fatalf("refused rows that obey the rules: %v", err)
			}
			return
		}
		if msg := obeysRules(rows); msg != "" {
			t.Fatalf("accepted rows that break the rules: %s", msg)
		}
		if !sameRows(got, rows) {
			t.Fatalf("rows changed on the way through the file")
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
		if i := int(data[0]) % (len(Sections) + len(extra)); i < len(Sections) {
			sec = Sections[i]
		} else {
			sec = extra[i-len(Sections)]
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

// obeysRules is an independent statement of the format's row rules, written
// without the tally: "" when rows form a valid manifest body.
func obeysRules(rows []Row) string {
	type key struct{ table, key string }
	seen := map[key]Row{}
	maxSessions := map[string]bool{}
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
		if prev, dup := seen[k]; dup && (prev.Stage == StageMaxSessions || r.Stage == StageMaxSessions || prev.CreatedAt == r.CreatedAt) {
			// The same key with another createdAt outside max-sessions is
			// tolerated: catching it needs memory per row, and apply's
			// createdAt guard deletes at most one of the two.
			return fmt.Sprintf("row %d: duplicate key", i)
		}
		seen[k] = r
		if r.Stage == StageMaxSessions {
			maxSessions[string(r.ID)] = true
		} else if r.Table == TableSessionTokens && maxSessions[string(r.ID)] {
			return fmt.Sprintf("row %d: session in both stages", i)
		}
		if i > 0 && sec == lastSec {
			p := rows[i-1]
			if r.Stage == StageMaxSessions && !bytes.Equal(p.UID, r.UID) {
				if groupsDone[string(r.UID)] {
					return fmt.Sprintf("row %d: account regrouped", i)
				}
				groupsDone[string(p.UID)] = true
			} else if compareAge(p, r) >= 0 {
				return fmt.Sprintf("row %d: order", i)
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
