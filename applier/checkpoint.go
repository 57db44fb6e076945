package applier

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"prune-tokens/internal/atomicfile"
	"prune-tokens/manifest"
)

// The checkpoint is a 1 KiB file of two fixed-size slots. Each update writes
// the whole state, with a sequence number and a checksum, into the slot the
// previous update did not use, then fdatasyncs: one sync per batch, and a
// write torn by a crash leaves the other slot intact. Reading picks the valid
// slot with the highest sequence number. The file is created whole (temporary
// file, fsync, rename), so its size never changes afterwards and a disk that
// fills up during a run cannot stop progress from being recorded.
//
// A slot is a header (magic, seq, rows and file digests, total, next,
// section count), the sections' counters, and a SHA-256 of everything before
// it in its last bytes. maxSections is what the layout leaves room for; the
// encoder and the decoder both hold to it, so a slot can never spill into its
// checksum, and a slot with a valid checksum that claims more sections is
// damaged rather than read past its end.
const (
	slotSize       = 512
	checkpointSize = 2 * slotSize
	sumOffset      = slotSize - sha256.Size
	headerSize     = 8 + 8 + sha256.Size + sha256.Size + 8 + 8 + 8
	countsPerSec   = 5 // Deleted, Gone, Skipped, Unverified, Devices
	sectionSize    = countsPerSec * 8
	maxSections    = (sumOffset - headerSize) / sectionSize // 9; manifest.Sections() has 7
	countOffset    = headerSize - 8                         // the section count
)

var checkpointMagic = [8]byte{'P', 'T', 'C', 'K', 'P', 'T', '0', '1'}

// State is what a checkpoint records: how far apply got in one manifest and
// what happened to the rows so far.
type State struct {
	RowsSHA256 string // hex; the manifest's rows digest
	FileSHA256 string // hex; the manifest file's SHA-256
	Total      int64  // rows in the manifest
	Next       int64  // index of the first row not yet committed
	Sections   []Counts
}

// total adds up the sections' counters.
func (s *State) total() Counts {
	var c Counts
	for _, x := range s.Sections {
		c.add(x)
	}
	return c
}

// Complete says whether every row was processed.
func (s *State) Complete() bool { return s.Next >= s.Total }

func newState(m *manifest.Meta, fileSHA string) *State {
	return &State{RowsSHA256: m.RowsSHA256, FileSHA256: fileSHA, Total: m.RowCount,
		Sections: make([]Counts, len(manifest.Sections()))}
}

// encodeSlot lays out one slot: magic, seq, digests, totals, per-section
// counters, then a SHA-256 of everything before it.
func encodeSlot(buf []byte, seq uint64, s *State) error {
	clear(buf)
	rows, err := hex.DecodeString(s.RowsSHA256)
	if err != nil || len(rows) != sha256.Size {
		return fmt.Errorf("checkpoint: rows digest %q is not a SHA-256", s.RowsSHA256)
	}
	file, err := hex.DecodeString(s.FileSHA256)
	if err != nil || len(file) != sha256.Size {
		return fmt.Errorf("checkpoint: file digest %q is not a SHA-256", s.FileSHA256)
	}
	if len(s.Sections) > maxSections {
		return fmt.Errorf("checkpoint: %d sections, a slot has room for %d", len(s.Sections), maxSections)
	}
	b := buf[:0]
	b = append(b, checkpointMagic[:]...)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = append(b, rows...)
	b = append(b, file...)
	b = binary.BigEndian.AppendUint64(b, uint64(s.Total))
	b = binary.BigEndian.AppendUint64(b, uint64(s.Next))
	b = binary.BigEndian.AppendUint64(b, uint64(len(s.Sections)))
	for _, c := range s.Sections {
		for _, v := range []int64{c.Deleted, c.Gone, c.Skipped, c.Unverified, c.Devices} {
			b = binary.BigEndian.AppendUint64(b, uint64(v))
		}
	}
	sum := sha256.Sum256(buf[:sumOffset])
	copy(buf[sumOffset:], sum[:])
	return nil
}

