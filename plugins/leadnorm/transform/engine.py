"""The engine the dedupe and the checks across batches run on: DuckDB, in this process.

DuckDB works on Arrow tables in memory (the pure doors, the tests) and on the staged Parquet
files alike, sorts and groups out of core once its memory budget is spent (spilling to a temp
folder), and is the same code either way. Why DuckDB rather than pandas: the mentions of a
million leads are a few hundred MB in columns but several GB as pandas object frames, and the
group-bys the dedupe needs are what an engine does best; rather than Polars: DuckDB runs
every operator (sorts, joins, group-bys with ordered list aggregates, which the `extra` merge
needs) under a hard memory limit, spilling what does not fit.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pyarrow as pa

DEFAULT_MEMORY_MB = 512


def memory_budget_mb() -> int:
    """`LEADNORM_MEMORY_MB`: what the engine may hold before it spills to disk (512)."""
    text = os.environ.get("LEADNORM_MEMORY_MB", "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else DEFAULT_MEMORY_MB


def connect(temp_dir: Path | None = None, memory_mb: int | None = None) -> duckdb.DuckDBPyConnection:
    """An engine of its own (in memory) that spills into `temp_dir` beyond its budget."""
    con = duckdb.connect(config={"memory_limit": f"{memory_mb or memory_budget_mb()}MB"})
    if temp_dir is not None:
        con.execute("SET temp_directory = ?", [str(temp_dir)])
    con.execute("SET preserve_insertion_order = false")  # results are ordered where it matters, by ORDER BY
    return con


def view(con: duckdb.DuckDBPyConnection, name: str, files: list[str], schema: pa.Schema) -> None:
    """`name` as a view over Parquet files (of `schema`; none: an empty table of it)."""
    if not files:
        con.register(name, schema.empty_table())
    else:
        listed = ", ".join("'" + str(path).replace("'", "''") + "'" for path in files)
        con.unregister(name)  # an empty table of it registered before would hide the view
        con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet([{listed}])")


def batches(relation: duckdb.DuckDBPyRelation, rows: int = 10_000):
    """A relation's rows as Arrow record batches, `rows` at a time: never all in memory."""
    yield from relation.to_arrow_reader(rows)
