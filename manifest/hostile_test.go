package manifest

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// Hostile manifests are written with parquet-go directly, bypassing Writer
// and its checks, the way an attacker or a buggy third-party tool would.

// rawMeta computes key/value metadata that honestly describes rows, whatever
// they hold: digest, row count, per-section counts and ranges in order of
// first appearance. A file whose rows break the format's rules but whose
// metadata agrees with them must still be refused by Verify.
func rawMeta(rows []Row) map[string]string { return rawMetaVersion(rows, FormatVersion) }

// rawMetaVersion is rawMeta claiming another format version.
func rawMetaVersion(rows []Row, version int) map[string]string {
	return rawMetaEdited(rows, version, nil)
}

// rawMetaEdited is rawMetaVersion with the metadata edited by edit before
// it is encoded, as a forger who recomputed every digest and count would.
func rawMetaEdited(rows []Row, version int, edit func(*Meta)) map[string]string {
	h := newTally(version).digest
	var stats []SectionStats
	idx := map[string]int{}
	accounts := map[string]map[string]bool{}
	for _, r := range rows {
		h.Write(appendDigestRow(nil, r))
		k := r.Section().String()
		i, ok := idx[k]
		if !ok {
			i = len(stats)
			idx[k] = i
			stats = append(stats, SectionStats{Stage: r.Stage, Table: r.Table, Oldest: r.CreatedAt, Newest: r.CreatedAt})
			accounts[k] = map[string]bool{}
		}
		st := &stats[i]
		st.Rows++
		st.Oldest, st.Newest = min(st.Oldest, r.CreatedAt), max(st.Newest, r.CreatedAt)
		accounts[k][string(r.UID)] = true
		st.Accounts = int64(len(accounts[k]))
	}
	m := Meta{ToolVersion: "hostile", PlannedAt: time.Unix(1700000000, 0), Now: 1700000000000,
		TokenCutoff: honestCutoff(rows, StageTokenAge, 1600000000000), CodeCutoff: honestCutoff(rows, StageCodeAge, 1600000000000),
		Flags: map[string]string{"maxTokenAge": "30 days"}, TopAccounts: honestTopAccounts(rows),
		Source:   Source{Host: "db", Port: 3306, Database: "fxa"},
		RowCount: int64(len(rows)), Stats: stats, RowsSHA256: hex.EncodeToString(h.Sum(nil))}
	if edit != nil {
		edit(&m)
	}
	kv, err := m.keyValues()
	if err != nil {
		panic(err)
	}
	out := map[string]string{}
	for _, p := range kv {
		out[p[0]] = p[1]
	}
	out[keyFormatVersion] = strconv.Itoa(version)
	if version == 1 {
		delete(out, keyRowOrder) // version 1 had no such key
	}
	return out
}

