"""flowmake-parquet: the pandas formats for flowmake's python targets.

``.parquet``, ``.feather``, ``.csv`` and ``.tsv``: a python target that returns a pandas
DataFrame (or, for Parquet and Feather, a pyarrow Table) to such an output has it written
in that format; such a table-form input is loaded as a pandas DataFrame. pyarrow and
pandas are imported on first use, so installing this plugin costs flowmake's start-up
nothing. Every writer is deterministic: an unchanged frame gives identical bytes, so
early cutoff works.
"""

from __future__ import annotations

from typing import IO, Any

import flowmake

__version__ = "0.1.0"


class ParquetFormat:
    """Parquet files: DataFrames and Tables in, DataFrames out.

    The index of a DataFrame is kept (pyarrow stores it in the file's pandas metadata),
    so a frame round-trips as it was. Writing is deterministic for a given pyarrow
    version, so an unchanged frame gives identical bytes and early cutoff works.
    """

    NAME = "parquet"
    EXTENSIONS = (".parquet",)

    def load(self, f: IO[bytes]) -> Any:
        import pyarrow.parquet as pq

        return pq.read_table(f).to_pandas()

    def dump(self, value: Any, f: IO[bytes]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not isinstance(value, pa.Table):
            value = _to_table(value)
        pq.write_table(value, f)


def _to_table(value: Any, ext: str = ".parquet") -> Any:
    """A pandas DataFrame as a pyarrow Table; TypeError for anything else."""
    import pyarrow as pa

    module = type(value).__module__
    if module.startswith("pandas") and type(value).__name__ == "DataFrame":
        return pa.Table.from_pandas(value)
    raise TypeError(
        f"a {ext} output takes a pandas DataFrame or a pyarrow Table, got {type(value).__name__}")


class FeatherFormat:
    """Arrow IPC (Feather v2) files: DataFrames and Tables in, DataFrames out (the index
    kept in the file's pandas metadata, as for Parquet)."""

    NAME = "feather"
    EXTENSIONS = (".feather",)

    def load(self, f: IO[bytes]) -> Any:
        import pyarrow.feather as feather

        return feather.read_table(f).to_pandas()

    def dump(self, value: Any, f: IO[bytes]) -> None:
        import pyarrow as pa
        import pyarrow.feather as feather

        if not isinstance(value, pa.Table):
            value = _to_table(value, ".feather")
        feather.write_feather(value, f)


class CsvFormat:
    """Comma-separated text. A DataFrame's index is written as leading columns unless it
    is the default 0..n-1 range (which CSV cannot tell from data); reading gives back
    those columns as columns and a fresh range index."""

    NAME = "csv"
    EXTENSIONS = (".csv",)
    SEP = ","

    def load(self, f: IO[bytes]) -> Any:
        import pandas as pd

        return pd.read_csv(f, sep=self.SEP)

    def dump(self, value: Any, f: IO[bytes]) -> None:
        frame = _frame(value, self.EXTENSIONS[0])
        keep_index = not _default_index(frame)
        f.write(frame.to_csv(sep=self.SEP, index=keep_index, lineterminator="\n").encode())


class TsvFormat(CsvFormat):
    """Tab-separated text, as CSV."""

    NAME = "tsv"
    EXTENSIONS = (".tsv",)
    SEP = "\t"


def _frame(value: Any, ext: str) -> Any:
    if type(value).__module__.startswith("pandas") and type(value).__name__ == "DataFrame":
        return value
    raise TypeError(f"a {ext} output takes a pandas DataFrame, got {type(value).__name__}")


def _default_index(frame: Any) -> bool:
    import pandas as pd

    index = frame.index
    return (isinstance(index, pd.RangeIndex) and index.name is None and index.start == 0
            and index.step == 1)


@flowmake.hookimpl
def flowmake_register_formats() -> list[type]:
    return [ParquetFormat, FeatherFormat, CsvFormat, TsvFormat]
