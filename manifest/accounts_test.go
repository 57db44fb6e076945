package manifest_test

import (
	"encoding/binary"
	"path/filepath"
	"testing"
	"time"

	"prune-tokens/manifest"
)

// TestAccountsEstimatedPastTheExactLimit: the distinct accounts of a section
// are counted exactly up to 100,000 and, past that, estimated with
// HyperLogLog and marked as an estimate (inspect prints it with ≈), within
// the sketch's error; the file read back says the same.
func TestAccountsEstimatedPastTheExactLimit(t *testing.T) {
	for _, n := range []int{100_000, 100_001} {
		path := filepath.Join(t.TempDir(), "plan.parquet")
		w, err := manifest.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			id, uid := make([]byte, manifest.IDLen), make([]byte, manifest.UIDLen)
			binary.BigEndian.PutUint64(id[24:], uint64(i))
			binary.BigEndian.PutUint64(uid[8:], uint64(i)*2654435761) // n distinct accounts
			r := manifest.Row{Stage: manifest.StageTokenAge, Table: manifest.TableSessionTokens, ID: id, UID: uid, CreatedAt: int64(i)}
			if err := w.Write(r); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := w.Commit(manifest.Meta{ToolVersion: "test", PlannedAt: time.Now(), Now: 1 << 40, TokenCutoff: 1 << 40, Flags: map[string]string{}}); err != nil {
			t.Fatal(err)
		}
		r, err := manifest.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Verify(); err != nil {
			t.Fatal(err)
		}
		st := r.Meta().Stats[0]
		r.Close()
		if exact := n <= 100_000; exact {
			if st.AccountsApprox || st.Accounts != int64(n) {
				t.Errorf("%d accounts: recorded %d (estimate %v), want the exact count", n, st.Accounts, st.AccountsApprox)
			}
		} else if d := st.Accounts - int64(n); !st.AccountsApprox || d > int64(n)/50 || d < -int64(n)/50 {
			t.Errorf("%d accounts: recorded %d (estimate %v), want an estimate within 2%%", n, st.Accounts, st.AccountsApprox)
		}
	}
}