// writeRaw writes rows of any Go struct type as a Parquet file with the given
// key/value metadata (a key with value "\x00delete" is left out).
func writeRaw[T any](t testing.TB, rows []T, kv map[string]string, opts ...parquet.WriterOption) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hostile.parquet")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := parquet.NewGenericWriter[T](f, opts...)
	if len(rows) > 0 {
		if _, err := w.Write(rows); err != nil {
			t.Fatalf("write rows: %v", err)
		}
	}
	for k, v := range kv {
		if v != "\x00delete" {
			w.SetKeyValueMetadata(k, v)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	return path
}

func toFileRows(rows []Row) []fileRow {
	out := make([]fileRow, len(rows))
	for i, r := range rows {
		out[i] = fileRow{Stage: r.Stage, TableName: r.Table, ID: r.ID, UID: r.UID, CreatedAt: r.CreatedAt}
	}
	return out
}

// openVerify is what apply does before its first delete.
func openVerify(path string) error {
	r, err := Open(path)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := r.Verify(); err != nil {
		return err
	}
	it := r.Rows(0)
	for _, ok := it.Next(); ok; _, ok = it.Next() {
	}
	return it.Err()
}

// mustRefuse asserts the manifest is refused as invalid, with one line that
// contains want.
func mustRefuse(t *testing.T, path, want string) {
	t.Helper()
	err := openVerify(path)
	if err == nil {
		t.Fatalf("accepted; want refusal mentioning %q", want)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("error is not ErrInvalid: %v", err)
	}
	if strings.ContainsAny(err.Error(), "\r\n") {
		t.Errorf("error spans lines: %q", err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not mention %q", err, want)
	}
}

func TestHostileBaselineAccepted(t *testing.T) {
	// The raw writer itself must produce acceptable files, or every refusal
	// below proves nothing.
	rows := sampleRows()
	if err := openVerify(writeRaw(t, toFileRows(rows), rawMeta(rows))); err != nil {
		t.Fatalf("honest raw manifest refused: %v", err)
	}
	// Another writer may add columns of its own and order them differently.
	type extra struct {
		CreatedAt int64  `parquet:"created_at"`
		Note      string `parquet:"note"`
		UID       []byte `parquet:"uid"`
		ID        []byte `parquet:"id"`
		TableName string `parquet:"table_name"`
		Stage     string `parquet:"stage"`
	}
	var ex []extra
	for _, r := range rows {
		ex = append(ex, extra{r.CreatedAt, "x", r.UID, r.ID, r.Table, r.Stage})
	}
	if err := openVerify(writeRaw(t, ex, rawMeta(rows))); err != nil {
		t.Fatalf("manifest with an extra column refused: %v", err)
	}
}

func TestHostileSchemas(t *testing.T) {
	rows := sampleRows()
	kv := rawMeta(rows)
	t.Run("created_at as string", func(t *testing.T) {
		type T struct {
			Stage     string `parquet:"stage"`
			TableName string `parquet:"table_name"`
			ID        []byte `parquet:"id"`
			UID       []byte `parquet:"uid"`
			CreatedAt string `parquet:"created_at"`
		}
		var in []T
		for _, r := range rows {
			in = append(in, T{r.Stage, r.Table, r.ID, r.UID, strconv.FormatInt(r.CreatedAt, 10)})
		}
		mustRefuse(t, writeRaw(t, in, kv), `column "created_at" has type`)
	})
	t.Run("created_at as int32", func(t *testing.T) {
		type T struct {
			Stage     string `parquet:"stage"`
			TableName string `parquet:"table_name"`
			ID        []byte `parquet:"id"`
			UID       []byte `parquet:"uid"`
			CreatedAt int32  `parquet:"created_at"`
		}
		var in []T
		for _, r := range rows {
			in = append(in, T{r.Stage, r.Table, r.ID, r.UID, int32(r.CreatedAt)})
		}
		mustRefuse(t, writeRaw(t, in, kv), `column "created_at" has type`)
	})
	t.Run("id as int64", func(t *testing.T) {
		type T struct {
			Stage     string `parquet:"stage"`
			TableName string `parquet:"table_name"`
			ID        int64  `parquet:"id"`
			UID       []byte `parquet:"uid"`
			CreatedAt int64  `parquet:"created_at"`
		}
		var in []T
		for i, r := range rows {
			in = append(in, T{r.Stage, r.Table, int64(i), r.UID, r.CreatedAt})
		}
		mustRefuse(t, writeRaw(t, in, kv), `column "id" has type`)
	})
	t.Run("stage a leaf annotated MAP", func(t *testing.T) {
		// The fuzzer's find: parquet-go panics asking such a leaf its kind.
		schema := parquet.NewSchema("manifest", parquet.Group{
			"stage":      parquet.Leaf(mapAnnotated{parquet.ByteArrayType}),
			"table_name": parquet.String(),
			"id":         parquet.Leaf(parquet.ByteArrayType),
			"uid":        parquet.Leaf(parquet.ByteArrayType),
			"created_at": parquet.Int(64),
		})
		path := filepath.Join(t.TempDir(), "hostile.parquet")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		w := parquet.NewWriter(f, schema)
		for k, v := range kv {
			w.SetKeyValueMetadata(k, v)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		mustRefuse(t, path, `unreadable schema`)
	})
	t.Run("stage as boolean", func(t *testing.T) {
		type T struct {
			Stage     bool   `parquet:"stage"`
			TableName string `parquet:"table_name"`
			ID        []byte `parquet:"id"`
			UID       []byte `parquet:"uid"`
			CreatedAt int64  `parquet:"created_at"`
		}
		var in []T
		for _, r := range rows {
			in = append(in, T{true, r.Table, r.ID, r.UID, r.CreatedAt})
		}
		mustRefuse(t, writeRaw(t, in, kv), `column "stage" has type`)
	})
	t.Run("uid missing", func(t *testing.T) {
		type T struct {
			Stage     string `parquet:"stage"`
			TableName string `parquet:"table_name"`
			ID        []byte `parquet:"id"`
			CreatedAt int64  `parquet:"created_at"`
		}
		var in []T
		for _, r := range rows {
			in = append(in, T{r.Stage, r.Table, r.ID, r.CreatedAt})
		}
		mustRefuse(t, writeRaw(t, in, kv), `column "uid" is missing`)
	})
	t.Run("created_at missing", func(t *testing.T) {
		type T struct {
			Stage     string `parquet:"stage"`
			TableName string `parquet:"table_name"`
			ID        []byte `parquet:"id"`
			UID       []byte `parquet:"uid"`
		}
		var in []T
		for _, r := range rows {
			in = append(in, T{r.Stage, r.Table, r.ID, r.UID})
		}
		mustRefuse(t, writeRaw(t, in, kv), `column "created_at" is missing`)
	})
	t.Run("columns renamed", func(t *testing.T) {
		type T struct {
			Stage     string `parquet:"Stage"`
			TableName string `parquet:"table"`
			ID        []byte `parquet:"tokenId"`
			UID       []byte `parquet:"uid"`
			CreatedAt int64  `parquet:"createdAt"`
		}
		var in []T
		for _, r := range rows {
			in = append(in, T{r.Stage, r.Table, r.ID, r.UID, r.CreatedAt})
		}
		mustRefuse(t, writeRaw(t, in, kv), `is missing`)
	})
	t.Run("uid repeated", func(t *testing.T) {
		type T struct {
			Stage     string   `parquet:"stage"`
			TableName string   `parquet:"table_name"`
			ID        []byte   `parquet:"id"`
			UID       [][]byte `parquet:"uid,list"`
			CreatedAt int64    `parquet:"created_at"`
		}
		var in []T
		for _, r := range rows {
			in = append(in, T{r.Stage, r.Table, r.ID, [][]byte{r.UID, r.UID}, r.CreatedAt})
		}
		mustRefuse(t, writeRaw(t, in, kv), `uid`)
	})
	t.Run("null id", func(t *testing.T) {
		type T struct {
			Stage     string  `parquet:"stage"`
			TableName string  `parquet:"table_name"`
			ID        *[]byte `parquet:"id,optional"`
			UID       []byte  `parquet:"uid"`
			CreatedAt int64   `parquet:"created_at"`
		}
		var in []T
		for i, r := range rows {
			id := r.ID
			t := T{r.Stage, r.Table, &id, r.UID, r.CreatedAt}
			if i == 3 {
				t.ID = nil
			}
			in = append(in, t)
		}
		mustRefuse(t, writeRaw(t, in, kv), `null`)
	})
}

func TestHostileRows(t *testing.T) {
	base := sampleRows()
	edit := func(f func([]Row) []Row) []Row {
		rows := make([]Row, len(base))
		for i, r := range base {
			r.ID = bytes.Clone(r.ID)
			r.UID = bytes.Clone(r.UID)
			rows[i] = r
		}
		return f(rows)
	}
	last := len(base) - 1
	cases := []struct {
		name string
		rows []Row
		want string
	}{
		{"unknown stage", edit(func(r []Row) []Row { r[last].Stage = "max-devices"; return r }), "not allowed"},
		{"keyFetchTokens", edit(func(r []Row) []Row { r[last].Table = "keyFetchTokens"; return r }), "not allowed"},
		{"devices table", edit(func(r []Row) []Row { r[last].Table = "devices"; return r }), "not allowed"},
		{"accounts table", edit(func(r []Row) []Row { r[last].Table = "accounts"; return r }), "not allowed"},
		{"SQL in table name", edit(func(r []Row) []Row { r[last].Table = "signinCodes`; DROP TABLE accounts; --"; return r }), "not allowed"},
		{"table of another stage", edit(func(r []Row) []Row { r[last].Table = TableSessionTokens; return r }), "not allowed"},
		{"table name in other case", edit(func(r []Row) []Row { r[last].Table = "SIGNINCODES"; return r }), "not allowed"},
		{"stage with trailing space", edit(func(r []Row) []Row { r[last].Stage = "code-age "; return r }), "not allowed"},
		{"empty stage", edit(func(r []Row) []Row { r[0].Stage = ""; return r }), "not allowed"},
		{"id 31 bytes", edit(func(r []Row) []Row { r[2].ID = r[2].ID[:31]; return r }), "id is 31 bytes"},
		{"id 33 bytes", edit(func(r []Row) []Row { r[2].ID = append(r[2].ID, 0); return r }), "id is 33 bytes"},
		{"id empty", edit(func(r []Row) []Row { r[last].ID = []byte{}; return r }), "id is 0 bytes"},
		{"uid 15 bytes", edit(func(r []Row) []Row { r[7].UID = r[7].UID[:15]; return r }), "uid is 15 bytes"},
		{"uid 32 bytes", edit(func(r []Row) []Row { r[7].UID = bytes.Repeat([]byte{7}, 32); return r }), "uid is 32 bytes"},
		{"duplicate row", edit(func(r []Row) []Row { return append(r, r[last]) }), "duplicate"},
		{"duplicate max-sessions row", edit(func(r []Row) []Row { return append(r[:3:3], append([]Row{r[2]}, r[3:]...)...) }), "duplicate"},
		{"same key again with another createdAt", edit(func(r []Row) []Row {
			again := r[last]
			again.CreatedAt--
			return append(r, again)
		}), "duplicate"},
		{"createdAt order, not key order", edit(func(r []Row) []Row {
			// (createdAt, key) ascending, as version 1 ordered rows, but
			// keys descending: version 2 wants primary-key order.
			r[last-1].ID, r[last].ID = r[last].ID, r[last-1].ID
			r[last].CreatedAt = r[last-1].CreatedAt + 1
			return r
		}), "out of order (primary key"},
		{"session in both stages", edit(func(r []Row) []Row {
			i := SectionIndexRow(r, StageTokenAge, TableSessionTokens)
			r[i].ID = bytes.Clone(r[0].ID)
			return r
		}), "listed by both"},
		{"same token under two accounts", edit(func(r []Row) []Row {
			r[4].ID = bytes.Clone(r[0].ID) // second account's group
			return r
		}), "listed twice"},
		{"sections out of order", edit(func(r []Row) []Row { r[0], r[last] = r[last], r[0]; return r }), "out of order"},
		{"rows out of order", edit(func(r []Row) []Row { r[last], r[last-1] = r[last-1], r[last]; return r }), "out of order"},
		{"account regrouped", edit(func(r []Row) []Row {
			// a, a, a, b, b, b -> a, a, b, b, b, a
			a := r[2]
			copy(r[2:5], r[3:6])
			a.CreatedAt = 9999
			r[5] = a
			return r
		}), "two separate groups"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mustRefuse(t, writeRaw(t, toFileRows(c.rows), rawMeta(c.rows)), c.want)
		})
	}
}

// SectionIndexRow is the first row of a section.
func SectionIndexRow(rows []Row, stage, table string) int {
	for i, r := range rows {
		if r.Stage == stage && r.Table == table {
			return i
		}
	}
	panic("no such section")
}

func TestHostileMetadata(t *testing.T) {
	rows := sampleRows()
	other := append([]Row(nil), rows[:len(rows)-1]...)
	otherKV := rawMeta(other)
	set := func(k, v string) map[string]string {
		kv := rawMeta(rows)
		kv[k] = v
		return kv
	}
	jsonEdit := func(k string, f func(any)) map[string]string {
		kv := rawMeta(rows)
		var v any
		if err := json.Unmarshal([]byte(kv[k]), &v); err != nil {
			t.Fatal(err)
		}
		f(v)
		b, _ := json.Marshal(v)
		kv[k] = string(b)
		return kv
	}
	stat := func(i int, field string, delta float64) map[string]string {
		return jsonEdit(keyStats, func(v any) {
			m := v.([]any)[i].(map[string]any)
			m[field] = m[field].(float64) + delta
		})
	}
	cases := []struct {
		name string
		kv   map[string]string
		want string
	}{
		{"future format version", set(keyFormatVersion, "3"), "format version 3 is not supported"},
		{"format version 0", set(keyFormatVersion, "0"), "format version 0 is not supported"},
		{"format version text", set(keyFormatVersion, "1.0"), "not an integer"},
		{"format version missing", set(keyFormatVersion, "\x00delete"), "format_version is missing"},
		{"no metadata at all", map[string]string{}, "missing"},
		{"row_count one more", set(keyRowCount, strconv.Itoa(len(rows)+1)), "row_count"},
		{"row_count one less", set(keyRowCount, strconv.Itoa(len(rows)-1)), "row_count"},
		{"row_count negative", set(keyRowCount, "-1"), "row_count"},
		{"row_count huge", set(keyRowCount, "99999999999999999999"), "not an integer"},
		{"digest of other rows", set(keyRowsSHA256, otherKV[keyRowsSHA256]), "digest"},
		{"digest empty", set(keyRowsSHA256, ""), "digest"},
		{"digest missing", set(keyRowsSHA256, "\x00delete"), "rows_sha256 is missing"},
		{"counts disagree with stats", jsonEdit(keyCounts, func(v any) {
			m := v.(map[string]any)
			m["code-age/signinCodes"] = m["code-age/signinCodes"].(float64) + 1
		}), "counts"},
		{"counts name an extra section", jsonEdit(keyCounts, func(v any) { v.(map[string]any)["code-age/accounts"] = 1.0 }), "does not list"},
		{"counts not JSON", set(keyCounts, "{"), "not valid JSON"},
		{"stats rows moved between sections", jsonEdit(keyStats, func(v any) {
			s := v.([]any)
			s[1].(map[string]any)["rows"] = s[1].(map[string]any)["rows"].(float64) + 1
			s[2].(map[string]any)["rows"] = s[2].(map[string]any)["rows"].(float64) - 1
		}), "metadata"},
		{"stats oldest off", stat(3, "oldest_created_at", -1), "createdAt range"},
		{"stats newest off", stat(3, "newest_created_at", 1), "createdAt range"},
		{"stats unknown table", jsonEdit(keyStats, func(v any) { v.([]any)[2].(map[string]any)["table"] = "accounts" }), "not allowed"},
		{"stats section twice", jsonEdit(keyStats, func(v any) {
			s := v.([]any)
			s[2].(map[string]any)["table"] = s[1].(map[string]any)["table"]
		}), "twice"},
		{"stats dropped a section", jsonEdit(keyStats, func(v any) {}), ""}, // replaced below
		{"planned_at not a time", set(keyPlannedAt, "yesterday"), "RFC 3339"},
		{"now not a number", set(keyNow, "now"), "not an integer"},
		{"flags not JSON", set(keyFlags, "[1,"), "not valid JSON"},
		{"source wrong shape", set(keySource, `"db"`), "not valid JSON"},
	}
	// Metadata that lists one section less than the rows hold, with every
	// total adjusted to agree.
	{
		kv := rawMeta(rows)
		var stats []SectionStats
		_ = json.Unmarshal([]byte(kv[keyStats]), &stats)
		dropped := stats[len(stats)-1]
		stats = stats[:len(stats)-1]
		b, _ := json.Marshal(stats)
		kv[keyStats] = string(b)
		var counts map[string]int64
		_ = json.Unmarshal([]byte(kv[keyCounts]), &counts)
		delete(counts, Section{dropped.Stage, dropped.Table}.String())
		b, _ = json.Marshal(counts)
		kv[keyCounts] = string(b)
		kv[keyRowCount] = strconv.Itoa(len(rows) - int(dropped.Rows))
		for i := range cases {
			if cases[i].name == "stats dropped a section" {
				cases[i].kv, cases[i].want = kv, "rows"
			}
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mustRefuse(t, writeRaw(t, toFileRows(rows), c.kv), c.want)
		})
	}
}

func TestHostileEmptyManifestMetadataClaimsRows(t *testing.T) {
	rows := sampleRows()
	mustRefuse(t, writeRaw[fileRow](t, nil, rawMeta(rows)), "rows")
}

// TestFlippedBytes flips every byte of a real manifest in turn. A flip inside
// the row data must be refused; anywhere else the file may still read, but
// then only with exactly the original rows: no flip can change what is
// deleted.
func TestFlippedBytes(t *testing.T) {
	rows := sampleRows()
	path, _ := writeManifest(t, rows)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	footerLen := int(binary.LittleEndian.Uint32(good[len(good)-8:]))
	footerStart := len(good) - 8 - footerLen
	dir := t.TempDir()
	p := filepath.Join(dir, "flipped.parquet")
	var refusedData, dataBytes, accepted int
	for off := 0; off < len(good); off++ {
		b := bytes.Clone(good)
		b[off] ^= 0x5a
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := readAll(p)
		inData := off >= 4 && off < footerStart
		if inData {
			dataBytes++
		}
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("offset %d: error is not ErrInvalid: %v", off, err)
			}
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Errorf("offset %d: error spans lines: %q", off, err)
			}
			if inData {
				refusedData++
			}
			continue
		}
		accepted++
		if !sameRows(got, rows) {
			t.Errorf("offset %d (data=%v): flipped file verified but yields different rows", off, inData)
		}
	}
	t.Logf("%d bytes: %d flips in row data (%d refused), %d flips still read the same rows", len(good), dataBytes, refusedData, accepted)
	if dataBytes == 0 || refusedData == 0 {
		t.Fatalf("no flip in row data was refused (%d data bytes)", dataBytes)
	}
}

