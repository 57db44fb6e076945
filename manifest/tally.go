package manifest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"hash/fnv"
	"slices"

	"github.com/axiomhq/hyperloglog"
)

// exactAccountsLimit bounds the memory spent on counting distinct accounts of
// one section; past it the count becomes a HyperLogLog estimate.
const exactAccountsLimit = 100_000

// tally is what the writer and the reader both compute over the rows, in file
// order: the digest, per-section statistics and the ordering rules that make
// duplicates impossible. The writer records it; the reader checks a file
// against it, so the two can never drift apart.
type tally struct {
	version int // the format whose order rules apply
	digest  hash.Hash
	buf     []byte
	rows    int64

	sections []SectionStats
	cur      int // index into sections of the current section, -1 before the first row
	accounts map[[UIDLen]byte]struct{}
	sketch   *hyperloglog.Sketch
	prev     Row

	// max-sessions rows come grouped by account; each account once.
	seenGroups map[[UIDLen]byte]struct{}
	// Fingerprints of the session tokens max-sessions lists: appended while
	// its section is read, then sorted once it ends, so that a token listed
	// twice, or again by token-age, is found with 8 bytes a listed session
	// (a map would cost five times that; max-sessions lists at most
	// maxSessionsMaxAccounts x maxSessionsMaxDeletions rows).
	maxSessionIDs []uint64
	maxSorted     bool
	// Version 1 only: fingerprints of the current token-age or code-age
	// section's keys. Its (createdAt, key) order lets one key appear twice
	// with two createdAt values, which only remembering keys can catch.
	// Version 2's primary-key order makes a duplicate adjacent, so it
	// needs no memory per row.
	v1Keys []uint64
}

// newTally checks rows against the order rules of format version.
func newTally(version int) *tally {
	return &tally{version: version, digest: sha256.New(), cur: -1}
}

// add checks one row against the rules and folds it into the tally. The
// error names the row by its zero-based position in the file.
func (t *tally) add(r Row) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("row %d: %w", t.rows, err)
	}
	idx := SectionIndex(r.Stage, r.Table)
	switch {
	case idx < t.cur:
		return fmt.Errorf("row %d: %s after %s: sections out of order", t.rows, r.Section(), sections[t.cur])
	case idx > t.cur:
		if err := t.finishSection(); err != nil {
			return err
		}
		t.cur = idx
		t.sections = append(t.sections, SectionStats{Stage: r.Stage, Table: r.Table, Oldest: r.CreatedAt, Newest: r.CreatedAt})
		t.accounts = map[[UIDLen]byte]struct{}{}
		t.sketch = nil
		if r.Stage == StageMaxSessions {
			t.seenGroups = map[[UIDLen]byte]struct{}{}
		}
	default:
		if err := t.checkOrder(r); err != nil {
			return fmt.Errorf("row %d: %w", t.rows, err)
		}
	}
	var uid [UIDLen]byte
	copy(uid[:], r.UID)
	if r.Stage == StageMaxSessions {
		if t.rows == 0 || idx != SectionIndex(t.prev.Stage, t.prev.Table) || string(t.prev.UID) != string(r.UID) {
			if _, dup := t.seenGroups[uid]; dup {
				return fmt.Errorf("row %d: account %x appears in two separate groups of %s", t.rows, r.UID, r.Section())
			}
			t.seenGroups[uid] = struct{}{}
		}
		t.maxSessionIDs = append(t.maxSessionIDs, fingerprint(r.ID))
	} else {
		if r.Stage == StageTokenAge && r.Table == TableSessionTokens {
			if _, dup := slices.BinarySearch(t.maxSessionIDs, fingerprint(r.ID)); dup {
				return fmt.Errorf("row %d: session token %x is listed by both %s and %s", t.rows, r.ID, StageMaxSessions, StageTokenAge)
			}
		}
		if t.version == 1 {
			t.v1Keys = append(t.v1Keys, fingerprint(r.Key()))
		}
	}

	st := &t.sections[len(t.sections)-1]
	st.Rows++
	st.Oldest = min(st.Oldest, r.CreatedAt)
	st.Newest = max(st.Newest, r.CreatedAt)
	if t.sketch == nil {
		t.accounts[uid] = struct{}{}
		if len(t.accounts) > exactAccountsLimit {
			t.sketch = hyperloglog.New16()
			for u := range t.accounts {
				t.sketch.Insert(u[:])
			}
			t.accounts = nil
		}
	} else {
		t.sketch.Insert(uid[:])
	}

	t.buf = appendDigestRow(t.buf[:0], r)
	t.digest.Write(t.buf)
	t.rows++
	t.prev = Row{Stage: r.Stage, Table: r.Table, CreatedAt: r.CreatedAt,
		ID: append(t.prev.ID[:0], r.ID...), UID: append(t.prev.UID[:0], r.UID...)}
	return nil
}

