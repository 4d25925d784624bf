"""The Format interface: how a python target's values are saved to and loaded from files.

A format is chosen by the extension of the path. Formats read and write binary file
objects, so the same format serves local files and URLs (through a storage backend).

A whole minimal format plugin::

    import flowmake

    class CsvFormat:
        NAME = "csv"
        EXTENSIONS = (".csv",)

        def load(self, f):
            import pandas
            return pandas.read_csv(f)

        def dump(self, value, f):
            value.to_csv(f, index=False)

    @flowmake.hookimpl
    def flowmake_register_formats():
        return [CsvFormat]
"""

from __future__ import annotations

from typing import IO, Any, ClassVar, Protocol


class Format(Protocol):
    """Saves and loads values of one kind of file, chosen by extension."""

    NAME: ClassVar[str]
    EXTENSIONS: ClassVar[tuple[str, ...]]  # lower case, with the dot: (".json",)

    def load(self, f: IO[bytes]) -> Any:
        """Read a value from an open binary file."""
        ...

    def dump(self, value: Any, f: IO[bytes]) -> None:
        """Write ``value`` to an open binary file; raise TypeError for values it cannot hold."""
        ...


def extension(path: str) -> str:
    """The lower-case extension of a path or URL (``.parquet``), ``""`` when none."""
    name = path.rsplit("/", 1)[-1]
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""
