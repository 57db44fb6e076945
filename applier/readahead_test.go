package applier

import (
	"reflect"
	"testing"

	"prune-tokens/applier/appliertest"
	"prune-tokens/internal/dbtest"
	"prune-tokens/manifest"
)

// TestReadAheadGivesTheIteratorsRows: from any starting row, reading ahead
// yields exactly the rows, in the order, the manifest's iterator does, then
// ends cleanly; stopping it part-way returns.
func TestReadAheadGivesTheIteratorsRows(t *testing.T) {
	db := dbtest.New(t)
	f := appliertest.New(t, db, 5, appliertest.Sizes{MaxSessionAccounts: 3, SessionsPerAccount: 30, TokenAgeSessions: 700, OtherTokens: 40})
	path, _ := f.Manifest(t, t.TempDir())
	mr, err := manifest.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer mr.Close()
	total := mr.Meta().RowCount
	if total <= 2*chunkRows {
		t.Fatalf("the manifest has %d rows, fewer than the test needs", total)
	}
	collect := func(next func() (manifest.Row, bool)) []manifest.Row {
		var out []manifest.Row
		for r, ok := next(); ok; r, ok = next() {
			out = append(out, r)
		}
		return out
	}
	for _, from := range []int64{0, 1, chunkRows, total - 1, total} {
		it := mr.Rows(from)
		want := collect(it.Next)
		ra := newReadAhead(mr.Rows(from))
		got := collect(ra.Next)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("from row %d: read ahead %d rows, the iterator %d, or different ones", from, len(got), len(want))
		}
		if ra.Err() != nil || ra.Index() != total {
			t.Errorf("from row %d: ended with err %v at index %d, want nil at %d", from, ra.Err(), ra.Index(), total)
		}
		if _, ok := ra.Next(); ok {
			t.Errorf("from row %d: a row after the end", from)
		}
		ra.Close()
	}
	ra := newReadAhead(mr.Rows(0))
	if _, ok := ra.Next(); !ok {
		t.Fatal("no first row")
	}
	if ra.Index() != 1 {
		t.Errorf("index after one row %d, want 1", ra.Index())
	}
	ra.Close() // the goroutine is blocked handing over a chunk: Close must stop it
}
