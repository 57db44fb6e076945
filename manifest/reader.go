package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"

	"github.com/parquet-go/parquet-go"
)

// ErrInvalid marks every error that says the file is not a sound manifest
// (as opposed to, say, a disk error while reading it).
var ErrInvalid = errors.New("invalid manifest")

// ErrChanged marks a file whose rows differ from the rows Verify read: it
// was changed in place after verification, so none of the changed rows may
// be used. It is also ErrInvalid.
var ErrChanged = fmt.Errorf("%w: changed since it was verified", ErrInvalid)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// column layout of a file, found by name so other writers' files (which may
// order or add columns differently) read too.
type columns struct{ stage, table, id, uid, createdAt int }

var required = []struct {
	name string
	kind parquet.Kind
}{
	{"stage", parquet.ByteArray},
	{"table_name", parquet.ByteArray},
	{"id", parquet.ByteArray},
	{"uid", parquet.ByteArray},
	{"created_at", parquet.Int64},
}

// Reader reads a manifest. Open checks the schema and metadata; Verify reads
// every row and checks it against the metadata; Rows streams the rows.
type Reader struct {
	path string
	f    *os.File
	st   os.FileInfo // at Open, to notice the file changing under a reader
	pf   *parquet.File
	meta *Meta
	cols columns
	// verified holds, once Verify passed, a digest of each row group's
	// rows as Verify read them; every later read of a group is checked
	// against it before its rows are handed out (groupDigest).
	verified [][sha256.Size]byte
}

// Open opens a manifest and checks its schema and metadata. It never panics,
// whatever the file holds.
func Open(path string) (r *Reader, err error) {
	// Check before opening: opening a FIFO blocks until someone writes to it.
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		return nil, invalid("%s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open manifest: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat manifest: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, invalid("%s is not a regular file", path)
	}
	if st.Size() == 0 {
		return nil, invalid("%s is empty", path)
	}
	var pf *parquet.File
	err = guard(func() error {
		var e error
		pf, e = parquet.OpenFile(f, st.Size(), parquet.SkipBloomFilters(true))
		return e
	})
	if err != nil {
		return nil, invalid("%s is not a readable Parquet file: %v", path, err)
	}
	r = &Reader{path: path, f: f, st: st, pf: pf}
	if err := r.checkSchema(); err != nil {
		return nil, err
	}
	meta, err := parseMeta(pf.Lookup)
	if err != nil {
		return nil, invalid("%v", err)
	}
	if meta.RowCount != pf.NumRows() {
		return nil, invalid("metadata says %d rows but the file holds %d", meta.RowCount, pf.NumRows())
	}
	r.meta = meta
	return r, nil
}

func (r *Reader) checkSchema() error {
	err := guard(func() error {
		s := r.pf.Schema()
		idx := make([]int, len(required))
		for i, c := range required {
			leaf, ok := s.Lookup(c.name)
			if !ok {
				return invalid("column %q is missing", c.name)
			}
			if leaf.MaxRepetitionLevel > 0 || leaf.Node.Repeated() {
				return invalid("column %q is repeated; want a single value per row", c.name)
			}
			if !leaf.Node.Leaf() {
				return invalid("column %q is a group; want a single %s value", c.name, c.kind)
			}
			if k := leaf.Node.Type().Kind(); k != c.kind {
				return invalid("column %q has type %s, want %s", c.name, k, c.kind)
			}
			idx[i] = leaf.ColumnIndex
		}
		r.cols = columns{stage: idx[0], table: idx[1], id: idx[2], uid: idx[3], createdAt: idx[4]}
		return nil
	})
	if err != nil && !errors.Is(err, ErrInvalid) {
		// A panic inside parquet-go on a schema it cannot describe.
		return invalid("unreadable schema: %v", err)
	}
	return err
}

// Meta returns the metadata read by Open.
func (r *Reader) Meta() *Meta { return r.meta }

// NumRows is the number of rows in the file.
func (r *Reader) NumRows() int64 { return r.pf.NumRows() }

