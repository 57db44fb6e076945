package main

import "github.com/urfave/cli/v2"

// inspectCommand: see issue 2 (planner helper fills this in).
func inspectCommand() *cli.Command {
	return &cli.Command{Name: "inspect", Usage: "show a manifest's summary from the file alone", ArgsUsage: "FILE",
		Action: func(*cli.Context) error { return initErrorf("inspect: not implemented yet") }}
}
