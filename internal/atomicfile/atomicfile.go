// Package atomicfile writes a file so that a reader, or the system after a
// crash, finds under its name either nothing (or the old file) or the whole
// new content, never a torn or empty file. The content goes to a temporary
// file in the same directory (rename and link only stay atomic within one
// file system), is fsynced before it gets the name (or a crash could publish
// a name whose data never reached the disk), and the directory is fsynced
// afterwards (or the name itself could be lost in a crash after the caller
// was told the file is there).
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Options choose how the file is published.
type Options struct {
	// NoReplace publishes with a hard link instead of a rename: a link fails
	// if the name exists, so a file that appeared after Create is not
	// replaced either. That refusal satisfies errors.Is(err, fs.ErrExist).
	NoReplace bool
	// Sync flushes the temporary file before it is published; nil means
	// (*os.File).Sync. It is a field rather than a package variable so that a
	// test can simulate a failing disk for one file without affecting others
	// running in parallel.
	Sync func(*os.File) error
}

// File is a file being written; nothing appears under its name until
// Commit. Callers must end it with Commit or Abort.
type File struct {
	path string
	tmp  *os.File
	opts Options
	done bool
}

// Create starts a file that Commit will publish as path, with mode perm
// exactly (the umask does not apply: callers choose modes that keep
// accounts' data private, and a permissive umask must not widen them).
// With NoReplace it fails at once when path exists, so that a caller finds
// out before doing the work of writing.
func Create(path string, perm fs.FileMode, opts Options) (*File, error) {
	if opts.NoReplace {
		if _, err := os.Lstat(path); err == nil {
			return nil, fmt.Errorf("%s: %w", path, fs.ErrExist)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("check %s: %w", path, err)
		}
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	return &File{path: path, tmp: tmp, opts: opts}, nil
}

// Write writes to the temporary file.
func (f *File) Write(p []byte) (int, error) {
	if f.done {
		return 0, fmt.Errorf("write %s: %w", f.path, os.ErrClosed)
	}
	return f.tmp.Write(p)
}

// Commit makes the written content durable and publishes it under the
// file's name. Whatever happens, the temporary file is gone afterwards. An
// error from the final directory fsync means the file is in place but may
// not survive a crash.
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("commit %s: %w", f.path, os.ErrClosed)
	}
	f.done = true
	name := f.tmp.Name()
	sync := f.opts.Sync
	if sync == nil {
		sync = (*os.File).Sync
	}
	if err := sync(f.tmp); err != nil {
		f.tmp.Close()
		os.Remove(name)
		return fmt.Errorf("fsync %s: %w", f.path, err)
	}
	// Close reports errors some file systems (NFS) only detect then.
	if err := f.tmp.Close(); err != nil {
		os.Remove(name)
		return fmt.Errorf("close %s: %w", f.path, err)
	}
	if f.opts.NoReplace {
		err := os.Link(name, f.path)
		os.Remove(name)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s: %w", f.path, fs.ErrExist)
		}
		if err != nil {
			return fmt.Errorf("publish %s: %w", f.path, err)
		}
	} else if err := os.Rename(name, f.path); err != nil {
		os.Remove(name)
		return fmt.Errorf("publish %s: %w", f.path, err)
	}
	return syncDir(filepath.Dir(f.path))
}

// Abort discards the temporary file; nothing appears under the file's name
// and an existing file is left alone. It does nothing after Commit or a
// previous Abort, so a caller can defer it.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.tmp.Close()
	os.Remove(f.tmp.Name())
}

// WriteFile writes path whole with what write produces: Create, write,
// Commit. When write fails the file is aborted and its error returned.
func WriteFile(path string, perm fs.FileMode, opts Options, write func(io.Writer) error) error {
	f, err := Create(path, perm, opts)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Abort()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Commit()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}
