package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// Shell completion: the scripts below are small shims that ask the binary
// itself, "prune-tokens WORDS... CURRENT --generate-bash-completion", and
// offer what it prints: commands, a command's flags when the word starts
// with "-", and files otherwise.

const completionFlag = "--generate-bash-completion"

// metaCompleting is the App.Metadata key of the word being completed.
const metaCompleting = "completing"

var completionScripts = map[string]string{
	"bash": bashCompletion,
	"zsh":  zshCompletion,
}

const bashCompletion = `# bash completion for prune-tokens (prune-tokens completion bash)
_prune_tokens() {
    local cur="${COMP_WORDS[COMP_CWORD]}" IFS=$'\n'
    COMPREPLY=($(compgen -W "$("${COMP_WORDS[0]}" "${COMP_WORDS[@]:1:COMP_CWORD}" ` + completionFlag + ` 2>/dev/null)" -- "$cur"))
}
complete -o bashdefault -o default -F _prune_tokens prune-tokens
`

const zshCompletion = `#compdef prune-tokens
# zsh completion for prune-tokens (prune-tokens completion zsh)
_prune-tokens() {
    local -a opts
    opts=("${(@f)$("${words[1]}" "${(@)words[2,CURRENT]}" ` + completionFlag + ` 2>/dev/null)}")
    opts=(${opts:#})
    if (( ${#opts} )); then
        compadd -a opts
    else
        _files
    fi
}
if [[ "${funcstack[1]}" == _prune-tokens ]]; then
    _prune-tokens "$@"
else
    compdef _prune-tokens prune-tokens
fi
`

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script: source <(prune-tokens completion bash)",
		ArgsUsage: "bash|zsh",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return initErrorf("completion takes one shell, bash or zsh, got %d arguments", c.NArg())
			}
			script, ok := completionScripts[c.Args().First()]
			if !ok {
				return initErrorf("completion: unknown shell %q (shells: bash, zsh)", c.Args().First())
			}
			_, err := fmt.Fprint(c.App.Writer, script)
			return err
		},
		BashComplete: func(c *cli.Context) {
			if !strings.HasPrefix(completingWord(c), "-") {
				fmt.Fprintln(c.App.Writer, "bash\nzsh")
				return
			}
			complete(c)
		},
	}
}

// completing reports whether args ask for completions (the shims put
// completionFlag last) and the word being completed, the one before it.
func completing(args []string) (word string, ok bool) {
	if len(args) < 2 || args[len(args)-1] != completionFlag {
		return "", false
	}
	if len(args) > 2 {
		word = args[len(args)-2]
	}
	return word, true
}

func completingWord(c *cli.Context) string {
	w, _ := c.App.Metadata[metaCompleting].(string)
	return w
}

// complete prints the completions of the word being completed in c's
// command: its flags if the word starts with "-", else its subcommands, if
// any (printing nothing lets the shell complete file names). (cli's
// default reads os.Args instead of the arguments Main was given.)
func complete(c *cli.Context) {
	word := completingWord(c)
	if strings.HasPrefix(word, "-") {
		for _, f := range c.Command.VisibleFlags() {
			for _, name := range f.Names() {
				if len(name) > 1 && strings.HasPrefix("--"+name, word) {
					fmt.Fprintln(c.App.Writer, "--"+name)
				}
			}
		}
		return
	}
	for _, cmd := range c.Command.VisibleCommands() {
		if cmd.Name != "help" { // cli gives every command one
			fmt.Fprintln(c.App.Writer, cmd.Name)
		}
	}
}