// readAll verifies a manifest and returns its rows.
func readAll(path string) ([]Row, error) {
	rows, _, err := readAllVersion(path)
	return rows, err
}

// readAllVersion is readAll that also returns the format version the file
// claims.
func readAllVersion(path string) ([]Row, int, error) {
	r, err := Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer r.Close()
	if err := r.Verify(); err != nil {
		return nil, 0, err
	}
	var out []Row
	it := r.Rows(0)
	for row, ok := it.Next(); ok; row, ok = it.Next() {
		out = append(out, row)
	}
	return out, r.Meta().FormatVersion, it.Err()
}

func sameRows(a, b []Row) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Stage != b[i].Stage || a[i].Table != b[i].Table || a[i].CreatedAt != b[i].CreatedAt ||
			!bytes.Equal(a[i].ID, b[i].ID) || !bytes.Equal(a[i].UID, b[i].UID) {
			return false
		}
	}
	return true
}

func TestOpenRefusesNonRegularFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, "/dev/null", "/dev/zero", fifo} {
		done := make(chan [2]error, 1)
		go func() {
			r, err := Open(p)
			if err == nil {
				r.Close()
			}
			_, serr := FileSHA256(p)
			done <- [2]error{err, serr}
		}()
		select {
		case errs := <-done:
			for i, name := range []string{"Open", "FileSHA256"} {
				if !errors.Is(errs[i], ErrInvalid) {
					t.Errorf("%s(%s) = %v, want ErrInvalid", name, p, errs[i])
				}
			}
		case <-time.After(10 * time.Second):
			// Open must not wait for a writer on a FIFO; fail rather than hang.
			f, _ := os.OpenFile(fifo, os.O_WRONLY, 0)
			if f != nil {
				f.Close()
			}
			t.Fatalf("%s: Open blocked", p)
		}
	}
}

