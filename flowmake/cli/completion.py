"""`flowmake completion bash|zsh|fish`: a shell completion script, made from the parser.

The script completes subcommands, each one's options (read from ``cli.build_parser()``,
so it never falls behind), option values where they are known (choices, files, folders)
and target names. Target names come from ``flowmake __complete targets [-C DIR] [-f
FILE]``, a hidden command that reads the compiled flow (``.flowmake/flow.pickle``) and
prints one name per line: every target, matrix instance and whole matrix. Hand-written:
no completion library is imported by any other command.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

SHELLS = ("bash", "zsh", "fish")


@dataclass
class Command:
    """What one subcommand takes, for completion."""

    name: str
    help: str
    options: dict[str, str] = field(default_factory=dict)  # "--jobs": what its value is
    flags: list[tuple[str, str, str]] = field(default_factory=list)  # (short, long, help)
    positional: str = ""  # "targets", "files", "choice:a b c" or "" (nothing to offer)


# -- what the parser says --------------------------------------------------------------


def value_kind(action: argparse.Action) -> str:
    """How an option's or positional's value completes: ``choice:a b``, ``file``,
    ``dir``, ``targets`` or ``none``."""
    if action.choices:
        return "choice:" + " ".join(map(str, action.choices))
    metavar = str(action.metavar or action.dest or "").upper()
    if action.dest in ("targets", "target", "ref"):
        return "targets"
    if "FILE" in metavar or action.dest in ("base", "ours", "theirs"):
        return "file"
    if metavar == "DIR":
        return "dir"
    return "none"


def commands(parser: argparse.ArgumentParser) -> tuple[Command, list[Command]]:
    """The top level (global options) and each subcommand, from the parser."""
    top = _describe("", "", parser)
    subs: list[Command] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                subs.append(_describe(name, helps.get(name, ""), sub))
    return top, subs


def _describe(name: str, help: str, parser: argparse.ArgumentParser) -> Command:
    command = Command(name, help)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        if not action.option_strings:  # the first positional says what words to offer
            kind = value_kind(action)
            if not command.positional and kind != "none":
                command.positional = kind
            continue
        text = "" if action.help == argparse.SUPPRESS else (action.help or "")
        for option in action.option_strings:
            if action.nargs != 0:
                command.options[option] = value_kind(action)
        short = next((o for o in action.option_strings if len(o) == 2), "")
        long = next((o for o in action.option_strings if o.startswith("--")), "")
        command.flags.append((short, long, text.replace("%%", "%")))
    return command


def _words(command: Command) -> str:
    return " ".join(o for pair in command.flags for o in pair[:2] if o)


# -- bash -------------------------------------------------------------------------------

_BASH = r"""# flowmake completion for bash. Load it with:  eval "$(flowmake completion bash)"
# or save it as ~/.local/share/bash-completion/completions/flowmake
_flowmake_targets() {
    "${COMP_WORDS[0]}" __complete targets "$@" 2>/dev/null
}

_flowmake() {
    local cur prev cmd="" i w
    local -a where=()
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"
    # The text of the word up to the cursor (COMP_WORDS splits at '=' and ':').
    local word="$cur"
    if [[ -n "${COMP_LINE-}" ]]; then
        word="${COMP_LINE:0:COMP_POINT}"
        word="${word##*[[:space:]]}"
    fi
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${COMP_WORDS[i]}"
        case "$w" in
            -C|-f|--file) where+=("$w" "${COMP_WORDS[i+1]}"); ((i++)); continue ;;
@@VALUE_OPTIONS@@) ((i++)); continue ;;
            -*) continue ;;
        esac
        cmd="$w"
        break
    done
    case "$prev" in
@@VALUES@@
    esac
    local opts positional=""
    case "$cmd" in
        "") opts="@@GLOBALS@@"; positional="choice:@@COMMANDS@@" ;;
@@COMMAND_CASES@@
        *) return 0 ;;
    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
        return 0
    fi
    case "$positional" in
        choice:*) COMPREPLY=($(compgen -W "${positional#choice:}" -- "$cur")) ;;
        file) COMPREPLY=($(compgen -f -- "$cur")) ;;
        targets)
            local name pre="${word%"${word##*[=:]}"}"
            COMPREPLY=()
            while IFS= read -r name; do
                [[ "$name" == "$word"* ]] && COMPREPLY+=("${name#"$pre"}")
            done < <(_flowmake_targets "${where[@]}")
            ;;
    esac
    return 0
}

