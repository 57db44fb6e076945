package runctl

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

const (
	// maxLine bounds one command: the longest real one is a max-load list.
	maxLine = 4096
	// idleTimeout closes a connection that sends nothing for this long, so
	// a forgotten client does not hold a descriptor for the whole run.
	idleTimeout = 10 * time.Minute
	maxPath     = 107
)

// socket is the control socket: a unix listener and its connections.
type socket struct {
	path string
	ino  os.FileInfo // the socket file we created, to remove only that
	l    *net.UnixListener

	mu    sync.Mutex
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// listen creates the socket at path with mode 0600 from the start: it is
// bound inside a fresh private directory, given its mode there, then
// hard-linked into place. link() never replaces an existing file, so a file
// that appears at path meanwhile is not clobbered, and nobody can connect
// before the mode is set.
func listen(path string, logf func(string, ...any)) (*socket, error) {
	// sun_path holds 108 bytes with its NUL; the temporary name inside its
	// directory is about 16 bytes longer than path.
	if len(path)+16 > maxPath {
		return nil, fmt.Errorf("control socket %s: path too long for a unix socket (at most %d bytes)", path, maxPath-16)
	}
	if err := clearStale(path, logf); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(filepath.Dir(path), ".ctl")
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	l.SetUnlinkOnClose(false)
	fail := func(err error) (*socket, error) {
		l.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fail(err)
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fail(errors.New("another file appeared at this path while the socket was created"))
		}
		return fail(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		os.Remove(path)
		return fail(err)
	}
	return &socket{path: path, ino: fi, l: l, conns: map[net.Conn]bool{}}, nil
}

// clearStale makes way for the socket: nothing at path is fine; a socket
// nobody listens on (left by a killed run) is removed; a live socket or any
// other kind of file is refused and left alone.
func clearStale(path string, logf func(string, ...any)) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("control socket %s: a %s is there, not a socket; refusing to replace it", path, kind(fi))
	}
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("control socket %s is live: another apply (or another program) is listening on it; choose another path", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("control socket %s exists and cannot be checked: %w", path, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("control socket %s: remove stale socket: %w", path, err)
	}
	logf("control socket %s: removed a stale socket nobody listened on", path)
	return nil
}

func kind(fi os.FileInfo) string {
	switch m := fi.Mode(); {
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m.IsRegular():
		return "regular file"
	default:
		return "special file"
	}
}

// serve accepts connections until close.
func (s *socket) serve(handle func(string) string) {
	for {
		c, err := s.l.Accept()
		if err != nil {
			return // closed
		}
		s.mu.Lock()
		if s.conns == nil {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = true
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			s.session(c, handle)
		}()
	}
}

// session answers each line with one line until the client closes, goes
// idle or sends a line that is too long.
func (s *socket) session(c net.Conn, handle func(string) string) {
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 0, 256), maxLine)
	for {
		_ = c.SetReadDeadline(time.Now().Add(idleTimeout))
		if !sc.Scan() {
			if errors.Is(sc.Err(), bufio.ErrTooLong) {
				_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				fmt.Fprintf(c, "error: command longer than %d bytes\n", maxLine)
			}
			return
		}
		reply := handle(sc.Text())
		_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintln(c, reply); err != nil {
			return
		}
	}
}

// close stops accepting, ends every connection and removes the socket file
// if it is still the one this run created.
func (s *socket) close() error {
	err := s.l.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.conns = nil
	s.mu.Unlock()
	s.wg.Wait()
	if fi, lerr := os.Lstat(s.path); lerr == nil && os.SameFile(fi, s.ino) {
		if rerr := os.Remove(s.path); rerr != nil && err == nil {
			err = rerr
		}
	}
	return err
}
