package applier

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzCheckpoint: whatever bytes a checkpoint file holds, reading it gives a
// clean refusal or a state that encodes back to itself, never a panic. With
// seal set, each slot of a 1 KiB input gets a valid checksum first, so the
// fuzzer explores what lies behind the checksum too.
func FuzzCheckpoint(f *testing.F) {
	m, sha := testMeta()
	dir := f.TempDir()
	valid := filepath.Join(dir, "valid")
	cp, _, err := openCheckpoint(valid, m, sha)
	if err != nil {
		f.Fatal(err)
	}
	cp.State.Next = 17
	cp.State.Sections[3] = Counts{Deleted: 10, Gone: 5, Skipped: 2, Unverified: 4, Devices: 1}
	if err := cp.Save(); err != nil {
		f.Fatal(err)
	}
	cp.Close()
	b, err := os.ReadFile(valid)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b, false)
	f.Add(b, true)
	for _, n := range []byte{10, 11, 16, 255} {
		c := append([]byte(nil), b...)
		c[countOffset+7], c[slotSize+countOffset+7] = n, n
		f.Add(c, true)
	}
	f.Add(b[:slotSize], false)
	f.Add([]byte{}, false)
	f.Add(make([]byte, checkpointSize), true)

	f.Fuzz(func(t *testing.T, data []byte, seal bool) {
		if seal && len(data) == checkpointSize {
			data = append([]byte(nil), data...)
			for off := 0; off < checkpointSize; off += slotSize {
				sum := sha256.Sum256(data[off : off+sumOffset])
				copy(data[off+sumOffset:off+slotSize], sum[:])
			}
		}
		seq, st, err := readCheckpoint(bytes.NewReader(data))
		if err != nil {
			if msg := err.Error(); !strings.Contains(msg, "damaged") && !strings.Contains(msg, "not a checkpoint") || strings.Contains(msg, "\n") {
				t.Fatalf("refusal is not the documented one-line message: %q", msg)
			}
			return
		}
		if st.Next < 0 || st.Next > st.Total || len(st.Sections) > maxSections {
			t.Fatalf("accepted an impossible state: %+v", st)
		}
		buf := make([]byte, slotSize)
		if err := encodeSlot(buf, seq, st); err != nil {
			t.Fatalf("accepted state does not encode: %v", err)
		}
		seq2, st2, ok := decodeSlot(buf)
		if !ok || seq2 != seq || st2.Next != st.Next || st2.Total != st.Total || st2.RowsSHA256 != st.RowsSHA256 ||
			st2.FileSHA256 != st.FileSHA256 || len(st2.Sections) != len(st.Sections) {
			t.Fatalf("state does not survive a round trip:\n%+v\n%+v", st, st2)
		}
	})
}
