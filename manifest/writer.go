package manifest

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/parquet-go/parquet-go"

	"prune-tokens/internal/atomicfile"
)

// fileRow is the on-disk schema. Column names are part of the format.
type fileRow struct {
	Stage     string `parquet:"stage,dict"`
	TableName string `parquet:"table_name,dict"`
	ID        []byte `parquet:"id"`
	UID       []byte `parquet:"uid"`
	CreatedAt int64  `parquet:"created_at"`
}

// rowGroupRows bounds the rows a writer buffers before it flushes a row
// group, so memory stays flat however many rows a plan lists.
const rowGroupRows = 64 * 1024

// writeBatch is how many rows Write hands parquet-go at once.
const writeBatch = 1024

// Writer writes a manifest atomically: rows go to a temporary file beside the
// destination, and only Commit makes it appear under its final name.
type Writer struct {
	f       *atomicfile.File
	pw      *parquet.GenericWriter[fileRow]
	tally   *tally
	pending []fileRow
	inGroup int
	done    bool
}

// Create starts a manifest that will be named path. It fails if path exists:
// a manifest is evidence for a review and is never overwritten.
func Create(path string) (*Writer, error) {
	// Manifests name accounts: readable by the operator only.
	f, err := atomicfile.Create(path, 0o600, atomicfile.Options{NoReplace: true})
	if err != nil {
		return nil, neverOverwritten(err)
	}
	pw := parquet.NewGenericWriter[fileRow](f,
		parquet.Compression(&boundedZstd{}),
		parquet.MaxRowsPerRowGroup(rowGroupRows),
		parquet.CreatedBy("prune-tokens", "", ""),
	)
	return &Writer{f: f, pw: pw, tally: newTally(FormatVersion)}, nil
}

// neverOverwritten says why an existing file is refused, for the operator
// who chose the name.
func neverOverwritten(err error) error {
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w; a manifest is never overwritten", err)
	}
	return fmt.Errorf("manifest: %w", err)
}

// Write appends one row. Rows must come in manifest order (see Sections and
// tally.checkOrder); a row out of order is a planner bug and fails here rather
// than produce a file that apply would refuse.
func (w *Writer) Write(r Row) error {
	if w.done {
		return errors.New("manifest writer already closed")
	}
	if err := w.tally.add(r); err != nil {
		return fmt.Errorf("manifest row rejected: %w", err)
	}
	w.pending = append(w.pending, fileRow{Stage: r.Stage, TableName: r.Table,
		ID: append([]byte(nil), r.ID...), UID: append([]byte(nil), r.UID...), CreatedAt: r.CreatedAt})
	if len(w.pending) >= writeBatch {
		return w.flushPending()
	}
	return nil
}

func (w *Writer) flushPending() error {
	if len(w.pending) == 0 {
		return nil
	}
	if _, err := w.pw.Write(w.pending); err != nil {
		return fmt.Errorf("write manifest rows: %w", err)
	}
	w.inGroup += len(w.pending)
	w.pending = w.pending[:0]
	if w.inGroup >= rowGroupRows {
		if err := w.pw.Flush(); err != nil {
			return fmt.Errorf("flush manifest row group: %w", err)
		}
		w.inGroup = 0
	}
	return nil
}

// Rows returns how many rows were written so far.
func (w *Writer) Rows() int64 { return w.tally.rows }

// Commit records meta (with the row-derived fields filled in), writes the
// footer, and publishes the file under its final name without ever
// replacing an existing file (one may have appeared while we were
// planning). It returns the completed Meta.
func (w *Writer) Commit(meta Meta) (*Meta, error) {
	if w.done {
		return nil, errors.New("manifest writer already closed")
	}
	w.done = true
	fail := func(err error) (*Meta, error) {
		w.f.Abort()
		return nil, err
	}
	if err := w.flushPending(); err != nil {
		return fail(err)
	}
	meta.FormatVersion = FormatVersion
	var err error
	if meta.RowCount, meta.Stats, meta.RowsSHA256, err = w.tally.result(); err != nil {
		return fail(fmt.Errorf("manifest rows rejected: %w", err))
	}
	kv, err := meta.keyValues()
	if err != nil {
		return fail(err)
	}
	for _, p := range kv {
		w.pw.SetKeyValueMetadata(p[0], p[1])
	}
	if err := w.pw.Close(); err != nil {
		return fail(fmt.Errorf("finish manifest: %w", err))
	}
	if err := w.f.Commit(); err != nil {
		return nil, neverOverwritten(err)
	}
	return &meta, nil
}

// Abort discards the temporary file; nothing appears under the final name.
// Safe to call after Commit (it then does nothing).
func (w *Writer) Abort() {
	w.done = true
	w.f.Abort()
}
