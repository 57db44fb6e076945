//go:build !linux

package applier

import "os"

func datasync(f *os.File) error { return f.Sync() }