complete -F _flowmake flowmake
"""


def bash(top: Command, subs: list[Command]) -> str:
    values = [f"        {option}) {_bash_value(kind)} ;;"
              for option, kind in sorted(_all_options(top, subs).items())]
    value_options = sorted(o for o in _all_options(top, subs) if o not in ("-C", "-f", "--file"))
    cases = [f'        {c.name}) opts="{_words(c)}"; positional="{c.positional}" ;;'
             for c in subs]
    return (_BASH.replace("@@VALUE_OPTIONS@@", "            " + "|".join(value_options))
            .replace("@@VALUES@@", "\n".join(values))
            .replace("@@GLOBALS@@", _words(top))
            .replace("@@COMMANDS@@", " ".join(c.name for c in subs))
            .replace("@@COMMAND_CASES@@", "\n".join(cases)))


def _bash_value(kind: str) -> str:
    if kind.startswith("choice:"):
        return f'COMPREPLY=($(compgen -W "{kind[7:]}" -- "$cur")); return 0'
    if kind == "file":
        return 'COMPREPLY=($(compgen -f -- "$cur")); return 0'
    if kind == "dir":
        return 'COMPREPLY=($(compgen -d -- "$cur")); return 0'
    if kind == "targets":
        return 'COMPREPLY=($(compgen -W "$(_flowmake_targets "${where[@]}")" -- "$cur")); return 0'
    return "return 0"


def _all_options(top: Command, subs: list[Command]) -> dict[str, str]:
    """Every option that takes a value, anywhere, and what its value is."""
    found: dict[str, str] = {}
    for command in (top, *subs):
        for option, kind in command.options.items():
            found.setdefault(option, kind)
    return found


# -- zsh --------------------------------------------------------------------------------

_ZSH = r"""#compdef flowmake
# flowmake completion for zsh. Load it with:  eval "$(flowmake completion zsh)"
# or save it as _flowmake in a folder of $fpath.
_flowmake() {
    local cmd="" i
    local -a where opts commands names
    commands=(@@COMMANDS@@)
    for (( i = 2; i < CURRENT; i++ )); do
        case ${words[i]} in
            -C|-f|--file) where+=(${words[i]} ${words[i+1]}); (( i++ )) ;;
            @@VALUE_OPTIONS@@) (( i++ )) ;;
            -*) ;;
            *) cmd=${words[i]}; break ;;
        esac
    done
    case ${words[CURRENT-1]} in
@@VALUES@@
    esac
    local positional=""
    case $cmd in
        "") opts=(@@GLOBALS@@); positional=commands ;;
@@COMMAND_CASES@@
        *) return 1 ;;
    esac
    if [[ $PREFIX == -* ]]; then
        compadd -- $opts
        return
    fi
    case $positional in
        commands) _describe -t commands 'flowmake command' _flowmake_commands ;;
        choice:*) compadd -- ${=positional#choice:} ;;
        file) _files ;;
        targets)
            names=("${(@f)$(${words[1]} __complete targets $where 2>/dev/null)}")
            compadd -- $names
            ;;
    esac
}

_flowmake_commands=(
@@COMMAND_HELP@@
)

