"""The quality report: the gate's suites run on the collections as stored, not on a run's frames.

The gate checks what a run is about to write; the stored collections can still drift after
it (a later refresh, a hand edit, a deleted company), so the same critical expectations are
checked again on what is there now. Frames are built as the gate gets them from normalize:
the schema's columns, absent fields as None, ids as stored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from pymongo.database import Database

from leadnorm.contract import (
    NESTED_LEAD,
    NORMALIZED_LEAD,
    REJECTS_COLLECTION,
    SOURCE_COLLECTION,
    legacy_key,
)
from leadnorm.quality.validate import GateResult, run_gate
from leadnorm.schema import COLLECTIONS
from leadnorm.source import MARK_PROJECTION, is_marked

OUTCOME_COLUMNS = ["_id", "outcome", "reject_reason"]


def stored_frames(db: Database) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """The nine collections as frames (normalized leads only, for `leads`) and the source outcomes."""
    frames = {}
    for name, collection in COLLECTIONS.items():
        found = db[name].find(NORMALIZED_LEAD if name == SOURCE_COLLECTION else {}, sort=[("_id", 1)])
        frames[name] = _frame(found, collection.columns)
    return frames, source_outcomes(db)


def source_outcomes(db: Database) -> pd.DataFrame:
    """One row per nested source lead: `migrated` when marked, `rejected` (with its reason) when in
    `migration_rejects`, None when neither (then the source suite's row count is off). A lead both
    marked and rejected counts as rejected, so its normalized lead no longer resolves and the leads
    suite says so."""
    reasons = {legacy_key(doc["_id"]): doc.get("reason") for doc in db[REJECTS_COLLECTION].find({}, {"reason": 1})}
    rows = []
    for doc in db[SOURCE_COLLECTION].find(NESTED_LEAD, MARK_PROJECTION, sort=[("_id", 1)]):
        key = legacy_key(doc["_id"])
        if key in reasons:
            rows.append({"_id": doc["_id"], "outcome": "rejected", "reject_reason": reasons[key]})
        else:
            rows.append({"_id": doc["_id"], "outcome": "migrated" if is_marked(doc) else None})
    return _frame(rows, OUTCOME_COLUMNS)


def validate_stored(db: Database, reports_dir: Path | None = None) -> GateResult:
    """Run the gate's suites on the stored collections; the Data Docs list it next to the migration runs."""
    frames, source = stored_frames(db)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return run_gate(frames, source, reports_dir=reports_dir, run_name=f"quality-report-{stamp}")


def _frame(documents: Iterable[dict], columns: list[str]) -> pd.DataFrame:
    """Object columns filled while the cursor streams: only the schema's values are kept, not the documents."""
    values: dict[str, list] = {column: [] for column in columns}
    for document in documents:
        for column in columns:
            values[column].append(document.get(column))
    return pd.DataFrame({column: pd.Series(values[column], dtype=object) for column in columns})