// TestVersion1StillReads: manifests of format version 1, which ordered the
// token-age and code-age sections by (createdAt, key), are still verified
// by their own rules and read, so a plan approved before an upgrade can be
// applied after it; each rule of version 1 is still enforced.
func TestVersion1StillReads(t *testing.T) {
	// Two signin codes in createdAt order whose keys descend: the order of
	// version 1, not of version 2.
	v1 := []Row{
		{StageCodeAge, TableSigninCodes, id(9, 32), id(1, 16), 100},
		{StageCodeAge, TableSigninCodes, id(2, 32), id(1, 16), 200},
		{StageCodeAge, TableSigninCodes, id(5, 32), id(2, 16), 300},
	}
	path := writeRaw(t, toFileRows(v1), rawMetaVersion(v1, 1))
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Verify(); err != nil {
		t.Fatalf("version 1 manifest refused: %v", err)
	}
	if r.Meta().FormatVersion != 1 {
		t.Errorf("format version %d, want 1", r.Meta().FormatVersion)
	}
	got, err := readAll(path)
	if err != nil || !sameRows(got, v1) {
		t.Fatalf("rows read back: %v, %v", got, err)
	}
	// The same rows claiming version 2 break its primary-key order.
	mustRefuse(t, writeRaw(t, toFileRows(v1), rawMetaVersion(v1, 2)), "out of order (primary key")

	cases := []struct {
		name string
		rows []Row
		want string
	}{
		{"key order, not createdAt order", []Row{v1[1], v1[2], v1[0]}, "out of order (createdAt"},
		{"same key, two createdAt values", append(v1[:3:3], Row{StageCodeAge, TableSigninCodes, id(2, 32), id(3, 16), 400}), "listed twice"},
		{"same key, apart, unblockCodes", []Row{
			{StageCodeAge, TableUnblockCodes, id(7, 32), id(1, 16), 1},
			{StageCodeAge, TableUnblockCodes, id(8, 32), id(1, 16), 2},
			{StageCodeAge, TableUnblockCodes, id(7, 32), id(1, 16), 3},
		}, "listed twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mustRefuse(t, writeRaw(t, toFileRows(c.rows), rawMetaVersion(c.rows, 1)), c.want)
		})
	}
}