if [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then
    _flowmake "$@"
else
    compdef _flowmake flowmake
fi
"""


def zsh(top: Command, subs: list[Command]) -> str:
    options = _all_options(top, subs)
    values = [f"        {option}) {_zsh_value(kind)} ;;" for option, kind in sorted(options.items())]
    cases = [f'        {c.name}) opts=({_words(c)}); positional="{c.positional}" ;;'
             for c in subs]
    helps = [f"    {_zsh_quote(c.name + ':' + c.help)}" for c in subs]
    return (_ZSH.replace("@@COMMANDS@@", " ".join(c.name for c in subs))
            .replace("@@VALUE_OPTIONS@@", "|".join(sorted(
                o for o in options if o not in ("-C", "-f", "--file"))))
            .replace("@@VALUES@@", "\n".join(values))
            .replace("@@GLOBALS@@", _words(top))
            .replace("@@COMMAND_CASES@@", "\n".join(cases))
            .replace("@@COMMAND_HELP@@", "\n".join(helps)))


def _zsh_value(kind: str) -> str:
    if kind.startswith("choice:"):
        return f"compadd -- {kind[7:]}; return"
    if kind == "file":
        return "_files; return"
    if kind == "dir":
        return "_files -/; return"
    if kind == "targets":
        return ('names=("${(@f)$(${words[1]} __complete targets $where 2>/dev/null)}");'
                " compadd -- $names; return")
    return "return"


def _zsh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


# -- fish -------------------------------------------------------------------------------

_FISH = r"""# flowmake completion for fish. Load it with:  flowmake completion fish | source
# or save it as ~/.config/fish/completions/flowmake.fish
function __flowmake_command
    set -l tokens (commandline -opc)
    set -e tokens[1]
    while set -q tokens[1]
        switch $tokens[1]
            case @@VALUE_OPTIONS@@
                set -e tokens[1]
            case '-*'
            case '*'
                echo $tokens[1]
                return 0
        end
        set -e tokens[1]
    end
    return 1
end

function __flowmake_using
    set -l cmd (__flowmake_command)
    contains -- "$cmd" $argv
end

function __flowmake_targets
    set -l tokens (commandline -opc)
    set -l where
    for i in (seq 2 (count $tokens))
        switch $tokens[$i]
            case -C -f --file
                set -l next (math $i + 1)
                if test $next -le (count $tokens)
                    set -a where $tokens[$i] $tokens[$next]
                end
        end
    end
    $tokens[1] __complete targets $where 2>/dev/null
end

complete -c flowmake -f
@@LINES@@
"""


def fish(top: Command, subs: list[Command]) -> str:
    lines = [f"complete -c flowmake -n 'not __flowmake_command' -a {c.name}"
             f" -d {_fish_quote(c.help)}" for c in subs]
    lines += _fish_options(top, "not __flowmake_command")
    for c in subs:
        condition = f"__flowmake_using {c.name}"
        lines += _fish_options(c, condition)
        if c.positional:
            lines.append(f"complete -c flowmake -n '{condition}' {_fish_value(c.positional)}")
    options = _all_options(top, subs)
    return (_FISH.replace("@@VALUE_OPTIONS@@", " ".join(sorted(options)))
            .replace("@@LINES@@", "\n".join(lines)))


def _fish_options(command: Command, condition: str) -> list[str]:
    lines = []
    for short, long, text in command.flags:
        spec = (f" -s {short[1:]}" if short else "") + (f" -l {long[2:]}" if long else "")
        kind = command.options.get(long or short)
        value = "" if kind is None else " " + _fish_value(kind, option=True)
        description = f" -d {_fish_quote(text)}" if text else ""
        lines.append(f"complete -c flowmake -n '{condition}'{spec}{value}{description}")
    return lines


def _fish_value(kind: str, option: bool = False) -> str:
    if kind.startswith("choice:"):
        return f"-x -a {_fish_quote(kind[7:])}"
    if kind == "file":
        return "-r -F"
    if kind == "dir":
        return "-x -a '(__fish_complete_directories)'"
    if kind == "targets":
        return "-x -a '(__flowmake_targets)'" if option else "-a '(__flowmake_targets)'"
    return "-x"


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# -- the commands -----------------------------------------------------------------------


def script(shell: str) -> str:
    """The completion script for ``shell``."""
    from flowmake.cli.parser import build_parser

    top, subs = commands(build_parser())
    return {"bash": bash, "zsh": zsh, "fish": fish}[shell](top, subs)


def completion_command(args: argparse.Namespace) -> int:
    sys.stdout.write(script(args.shell))
    return 0


def complete(argv: list[str]) -> int:
    """``flowmake __complete targets [-C DIR] [-f FILE]``: target names, one a line, from
    the compiled flow; nothing (exit 1) where there is no readable flow."""
    from pathlib import Path

    from flowmake.errors import FlowmakeError

    parser = argparse.ArgumentParser(prog="flowmake __complete", add_help=False)
    parser.add_argument("what", choices=["targets"])
    parser.add_argument("-C", dest="directory")
    parser.add_argument("-f", "--file")
    try:
        args, _ = parser.parse_known_args(argv)
    except SystemExit:
        return 2
    try:
        from flowmake.cli.workspace import load_compiled
        from flowmake.config.load import find_file

        directory = Path(args.directory or ".")
        path = find_file(directory.resolve(), args.file,
                         search=not args.directory and not args.file)
        graph = load_compiled(path, {})[1]
    except (FlowmakeError, OSError):
        return 1
    names = list(graph.targets)
    matrices = dict.fromkeys(t.matrix for t in graph.targets.values() if t.matrix)
    sys.stdout.write("".join(f"{n}\n" for n in [*matrices, *names]))
    return 0
