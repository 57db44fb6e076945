package applier

import (
	"context"
	"database/sql"
	"fmt"

	"prune-tokens/internal/logging"
	"prune-tokens/internal/metrics"
	"prune-tokens/internal/sessioncache"
	"prune-tokens/manifest"
)

// cleanCache removes the sessions a committed batch took out of the
// database (deleted by it, or already gone) from the Redis session cache.
// It runs after the checkpoint record, so a crash in between leaves at most
// stale cache entries, which a cache-only run (RedisOnly) removes; Redis
// trouble is retried by the cleaner, counted and logged, and never stops
// the deletion. Its own timeouts bound it, and a signal does not cut it
// short: the batch is committed.
func (r *run) cleanCache(ctx context.Context, removed []manifest.Row) {
	if len(removed) == 0 {
		return
	}
	res, err := r.o.Cache.Remove(context.WithoutCancel(ctx), cacheItems(removed))
	r.res.Cache.Add(res)
	// The accounts not cleaned are counted, not kept: a cache-only run
	// finds them again from the manifest, and a long run against a dead
	// Redis must not hold every session in memory.
	r.res.Cache.Unclean = nil
	r.o.Metrics.SessionCache(metrics.Cache{Removed: res.Removed, KeysDeleted: res.KeysDeleted, Failed: res.Failed})
	if err != nil {
		msg := logging.OneLine(err.Error())
		r.prog.warn(fmt.Sprintf("session cache: %s (%d accounts not cleaned so far; the deletion goes on)", msg, r.res.Cache.Failed),
			"failed", res.Failed, logging.KeyError, msg)
	}
}

func cacheItems(rows []manifest.Row) []sessioncache.Item {
	items := make([]sessioncache.Item, len(rows))
	for i, r := range rows {
		items[i] = sessioncache.Item{UID: r.UID, TokenIDs: [][]byte{r.ID}}
	}
	return items
}

// sweepCache is a cache-only run: every session of the manifest that is no
// longer in the database leaves the Redis session cache. It reads the
// database (no lock, no checkpoint, no delete) and is idempotent, so it can
// be run any time after an apply, or during one.
func sweepCache(ctx context.Context, db *sql.DB, mr *manifest.Reader, o Options, res *Result) error {
	fmt.Fprintf(o.Out, "cache only  the manifest's sessions no longer in the database leave %s; nothing is deleted from the database\n", o.Cache.Target())
	it := mr.Rows(0)
	batch := make([]manifest.Row, 0, o.BatchSize)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		qctx, cancel := context.WithTimeout(ctx, o.BatchTimeout)
		kept, err := presentKeys(qctx, db, manifest.TableSessionTokens, batch)
		cancel()
		if err != nil {
			return err
		}
		var gone []manifest.Row
		for _, r := range batch {
			if !kept[string(r.ID)] {
				gone = append(gone, r)
			}
		}
		res.Checked += int64(len(batch))
		res.Done = it.Index()
		if len(gone) > 0 {
			cr, err := o.Cache.Remove(context.WithoutCancel(ctx), cacheItems(gone))
			res.Cache.Add(cr)
			res.Cache.Unclean = nil
			o.Metrics.SessionCache(metrics.Cache{Removed: cr.Removed, KeysDeleted: cr.KeysDeleted, Failed: cr.Failed})
			if err != nil {
				msg := logging.OneLine(err.Error())
				o.Logger.Warn("session cache: "+msg, "failed", cr.Failed, logging.KeyError, msg)
			}
		}
		batch = batch[:0]
		return nil
	}
	for {
		row, ok := it.Next()
		if !ok {
			break
		}
		if row.Table != manifest.TableSessionTokens {
			continue
		}
		batch = append(batch, row)
		if len(batch) == o.BatchSize {
			if err := flush(); err != nil {
				return fmt.Errorf("cache-only run at row %d: %w (rerun: it is idempotent)", it.Index(), err)
			}
			if ctx.Err() != nil {
				return fmt.Errorf("%w at row %d of %d (cache-only run: rerun it, it is idempotent)", ErrInterrupted, it.Index(), res.Total)
			}
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read manifest at row %d: %w", it.Index(), err)
	}
	if err := flush(); err != nil {
		return fmt.Errorf("cache-only run: %w (rerun: it is idempotent)", err)
	}
	res.Done, res.Complete = res.Total, true
	if res.Cache.Failed > 0 {
		return fmt.Errorf("session cache: %d accounts could not be cleaned; rerun the same command", res.Cache.Failed)
	}
	return nil
}
