package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"prune-tokens/internal/test/dbtest"
	"prune-tokens/manifest"
)

// writeTestManifest writes a small valid manifest without a database.
func writeTestManifest(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "plan.parquet")
	w, err := manifest.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := w.Write(manifest.Row{Stage: manifest.StageTokenAge, Table: manifest.TableSessionTokens,
			ID: bytes.Repeat([]byte{byte(i + 1)}, 32), UID: bytes.Repeat([]byte{9}, 16), CreatedAt: int64(100 + i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Commit(manifest.Meta{ToolVersion: "test", PlannedAt: time.Unix(1700000000, 0), Now: 1700000000000,
		TokenCutoff: 1600000000000, Flags: map[string]string{"maxTokenAge": "30 days", "maxSessions": "0"},
		Source: manifest.Source{Host: "db", Port: 3306, Database: "fxa"}}); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestInspectVersion1: a manifest of the previous format (testdata, written
// by the previous release) is verified by its own order rules and shown,
// with the format it was written in.
func TestInspectVersion1(t *testing.T) {
	path := filepath.Join(dbtest.RepoRoot(), "testdata", "manifest-v1", "fixture-seed-11.parquet")
	sum, err := manifest.FileSHA256(path)
	if err != nil {
		t.Fatal(err)
	}
	code, out, stderr := run(t, "inspect", path)
	if code != exitOK || !strings.Contains(out, "Manifest SHA-256 (approve this): "+sum) || !strings.Contains(out, "(manifest format 1)") {
		t.Errorf("inspect of a version 1 manifest: exit %d %s\n%s", code, stderr, out)
	}
	code, out, _ = run(t, "inspect", path, "--format", "json")
	var j struct {
		FormatVersion int   `json:"format_version"`
		RowCount      int64 `json:"row_count"`
	}
	if code != exitOK || json.Unmarshal([]byte(out), &j) != nil || j.FormatVersion != 1 || j.RowCount != 64 {
		t.Errorf("inspect --format json: exit %d, %+v\n%s", code, j, out)
	}
}

func TestInspectFormats(t *testing.T) {
	path := writeTestManifest(t)
	sum, err := manifest.FileSHA256(path)
	if err != nil {
		t.Fatal(err)
	}
	code, out, stderr := run(t, "inspect", path)
	if code != exitOK || !strings.Contains(out, "Manifest SHA-256 (approve this): "+sum) || !strings.Contains(out, "createdAt < 2020-09-13 12:26:40.000Z") ||
		!strings.Contains(out, "(manifest format 2)") {
		t.Errorf("inspect: exit %d %s\n%s", code, stderr, out)
	}
	code, out, _ = run(t, "inspect", path, "--format", "json")
	var j struct {
		FileSHA256 string `json:"file_sha256"`
		RowCount   int64  `json:"row_count"`
	}
	if code != exitOK || json.Unmarshal([]byte(out), &j) != nil || j.FileSHA256 != sum || j.RowCount != 3 {
		t.Errorf("inspect --format json: exit %d, %+v\n%s", code, j, out)
	}
	code, out, _ = run(t, "inspect", "--format=markdown", path)
	if code != exitOK || !strings.Contains(out, "**Approve this manifest by its SHA-256:** `"+sum+"`") {
		t.Errorf("inspect --format=markdown: exit %d\n%s", code, out)
	}
}

// tamper copies a manifest with every byte of metadata intact but one
// row's createdAt moved by 1 ms: a well-formed Parquet file that only the
// digest can catch.
func tamper(t *testing.T, src, dst string) string {
	t.Helper()
	type fileRow struct {
		Stage     string `parquet:"stage,dict"`
		TableName string `parquet:"table_name,dict"`
		ID        []byte `parquet:"id"`
		UID       []byte `parquet:"uid"`
		CreatedAt int64  `parquet:"created_at"`
	}
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	rows, err := parquet.Read[fileRow](f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	rows[1].CreatedAt++
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	w := parquet.NewGenericWriter[fileRow](out)
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	for _, kv := range pf.Metadata().KeyValueMetadata {
		w.SetKeyValueMetadata(kv.Key, kv.Value)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// inspect refuses anything that fails verification, with exit 2 and one line.
func TestInspectRefusesInvalid(t *testing.T) {
	good := writeTestManifest(t)
	raw, _ := os.ReadFile(good)
	dir := t.TempDir()
	tampered := tamper(t, good, filepath.Join(dir, "tampered.parquet"))
	truncated := filepath.Join(dir, "truncated.parquet")
	os.WriteFile(truncated, raw[:len(raw)-100], 0o600)
	notParquet := filepath.Join(dir, "x.parquet")
	os.WriteFile(notParquet, []byte("stage,table_name\n"), 0o600)

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"inspect", filepath.Join(dir, "missing.parquet")}, "missing.parquet"},
		{[]string{"inspect", notParquet}, "x.parquet"},
		{[]string{"inspect", tampered}, "tampered.parquet"},
		{[]string{"inspect", truncated}, "truncated.parquet"},
		{[]string{"inspect"}, "exactly one"},
		{[]string{"inspect", good, good}, "exactly one"},
		{[]string{"inspect", good, "--format", "yaml"}, `"yaml"`},
	} {
		code, stdout, stderr := run(t, c.args...)
		oneLineError(t, c.args, code, stdout, stderr, exitInit, c.want)
	}
}
