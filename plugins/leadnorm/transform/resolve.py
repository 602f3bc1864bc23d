"""The nine normalized frames of a set of mentions, in memory: the pure door to the dedupe.

The dedupe itself (`leadnorm.transform.dedupe`) runs on the engine, over Arrow tables here and
over the staged Parquet files in a run; both give the same documents, byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

from leadnorm.contract import DEFAULT_LEVEL
from leadnorm.schema import KINDS
from leadnorm.transform import columns, dedupe, engine
from leadnorm.transform.clean import Warnings
from leadnorm.transform.split import Mentions

_INTEGER_FIELDS = {"employee_count", "founded_year"}


@dataclass
class Normalized:
    """The nine target frames, what happened to each source lead, and the unreadable values."""

    frames: dict[str, pd.DataFrame]
    outcomes: pd.DataFrame
    warnings: Warnings

    @property
    def rejects(self) -> pd.DataFrame:
        return rejects_of(self.outcomes)


def rejects_of(outcomes: pd.DataFrame) -> pd.DataFrame:
    """The rejected source leads of an outcomes frame, with their reasons."""
    return outcomes.loc[outcomes["outcome"] == "rejected", ["_id", "reject_reason"]]


def with_defaults(frame: pd.DataFrame, optional: set[str]) -> pd.DataFrame:
    """The contract's defaults where no mention had a value; optional fields stay absent (None)."""
    out = frame.copy()
    for column in out.columns:
        if column in optional or column in ("_id", "extra") or column.endswith("_id"):
            out[column] = out[column].astype(object).where(out[column].notna(), None)
        elif column in _INTEGER_FIELDS:
            out[column] = out[column].fillna(0).astype("int64")
        elif column == "confidence":
            out[column] = out[column].fillna(DEFAULT_LEVEL)
        else:
            out[column] = out[column].fillna("").astype(object)
    return out


def resolve(mentions: Mentions) -> Normalized:
    """All mentions in, the nine normalized frames out (each in `_id` order)."""
    con = engine.connect()
    for name, table in mentions.tables.items():
        con.register(name, table)
    dedupe.resolve(con)
    frames = {}
    for name, batches in dedupe.collections(con).items():
        data = pa.Table.from_batches(list(batches), schema=columns.schema(dedupe.FINAL_KINDS[name]))
        frames[name] = columns.frame(data, KINDS[name])
    for name in _INTEGER_FIELDS:  # their default is 0: never missing
        frames["companies"][name] = frames["companies"][name].astype("int64")
    con.close()
    return Normalized(frames, mentions.outcomes, mentions.warnings)
