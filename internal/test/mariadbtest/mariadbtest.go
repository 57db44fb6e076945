// Package mariadbtest runs a private MariaDB server for tests that must kill
// the database: mariadb-install-db into a temporary data directory, then
// mariadbd on a free loopback port. The server can be SIGKILLed and
// restarted on the same data directory and port, as a crashed production
// server would come back. StartPrimary and StartReplica (replica.go) build a
// primary with real replicas.
package mariadbtest

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"prune-tokens/internal/test/dbtest"
)

// Binaries; overridable for machines that install MariaDB elsewhere.
var (
	InstallDB = envOr("PRUNE_TOKENS_MARIADB_INSTALL_DB", "mariadb-install-db")
	Mariadbd  = envOr("PRUNE_TOKENS_MARIADBD", "/usr/sbin/mariadbd")
)

// startTimeout bounds how long a start or restart may take before the test
// fails: crash recovery after SIGKILL is quick on a small data directory.
const startTimeout = 90 * time.Second

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// Server is one private MariaDB server.
type Server struct {
	Dir  string // holds data/, the socket, the error log
	Port int

	extra []string // mariadbd options given to StartWith

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Available reports whether the MariaDB binaries are installed. Tests call
// Start, which fails (under CI) or skips when they are not.
func Available() error {
	if _, err := exec.LookPath(InstallDB); err != nil {
		return fmt.Errorf("%s not found: %w", InstallDB, err)
	}
	if _, err := exec.LookPath(Mariadbd); err != nil {
		return fmt.Errorf("%s not found: %w", Mariadbd, err)
	}
	return nil
}

// Start installs a fresh data directory, starts the server and stops it
// (SIGKILL; the data is thrown away) when the test ends. root@127.0.0.1 has
// no password.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t)
}

// StartWith is Start with extra mariadbd options (for example TLS
// certificates); they apply to restarts too.
func StartWith(t testing.TB, extraArgs ...string) *Server {
	t.Helper()
	if err := Available(); err != nil {
		dbtest.Unavailable(t, "private MariaDB server needed: %v", err)
	}
	// Unix socket paths are limited to ~108 bytes; t.TempDir can be longer.
	dir, err := os.MkdirTemp("", "pt-mariadb-")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Dir: dir, extra: extraArgs}
	t.Cleanup(func() {
		s.Kill(t)
		os.RemoveAll(dir)
	})
	// Its own temporary directory: the bootstrap's temporary tables went to
	// the shared /tmp, where one failed once under load ("Error on delete
	// of '/tmp/#sql-temptable-...'"), beside other servers' files.
	if err := os.Mkdir(s.tmpDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	install := exec.Command(InstallDB, append([]string{"--no-defaults", "--datadir=" + s.dataDir(), "--tmpdir=" + s.tmpDir(),
		"--auth-root-authentication-method=normal", "--skip-test-db"}, userArgs()...)...)
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, tail(out, 2000))
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	s.Port = port
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *Server) dataDir() string { return filepath.Join(s.Dir, "data") }

func (s *Server) tmpDir() string { return filepath.Join(s.Dir, "tmp") }

// ErrorLog is the path of the server's error log.
func (s *Server) ErrorLog() string { return filepath.Join(s.Dir, "error.log") }

// Addr is "127.0.0.1:PORT".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// DSN is a go-sql-driver DSN for root on database db ("" for none).
func (s *Server) DSN(db string) string {
	cfg := mysql.NewConfig()
	cfg.User = "root"
	cfg.Net = "tcp"
	cfg.Addr = s.Addr()
	cfg.DBName = db
	cfg.Timeout = 5 * time.Second
	cfg.InterpolateParams = true
	return cfg.FormatDSN()
}

// Open returns a connection pool as root on database db.
func (s *Server) Open(t testing.TB, db string) *sql.DB {
	t.Helper()
	d, err := sql.Open("mysql", s.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// Running reports whether the server process is alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL and waits for the process to be gone: no shutdown, no
// flush, like a machine losing power under the database process. The
// process stays recorded, so Running tells whether it really ended.
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return // ended already (killed before, or crashed)
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Errorf("mariadbd pid %d did not exit after SIGKILL", cmd.Process.Pid)
	}
}

// Restart starts the server again on the same data directory and port,
// after Kill. InnoDB crash recovery runs as it would in production.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if s.Running() {
		t.Fatal("Restart: server still running; Kill it first")
	}
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
}

func (s *Server) start() error {
	args := []string{"--no-defaults",
		"--datadir=" + s.dataDir(),
		"--tmpdir=" + s.tmpDir(),
		"--port=" + strconv.Itoa(s.Port),
		"--bind-address=127.0.0.1",
		"--socket=" + filepath.Join(s.Dir, "mysqld.sock"),
		"--pid-file=" + filepath.Join(s.Dir, "mysqld.pid"),
		"--log-error=" + s.ErrorLog(),
		"--skip-name-resolve",
		"--skip-log-bin",
		"--innodb-buffer-pool-size=64M",
		"--innodb-log-file-size=32M",
		"--max-connections=200",
		// Default durability: a committed batch must survive SIGKILL.
		"--innodb-flush-log-at-trx-commit=1",
	}
	args = append(args, userArgs()...)
	args = append(args, s.extra...)
	cmd := exec.Command(Mariadbd, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start mariadbd: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	deadline := time.Now().Add(startTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("mariadbd exited during start-up; error log:\n%s", s.logTail())
		default:
		}
		if lastErr = s.ping(); lastErr == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	return fmt.Errorf("mariadbd on port %d not ready after %v (last error: %v); error log:\n%s", s.Port, startTimeout, lastErr, s.logTail())
}

func (s *Server) ping() error {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr, cfg.Timeout = "root", "tcp", s.Addr(), time.Second
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

func (s *Server) logTail() string {
	b, err := os.ReadFile(s.ErrorLog())
	if err != nil {
		return "(no error log: " + err.Error() + ")"
	}
	return tail(b, 3000)
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

// userArgs lets the server run as root, which mariadbd refuses unless told
// (CI containers run tests as root); any other user runs as itself.
func userArgs() []string {
	if os.Geteuid() == 0 {
		return []string{"--user=root"}
	}
	return nil
}

// freePort asks the kernel for a free loopback port. Another process could
// take it before mariadbd binds; start-up then fails with a clear log.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// CreateFxA creates database name with the FxA schema of internal/schema/schema.sql
// and returns a DSN for it (root, no password).
func (s *Server) CreateFxA(t testing.TB, name string) string {
	t.Helper()
	admin := s.Open(t, "")
	if _, err := admin.Exec("CREATE DATABASE `" + name + "`"); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	db := s.Open(t, name)
	stmts, err := dbtest.SchemaSQL()
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range stmts {
		if _, err := db.Exec(st); err != nil {
			t.Fatalf("schema: %v\n%s", err, st)
		}
	}
	return s.DSN(name)
}

// Freeze stops the server with SIGSTOP: the kernel still accepts TCP
// connections for it, but nothing answers, as with a hung host or a network
// that drops packets instead of resetting connections. Thaw resumes it.
func (s *Server) Freeze(t testing.TB) { s.signal(t, syscall.SIGSTOP) }

// Thaw resumes a frozen server with SIGCONT.
func (s *Server) Thaw(t testing.TB) { s.signal(t, syscall.SIGCONT) }

func (s *Server) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil {
		t.Fatalf("signal %v: server not running", sig)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}