// decodeSlot returns the slot's sequence number and state, or ok=false when
// the slot is empty or damaged.
func decodeSlot(buf []byte) (seq uint64, s *State, ok bool) {
	if len(buf) != slotSize || !bytes.Equal(buf[:8], checkpointMagic[:]) {
		return 0, nil, false
	}
	if sum := sha256.Sum256(buf[:sumOffset]); !bytes.Equal(sum[:], buf[sumOffset:]) {
		return 0, nil, false
	}
	u64 := func(off int) uint64 { return binary.BigEndian.Uint64(buf[off:]) }
	seq = u64(8)
	s = &State{RowsSHA256: hex.EncodeToString(buf[16:48]), FileSHA256: hex.EncodeToString(buf[48:80]),
		Total: int64(u64(80)), Next: int64(u64(88))}
	n := u64(countOffset)
	if n > maxSections || s.Next < 0 || s.Next > s.Total {
		return 0, nil, false
	}
	off := headerSize
	for range n {
		var c Counts
		for _, v := range []*int64{&c.Deleted, &c.Gone, &c.Skipped, &c.Unverified, &c.Devices} {
			*v = int64(u64(off))
			off += 8
		}
		s.Sections = append(s.Sections, c)
	}
	return seq, s, true
}

// Checkpoint is an open checkpoint file, held exclusively by this process.
type Checkpoint struct {
	path  string
	f     *os.File
	lock  *os.File
	seq   uint64
	buf   []byte
	State *State
	// pending delivers the result of the last Record's sync.
	pending chan error
	// sync flushes a record: datasync, or a test's failing disk.
	sync func(*os.File) error
}

// errBusy says another apply holds the checkpoint's lock file.
var errBusy = errors.New("another apply of this manifest is running")

// lockPath is the lock file that keeps two applies of one manifest apart.
// It is separate from the checkpoint because the checkpoint is created by
// rename, which would give two racing processes different files to lock.
func lockPath(path string) string { return path + ".lock" }

// openCheckpoint takes the lock file, then reads the checkpoint at path, or
// creates one for a fresh start. A checkpoint of another manifest, or one
// that cannot be read, is refused.
func openCheckpoint(path string, m *manifest.Meta, fileSHA string) (cp *Checkpoint, resumed bool, err error) {
	lf, err := os.OpenFile(lockPath(path), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("checkpoint lock %s: %w", lockPath(path), err)
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lf.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, false, fmt.Errorf("%w (lock file %s is held); wait for it to finish", errBusy, lockPath(path))
		}
		return nil, false, fmt.Errorf("lock %s: %w", lockPath(path), err)
	}
	defer func() {
		if err != nil {
			lf.Close()
		}
	}()

	f, err := os.OpenFile(path, os.O_RDWR, 0)
	switch {
	case errors.Is(err, os.ErrNotExist):
		st := newState(m, fileSHA)
		if err := createCheckpoint(path, st); err != nil {
			return nil, false, err
		}
		if f, err = os.OpenFile(path, os.O_RDWR, 0); err != nil {
			return nil, false, fmt.Errorf("open checkpoint: %w", err)
		}
		return &Checkpoint{path: path, f: f, lock: lf, seq: 1, buf: make([]byte, slotSize), State: st, sync: datasync}, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("open checkpoint: %w", err)
	}
	seq, st, err := readCheckpoint(f)
	if err != nil {
		f.Close()
		return nil, false, fmt.Errorf("checkpoint %s %w", path, err)
	}
	if st.RowsSHA256 != m.RowsSHA256 || st.FileSHA256 != fileSHA || st.Total != m.RowCount {
		f.Close()
		return nil, false, fmt.Errorf("checkpoint %s belongs to another manifest (file sha256 %s, %d rows), not this one (sha256 %s, %d rows); pass --checkpoint with a new path, or remove it if that manifest is finished with",
			path, st.FileSHA256, st.Total, fileSHA, m.RowCount)
	}
	if len(st.Sections) != len(manifest.Sections()) {
		f.Close()
		return nil, false, fmt.Errorf("checkpoint %s has %d sections, this build knows %d", path, len(st.Sections), len(manifest.Sections()))
	}
	return &Checkpoint{path: path, f: f, lock: lf, seq: seq, buf: make([]byte, slotSize), State: st, sync: datasync}, true, nil
}

