package applier

import (
	"bytes"
	"context"
	"maps"
	"slices"
	"strings"
	"testing"

	"prune-tokens/internal/test/appliertest"
	"prune-tokens/internal/test/dbtest"
	"prune-tokens/internal/test/sandboxtest"
	"prune-tokens/manifest"
)

// TestApplyOnSandbox runs apply's real statements, whatever the SQL builders
// produce for each section, on the sandbox (go-mysql-server): a dry run, then
// the apply, of a manifest some of whose rows changed after the plan (a
// token-age session gained a device, a listed token was deleted, a code's
// createdAt changed). The dry run changes nothing and predicts the counts;
// the apply leaves every table exactly as the rules say, deleting the
// devices and unverifiedTokens rows of the sessions it deletes.
func TestApplyOnSandbox(t *testing.T) {
	db := sandboxtest.New(t)
	f := appliertest.New(t, db, 41, appliertest.Small)
	path, sum := f.Manifest(t, t.TempDir())
	ta := f.Listed(manifest.StageTokenAge, manifest.TableSessionTokens)
	f.AddDevice(t, ta[0].UID, ta[0].ID)
	f.Expect(manifest.TableSessionTokens, ta[0].ID, true)
	if f.Deps(ta[0]) > 0 { // its unverifiedTokens row stays with it
		f.Expect("unverifiedTokens", ta[0].ID, true)
	}
	f.DeleteListed(t, f.Listed(manifest.StageTokenAge, manifest.TablePasswordChangeTokens)[0])
	changed := f.Listed(manifest.StageCodeAge, manifest.TableUnblockCodes)[0]
	mustExec(t, db.SQL, "UPDATE unblockCodes SET createdAt = createdAt + 1 WHERE uid = ? AND unblockCodeHash = ?", changed.UID, changed.ID)
	f.Expect(manifest.TableUnblockCodes, changed.Key(), true)
	before := allKeys(t, db)

	o := options(t, db, path)
	o.DryRun = true
	dry, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("dry run on the sandbox: %v", err)
	}
	if after := allKeys(t, db); after != before {
		t.Fatal("the dry run changed the sandbox's tables")
	}
	o.DryRun = false
	o.Approve = sum
	var out bytes.Buffer
	o.Out = &out
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("apply on the sandbox: %v\n%s", err, out.String())
	}
	f.Check(t)
	for _, want := range []struct {
		stage, table string
		c            Counts
	}{
		{manifest.StageTokenAge, manifest.TableSessionTokens, Counts{Skipped: 1}},
		{manifest.StageTokenAge, manifest.TablePasswordChangeTokens, Counts{Gone: 1}},
		{manifest.StageCodeAge, manifest.TableUnblockCodes, Counts{Skipped: 1}},
	} {
		got := section(res, want.stage, want.table)
		if got.Skipped != want.c.Skipped || got.Gone != want.c.Gone || got.Deleted != got.Planned-want.c.Skipped-want.c.Gone {
			t.Errorf("%s/%s: %+v, want %d skipped and %d gone", want.stage, want.table, got, want.c.Skipped, want.c.Gone)
		}
	}
	if ms := section(res, manifest.StageMaxSessions, manifest.TableSessionTokens); ms.Devices == 0 || ms.Unverified == 0 {
		t.Errorf("max-sessions deleted no devices or unverifiedTokens rows: %+v", ms)
	}
	for i, s := range res.Sections {
		if s.Counts != dry.Sections[i].Counts {
			t.Errorf("%s: dry run predicted %+v, apply did %+v", s.Section, dry.Sections[i].Counts, s.Counts)
		}
	}
}

// allKeys is every table's primary keys, as one comparable string.
func allKeys(t *testing.T, db *dbtest.DB) string {
	t.Helper()
	var b strings.Builder
	for _, table := range dbtest.Tables {
		keys := appliertest.Keys(t, db.SQL, table)
		b.WriteString(table)
		for _, k := range slices.Sorted(maps.Keys(keys)) {
			b.WriteString(" " + k)
		}
		b.WriteString("\n")
	}
	return b.String()
}
