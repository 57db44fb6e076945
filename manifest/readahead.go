package manifest

// ReadAhead decodes rows in a goroutine, a few hundred rows ahead of its
// reader, so that decoding the Parquet file overlaps what the reader does
// with the rows instead of adding to it: apply's round trips (at batch size
// 100, decoding was a twentieth of apply's time) and Verify's checks (which
// take about as long as decoding). Rows come out in file order, exactly as
// Iter gives them; an error stops the rows where the iterator stopped.
//
// Reading ahead does not weaken apply's check that the file did not change
// during the run: apply checks it after a batch's rows were read, before
// they are deleted, however early they were read.
type ReadAhead struct {
	chunks chan readChunk
	stop   chan struct{}
	done   chan struct{}
	buf    []Row
	next   int64 // index of the row Next returns next
	// ended: the last chunk arrived; exhausted: Next has returned false.
	ended, exhausted bool
	err              error
}

// readChunk is rows in file order and, in the last chunk, how the
// iteration ended.
type readChunk struct {
	rows []Row
	last bool
	err  error
}

// chunkRows is how many rows the goroutine decodes before handing them over;
// up to aheadChunks chunks wait.
const (
	chunkRows   = 256
	aheadChunks = 4
)

// RowsAhead returns rows from row index from (0-based), as Rows does, read
// ahead. Close it when done, or its goroutine stays.
func (r *Reader) RowsAhead(from int64) *ReadAhead {
	it := r.Rows(from)
	ra := &ReadAhead{chunks: make(chan readChunk, aheadChunks), stop: make(chan struct{}), done: make(chan struct{}), next: it.Index()}
	go func() {
		defer close(ra.done)
		for {
			c := readChunk{rows: make([]Row, 0, chunkRows)}
			for len(c.rows) < chunkRows {
				row, ok := it.Next()
				if !ok {
					c.last, c.err = true, it.Err()
					break
				}
				c.rows = append(c.rows, row)
			}
			select {
			case ra.chunks <- c:
			case <-ra.stop:
				return
			}
			if c.last {
				return
			}
		}
	}()
	return ra
}

// Next returns the next row, or false at the end or on error (see Err).
func (ra *ReadAhead) Next() (Row, bool) {
	for len(ra.buf) == 0 {
		if ra.ended {
			ra.exhausted = true
			return Row{}, false
		}
		c := <-ra.chunks
		ra.buf = c.rows
		if c.last {
			ra.ended, ra.err = true, c.err
		}
	}
	row := ra.buf[0]
	ra.buf = ra.buf[1:]
	ra.next++
	return row, true
}

// Index is the file index of the row Next returns next; after an error,
// the row the iterator stopped at (it counts only the rows it returned, as
// Next does).
func (ra *ReadAhead) Index() int64 { return ra.next }

// Err is the error that stopped the rows, once Next has returned false, as
// with the iterator.
func (ra *ReadAhead) Err() error {
	if !ra.exhausted {
		return nil
	}
	return ra.err
}

// Close stops the goroutine and waits for it.
func (ra *ReadAhead) Close() {
	close(ra.stop)
	<-ra.done
}
