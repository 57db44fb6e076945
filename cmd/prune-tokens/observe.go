package main

import (
	"io"
	"log/slog"
	"strings"

	"github.com/urfave/cli/v2"

	"prune-tokens/internal/logging"
	"prune-tokens/internal/metrics"
)

// Flags every command shares: how logs look, and where metrics go.
const (
	flagLogFormat    = "logFormat"
	flagStatsD       = "statsd"
	flagStatsDPrefix = "statsdPrefix"
)

func logFormatFlag() cli.Flag {
	return &cli.StringFlag{Name: flagLogFormat, Value: string(logging.Text), Usage: "`FORMAT` of the " + logging.FlagUsage}
}

func statsdFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagStatsD, EnvVars: []string{"PRUNE_TOKENS_STATSD"}, Usage: "send metrics to the StatsD server at `HOST:PORT` (UDP), under the old tool's names"},
		&cli.StringFlag{Name: flagStatsDPrefix, EnvVars: []string{"PRUNE_TOKENS_STATSD_PREFIX"}, Value: metrics.DefaultPrefix, Usage: "`PREFIX` of every metric name (the old tool's default; '' for none)"},
	}
}

// observer is a command's logger and metrics sink, and the secrets its
// logger keeps out of every line.
type observer struct {
	format  logging.Format
	log     *slog.Logger
	secrets *logging.Secrets
	sink    metrics.Sink
}

// newObserver reads --logFormat (and, when the command has them, the
// StatsD flags).
func newObserver(c *cli.Context) (*observer, error) {
	f, err := logging.ParseFormat(c.String(flagLogFormat))
	if err != nil {
		return nil, initError(err)
	}
	ob := &observer{format: f, secrets: appSecrets(c.App), sink: metrics.Nop{}}
	ob.log = logging.New(c.App.ErrWriter, f, logging.Options{Secrets: ob.secrets})
	if c.IsSet(flagStatsD) || c.String(flagStatsD) != "" {
		if ob.sink, err = metrics.New(metrics.Config{Addr: strings.TrimSpace(c.String(flagStatsD)), Prefix: c.String(flagStatsDPrefix)}); err != nil {
			return nil, initError(err)
		}
	}
	return ob, nil
}

// metaSecrets is the app's Metadata key of the secrets its commands
// register, so that Main's last line is redacted like the log lines.
const metaSecrets = "secrets"

// appSecrets returns the secrets of app, made by NewApp.
func appSecrets(app *cli.App) *logging.Secrets {
	if s, ok := app.Metadata[metaSecrets].(*logging.Secrets); ok {
		return s
	}
	return &logging.Secrets{}
}

// close sends what metrics are queued.
func (ob *observer) close() {
	if ob != nil {
		_ = ob.sink.Close()
	}
}

// logFormatOf finds --logFormat in the arguments, so that Main prints even
// a flag error in the format asked for (the flags of a command are parsed
// only when it runs).
func logFormatOf(args []string) logging.Format {
	for i, a := range args {
		if a == "--" {
			break
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != flagLogFormat {
			continue
		}
		if !hasVal && i+1 < len(args) {
			val = args[i+1]
		}
		if f, err := logging.ParseFormat(val); err == nil {
			return f
		}
	}
	return logging.Text
}

// printError writes the error that ends a command: one line on stderr,
// "prune-tokens: ..." as plain text, or one JSON object with level ERROR.
// Like every other line, it goes through the secrets the command registered:
// an error can quote a password a driver or server echoed back.
func printError(stderr io.Writer, f logging.Format, secrets *logging.Secrets, err error, code int) {
	line := logging.OneLine(secrets.Redact(err.Error()))
	msg := "prune-tokens: " + line
	if f == logging.JSON {
		logging.New(stderr, f, logging.Options{Secrets: secrets}).Error(msg, logging.KeyError, line, "exit_code", code)
		return
	}
	io.WriteString(stderr, msg+"\n")
}