// readCheckpoint reads the newest valid record of a checkpoint file.
func readCheckpoint(f io.ReaderAt) (uint64, *State, error) {
	buf := make([]byte, checkpointSize+1)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, nil, fmt.Errorf("cannot be read: %w", err)
	}
	switch {
	case n > checkpointSize:
		return 0, nil, fmt.Errorf("is more than %d bytes: not a checkpoint", checkpointSize)
	case n < checkpointSize:
		return 0, nil, fmt.Errorf("is %d bytes, not a checkpoint (%d bytes)", n, checkpointSize)
	}
	var best *State
	var bestSeq uint64
	for i := range 2 {
		if seq, s, ok := decodeSlot(buf[i*slotSize : (i+1)*slotSize]); ok && (best == nil || seq > bestSeq) {
			best, bestSeq = s, seq
		}
	}
	if best == nil {
		return 0, nil, errors.New("is damaged (no valid record); it is not safe to guess progress: remove it only if you accept that apply starts over (deletes by key are idempotent)")
	}
	return bestSeq, best, nil
}

// createCheckpoint writes a complete new checkpoint atomically: sequence 1
// in slot 1 (sequence n always lives in slot n%2), slot 0 empty.
func createCheckpoint(path string, st *State) error {
	buf := make([]byte, checkpointSize)
	if err := encodeSlot(buf[slotSize:], 1, st); err != nil {
		return err
	}
	// Checkpoints hold nothing secret, but sit next to manifests that name
	// accounts: same mode.
	err := atomicfile.WriteFile(path, 0o600, atomicfile.Options{}, func(w io.Writer) error {
		_, err := w.Write(buf)
		return err
	})
	if err != nil {
		return fmt.Errorf("create checkpoint: %w", err)
	}
	return nil
}

// Save durably records the current State: Record, then Wait.
func (c *Checkpoint) Save() error {
	if err := c.Record(); err != nil {
		return err
	}
	return c.Wait()
}

// Record writes the current State into the slot not holding the last record
// and starts its fdatasync in the background; Wait returns the outcome. apply
// records after a batch commits and waits just before the next batch
// commits, so the sync overlaps the next batch's statements instead of
// adding to them, and a record is always durable before the database moves
// past it: after a crash at most one committed batch is not on disk.
func (c *Checkpoint) Record() error {
	if err := c.Wait(); err != nil {
		return err
	}
	seq := c.seq + 1
	if err := encodeSlot(c.buf, seq, c.State); err != nil {
		return err
	}
	if _, err := c.f.WriteAt(c.buf, int64(seq%2)*slotSize); err != nil {
		return fmt.Errorf("write checkpoint %s: %w", c.path, err)
	}
	c.seq = seq
	done := make(chan error, 1)
	c.pending = done
	go func() {
		done <- c.sync(c.f)
	}()
	return nil
}

// Wait waits for the last Record's sync.
func (c *Checkpoint) Wait() error {
	if c.pending == nil {
		return nil
	}
	err := <-c.pending
	c.pending = nil
	if err != nil {
		return fmt.Errorf("fsync checkpoint %s: %w", c.path, err)
	}
	return nil
}

// Path is the checkpoint file's name.
func (c *Checkpoint) Path() string { return c.path }

// Close waits for a pending sync, closes the checkpoint and releases the
// lock file.
func (c *Checkpoint) Close() error {
	werr := c.Wait()
	err := c.f.Close()
	if werr != nil {
		err = werr
	}
	c.lock.Close()
	return err
}

// Progress reads how far the apply that keeps a checkpoint file got: the
// next manifest row to process and the manifest's total. It takes no lock,
// so a tool can watch a running apply.
func Progress(path string) (next, total int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	defer f.Close()
	_, st, err := readCheckpoint(f)
	if err != nil {
		return 0, 0, fmt.Errorf("checkpoint %s %w", path, err)
	}
	return st.Next, st.Total, nil
}
