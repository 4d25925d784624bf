"""`flowmake completion bash|zsh|fish` (SPEC §10): scripts run in the real shells.

bash: the script is sourced, COMP_WORDS/COMP_CWORD/COMP_LINE set as bash sets them and
the function called. fish: its own ``complete -C`` completes a command line. zsh: parsed,
loaded with compinit, and its function run with compadd/_describe recording what it
offers. Target names come back from ``flowmake __complete targets``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

FLOW = """
[targets.prepare]
cmd     = "echo p > ${outputs}"
outputs = ["out/p.txt"]

[targets.sweep]
matrix  = { lr = [0.1, 0.01] }
cmd     = "echo ${lr} > ${outputs}"
outputs = ["out/s-${lr}.txt"]
"""


def shell_env() -> dict[str, str]:
    """PATH with this Python's scripts folder first: the scripts call `flowmake` back."""
    bindir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
            "NO_COLOR": "1"}


def script(project: Any, shell: str) -> Path:
    result = project.run("completion", shell, check=True)
    path = project.root.parent / f"completion.{shell}"
    path.write_text(result.stdout)
    return path


def bash_complete(project: Any, line: str, cwd: Path | None = None) -> list[str]:
    """What the bash function offers for ``line`` (the cursor at its end)."""
    path = script(project, "bash")
    program = f"""
        source {path}
        COMP_LINE={line!r}
        COMP_POINT=${{#COMP_LINE}}
        # Split as bash does for completion: at blanks, and at '=' and ':' (COMP_WORDBREAKS).
        read -ra COMP_WORDS <<< "$(sed -e 's/=/ = /g; s/:/ : /g' <<< "$COMP_LINE")"
        [[ "$COMP_LINE" == *" " || "$COMP_LINE" == *"=" ]] && COMP_WORDS+=("")
        COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
        _flowmake
        printf '%s\\n' "${{COMPREPLY[@]}}"
    """
    result = subprocess.run(["bash", "--norc", "--noprofile", "-c", program],
                            cwd=cwd or project.root, env=shell_env(), text=True,
                            capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [w for w in result.stdout.splitlines() if w]


@pytest.fixture
def flow(project: Any) -> Any:
    project.flow(FLOW)
    return project


def test_bash_completes_commands_options_and_targets(flow: Any) -> None:
    assert bash_complete(flow, "flowmake bu") == ["build"]
    assert "completion" in bash_complete(flow, "flowmake ")
    assert bash_complete(flow, "flowmake build --ke") == ["--keep-going"]
    assert "--watch" in bash_complete(flow, "flowmake build --")
    assert "--check" in bash_complete(flow, "flowmake status --")
    assert "--check" not in bash_complete(flow, "flowmake build --")  # per command
    assert "--no-color" in bash_complete(flow, "flowmake --")  # global options
    targets = bash_complete(flow, "flowmake build ")
    assert {"prepare", "sweep", "sweep[lr=0.1]", "sweep[lr=0.01]"} <= set(targets)
    assert bash_complete(flow, "flowmake -q status pre") == ["prepare"]
    assert bash_complete(flow, "flowmake why sw") == ["sweep", "sweep[lr=0.1]",
                                                      "sweep[lr=0.01]"]
    # bash replaces only the text after the last '=': the rest of the instance name.
    assert sorted(bash_complete(flow, "flowmake build sweep[lr=")) == ["0.01]", "0.1]"]


def test_bash_completes_option_values(flow: Any) -> None:
    assert bash_complete(flow, "flowmake graph --format m") == ["mermaid"]
    assert bash_complete(flow, "flowmake cache ") == ["status", "gc", "push", "pull"]
    assert bash_complete(flow, "flowmake completion f") == ["fish"]
    flow.write("sub/x.txt", "")
    assert bash_complete(flow, "flowmake -C su") == ["sub"]
    assert bash_complete(flow, "flowmake build -j ") == []  # a number: nothing to offer


def test_bash_targets_follow_dash_c_and_a_subfolder(flow: Any, make_project: Any) -> None:
    other = make_project("other")
    other.flow('[targets.elsewhere]\ncmd = "true"\n')
    assert bash_complete(flow, f"flowmake -C {other.root} build ") == ["elsewhere"]
    (flow.root / "deep/er").mkdir(parents=True)
    assert bash_complete(flow, "flowmake build pre", cwd=flow.root / "deep/er") == ["prepare"]
    # No project: no target names, no error output.
    assert bash_complete(other, "flowmake build ", cwd=other.root.parent) == []


def test_the_hidden_target_lister(flow: Any) -> None:
    result = flow.run("__complete", "targets", check=True)
    assert result.stdout.splitlines() == ["sweep", "prepare", "sweep[lr=0.1]",
                                          "sweep[lr=0.01]"]
    assert "__complete" not in flow.run("--help", check=True).stdout


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_completes_through_its_own_engine(flow: Any) -> None:
    path = script(flow, "fish")
    assert subprocess.run(["fish", "--no-execute", str(path)], capture_output=True,
                          timeout=60).returncode == 0

    def complete(line: str) -> list[str]:
        result = subprocess.run(["fish", "--no-config", "-c",
                                 f"source {path}; complete -C {line!r}"],
                                cwd=flow.root, env=shell_env(), text=True,
                                capture_output=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return [w.split("\t")[0] for w in result.stdout.splitlines()]

    assert complete("flowmake bu") == ["build"]
    assert complete("flowmake build --ke") == ["--keep-going"]
    assert {"prepare", "sweep", "sweep[lr=0.1]"} <= set(complete("flowmake build "))
    assert complete("flowmake graph --format m") == ["mermaid"]
    assert "--check" in complete("flowmake status --")


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_script_loads_and_offers_the_same(flow: Any) -> None:
    path = script(flow, "zsh")
    assert subprocess.run(["zsh", "-n", str(path)], capture_output=True,
                          timeout=60).returncode == 0

    def complete(*words: str) -> list[str]:
        # compadd and _describe work only inside a completion widget: here they record.
        program = f"""
            autoload -U compinit && compinit -u -D
            source {path}
            [[ $_comps[flowmake] == _flowmake ]] || {{ print -u2 not registered; exit 3 }}
            compadd() {{ while [[ $1 == -* && $1 != -- ]]; do shift; done; shift; print -l -- $@ }}
            _describe() {{ print -l -- ${{(P)argv[-1]%%:*}} }}
            _files() {{ print FILES }}
            words=({" ".join(repr(w) for w in words)})
            CURRENT=${{#words}}
            PREFIX=${{words[CURRENT]}}
            _flowmake
        """
        result = subprocess.run(["zsh", "-f", "-c", program], cwd=flow.root, env=shell_env(),
                                text=True, capture_output=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return [w for w in result.stdout.splitlines() if w]

    assert "build" in complete("flowmake", "")
    assert "--keep-going" in complete("flowmake", "build", "--")
    assert {"prepare", "sweep", "sweep[lr=0.1]"} <= set(complete("flowmake", "build", ""))
    assert complete("flowmake", "graph", "--format", "") == ["text", "mermaid", "dot", "json",
                                                             "html"]


def test_unknown_shell_is_a_usage_error(flow: Any) -> None:
    result = flow.run("completion", "tcsh")
    assert result.returncode == 2
    assert "invalid choice: 'tcsh'" in result.stderr


def test_completion_costs_build_nothing_at_start_up(flow: Any) -> None:
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "flowmake", "build"],
                            cwd=flow.root, env=shell_env(), text=True, capture_output=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    modules = {line.split("|")[-1].strip() for line in result.stderr.splitlines()
               if "|" in line}
    assert "flowmake.cli.main" in modules
    assert "flowmake.cli.completion" not in modules and "argcomplete" not in modules
