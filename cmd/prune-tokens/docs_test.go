package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDocsDeterministic(t *testing.T) {
	var got [2]map[string]string
	for i := range got {
		dir := t.TempDir()
		if code, out, stderr := run(t, "docs", "--dir", dir); code != 0 || out != "" || stderr != "" {
			t.Fatalf("docs: exit %d, out %q, stderr %q", code, out, stderr)
		}
		got[i] = map[string]string{}
		for _, name := range []string{docsMarkdown, docsMan} {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			got[i][name] = string(b)
		}
	}
	for name, text := range got[0] {
		if got[1][name] != text {
			t.Errorf("%s differs between two runs", name)
		}
	}
	md, man := got[0][docsMarkdown], got[0][docsMan]
	for _, want := range []string{"## apply", "**--approve**", "## version", "## completion", "**PRUNE_TOKENS_DSN**: plan --dsn, apply --dsn"} {
		if !strings.Contains(md, want) {
			t.Errorf("%s lacks %q", docsMarkdown, want)
		}
	}
	if strings.Contains(md, "## docs") {
		t.Errorf("%s documents the hidden docs command", docsMarkdown)
	}
	// No date on the title line: the page must not change from run to run.
	if !strings.Contains(man, "\n.TH prune-tokens 1\n") {
		t.Errorf("%s: no dateless .TH line:\n%.300s", docsMan, man)
	}
}

func TestDocsHidden(t *testing.T) {
	_, help, _ := run(t, "--help")
	_, names, _ := run(t, completionFlag)
	if strings.Contains(help, "docs") || strings.Contains(names, "docs") {
		t.Errorf("the docs command shows: help %q, completion %q", help, names)
	}
}
