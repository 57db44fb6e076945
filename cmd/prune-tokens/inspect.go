package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"prune-tokens/cmd/prune-tokens/report"
	"prune-tokens/manifest"
)

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "verify a manifest and show its summary from the file alone",
		ArgsUsage: "FILE",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Value: "table", Usage: "`table`, markdown or json"},
			logFormatFlag(),
		},
		Action: runInspect,
	}
}

func runInspect(c *cli.Context) error {
	if c.NArg() != 1 {
		return initErrorf("inspect takes exactly one manifest FILE, got %d arguments", c.NArg())
	}
	if _, err := newObserver(c); err != nil {
		return err
	}
	path := c.Args().First()
	format, err := report.ParseFormat(c.String("format"))
	if err != nil {
		return initErrorf("invalid --format: %v", err)
	}
	r, err := manifest.Open(path)
	if err != nil {
		return initError(err)
	}
	defer r.Close()
	// A summary of a file that fails verification would vouch for rows
	// nobody planned: refuse it instead.
	if err := r.Verify(); err != nil {
		return initErrorf("%s: %w", path, err)
	}
	sum, err := manifest.FileSHA256(path)
	if err != nil {
		return initError(err)
	}
	if err := report.Plan(c.App.Writer, report.PlanSummary{Path: path, FileSHA256: sum, Meta: r.Meta()}, format); err != nil {
		return opError(fmt.Errorf("inspect %s: %w", path, err))
	}
	return nil
}