// Close closes the file.
func (r *Reader) Close() error { return r.f.Close() }

// Verify reads every row, checks each against the rules of the format and
// against the rules the file records (rules.go), and the whole against the
// metadata: digest, counts, oldest and newest. Nothing should act on a
// manifest that has not passed Verify.
func (r *Reader) Verify() error {
	t := newTally(r.meta.FormatVersion)
	ru, err := newRules(r.meta)
	if err != nil {
		return invalid("%v", err)
	}
	// Decoding and checking take about as long as each other, so they run
	// on two cores: apply verifies the whole file before its first batch.
	r.verified = nil
	rows := r.RowsAhead(0)
	defer rows.Close()
	var i int64
	var prevUID []byte
	var prevMax bool
	groups := r.pf.RowGroups()
	var digests [][sha256.Size]byte
	g := newGroupDigest()
	var groupEnd int64
	if len(groups) > 0 {
		groupEnd = groups[0].NumRows()
	}
	for row, ok := rows.Next(); ok; row, ok = rows.Next() {
		if err := t.add(row); err != nil {
			return invalid("%v", err)
		}
		g.add(row)
		for i+1 == groupEnd && len(digests) < len(groups) {
			digests = append(digests, g.sum())
			g = newGroupDigest()
			if len(digests) < len(groups) {
				groupEnd += groups[len(digests)].NumRows()
			}
		}
		isMax := row.Stage == StageMaxSessions
		if err := ru.check(row, isMax && (!prevMax || string(prevUID) != string(row.UID))); err != nil {
			return invalid("row %d: %v", i, err)
		}
		prevMax, prevUID = isMax, append(prevUID[:0], row.UID...)
		i++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	n, stats, digest, err := t.result()
	if err != nil {
		return invalid("%v", err)
	}
	if err := ru.finish(); err != nil {
		return invalid("%v", err)
	}
	for len(digests) < len(groups) { // trailing empty row groups
		digests = append(digests, newGroupDigest().sum())
	}
	m := r.meta
	if n != m.RowCount {
		return invalid("read %d rows, metadata says %d", n, m.RowCount)
	}
	if digest != m.RowsSHA256 {
		return invalid("rows do not match the digest in the metadata (rows were changed after planning)")
	}
	if len(stats) != len(m.Stats) {
		return invalid("rows fill %d stage/table sections, metadata lists %d", len(stats), len(m.Stats))
	}
	for i, s := range stats {
		ms := m.Stats[i]
		if s.Stage != ms.Stage || s.Table != ms.Table || s.Rows != ms.Rows {
			return invalid("rows hold %d %s/%s, metadata says %d %s/%s", s.Rows, s.Stage, s.Table, ms.Rows, ms.Stage, ms.Table)
		}
		if s.Oldest != ms.Oldest || s.Newest != ms.Newest {
			return invalid("%s/%s createdAt range in rows (%d..%d) differs from metadata (%d..%d)", s.Stage, s.Table, s.Oldest, s.Newest, ms.Oldest, ms.Newest)
		}
	}
	r.verified = digests
	return nil
}

// groupDigest is a digest of one row group's rows, in the row digest's
// encoding.
type groupDigest struct {
	h   hash.Hash
	buf []byte
}

func newGroupDigest() *groupDigest { return &groupDigest{h: sha256.New()} }

func (g *groupDigest) add(r Row) {
	g.buf = appendDigestRow(g.buf[:0], r)
	g.h.Write(g.buf)
}

func (g *groupDigest) sum() (s [sha256.Size]byte) {
	g.h.Sum(s[:0])
	return s
}

// Iter streams rows in file order.
type Iter struct {
	r      *Reader
	next   int64 // file index of the next row Next returns
	group  int
	rows   parquet.Rows
	buf    []parquet.Row
	bufAt  int
	bufLen int
	err    error
	// group's rows, read whole and checked against Verify's digest, when
	// the reader was verified; rows[groupAt] is the next.
	groupRows []Row
	groupAt   int
}

// Rows returns an iterator that starts at row index from (0-based).
func (r *Reader) Rows(from int64) *Iter {
	return &Iter{r: r, next: from, group: -1, buf: make([]parquet.Row, 256)}
}

// Index is the file index of the row the next call to Next returns.
func (it *Iter) Index() int64 { return it.next }

// Err is the error that stopped the iteration, if any.
func (it *Iter) Err() error { return it.err }

// Next returns the next row, or false at the end or on error (see Err).
func (it *Iter) Next() (Row, bool) {
	if it.err != nil {
		return Row{}, false
	}
	var row Row
	var ok bool
	if err := guard(func() error {
		var e error
		row, ok, e = it.next1()
		return e
	}); err != nil {
		switch {
		case errors.Is(err, ErrChanged):
			it.err = fmt.Errorf("row %d: %w", it.next, err)
		case it.r.verified != nil:
			// It read whole when verified: it changed, or the disk fails.
			it.err = fmt.Errorf("row %d: %w: %v", it.next, ErrChanged, err)
		default:
			it.err = invalid("row %d: %v", it.next, err)
		}
		it.close()
		return Row{}, false
	}
	if ok {
		it.next++
	}
	return row, ok
}

func (it *Iter) next1() (Row, bool, error) {
	if it.r.verified != nil {
		return it.nextVerified()
	}
	for it.bufAt >= it.bufLen {
		if it.rows == nil {
			if !it.open() {
				return Row{}, false, nil
			}
		}
		n, err := it.rows.ReadRows(it.buf)
		it.bufAt, it.bufLen = 0, n
		if n == 0 {
			if err != nil && !errors.Is(err, io.EOF) {
				return Row{}, false, err
			}
			it.close()
			it.group++
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return Row{}, false, err
		}
	}
	pr := it.buf[it.bufAt]
	it.bufAt++
	return it.decode(pr)
}

// nextVerified returns rows of a verified reader: each row group is read
// whole and its digest compared with Verify's before any of its rows is
// returned, so a caller never acts on a row that was not verified, however
// the file was changed in between (the size and modification time can be
// put back).
func (it *Iter) nextVerified() (Row, bool, error) {
	for it.groupAt >= len(it.groupRows) {
		it.groupRows, it.groupAt = it.groupRows[:0], 0
		groups := it.r.pf.RowGroups()
		var start int64
		g := 0
		for ; g < len(groups); g++ {
			if it.next < start+groups[g].NumRows() {
				break
			}
			start += groups[g].NumRows()
		}
		if g >= len(groups) {
			return Row{}, false, nil
		}
		if err := it.readGroup(g, groups[g]); err != nil {
			return Row{}, false, err
		}
		it.groupAt = int(it.next - start)
	}
	row := it.groupRows[it.groupAt]
	it.groupAt++
	return row, true, nil
}

// readGroup reads row group g whole into it.groupRows and checks it
// against the digest Verify took.
func (it *Iter) readGroup(g int, group parquet.RowGroup) error {
	rows := group.Rows()
	defer rows.Close()
	d := newGroupDigest()
	for {
		n, err := rows.ReadRows(it.buf)
		for _, pr := range it.buf[:n] {
			row, _, derr := it.decode(pr)
			if derr != nil {
				return fmt.Errorf("%w: row group %d: %v", ErrChanged, g, derr)
			}
			d.add(row)
			it.groupRows = append(it.groupRows, row)
		}
		if errors.Is(err, io.EOF) || (err == nil && n == 0) {
			break
		}
		if err != nil {
			return err
		}
	}
	if g >= len(it.r.verified) || d.sum() != it.r.verified[g] {
		it.groupRows = it.groupRows[:0]
		return fmt.Errorf("%w: the rows of row group %d are not the rows verified (the file was changed in place during the run)", ErrChanged, g)
	}
	return nil
}

// open positions the iterator at the row group holding it.next.
func (it *Iter) open() bool {
	groups := it.r.pf.RowGroups()
	var start int64
	for i, g := range groups {
		n := g.NumRows()
		if it.next < start+n && i >= it.group {
			it.group = i
			it.rows = g.Rows()
			if skip := it.next - start; skip > 0 {
				if err := it.rows.SeekToRow(skip); err != nil {
					it.err = fmt.Errorf("seek to row %d: %w", it.next, err)
					return false
				}
			}
			return true
		}
		start += n
	}
	return false
}

func (it *Iter) close() {
	if it.rows != nil {
		it.rows.Close()
		it.rows = nil
	}
}

func (it *Iter) decode(pr parquet.Row) (Row, bool, error) {
	c := it.r.cols
	var row Row
	var have int
	var id, uid []byte // point into pr until copied below
	for _, v := range pr {
		col := v.Column()
		if col != c.stage && col != c.table && col != c.id && col != c.uid && col != c.createdAt {
			continue
		}
		if v.IsNull() {
			return Row{}, false, fmt.Errorf("column %d is null", col)
		}
		have++
		switch col {
		case c.stage:
			row.Stage = intern(v.ByteArray(), sectionStage)
		case c.table:
			row.Table = intern(v.ByteArray(), sectionTable)
		case c.id:
			id = v.ByteArray()
		case c.uid:
			uid = v.ByteArray()
		case c.createdAt:
			row.CreatedAt = v.Int64()
		}
	}
	if have != 5 {
		return Row{}, false, fmt.Errorf("row has %d of the 5 manifest columns", have)
	}
	// One allocation for both byte strings: apply decodes every row twice
	// (verifying, then deleting), on its critical path the first time.
	buf := make([]byte, len(id)+len(uid))
	copy(buf, id)
	copy(buf[len(id):], uid)
	if len(id) > 0 {
		row.ID = buf[:len(id):len(id)]
	}
	if len(uid) > 0 {
		row.UID = buf[len(id):]
	}
	return row, true, nil
}

// intern returns the stage or table name (field of a Section of the
// allow-list) equal to b, without allocating, or a copy of b (a value
// Validate then refuses).
func intern(b []byte, field func(Section) string) string {
	for _, s := range sections {
		if n := field(s); string(b) == n {
			return n
		}
	}
	return string(b)
}

func sectionStage(s Section) string { return s.Stage }
func sectionTable(s Section) string { return s.Table }

// guard turns a panic inside parquet-go (which panics on some corrupt
// files) into an error.
func guard(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("corrupt Parquet data: %s", strings.Join(strings.Fields(fmt.Sprint(p)), " "))
		}
	}()
	return fn()
}

