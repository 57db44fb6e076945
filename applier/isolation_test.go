package applier

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"prune-tokens/internal/test/appliertest"
	"prune-tokens/internal/test/dbtest"
	"prune-tokens/internal/test/faultproxy"
)

// TestRefusesSessionBelowRepeatableRead: a session whose isolation level
// cannot be raised to REPEATABLE READ (here the server refuses the SET, and
// the session starts at READ COMMITTED) is refused before the first batch,
// naming the level, and nothing is deleted. The control, the same session
// with the SET let through, applies: the check reads the level in force.
func TestRefusesSessionBelowRepeatableRead(t *testing.T) {
	db := dbtest.New(t)
	f := appliertest.New(t, db, 31, appliertest.Small)
	path, _ := f.Manifest(t, t.TempDir())
	proxy, cfg := faultproxy.Between(t, db.DSN)
	cfg.Params = map[string]string{"tx_isolation": "'READ-COMMITTED'"} // go-sql-driver sets it on every new connection
	o := options(t, db, path)
	o.DSN = cfg
	before := db.Checksums(t)

	proxy.Garble("SET SESSION TRANSACTION ISOLATION LEVEL")
	_, err := Run(context.Background(), o)
	if !IsInit(err) || !strings.Contains(err.Error(), "READ-COMMITTED") || !strings.Contains(err.Error(), "REPEATABLE READ") {
		t.Fatalf("err = %v; want an init error naming the level in force and the one needed", err)
	}
	if after := db.Checksums(t); !reflect.DeepEqual(before, after) {
		t.Fatal("a session below REPEATABLE READ deleted rows")
	}

	proxy.Garble("")
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatalf("with the SET let through: %v", err)
	}
	f.Check(t)
}
