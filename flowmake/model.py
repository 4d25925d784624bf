"""The model: what flow.toml declares, as frozen values. No I/O here."""

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


class _Compact:
    """Pickles as a plain tuple of slot values: the compiled flow (``.flowmake/flow.pickle``)
    of 10,000 targets loads several times faster than with dataclasses' default."""

    __slots__ = ()

    def __getstate__(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)  # type: ignore[attr-defined]

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        for name, value in zip(self.__slots__, state, strict=True):  # type: ignore[attr-defined]
            object.__setattr__(self, name, value)


@dataclass(frozen=True, slots=True)
class Shell(_Compact):
    """A shell command, run with ``sh -c`` in ``cwd`` (relative to the project root)."""

    command: str
    cwd: str = ""

    @property
    def text(self) -> str:
        """What enters the key: the command, and where it runs when that is not the root."""
        return self.command if not self.cwd else f"cd {self.cwd} && {self.command}"


@dataclass(frozen=True, slots=True)
class Call(_Compact):
    """A Python callable ``module:function``; ``version`` replaces its code fingerprint."""

    function: str
    version: str | None = None

    @property
    def module(self) -> str:
        return self.function.partition(":")[0]

    @property
    def text(self) -> str:
        return f"python {self.function}"


Action = Shell | Call


@dataclass(frozen=True, slots=True)
class Input(_Compact):
    """A path, directory, glob or URL a target reads; ``name`` for the table form."""

    path: str
    name: str | None = None
    glob: bool = field(init=False)  # computed once: the planner asks for every input, every run
    url: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "glob", is_glob(self.path))
        object.__setattr__(self, "url", is_url(self.path))


@dataclass(frozen=True, slots=True)
class Output(_Compact):
    """A path or URL a target writes; ``key`` names a table-form output."""

    path: str
    key: str | None = None
    url: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", is_url(self.path))


@dataclass(frozen=True, slots=True)
class Target(_Compact):
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


# dataclass(slots=True, frozen=True) installs its own (slower) pickling methods on each
# class; put the compact ones back.
for _cls in (Shell, Call, Input, Output, Target):
    _cls.__getstate__ = _Compact.__getstate__  # type: ignore[method-assign]
    _cls.__setstate__ = _Compact.__setstate__  # type: ignore[method-assign]