// TestHostileRecordedRules: a forger who edits the rows and recomputes every
// digest, count and range still cannot make a file whose rows break the
// rules it records for itself (cutoffs, stages on, max-sessions accounts).
func TestHostileRecordedRules(t *testing.T) {
	base := sampleRows()
	clone := func() []Row {
		rows := make([]Row, len(base))
		for i, r := range base {
			r.ID, r.UID = bytes.Clone(r.ID), bytes.Clone(r.UID)
			rows[i] = r
		}
		return rows
	}
	ta := SectionIndexRow(base, StageTokenAge, TableSessionTokens)
	ca := SectionIndexRow(base, StageCodeAge, TableSigninCodes)
	cases := []struct {
		name string
		rows []Row
		edit func(*Meta)
		want string
	}{
		{"fresh session under token-age", clone(), func(m *Meta) { m.TokenCutoff = base[ta].CreatedAt }, "not before the token_cutoff"},
		{"fresh code under code-age", clone(), func(m *Meta) { m.CodeCutoff = base[ca].CreatedAt }, "not before the code_cutoff"},
		{"token-age off", clone(), func(m *Meta) { m.TokenCutoff = 0 }, "token-age stage was off"},
		{"code-age off", clone(), func(m *Meta) { m.CodeCutoff = 0 }, "code-age stage was off"},
		{"max-sessions off, no accounts recorded", clone(), func(m *Meta) { m.TopAccounts = nil }, "stage was off"},
		{"max-sessions off by its flag", clone(), func(m *Meta) { m.Flags["maxSessions"] = "0" }, "max-sessions was off"},
		{"group of an account not recorded", clone(), func(m *Meta) { m.TopAccounts = m.TopAccounts[:1] }, "not in max_sessions_accounts"},
		{"group larger than its to_delete", clone(), func(m *Meta) { m.TopAccounts[0].ToDelete-- }, "to_delete 2"},
		{"group smaller than its to_delete", clone(), func(m *Meta) { m.TopAccounts[1].ToDelete++ }, "to_delete 4"},
		{"recorded account without its group", clone(), func(m *Meta) {
			m.TopAccounts = append(m.TopAccounts, Account{UID: strings.Repeat("77", UIDLen), Sessions: 6, ToDelete: 1})
		}, "the rows hold 2 groups"},
		{"groups in another order than recorded", clone(), func(m *Meta) { m.TopAccounts[0], m.TopAccounts[1] = m.TopAccounts[1], m.TopAccounts[0] }, "max_sessions_accounts has"},
		{"accounts not most sessions first", clone(), func(m *Meta) { m.TopAccounts[1].Sessions = m.TopAccounts[0].Sessions + 1 }, "not most sessions first"},
		{"deletes below the limit", clone(), func(m *Meta) { m.Flags["maxSessions"] = "20" }, "fewer than maxSessions 20"},
		{"deletes more than the account has", clone(), func(m *Meta) { m.TopAccounts[0].Sessions = 2 }, "of its 2 sessions"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mustRefuse(t, writeRaw(t, toFileRows(c.rows), rawMetaEdited(c.rows, FormatVersion, c.edit)), c.want)
		})
	}
	// The same file with honest metadata and the limit recorded passes, or
	// the refusals above prove nothing.
	if err := openVerify(writeRaw(t, toFileRows(base), rawMetaEdited(base, FormatVersion, func(m *Meta) { m.Flags["maxSessions"] = "5" }))); err != nil {
		t.Fatalf("honest manifest refused: %v", err)
	}
}

