package manifest

import (
	"encoding/binary"
	"reflect"
	"testing"
)

// TestReadAheadGivesTheIteratorsRows: from any starting row, in the first
// row group, at a group's edge or at the end, reading ahead yields exactly
// the rows, in the order, the iterator does, then ends cleanly; stopping it
// part-way returns.
func TestReadAheadGivesTheIteratorsRows(t *testing.T) {
	rows := sampleRows()[:6] // max-sessions
	for i := 0; i < rowGroupRows+2*chunkRows+7; i++ {
		id := make([]byte, IDLen)
		binary.BigEndian.PutUint64(id[IDLen-8:], uint64(i))
		rows = append(rows, Row{StageTokenAge, TableSessionTokens, id, id[:UIDLen], 500 + int64(i%97)})
	}
	path, _ := writeManifest(t, rows)
	mr, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer mr.Close()
	if len(mr.pf.RowGroups()) < 2 {
		t.Fatalf("the manifest has %d row group, the test needs two", len(mr.pf.RowGroups()))
	}
	total := mr.Meta().RowCount
	collect := func(next func() (Row, bool)) []Row {
		var out []Row
		for r, ok := next(); ok; r, ok = next() {
			out = append(out, r)
		}
		return out
	}
	for _, from := range []int64{0, 1, chunkRows, rowGroupRows - 1, rowGroupRows, total - 1, total} {
		want := collect(mr.Rows(from).Next)
		if int64(len(want)) != total-from {
			t.Fatalf("from row %d: the iterator gave %d rows, want %d", from, len(want), total-from)
		}
		ra := mr.RowsAhead(from)
		if ra.Index() != from {
			t.Errorf("from row %d: index before the first row %d", from, ra.Index())
		}
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
	ra := mr.RowsAhead(0)
	if _, ok := ra.Next(); !ok {
		t.Fatal("no first row")
	}
	if ra.Index() != 1 {
		t.Errorf("index after one row %d, want 1", ra.Index())
	}
	ra.Close() // the goroutine is blocked handing over a chunk: Close must stop it
}
