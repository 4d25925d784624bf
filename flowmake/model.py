"""The model: what flow.toml declares, as frozen values. No I/O here.

The values are NamedTuples rather than dataclasses: every command defines these classes
at start-up, and a frozen dataclass costs ~1 ms to define against ~0.3 ms (measured); the
compiled flow (``.flowmake/flow.pickle``) of 10,000 targets also unpickles faster. The
dict defaults are shared empty dicts: nothing mutates a model value.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any, NamedTuple

_EMPTY: dict[str, Any] = {}  # the default of dict fields; never mutated

GLOB_CHARS = frozenset("*?[")
_TUPLE_NEW = tuple.__new__


def _reduced(value: tuple[Any, ...]) -> tuple[Any, ...]:
    """How the model's values pickle: ``tuple.__new__(cls, fields)``, every field kept
    (computed ones too). Unpickling then runs no Python ``__new__`` (a NamedTuple's and
    Input's are Python functions: 50,000 calls for a 10,000-target flow.pickle). Empty
    dicts are pickled as the one ``_EMPTY`` (unpickled as one dict, not 30,000)."""
    fields = tuple(_EMPTY if type(v) is dict and not v else v for v in value)
    return (_TUPLE_NEW, (type(value), fields))


def is_url(path: str) -> bool:
    """True for ``proto://...`` paths; everything else is relative to the project root."""
    return "://" in path


def is_glob(path: str) -> bool:
    return not GLOB_CHARS.isdisjoint(path)  # in C: loading 10,000 targets asks it 20,000 times


class Shell(NamedTuple):
    """A shell command, run with ``sh -c`` in ``cwd`` (relative to the project root)."""

    command: str
    cwd: str = ""

    def __reduce__(self) -> tuple[Any, ...]:
        return _reduced(self)

    @property
    def text(self) -> str:
        """What enters the key: the command, and where it runs when that is not the root."""
        return self.command if not self.cwd else f"cd {self.cwd} && {self.command}"


class Call(NamedTuple):
    """A Python callable ``module:function``; ``version`` replaces its code fingerprint."""

    function: str
    version: str | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        return _reduced(self)

    @property
    def module(self) -> str:
        return self.function.partition(":")[0]

    @property
    def text(self) -> str:
        if self.version is not None:
            return f"python {self.function} (version {self.version})"
        return f"python {self.function}"


class PluginAction(NamedTuple):
    """The action of a target kind a plugin registers (``notebook = "nb/train.ipynb"``).

    Plain values only, so the compiled flow (``.flowmake/flow.pickle``) loads without the
    plugin imported. ``runner`` (``module:function``) is what a python worker calls, as
    ``runner(job, /, **kwargs)`` with ``job`` the action's fields, the target's name and
    the root; with ``values`` the job is a python call's (table-form inputs loaded and the
    return value saved by format), without it the runner writes the outputs itself, as a
    command does. ``version`` replaces the kind's code key, as for ``python``.
    """

    kind: str  # the flow.toml key: "notebook"
    spec: str  # its value: "nb/train.ipynb"
    runner: str  # "flowmake_notebook.runner:run"
    options: dict[str, Any] = _EMPTY  # the kind's other keys ({"function": "train"})
    version: str | None = None
    values: bool = False

    def __reduce__(self) -> tuple[Any, ...]:
        return _reduced(self)

    @property
    def text(self) -> str:
        """What enters the key: ``notebook nb/train.ipynb (function train)``."""
        extra = [f"{k} {v}" for k, v in sorted(self.options.items())]
        if self.version is not None:
            extra.append(f"version {self.version}")
        return f"{self.kind} {self.spec}" + (f" ({', '.join(extra)})" if extra else "")


Action = Shell | Call | PluginAction


class _InputFields(NamedTuple):
    path: str
    name: str | None
    glob: bool
    url: bool


class Input(_InputFields):
    """A path, directory, glob or URL a target reads; ``name`` for the table form.
    ``glob`` and ``url`` are computed once: the planner asks for every input, every run."""

    __slots__ = ()

    def __new__(cls, path: str, name: str | None = None) -> Input:
        return super().__new__(cls, path, name, is_glob(path), is_url(path))

    def __reduce__(self) -> tuple[Any, ...]:  # glob and url unpickled, not recomputed
        return _reduced(self)


class _OutputFields(NamedTuple):
    path: str
    key: str | None
    url: bool


class Output(_OutputFields):
    """A path or URL a target writes; ``key`` names a table-form output."""

    __slots__ = ()

    def __new__(cls, path: str, key: str | None = None) -> Output:
        return super().__new__(cls, path, key, is_url(path))

    def __reduce__(self) -> tuple[Any, ...]:
        return _reduced(self)


class Target(NamedTuple):
    """One buildable unit; a matrix instance is a Target named ``name[k=v,...]``."""

    name: str
    action: Action
    inputs: tuple[Input, ...] = ()
    outputs: tuple[Output, ...] = ()
    deps: tuple[str, ...] = ()
    # Keyword arguments for a python target (its own params and matrix values), resolved.
    params: dict[str, Any] = _EMPTY
    # Project params this target references (``${params.x}``): only these enter its key.
    project_params: dict[str, Any] = _EMPTY
    env: tuple[str, ...] = ()
    always: bool = False
    cache: bool = True
    timeout: float | None = None
    retries: int = 0
    help: str = ""
    resources: dict[str, float] = _EMPTY
    matrix: str | None = None  # the matrix (or foreach) a target instance was expanded from
    line: int | None = None  # where flow.toml declares it, for messages
    item: str | None = None  # the file a foreach instance is for (root-relative)
    metrics: tuple[str, ...] = ()  # outputs that hold metrics (`flowmake metrics`)

    def __reduce__(self) -> tuple[Any, ...]:
        return _reduced(self)

    @property
    def kind(self) -> BuiltinKind | str:
        """``cmd``, ``python``, or a plugin's kind (``notebook``, a plain string)."""
        if isinstance(self.action, PluginAction):
            return self.action.kind
        return BuiltinKind.CMD if isinstance(self.action, Shell) else BuiltinKind.PYTHON


class Settings(NamedTuple):
    """The ``[flow]`` table."""

    default: tuple[str, ...] = ()
    jobs: int | None = None
    cache: str | None = ".flowmake/cache"
    remote: str | None = None
    remote_readonly: bool = False
    executor: str = "local"
    plugins: tuple[str, ...] = ()
    resources: dict[str, float] = _EMPTY
    history: int = 100  # builds kept by `flowmake log`
    lock: bool = True  # write and read flow.lock
    extra: dict[str, Any] = _EMPTY  # plugin-owned keys (e.g. dask_scheduler)


class Project(NamedTuple):
    """A loaded flow.toml: its location, settings, params and targets in declared order."""

    root: Path
    file: Path
    settings: Settings
    params: dict[str, Any]
    targets: dict[str, Target]
    # Root-relative files read besides flow.toml (included flows, params files) and the
    # globs whose matched set shaped the flow (include, foreach): the compiled flow and
    # `build --watch` follow them.
    sources: tuple[str, ...] = ()
    globs: tuple[str, ...] = ()

    @property
    def state_dir(self) -> Path:
        return self.root / ".flowmake"


# -- statuses, results and kinds (issue 12) ------------------------------------------
# str-valued: each member equals, prints, reprs, formats, JSON-encodes and binds to SQLite
# as its value, so output and state files stay byte-identical (StrEnum needs Python 3.11;
# the project supports 3.10). The modules a no-op build or status imports (cli.main,
# cli.noop, store.runs, report.live, report.views) do not import this one: they use the
# plain strings, which the members equal.


class _Text(str, Enum):
    def __repr__(self) -> str:  # as the plain string's: a notebook shows 'fresh'
        return str.__repr__(self)

    def __str__(self) -> str:
        return str.__str__(self)

    def __format__(self, spec: str) -> str:
        return str.__format__(self, spec)


class TargetStatus(_Text):
    """A target's state as ``flowmake status`` reports it (plan.check's ``State``)."""

    FRESH = "fresh"
    STALE = "stale"
    RESTORABLE = "restorable"


class OutcomeStatus(_Text):
    """What one build did to one target (an Outcome, a run's target line)."""

    BUILT = "built"
    RESTORED = "restored"
    FRESH = "fresh"
    FAILED = "failed"
    SKIPPED = "skipped"


class RunResult(_Text):
    """A build's result (``running`` while it runs: the store's runs table)."""

    SUCCESS = "success"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    RUNNING = "running"


class BuiltinKind(_Text):
    """The kinds of target flowmake runs itself (``flowmake list``, ``graph --format json``);
    a plugin's kind (``flowmake.kinds.TargetKind``) is named by its plain string key."""

    CMD = "cmd"
    PYTHON = "python"


class StatEntry(NamedTuple):
    """A file's entry in the stat cache: its stat when it was hashed, and its digest. A
    matching (size, mtime_ns, inode) means the content is unchanged, unless the mtime is
    too close to ``hashed_ns`` to be trusted (the racy case, see plan/fingerprint.py)."""

    size: int
    mtime_ns: int
    inode: int
    hashed_ns: int  # when it was hashed (time.time_ns())
    digest: str