// TestRowsAfterVerifyAreTheRowsVerified: a file rewritten in place after
// Verify, with its size and modification time put back (which the cheap
// CheckUnchanged cannot see), yields no row of a changed row group: the
// group's digest taken by Verify no longer matches, and the error is
// ErrChanged. The groups before it come out as verified.
func TestRowsAfterVerifyAreTheRowsVerified(t *testing.T) {
	rows := sampleRows()
	rows[len(rows)-1].ID = append(bytes.Repeat([]byte{0xa3}, 31), 0x5c) // unique in the file
	path := writeRaw(t, toFileRows(rows), rawMeta(rows), parquet.MaxRowsPerRowGroup(5))
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if len(r.pf.RowGroups()) < 3 {
		t.Fatalf("%d row groups: the test needs several", len(r.pf.RowGroups()))
	}
	if err := r.Verify(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// A forger's file: the last row another token, written the same way
	// with the same metadata, so every offset, length and page checksum is
	// consistent and only the rows differ.
	forged := slices.Clone(rows)
	forged[len(forged)-1].ID = append(bytes.Repeat([]byte{0xa3}, 31), 0x5d)
	b, err := os.ReadFile(writeRaw(t, toFileRows(forged), rawMeta(rows), parquet.MaxRowsPerRowGroup(5)))
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != st.Size() {
		t.Fatalf("the forged file is %d bytes, the original %d: the test needs the same size", len(b), st.Size())
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := r.CheckUnchanged(); err != nil {
		t.Fatalf("size and time were put back, yet CheckUnchanged saw: %v", err)
	}
	it := r.Rows(0)
	var got []Row
	for row, ok := it.Next(); ok; row, ok = it.Next() {
		got = append(got, row)
	}
	if !errors.Is(it.Err(), ErrChanged) {
		t.Fatalf("err = %v, want ErrChanged", it.Err())
	}
	lastGroup := int64(len(rows)-1) / 5 * 5
	if int64(len(got)) != lastGroup || !sameRows(got, rows[:lastGroup]) {
		t.Errorf("got %d rows before the refusal, want the %d of the unchanged groups, as verified", len(got), lastGroup)
	}
	// A resume that starts inside the changed group is refused too.
	it = r.Rows(int64(len(rows) - 1))
	if _, ok := it.Next(); ok || !errors.Is(it.Err(), ErrChanged) {
		t.Errorf("resume in the changed group: ok %v, err %v", ok, it.Err())
	}
}

// mapAnnotated is a byte-array type that tells the file it is a MAP, as no
// honest writer does.
type mapAnnotated struct{ parquet.Type }

func (mapAnnotated) LogicalType() *format.LogicalType {
	return &format.LogicalType{Value: new(format.MapType)}
}
