// Command prune-tokens plans and applies the pruning of stale tokens and
// codes in a Firefox Accounts auth database. This package only wires flags
// to the planner, manifest and applier packages.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"prune-tokens/internal/logging"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Main(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Main runs the tool with args (args[0] is the program name) and returns the
// exit code; tests call it directly.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := NewApp(stdout, stderr)
	if word, ok := completing(args); ok {
		// The completion flag must stay last, where cli looks for it.
		app.Metadata = map[string]any{metaCompleting: word}
	} else {
		args = permuteArgs(app, args)
	}
	err := app.RunContext(ctx, args)
	code := exitCode(err)
	if err != nil {
		printError(stderr, logFormatOf(args), appSecrets(app), err, code)
	}
	return code
}

// NewApp builds the command-line application writing to stdout and stderr.
func NewApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:    "prune-tokens",
		Usage:   "plan, review and apply the pruning of stale FxA auth tokens and codes",
		Version: appVersion(),
		Description: "plan reads the auth database (never writes) and writes a Parquet manifest of the rows to delete;\n" +
			"inspect shows a manifest's summary; apply deletes exactly an approved manifest, in throttled,\n" +
			"checkpointed, resumable batches.\n\n" +
			"Exit codes: 0 success, 1 unexpected error, 2 error during initialization (flags, input, connection),\n" +
			"3 error during the operation (including an interrupted apply, which can be resumed).",
		Writer:    stdout,
		ErrWriter: stderr,
		// urfave/cli would call os.Exit itself; Main maps errors to exit codes.
		ExitErrHandler:  func(*cli.Context, error) {},
		OnUsageError:    usageError,
		HideHelpCommand: true,
		// A DSN may hold commas (in a password, in its parameters): a
		// repeated flag gives one value each, never split.
		DisableSliceFlagSeparator: true,
		Metadata:                  map[string]any{metaSecrets: &logging.Secrets{}},
		// completion's scripts call "prune-tokens ... --generate-bash-completion".
		EnableBashCompletion: true,
		BashComplete:         complete,
		Commands:             []*cli.Command{planCommand(), inspectCommand(), applyCommand(), versionCommand(), completionCommand(), docsCommand()},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return initErrorf("unknown command %q (commands: %s)", c.Args().First(), commandNames(c.App))
			}
			_ = cli.ShowAppHelp(c)
			return initErrorf("no command given")
		},
	}
	for _, cmd := range app.Commands {
		cmd.OnUsageError = usageError
		if cmd.BashComplete == nil {
			cmd.BashComplete = complete
		}
	}
	return app
}

// commandNames lists the commands help shows, for the unknown-command error.
func commandNames(app *cli.App) string {
	var names []string
	for _, cmd := range app.VisibleCommands() {
		names = append(names, cmd.Name)
	}
	return strings.Join(names, ", ")
}

func usageError(_ *cli.Context, err error, _ bool) error {
	return initErrorf("%v (see --help)", err)
}
