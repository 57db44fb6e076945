package atomicfile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func writeString(s string) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := io.WriteString(w, s)
		return err
	}
}

// only fails the test unless dir holds exactly the named files: a
// temporary file left behind shows up here.
func only(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, " ") != strings.Join(names, " ") {
		t.Errorf("directory holds %q, want %q", got, names)
	}
}

func content(t *testing.T, path, want string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != want {
		t.Errorf("%s holds %q, want %q", path, b, want)
	}
}

func TestWriteFileNew(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := WriteFile(path, 0o600, Options{}, writeString("whole")); err != nil {
		t.Fatal(err)
	}
	content(t, path, "whole")
	only(t, dir, "f")
}

func TestWriteFileReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("old, and longer than the new"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, 0o600, Options{}, writeString("new")); err != nil {
		t.Fatal(err)
	}
	content(t, path, "new")
	only(t, dir, "f")
}

func TestPermHonoured(t *testing.T) {
	old := syscall.Umask(0o077) // would strip the group bit were it applied
	defer syscall.Umask(old)
	dir := t.TempDir()
	for _, perm := range []fs.FileMode{0o600, 0o640, 0o444} {
		path := filepath.Join(dir, perm.String())
		if err := WriteFile(path, perm, Options{}, writeString("x")); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != perm {
			t.Errorf("mode %v, want %v", st.Mode().Perm(), perm)
		}
	}
}

func TestNoReplaceRefusesAtCreate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Create(path, 0o600, Options{NoReplace: true})
	if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want fs.ErrExist naming %s", err, path)
	}
	content(t, path, "old")
	only(t, dir, "f")
}

// A file that appears between Create and Commit is not replaced either.
func TestNoReplaceRefusesAtCommit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	f, err := Create(path, 0o600, Options{NoReplace: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Abort()
	if _, err := io.WriteString(f, "new"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.Commit(); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("err = %v, want fs.ErrExist", err)
	}
	content(t, path, "old")
	only(t, dir, "f")
}

func TestNoReplaceCreates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := WriteFile(path, 0o600, Options{NoReplace: true}, writeString("new")); err != nil {
		t.Fatal(err)
	}
	content(t, path, "new")
	only(t, dir, "f")
}

func TestWriteFailureKeepsOld(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := WriteFile(path, 0o600, Options{}, func(w io.Writer) error {
		if _, err := io.WriteString(w, "half"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the callback's", err)
	}
	content(t, path, "old")
	only(t, dir, "f")
}

func TestSyncFailureKeepsOld(t *testing.T) {
	for _, noReplace := range []bool{false, true} {
		dir := t.TempDir()
		path := filepath.Join(dir, "f")
		var want []string
		if !noReplace {
			if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
				t.Fatal(err)
			}
			want = []string{"f"}
		}
		synced := 0
		opts := Options{NoReplace: noReplace, Sync: func(*os.File) error {
			synced++
			return syscall.EIO
		}}
		err := WriteFile(path, 0o600, opts, writeString("new"))
		if !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "fsync") || synced != 1 {
			t.Fatalf("NoReplace %v: err = %v after %d syncs, want the fsync's EIO after 1", noReplace, err, synced)
		}
		if !noReplace {
			content(t, path, "old")
		}
		only(t, dir, want...)
	}
}

func TestAbort(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	f, err := Create(path, 0o600, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(f, "new"); err != nil {
		t.Fatal(err)
	}
	f.Abort()
	f.Abort()
	only(t, dir)
	if _, err := f.Write([]byte("x")); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Write after Abort: %v", err)
	}
	if err := f.Commit(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Commit after Abort: %v", err)
	}
	only(t, dir)
}

func TestAbortAfterCommit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	f, err := Create(path, 0o600, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Abort()
	if _, err := io.WriteString(f, "new"); err != nil {
		t.Fatal(err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	f.Abort()
	content(t, path, "new")
	only(t, dir, "f")
}

// Root ignores directory modes, so an uncreatable path is one under a
// regular file.
func TestUncreatable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, noReplace := range []bool{false, true} {
		if err := WriteFile(filepath.Join(file, "f"), 0o600, Options{NoReplace: noReplace}, writeString("x")); err == nil {
			t.Errorf("NoReplace %v: created a file under a regular file", noReplace)
		}
	}
}
