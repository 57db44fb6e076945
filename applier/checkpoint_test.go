package applier

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"prune-tokens/internal/test/appliertest"
	"prune-tokens/manifest"
)

func testMeta() (*manifest.Meta, string) {
	return &manifest.Meta{RowsSHA256: strings.Repeat("ab", 32), RowCount: 100}, strings.Repeat("cd", 32)
}

func TestCheckpointRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plan.parquet.checkpoint")
	m, sha := testMeta()
	cp, resumed, err := openCheckpoint(path, m, sha)
	if err != nil || resumed {
		t.Fatalf("create: %v resumed=%v", err, resumed)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 || st.Size() != checkpointSize {
		t.Errorf("mode %v size %d", st.Mode().Perm(), st.Size())
	}
	for i := range 5 {
		cp.State.Next = int64(10 * (i + 1))
		cp.State.Sections[4].Deleted += 9
		cp.State.Sections[4].Gone++
		cp.State.Sections[0].Devices = 3
		if err := cp.Save(); err != nil {
			t.Fatal(err)
		}
	}
	cp.Close()
	cp, resumed, err = openCheckpoint(path, m, sha)
	if err != nil || !resumed {
		t.Fatalf("reopen: %v resumed=%v", err, resumed)
	}
	defer cp.Close()
	st := cp.State
	if st.Next != 50 || st.Sections[4] != (Counts{Deleted: 45, Gone: 5}) || st.Sections[0].Devices != 3 || st.Complete() {
		t.Errorf("state %+v", st)
	}
}

// A write torn by a crash damages at most the slot being written; the
// other slot still holds the previous record.
func TestCheckpointSurvivesTornSlot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c")
	m, sha := testMeta()
	cp, _, err := openCheckpoint(path, m, sha)
	if err != nil {
		t.Fatal(err)
	}
	cp.State.Next = 40
	if err := cp.Save(); err != nil { // seq 2, slot 0
		t.Fatal(err)
	}
	cp.State.Next = 60
	if err := cp.Save(); err != nil { // seq 3, slot 1
		t.Fatal(err)
	}
	cp.Close()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("torn write"), slotSize+100); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cp, _, err = openCheckpoint(path, m, sha)
	if err != nil {
		t.Fatal(err)
	}
	if cp.State.Next != 40 {
		t.Errorf("after a torn newest slot, next = %d, want the previous record's 40", cp.State.Next)
	}
	cp.Close()

	// Both slots damaged: refuse rather than guess.
	f, _ = os.OpenFile(path, os.O_RDWR, 0)
	_, _ = f.WriteAt([]byte("torn write"), 100)
	f.Close()
	if _, _, err := openCheckpoint(path, m, sha); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("damaged checkpoint: %v", err)
	}
	os.Truncate(path, 10)
	if _, _, err := openCheckpoint(path, m, sha); err == nil || !strings.Contains(err.Error(), "not a checkpoint") {
		t.Errorf("short checkpoint: %v", err)
	}
}

func TestCheckpointRefusesOtherManifestAndSecondUser(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c")
	m, sha := testMeta()
	cp, _, err := openCheckpoint(path, m, sha)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := openCheckpoint(path, m, sha); !errors.Is(err, errBusy) {
		t.Errorf("second open while held: %v", err)
	}
	cp.Close()
	other := *m
	other.RowsSHA256 = strings.Repeat("ef", 32)
	if _, _, err := openCheckpoint(path, &other, sha); err == nil || !strings.Contains(err.Error(), "another manifest") {
		t.Errorf("other rows digest: %v", err)
	}
	if _, _, err := openCheckpoint(path, m, strings.Repeat("00", 32)); err == nil || !strings.Contains(err.Error(), "another manifest") {
		t.Errorf("other file digest: %v", err)
	}
}

