// Package sandbox runs go-mysql-server in memory as an FxA auth database
// reached over TCP like any MySQL server, so prune-tokens talks to it
// through the same driver and code paths as in production. The
// prune-tokens-sandbox command serves it and drives the demo on it; tests of
// the planner and the applier run their real SQL against it. prune-tokens
// itself never links it.
package sandbox

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"time"

	sqle "github.com/dolthub/go-mysql-server"
	"github.com/dolthub/go-mysql-server/memory"
	"github.com/dolthub/go-mysql-server/server"
	gsql "github.com/dolthub/go-mysql-server/sql"
	"github.com/go-sql-driver/mysql"
	"github.com/sirupsen/logrus"

	"prune-tokens/internal/dbconn"
	"prune-tokens/internal/schema"
)

// ServerVersion is what VERSION() answers, so a manifest planned on the
// sandbox says where it came from.
const ServerVersion = "8.0.31" + dbconn.SandboxVersionSuffix

// Server is an in-memory, MySQL-compatible server in this process.
type Server struct {
	srv  *server.Server
	Addr string // host:port it listens on
	done chan error
}

// Start listens on addr, which must be a loopback address: the server has a
// root user without a password. go-mysql-server's own faults are logged to
// log.
func Start(addr string, log io.Writer) (*Server, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--listen %q: %v", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("--listen %q: not a loopback address (the sandbox's root user has no password)", addr)
	}
	// go-mysql-server logs every connection at info level and every failed
	// query at warning level; only its own faults matter here.
	logrus.SetOutput(log)
	logrus.SetLevel(logrus.ErrorLevel)
	if err := gsql.SystemVariables.AssignValues(map[string]any{
		"version": ServerVersion, "version_comment": "prune-tokens sandbox (go-mysql-server v0.20.0, in memory)",
	}); err != nil {
		return nil, fmt.Errorf("set server version: %w", err)
	}

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	pro := memory.NewDBProvider()
	engine := sqle.NewDefault(pro)
	cfg := server.Config{Protocol: "tcp", Listener: ln, Version: ServerVersion}
	srv, err := server.NewServer(cfg, engine, gsql.NewContext, memory.NewSessionBuilder(pro), nil)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("start go-mysql-server: %w", err)
	}
	s := &Server{srv: srv, Addr: ln.Addr().String(), done: make(chan error, 1)}
	go func() { s.done <- srv.Start() }()
	return s, nil
}

// DSN is the go-sql-driver DSN of database db on the sandbox.
func (s *Server) DSN(db string) string {
	cfg := mysql.NewConfig()
	cfg.User = "root"
	cfg.Net = "tcp"
	cfg.Addr = s.Addr
	cfg.DBName = db
	return cfg.FormatDSN()
}

// Done delivers the error go-mysql-server stopped with.
func (s *Server) Done() <-chan error { return s.done }

// Close stops the server.
func (s *Server) Close() error {
	err := s.srv.Close()
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
	}
	return err
}

// CreateDatabase creates database name with the FxA schema on the server of
// cfg (whose DBName is ignored; any MySQL-compatible server) and returns a
// pool of one connection on it (see openPing). Without secondaryIndexes the
// tables keep their primary keys only (see Schema).
func CreateDatabase(ctx context.Context, cfg *mysql.Config, name string, secondaryIndexes bool) (*sql.DB, error) {
	admin := cfg.Clone()
	admin.DBName = ""
	a, err := openPing(ctx, admin)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	if _, err := a.ExecContext(ctx, "CREATE DATABASE `"+name+"`"); err != nil {
		return nil, fmt.Errorf("create database %s: %w", name, err)
	}
	c := cfg.Clone()
	c.DBName = name
	db, err := openPing(ctx, c)
	if err != nil {
		return nil, err
	}
	for _, stmt := range Schema(secondaryIndexes) {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			db.Close()
			return nil, fmt.Errorf("create the FxA schema in %s: %w", name, err)
		}
	}
	return db, nil
}

// DropDatabase removes what CreateDatabase made, on a fresh connection so a
// cancelled context or broken pool does not leave it behind.
func DropDatabase(cfg *mysql.Config, name string) error {
	admin := cfg.Clone()
	admin.DBName = ""
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := openPing(ctx, admin)
	if err != nil {
		return err
	}
	defer a.Close()
	if _, err := a.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

func openPing(ctx context.Context, cfg *mysql.Config) (*sql.DB, error) {
	c := cfg.Clone()
	c.InterpolateParams = true
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	conn, err := mysql.NewConnector(c)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(conn)
	// go-mysql-server's in-memory tables do not isolate concurrent writers
	// (a commit writes back every table the session touched), so all writes
	// go through one connection, one statement at a time.
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to %s: %w", c.Addr, err)
	}
	return db, nil
}

// Config is the driver configuration of database name on the sandbox.
func (s *Server) Config(name string) (*mysql.Config, error) {
	cfg, err := mysql.ParseDSN(s.DSN(name))
	if err != nil {
		return nil, fmt.Errorf("sandbox DSN: %w", err)
	}
	return cfg, nil
}

// indexLine is a secondary index inside a CREATE TABLE of the schema.
var indexLine = regexp.MustCompile(`^\s*(UNIQUE\s+)?INDEX\s`)

// Schema is the FxA schema, with or without its secondary indexes.
// go-mysql-server v0.20.0 keeps each in-memory table as a slice re-sorted
// after every write; with secondary indexes each swap of that sort scans
// every index entry (its source calls it "worse than cubic"), so seeding
// the demo's data takes minutes, and adding the indexes afterwards rewrites the
// table the same way. Without them every query still gives the same
// answer, by scanning, and seeding takes seconds. Primary keys stay.
func Schema(secondaryIndexes bool) []string {
	stmts := schema.SchemaStatements()
	if secondaryIndexes {
		return stmts
	}
	out := make([]string, 0, len(stmts))
	for _, s := range stmts {
		var keep []string
		for _, line := range strings.Split(s, "\n") {
			if !indexLine.MatchString(line) {
				keep = append(keep, line)
			}
		}
		// The PRIMARY KEY line may now be the last one, with its comma.
		t := strings.Join(keep, "\n")
		t = trailingComma.ReplaceAllString(t, "\n)")
		out = append(out, t)
	}
	return out
}

var trailingComma = regexp.MustCompile(`,\s*\n\)`)
