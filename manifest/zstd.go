package manifest

import (
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go/format"
)

// zstdWindow bounds the encoder's history. parquet-go's own zstd codec uses
// the library's default 8 MiB window, and each of its pooled encoders then
// keeps 16 MiB of history (most of plan's live heap: docs/benchmarks.md),
// although a page is at most a few hundred KiB: a window of one page
// compresses the same.
const zstdWindow = 512 << 10

// boundedZstd is the zstd page codec the writer uses: one encoder, a small
// window. Files are plain zstd; readers (ours, DuckDB) decode them with
// their own codecs.
type boundedZstd struct {
	once sync.Once
	enc  *zstd.Encoder
	err  error
}

func (c *boundedZstd) String() string                            { return "ZSTD" }
func (c *boundedZstd) CompressionCodec() format.CompressionCodec { return format.Zstd }

// Encode may be called from several goroutines: EncodeAll is safe for
// concurrent use, waiting for the single encoder.
func (c *boundedZstd) Encode(dst, src []byte) ([]byte, error) {
	c.once.Do(func() {
		c.enc, c.err = zstd.NewWriter(nil,
			zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(zstdWindow),
			zstd.WithZeroFrames(true),
			zstd.WithEncoderCRC(false),
		)
	})
	if c.err != nil {
		return nil, fmt.Errorf("zstd encoder: %w", c.err)
	}
	return c.enc.EncodeAll(src, dst[:0]), nil
}

// Decode is never used for writing; it is here to satisfy the interface.
func (c *boundedZstd) Decode(dst, src []byte) ([]byte, error) {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.DecodeAll(src, dst[:0])
}