// SHA256 is the SHA-256 of the whole file this Reader reads: the open file,
// not whatever the path names now, so the bytes hashed are the bytes read.
func (r *Reader) SHA256() (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(r.f, 0, r.st.Size())); err != nil {
		return "", fmt.Errorf("read %s: %w", r.path, err)
	}
	if err := r.CheckUnchanged(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// CheckUnchanged fails when the open file's size or modification time
// differ from when it was opened: rows read after an edit in place are not
// the rows that were verified and approved.
func (r *Reader) CheckUnchanged() error {
	now, err := r.f.Stat()
	if err != nil {
		return fmt.Errorf("stat manifest %s: %w", r.path, err)
	}
	if now.Size() != r.st.Size() || !now.ModTime().Equal(r.st.ModTime()) {
		return fmt.Errorf("%w: %s was modified after it was opened (size %d -> %d, modified %s)", ErrChanged, r.path,
			r.st.Size(), now.Size(), now.ModTime().UTC().Format("2006-01-02T15:04:05.000Z"))
	}
	return nil
}

// FileSHA256 is the SHA-256 of the whole file, as plan prints it and
// apply --approve checks it.
func FileSHA256(path string) (string, error) {
	// As in Open: reading a FIFO would wait for a writer.
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		return "", invalid("%s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
