package applier

import (
	"encoding/binary"
	"reflect"
	"testing"

	"prune-tokens/manifest"
)

// batchAt is n session rows whose keys start at the given shares of the key
// space, evenly from lo to hi.
func batchAt(n int, lo, hi float64) []manifest.Row {
	rows := make([]manifest.Row, n)
	for i := range rows {
		share := lo + (hi-lo)*float64(i)/float64(max(n-1, 1))
		id := make([]byte, manifest.IDLen)
		binary.BigEndian.PutUint64(id, uint64(share*(1<<63))*2)
		rows[i] = manifest.Row{ID: id}
	}
	return rows
}

func TestRangeCountAllowsDenseBatchesOnly(t *testing.T) {
	cases := []struct {
		name      string
		tableRows float64
		rows      []manifest.Row
		want      bool
	}{
		// 1,000 of the table's sessions in a hundredth of the key space,
		// which holds about 400 of its 40,000 unverifiedTokens rows.
		{"dense", 40_000, batchAt(1000, 0.50, 0.51), true},
		// The same batch spread over half the key space: 20,000 rows.
		{"sparse", 40_000, batchAt(1000, 0.25, 0.75), false},
		{"just within", 100_000, batchAt(1000, 0.1, 0.1099), true},
		{"just past", 100_000, batchAt(1000, 0.1, 0.1101), false},
		{"one row", 1e9, batchAt(1, 0.3, 0.3), true},
		{"unknown table size", 0, batchAt(10, 0.5, 0.5), false},
	}
	for _, c := range cases {
		rc := &rangeCount{tableRows: c.tableRows}
		if got := rc.allows(c.rows); got != c.want {
			t.Errorf("%s: allows = %v (expected %.0f rows in range), want %v", c.name, got, rc.expected(c.rows), c.want)
		}
	}
	var none *rangeCount
	if none.allows(batchAt(2, 0.1, 0.1)) {
		t.Error("a nil rangeCount (dry run) allows counting")
	}
	short := batchAt(2, 0.1, 0.1)
	short[1].ID = short[1].ID[:8]
	if (&rangeCount{tableRows: 1}).allows(short) {
		t.Error("a key of the wrong length allows counting")
	}
}

func TestRangeCountTurnsOffOnACrowdedRange(t *testing.T) {
	rc := &rangeCount{tableRows: 10}
	dense := batchAt(100, 0.5, 0.5001)
	rc.observe(100, 416, false) // four times the batch and a handful: still fine
	if !rc.allows(dense) {
		t.Fatal("turned off by a range within bounds")
	}
	rc.observe(100, 417, false)
	if rc.allows(dense) {
		t.Error("still counting ranges after one held 417 rows for a batch of 100")
	}
}

// After a short batch (rows changed since the plan) the next batches read
// first: 1, then 2, 4, ... up to 64 after each further short batch, and
// none once a batch that counted its range is whole again.
func TestRangeCountReadsFirstAfterShortBatches(t *testing.T) {
	rc := &rangeCount{tableRows: 10}
	dense := batchAt(100, 0.5, 0.5001)
	// readFirstRun counts the batches that read first before one may count.
	readFirstRun := func() int {
		n := 0
		for !rc.allows(dense) {
			n++
			if n > 1000 {
				t.Fatal("never counts again")
			}
		}
		return n
	}
	var got []int
	for range 9 {
		rc.observe(100, 20, true)
		got = append(got, readFirstRun())
	}
	if want := []int{1, 2, 4, 8, 16, 32, 64, 64, 64}; !reflect.DeepEqual(got, want) {
		t.Errorf("batches read first after each short batch: %v, want %v", got, want)
	}
	rc.observe(100, 20, false)
	rc.observe(100, 20, true)
	if n := readFirstRun(); n != 1 {
		t.Errorf("after a whole batch, then a short one: %d batches read first, want 1", n)
	}
}
