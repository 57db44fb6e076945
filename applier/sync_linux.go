package applier

import (
	"os"
	"syscall"
)

// datasync flushes the checkpoint's data. The file never changes size, so
// fdatasync skips the inode update (mtime) that a full fsync would journal.
func datasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
