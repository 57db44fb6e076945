// Command prune-tokens-sandbox runs an in-memory, MySQL-compatible FxA auth
// database (go-mysql-server) seeded with synthetic data, to try prune-tokens
// without a database server, and drives the README's demo on it. It is a
// separate binary so that prune-tokens itself never links go-mysql-server.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"prune-tokens/internal/sandbox"
	"prune-tokens/internal/seed"
)

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// exit codes as prune-tokens: 2 for bad flags, 1 for anything else.
type flagError struct{ error }

func flagErrorf(format string, args ...any) error { return flagError{fmt.Errorf(format, args...)} }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	err := app.RunContext(ctx, args)
	switch {
	case err == nil:
		return 0
	case errors.As(err, new(flagError)):
		fmt.Fprintf(stderr, "prune-tokens-sandbox: %v\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "prune-tokens-sandbox: %v\n", err)
		return 1
	}
}

var dataFlags = []cli.Flag{
	&cli.Int64Flag{Name: "seed", Value: 1, Usage: "seed of the synthetic data (same seed and --now, same rows)"},
	&cli.StringFlag{Name: "now", Usage: "instant the data is aged from: ms since the epoch or RFC 3339 (default: the current time)"},
	&cli.IntFlag{Name: "sessions", Usage: "about this many session tokens, 30% in a few heavy accounts (default: the demo data set, ~5,600 sessions and ~16,000 rows in all)"},
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:    "prune-tokens-sandbox",
		Usage:   "an in-memory MySQL-compatible FxA auth database with synthetic data, for trying prune-tokens",
		Version: version,
		Description: "Without a command: start the sandbox on --listen, create --database with the FxA schema,\n" +
			"seed it, print the DSN to use, and serve until interrupted (the data lives in memory only).\n" +
			"demo: the plan → review → apply → resume story of the README, on the sandbox or on DEMO_DSN.",
		Writer:          stdout,
		ErrWriter:       stderr,
		ExitErrHandler:  func(*cli.Context, error) {},
		HideHelpCommand: true,
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return flagErrorf("%v (see --help)", err)
		},
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:3307", Usage: "loopback `host:port` to serve on"},
			&cli.StringFlag{Name: "database", Value: "fxa", Usage: "database `name` to create"},
			&cli.BoolFlag{Name: "empty", Usage: "create the schema but insert no rows"},
		}, dataFlags...),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return flagErrorf("unknown command %q (commands: demo)", c.Args().First())
			}
			return serve(c)
		},
		Commands: []*cli.Command{demoCommand()},
	}
}

// seedConfig builds the data set of the --seed, --now and --sessions flags.
func seedConfig(c *cli.Context) (seed.Config, error) {
	now, err := parseNow(c.String("now"), time.Now())
	if err != nil {
		return seed.Config{}, err
	}
	n := c.Int("sessions")
	switch {
	case n < 0:
		return seed.Config{}, flagErrorf("--sessions %d: must not be negative", n)
	case n == 0:
		return seed.DefaultConfig(c.Int64("seed"), now), nil
	default:
		return seed.Scaled(c.Int64("seed"), now, n), nil
	}
}

// parseNow reads ms since the epoch or an RFC 3339 time; empty is def,
// truncated to the second so that it can be retyped.
func parseNow(s string, def time.Time) (int64, error) {
	if s == "" {
		return def.Truncate(time.Second).UnixMilli(), nil
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		if ms <= 0 {
			return 0, flagErrorf("--now %q: must be after the epoch", s)
		}
		return ms, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, flagErrorf("--now %q: neither milliseconds since the epoch nor an RFC 3339 time", s)
	}
	return t.UnixMilli(), nil
}

func serve(c *cli.Context) error {
	out := c.App.Writer
	cfg, err := seedConfig(c)
	if err != nil {
		return err
	}
	name := c.String("database")
	if name == "" || strings.ContainsAny(name, "`/\\. ") {
		return flagErrorf("--database %q: not a plain database name", name)
	}
	sb, err := sandbox.Start(c.String("listen"), c.App.ErrWriter)
	if err != nil {
		return flagError{err}
	}
	defer sb.Close()
	dsn, err := sb.Config(name)
	if err != nil {
		return err
	}
	db, err := sandbox.CreateDatabase(c.Context, dsn, name, false)
	if err != nil {
		return err
	}
	defer db.Close()
	fmt.Fprintf(out, "prune-tokens sandbox: go-mysql-server %s, in memory, on %s, database %s\n", sandbox.ServerVersion, sb.Addr, name)
	if !c.Bool("empty") {
		fmt.Fprintf(out, "seeding (seed %d, now %d = %s) ... ", cfg.Seed, cfg.Now, time.UnixMilli(cfg.Now).UTC().Format(time.RFC3339))
		if _, err := populate(c.Context, db, cfg, out); err != nil {
			return err
		}
	}
	host, port := splitAddr(sb.Addr)
	fmt.Fprintf(out, `
Try it (in another shell):
  export PRUNE_TOKENS_DSN='%s'
  prune-tokens plan --now %d --maxTokenAge 30-days --maxCodeAge 30-days --maxSessions 100 --out plan.parquet
  prune-tokens inspect plan.parquet
  prune-tokens apply --manifest plan.parquet --approve <the SHA-256 plan printed>
  mariadb -h%s -P%s -uroot %s     # or: mysql ...
Stop with Ctrl-C: the data lives in memory only. Use one client at a time
(go-mysql-server does not isolate concurrent writers; see docs/sandbox.md).
`, sb.DSN(name), cfg.Now, host, port, name)
	select {
	case <-c.Context.Done():
		fmt.Fprintln(out, "prune-tokens sandbox: stopped")
		return nil
	case err := <-sb.Done():
		return fmt.Errorf("go-mysql-server stopped: %w", err)
	}
}

func splitAddr(addr string) (string, string) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return addr, ""
	}
	return addr[:i], addr[i+1:]
}
