"""The model: what flow.toml declares, as frozen values. No I/O here.

The per-target classes are frozen but not slotted on purpose: the compiled flow
(``.flowmake/flow.pickle``) of 10,000 targets unpickles several times faster when
each object's state is a plain ``__dict__`` restored in C.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GLOB_CHARS = frozenset("*?[")


def is_url(path: str) -> bool:
    """True for ``proto://...`` paths; everything else is relative to the project root."""
    return "://" in path


def is_glob(path: str) -> bool:
    return any(c in GLOB_CHARS for c in path)


@dataclass(frozen=True)
class Shell:
    """A shell command, run with ``sh -c`` in ``cwd`` (relative to the project root)."""

    command: str
    cwd: str = ""

    @property
    def text(self) -> str:
        """What enters the key: the command, and where it runs when that is not the root."""
        return self.command if not self.cwd else f"cd {self.cwd} && {self.command}"


@dataclass(frozen=True)
class Call:
    """A Python callable ``module:function``; ``version`` replaces its code fingerprint."""

    function: str
    version: str | None = None

    @property
    def module(self) -> str:
        return self.function.partition(":")[0]

    @property
    def text(self) -> str:
        if self.version is not None:
            return f"python {self.function} (version {self.version})"
        return f"python {self.function}"


Action = Shell | Call


@dataclass(frozen=True)
class Input:
    """A path, directory, glob or URL a target reads; ``name`` for the table form."""

    path: str
    name: str | None = None
    glob: bool = field(init=False)  # computed once: the planner asks for every input, every run
    url: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "glob", is_glob(self.path))
        object.__setattr__(self, "url", is_url(self.path))


@dataclass(frozen=True)
class Output:
    """A path or URL a target writes; ``key`` names a table-form output."""

    path: str
    key: str | None = None
    url: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", is_url(self.path))


@dataclass(frozen=True)
class Target:
    """One buildable unit; a matrix instance is a Target named ``name[k=v,...]``."""

    name: str
    action: Action
    inputs: tuple[Input, ...] = ()
    outputs: tuple[Output, ...] = ()
    deps: tuple[str, ...] = ()
    # Keyword arguments for a python target (its own params and matrix values), resolved.
    params: dict[str, Any] = field(default_factory=dict)
    # Project params this target references (``${params.x}``): only these enter its key.
    project_params: dict[str, Any] = field(default_factory=dict)
    env: tuple[str, ...] = ()
    always: bool = False
    cache: bool = True
    timeout: float | None = None
    retries: int = 0
    help: str = ""
    resources: dict[str, float] = field(default_factory=dict)
    matrix: str | None = None  # the matrix a target instance was expanded from
    line: int | None = None  # where flow.toml declares it, for messages

    @property
    def kind(self) -> str:
        return "cmd" if isinstance(self.action, Shell) else "python"


@dataclass(frozen=True, slots=True)
class Settings:
    """The ``[flow]`` table."""

    default: tuple[str, ...] = ()
    jobs: int | None = None
    cache: str | None = ".flowmake/cache"
    remote: str | None = None
    remote_readonly: bool = False
    executor: str = "local"
    plugins: tuple[str, ...] = ()
    resources: dict[str, float] = field(default_factory=dict)
    history: int = 100  # builds kept by `flowmake log`
    extra: dict[str, Any] = field(default_factory=dict)  # plugin-owned keys (e.g. dask_scheduler)


@dataclass(frozen=True, slots=True)
class Project:
    """A loaded flow.toml: its location, settings, params and targets in declared order."""

    root: Path
    file: Path
    settings: Settings
    params: dict[str, Any]
    targets: dict[str, Target]

    @property
    def state_dir(self) -> Path:
        return self.root / ".flowmake"

