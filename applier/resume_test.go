package applier

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"prune-tokens/internal/test/appliertest"
	"prune-tokens/internal/test/dbtest"
	"prune-tokens/manifest"
)

// firstRowGroup is the number of rows in the manifest's first Parquet row
// group; the test fails unless the file has more than one.
func firstRowGroup(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	groups := pf.RowGroups()
	if len(groups) < 2 {
		t.Fatalf("manifest of %d rows has %d row group: the test needs more than one", pf.NumRows(), len(groups))
	}
	return int(groups[0].NumRows())
}

// TestResumePastTheFirstRowGroup: a manifest of 70,000 rows (two Parquet
// row groups) stopped after the first group resumes at the recorded row,
// inside the second group: the rows of the batch before it, re-created
// meanwhile, are not touched again (a resume that started early would
// delete them), and every row from it on is deleted.
func TestResumePastTheFirstRowGroup(t *testing.T) {
	const total = 70_000
	rows := make([]manifest.Row, total)
	for i := range rows {
		id, uid := make([]byte, manifest.IDLen), make([]byte, manifest.UIDLen)
		binary.BigEndian.PutUint64(id[24:], uint64(i))
		binary.BigEndian.PutUint64(uid[8:], uint64(i%5000))
		rows[i] = manifest.Row{Stage: manifest.StageTokenAge, Table: manifest.TableSessionTokens, ID: id, UID: uid, CreatedAt: int64(1_000_000 + i)}
	}
	path, _ := appliertest.WriteManifest(t, t.TempDir(), "big.parquet", rows, time.Now())
	group := firstRowGroup(t, path)
	db := dbtest.New(t)
	// The sessions from a little before the end of the first group on are
	// still there; the ones before it are already gone.
	from := group - 3000
	appliertest.InsertSessions(t, db.SQL, rows[from:])

	o := options(t, db, path)
	o.BatchSize = 1000
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stop int64
	o.OnBatch = func(done int64) {
		if stop == 0 && done > int64(group) {
			stop = done
			cancel()
		}
	}
	res, err := Run(ctx, o)
	if !errors.Is(err, ErrInterrupted) || res.Done != stop || stop <= int64(group) {
		t.Fatalf("first run: %v, done %d, want interrupted past row %d", err, res.Done, group)
	}
	// The last batch before the stop, across the row-group boundary, comes
	// back.
	again := rows[stop-int64(o.BatchSize) : stop]
	appliertest.InsertSessions(t, db.SQL, again)

	o.OnBatch = nil
	var out bytes.Buffer
	o.Out = &out
	if res, err = Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("resuming at row %d of %d", stop, total); !strings.Contains(out.String(), want) {
		t.Errorf("no %q in:\n%s", want, out.String())
	}
	left := appliertest.Keys(t, db.SQL, manifest.TableSessionTokens)
	for _, r := range again {
		if !left[hex.EncodeToString(r.ID)] {
			t.Fatalf("the resumed run deleted session %d, before the row it resumed at (%d)", binary.BigEndian.Uint64(r.ID[24:]), stop)
		}
	}
	if len(left) != len(again) {
		t.Errorf("%d sessions left, want only the %d re-created before the resume point", len(left), len(again))
	}
	s := section(res, manifest.StageTokenAge, manifest.TableSessionTokens)
	if s.Deleted != int64(total-from) || s.Gone != int64(from) || s.Skipped != 0 {
		t.Errorf("counts over both runs %+v, want %d deleted and %d already gone", s.Counts, total-from, from)
	}
}