// The slot layout leaves room for maxSections sections before the checksum:
// the encoder refuses one more (it would overwrite the checksum) and keeps
// what fits intact.
func TestCheckpointSlotHoldsWhatFits(t *testing.T) {
	if headerSize+maxSections*sectionSize > sumOffset || headerSize+(maxSections+1)*sectionSize <= sumOffset {
		t.Fatalf("maxSections %d does not match the layout (header %d, %d bytes a section, checksum at %d)", maxSections, headerSize, sectionSize, sumOffset)
	}
	if maxSections < len(manifest.Sections()) {
		t.Fatalf("a slot holds %d sections, the manifest has %d", maxSections, len(manifest.Sections()))
	}
	m, sha := testMeta()
	st := newState(m, sha)
	st.Next = 42
	st.Sections = make([]Counts, maxSections)
	for i := range st.Sections {
		st.Sections[i] = Counts{Deleted: int64(i) + 1, Gone: -1, Skipped: 1 << 62, Unverified: 7, Devices: int64(i)}
	}
	buf := make([]byte, slotSize)
	if err := encodeSlot(buf, 9, st); err != nil {
		t.Fatal(err)
	}
	seq, got, ok := decodeSlot(buf)
	if !ok || seq != 9 || got.Next != 42 || len(got.Sections) != maxSections || got.Sections[maxSections-1] != st.Sections[maxSections-1] {
		t.Fatalf("round trip of %d sections: ok=%v seq=%d state %+v", maxSections, ok, seq, got)
	}
	st.Sections = append(st.Sections, Counts{})
	if err := encodeSlot(buf, 10, st); err == nil {
		t.Errorf("encoded %d sections into a slot with room for %d", len(st.Sections), maxSections)
	}
}

// A slot with a valid checksum that claims more sections than fit is
// damaged: refused with the documented message, never read past its end.
func TestCheckpointRefusesCraftedSectionCount(t *testing.T) {
	m, sha := testMeta()
	for _, n := range []uint64{maxSections + 1, 11, 16, 17, 1 << 32, 1<<63 + 1, ^uint64(0)} {
		path := filepath.Join(t.TempDir(), "c")
		cp, _, err := openCheckpoint(path, m, sha)
		if err != nil {
			t.Fatal(err)
		}
		cp.Close()
		appliertest.CraftCheckpointSections(t, path, n)
		b, _ := os.ReadFile(path)
		slot := b[slotSize:]
		if sum := sha256.Sum256(slot[:sumOffset]); !bytes.Equal(sum[:], slot[sumOffset:]) || binary.BigEndian.Uint64(slot[countOffset:]) != n {
			t.Fatalf("n=%d: the crafted slot does not carry a valid checksum and the count: the test would prove nothing", n)
		}
		_, _, err = openCheckpoint(path, m, sha)
		if err == nil || !strings.Contains(err.Error(), "is damaged") {
			t.Errorf("%d sections: err = %v, want the damaged-checkpoint refusal", n, err)
		}
	}
}

// A checkpoint that cannot be created is an error before anything else
// (root ignores directory modes, so the test uses a path under a file).
func TestCheckpointUncreatable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	m, sha := testMeta()
	if _, _, err := openCheckpoint(filepath.Join(file, "c"), m, sha); err == nil {
		t.Error("checkpoint created under a regular file")
	}
}

// BenchmarkCheckpointSave measures one progress record: the two-slot write
// with fdatasync that apply uses, against a temp file + fsync + rename +
// directory fsync.
func BenchmarkCheckpointSave(b *testing.B) {
	m, sha := testMeta()
	b.Run("two-slot", func(b *testing.B) {
		cp, _, err := openCheckpoint(filepath.Join(b.TempDir(), "c"), m, sha)
		if err != nil {
			b.Fatal(err)
		}
		defer cp.Close()
		for i := 0; b.Loop(); i++ {
			cp.State.Next = int64(i % 100)
			if err := cp.Save(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("temp+rename", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "c")
		st := newState(m, sha)
		for i := 0; b.Loop(); i++ {
			st.Next = int64(i % 100)
			if err := createCheckpoint(path, st); err != nil {
				b.Fatal(err)
			}
		}
	})
}
