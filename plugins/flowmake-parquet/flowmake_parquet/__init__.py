"""flowmake-parquet: the ``.parquet`` format for flowmake's python targets.

A python target that returns a pandas DataFrame or a pyarrow Table to a ``.parquet``
output has it written as Parquet; a ``.parquet`` table-form input is loaded as a pandas
DataFrame. pyarrow and pandas are imported on first use, so installing this plugin costs
flowmake's start-up nothing.
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


def _to_table(value: Any) -> Any:
    """A pandas DataFrame as a pyarrow Table; TypeError for anything else."""
    import pyarrow as pa

    module = type(value).__module__
    if module.startswith("pandas") and type(value).__name__ == "DataFrame":
        return pa.Table.from_pandas(value)
    raise TypeError(
        f"a .parquet output takes a pandas DataFrame or a pyarrow Table, got {type(value).__name__}")


@flowmake.hookimpl
def flowmake_register_formats() -> list[type]:
    return [ParquetFormat]
