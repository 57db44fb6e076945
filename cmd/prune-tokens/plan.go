package main

import "github.com/urfave/cli/v2"

// planCommand: see issue 2 (planner helper fills this in).
func planCommand() *cli.Command {
	return &cli.Command{Name: "plan", Usage: "read the database and write a manifest of the rows to delete",
		Action: func(*cli.Context) error { return initErrorf("plan: not implemented yet") }}
}