// checkOrder enforces the order within a section. max-sessions: strictly
// ascending (createdAt, key) within an account's group. Other sections:
// strictly ascending primary key (version 2) or (createdAt, key) (version
// 1). Strict order rules out a row listed twice in a row; in primary-key
// order that is every duplicate, without remembering any row.
func (t *tally) checkOrder(r Row) error {
	if r.Stage == StageMaxSessions || t.version == 1 {
		if r.Stage == StageMaxSessions && string(t.prev.UID) != string(r.UID) {
			return nil // a new account's group starts
		}
		switch c := compareAge(t.prev, r); {
		case c == 0:
			return fmt.Errorf("duplicate %s row %x", r.Section(), r.Key())
		case c > 0:
			return fmt.Errorf("%s rows out of order (createdAt %d after %d)", r.Section(), r.CreatedAt, t.prev.CreatedAt)
		}
		return nil
	}
	switch c := CompareKey(t.prev, r); {
	case c == 0:
		return fmt.Errorf("duplicate %s row: primary key %x listed twice", r.Section(), r.Key())
	case c > 0:
		return fmt.Errorf("%s rows out of order (primary key %x after %x)", r.Section(), r.Key(), t.prev.Key())
	}
	return nil
}

func (t *tally) finishSection() error {
	if len(t.sections) == 0 {
		return nil
	}
	if t.sections[len(t.sections)-1].Stage == StageMaxSessions && !t.maxSorted {
		t.maxSorted = true
		slices.Sort(t.maxSessionIDs)
		for i := 1; i < len(t.maxSessionIDs); i++ {
			if t.maxSessionIDs[i] == t.maxSessionIDs[i-1] {
				return fmt.Errorf("a session token is listed twice by %s (under two accounts)", StageMaxSessions)
			}
		}
	}
	st := &t.sections[len(t.sections)-1]
	if len(t.v1Keys) > 0 {
		keys := t.v1Keys
		t.v1Keys = keys[:0]
		slices.Sort(keys)
		for i := 1; i < len(keys); i++ {
			if keys[i] == keys[i-1] {
				return fmt.Errorf("duplicate %s row: a primary key is listed twice (with two createdAt values)", Section{st.Stage, st.Table})
			}
		}
	}
	if t.sketch != nil {
		st.Accounts = int64(t.sketch.Estimate())
		st.AccountsApprox = true
	} else {
		st.Accounts = int64(len(t.accounts))
	}
	t.accounts, t.sketch = nil, nil
	return nil
}

// result finishes the tally: total rows, per-section stats, digest; an
// error for a rule only the end of a section can check.
func (t *tally) result() (int64, []SectionStats, string, error) {
	if err := t.finishSection(); err != nil {
		return 0, nil, "", err
	}
	stats := t.sections
	if stats == nil {
		stats = []SectionStats{}
	}
	return t.rows, stats, hex.EncodeToString(t.digest.Sum(nil)), nil
}

// appendDigestRow is the digest's encoding of one row: unambiguous, because
// every variable-length field carries its length.
func appendDigestRow(b []byte, r Row) []byte {
	for _, f := range [][]byte{[]byte(r.Stage), []byte(r.Table), r.ID, r.UID} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return binary.BigEndian.AppendUint64(b, uint64(r.CreatedAt))
}

func fingerprint(id []byte) uint64 {
	h := fnv.New64a()
	h.Write(id)
	return h.Sum64()
}
