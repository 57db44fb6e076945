// Package dbconn opens the auth database the same careful way for plan and
// apply: bounded timeouts, no password in any message, and a description of
// the server for the manifest and the operator.
package dbconn

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
)

// ConnectTimeout bounds dialing when the DSN does not set timeout=.
const ConnectTimeout = 5 * time.Second

// ErrConfig marks a DSN that cannot be used as given.
var ErrConfig = errors.New("bad DSN")

var quietDriver sync.Once

// Parse reads a go-sql-driver DSN and applies the tool's defaults: a connect
// timeout, and interpolateParams so each statement is one round trip.
func Parse(dsn string) (*mysql.Config, error) {
	if dsn == "" {
		return nil, fmt.Errorf("%w: no DSN given (use --dsn or PRUNE_TOKENS_DSN)", ErrConfig)
	}
	cfg, err := ParseServer(dsn)
	if err != nil {
		return nil, err
	}
	if cfg.DBName == "" {
		return nil, fmt.Errorf("%w: the DSN names no database (user:pass@tcp(host:3306)/DATABASE)", ErrConfig)
	}
	return cfg, nil
}

// ParseServer is Parse for a DSN that need not name a database (a replica
// watched for lag).
func ParseServer(dsn string) (*mysql.Config, error) {
	if dsn == "" {
		return nil, fmt.Errorf("%w: empty DSN", ErrConfig)
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		// The driver's message never repeats the DSN, so it cannot leak a password.
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = ConnectTimeout
	}
	cfg.InterpolateParams = true
	// A Config copies the driver's logger when it is created, so SetLogger
	// in Open comes too late for it: silence this one too.
	cfg.Logger = &mysql.NopLogger{}
	return cfg, nil
}

// Redact formats a DSN with its password hidden, for any message or log.
func Redact(cfg *mysql.Config) string {
	c := cfg.Clone()
	if c.Passwd != "" {
		c.Passwd = "xxxxx"
	}
	return c.FormatDSN()
}

// Open connects and pings within the connect timeout.
func Open(ctx context.Context, cfg *mysql.Config) (*sql.DB, error) {
	quietDriver.Do(func() {
		// The driver logs broken connections on its own; the tool reports
		// errors itself, once, in one line.
		_ = mysql.SetLogger(log.New(discard{}, "", 0))
	})
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	db := sql.OpenDB(conn)
	pctx, cancel := context.WithTimeout(ctx, cfg.Timeout+time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to %s: %w", Target(cfg), err)
	}
	return db, nil
}

// Target is "host:port/database" for messages.
func Target(cfg *mysql.Config) string {
	return cfg.Addr + "/" + cfg.DBName
}

// SandboxVersionSuffix ends the VERSION() of the prune-tokens sandbox
// (go-mysql-server, in memory), so the tools can say plainly what that
// server lacks instead of failing on it.
const SandboxVersionSuffix = "-prune-tokens-sandbox"

// IsSandbox says whether the server is the prune-tokens sandbox.
func (s Server) IsSandbox() bool { return strings.HasSuffix(s.ServerVersion, SandboxVersionSuffix) }

// Server is what a manifest records about the server it was planned on and
// what apply compares it with; manifest.Source has the same fields, so the
// callers convert it without this package knowing the manifest.
type Server struct {
	Host          string
	Port          int
	Database      string
	ServerVersion string
	ServerID      uint64
}

// Describe reads the identity of the server q is connected to.
func Describe(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, cfg *mysql.Config) (Server, error) {
	src := Server{Database: cfg.DBName}
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		src.Host = cfg.Addr // unix socket path
	} else {
		src.Host = host
		src.Port, _ = strconv.Atoi(port)
	}
	if err := q.QueryRowContext(ctx, "SELECT VERSION(), @@server_id").Scan(&src.ServerVersion, &src.ServerID); err != nil {
		return src, fmt.Errorf("read server version: %w", err)
	}
	return src, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
