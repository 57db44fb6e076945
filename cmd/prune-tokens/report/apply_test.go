package report

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"prune-tokens/applier"
	"prune-tokens/manifest"
)

func applyResult() *applier.Result {
	return &applier.Result{Total: 30, Done: 30, Complete: true, Elapsed: 2 * time.Second, Batches: 3,
		Sections: []applier.SectionResult{
			{Section: manifest.Section{Stage: manifest.StageMaxSessions, Table: manifest.TableSessionTokens}, Planned: 10,
				Counts: applier.Counts{Deleted: 8, Gone: 1, Skipped: 1, Unverified: 2, Devices: 3}},
			{Section: manifest.Section{Stage: manifest.StageCodeAge, Table: manifest.TableSigninCodes}, Planned: 20,
				Counts: applier.Counts{Deleted: 20}},
		}}
}

func TestApplyOutcome(t *testing.T) {
	var b bytes.Buffer
	if err := Apply(&b, applyResult()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"Planned", "Deleted", "Already gone", "Skipped by guard", "max-sessions", "signinCodes",
		"2 unverifiedTokens rows and 3 devices rows deleted", "Rows 30 of 30, complete", "15 rows/s"} {
		if !strings.Contains(out, want) {
			t.Errorf("outcome lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "│ total") || !strings.Contains(out, "28 │") {
		t.Errorf("no footer with 28 deleted:\n%s", out)
	}
}

func TestApplyOutcomeIncompleteAndDryRun(t *testing.T) {
	r := applyResult()
	r.Complete, r.Done = false, 12
	r.Sections[1].Counts = applier.Counts{Deleted: 2}
	var b bytes.Buffer
	if err := Apply(&b, r); err != nil {
		t.Fatal(err)
	}
	if out := b.String(); !strings.Contains(out, "Not yet processed") || !strings.Contains(out, "incomplete: 12 of 30") || !strings.Contains(out, "18 │") {
		t.Errorf("incomplete outcome:\n%s", out)
	}
	r = applyResult()
	r.DryRun = true
	b.Reset()
	if err := Apply(&b, r); err != nil {
		t.Fatal(err)
	}
	if out := b.String(); !strings.Contains(out, "Would delete") || !strings.Contains(out, "nothing was deleted") || !strings.Contains(out, "would be deleted") {
		t.Errorf("dry-run outcome:\n%s", out)
	}
}
