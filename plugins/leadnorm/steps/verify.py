"""Reconciliation after a load: every nested lead accounted for, every document and reference there.

Checks, against the database as it is now:
- nested leads = migrated (marked by the migration, `leadnorm.source`) + rejected (in `migration_rejects`), none both;
- each collection holds every document the normalized frames expect, and as many;
- every reference (company_id, lead_id, ...) resolves to a document of its target.
Source ids are compared by `legacy_key`, so any `_id` type (an embedded document too) works.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from pymongo.database import Database

from leadnorm.contract import NESTED_FIELD, NESTED_LEAD, REJECTS_COLLECTION, SOURCE_COLLECTION, legacy_key
from leadnorm.mongo import in_chunks
from leadnorm.schema import COLLECTIONS
from leadnorm.source import MARK_PROJECTION, is_marked
from leadnorm.steps.load import is_owned
from leadnorm.steps.prune import kept_stale
from leadnorm.steps.scope import Scope, find_exactly, stored_for
from leadnorm.transform.resolve import Normalized


@dataclass
class CollectionCheck:
    expected: int
    actual: int
    missing: int
    kept: int = 0  # beyond the source's documents, allowed to stay (cleaned-up leads and what hangs on them)

    @property
    def ok(self) -> bool:
        return self.missing == 0 and self.actual == self.expected + self.kept


@dataclass
class VerifyReport:
    scope: str = ""  # empty: the whole database; else what a scoped refresh checked
    nested: int = 0
    migrated: int = 0
    rejected: int = 0
    unaccounted: int = 0  # neither marked nor rejected
    marked_and_rejected: int = 0
    collections: dict[str, CollectionCheck] = field(default_factory=dict)
    dangling: dict[str, int] = field(default_factory=dict)  # "leads.company_id" -> count

    @property
    def reconciled(self) -> bool:
        return self.unaccounted == 0 and self.marked_and_rejected == 0 and self.nested == self.migrated + self.rejected

    @property
    def ok(self) -> bool:
        return self.reconciled and all(c.ok for c in self.collections.values()) and not any(self.dangling.values())

    def problems(self) -> list[str]:
        found = []
        if not self.reconciled:
            found.append(
                f"nested leads {self.nested} != migrated {self.migrated} + rejected {self.rejected} "
                f"({self.unaccounted} unaccounted, {self.marked_and_rejected} both)"
            )
        found += [
            f"{name}: expected {c.expected} (+{c.kept} kept), found {c.actual}, missing {c.missing}"
            for name, c in self.collections.items()
            if not c.ok
        ]
        found += [f"{ref}: {count} references resolve to nothing" for ref, count in self.dangling.items() if count]
        return found

    def render(self) -> str:
        lines = [
            f"verify{f' ({self.scope})' if self.scope else ''}: {'OK' if self.ok else 'FAILED'}",
            f"  nested leads {self.nested} = migrated {self.migrated} + rejected {self.rejected}",
        ]
        lines += [
            f"  {name:<22} expected {c.expected:>8}  actual {c.actual:>8}  missing {c.missing:>6}"
            for name, c in self.collections.items()
        ]
        lines += [f"  problem: {p}" for p in self.problems()]
        return "\n".join(lines)


def _reconcile(report: VerifyReport, nested: dict[bytes, bool], rejected: set[bytes]) -> None:
    """`nested`: legacy_key -> marked; `rejected`: the legacy_keys in `migration_rejects`."""
    rejected = rejected & nested.keys()
    migrated = {k for k, marked in nested.items() if marked}
    report.nested, report.migrated, report.rejected = len(nested), len(migrated), len(rejected)
    report.marked_and_rejected = len(migrated & rejected)
    report.unaccounted = len(nested.keys() - migrated - rejected)


def verify(db: Database, expected: Normalized) -> VerifyReport:
    """One read of each collection: ids and references (and, in `leads`, the nested leads' marks)."""
    report = VerifyReport()
    nested: dict[bytes, bool] = {}
    stored: dict[str, set] = {}
    references: list[tuple[str, str, str, object]] = []  # (collection, column, target, id)
    for name, collection in COLLECTIONS.items():
        projection = dict.fromkeys(collection.references, 1)
        if name == SOURCE_COLLECTION:
            projection.update({**MARK_PROJECTION, NESTED_FIELD: 1, "legacy_lead_id": 1})
        ids = stored[name] = set()
        for doc in db[name].find({}, projection or {"_id": 1}):
            if name == SOURCE_COLLECTION:
                if NESTED_FIELD in doc:
                    nested[legacy_key(doc["_id"])] = is_marked(doc)
                if not is_owned(name, doc):
                    continue
            ids.add(doc["_id"])
            for column, target in collection.references.items():
                if doc.get(column) is not None:
                    references.append((name, column, target, doc[column]))
    _reconcile(report, nested, {legacy_key(doc["_id"]) for doc in db[REJECTS_COLLECTION].find({}, {"_id": 1})})

    wanted = {name: set(frame["_id"]) for name, frame in expected.frames.items()}
    kept = kept_stale(db, {name: stored[name] - wanted[name] for name in wanted})
    for name, ids in wanted.items():
        report.collections[name] = CollectionCheck(
            len(ids), len(stored[name]), len(ids - stored[name]), len(kept[name])
        )
    for name, column, target, ref in references:
        if ref not in stored[target]:
            report.dangling[f"{name}.{column}"] = report.dangling.get(f"{name}.{column}", 0) + 1
    return report


def _existing(db: Database, collection: str, ids: set) -> set:
    return {doc["_id"] for part in in_chunks(ids) for doc in db[collection].find({"_id": {"$in": part}}, {"_id": 1})}


def verify_scope(db: Database, expected: Normalized, scope: Scope) -> VerifyReport:
    """The same checks over a refresh's scope only: its source leads, the documents they hold
    now, and where those documents' references lead. What lies outside the scope was verified
    when it was written and nothing has touched it since."""
    report = VerifyReport(scope=f"refresh scope: {len(scope.leads)} source leads, {len(scope.gone)} gone")
    nested = {
        legacy_key(doc["_id"]): is_marked(doc)
        for doc in find_exactly(db[SOURCE_COLLECTION], "_id", scope.leads, MARK_PROJECTION, **NESTED_LEAD)
    }
    rejected = {legacy_key(doc["_id"]) for doc in find_exactly(db[REJECTS_COLLECTION], "_id", scope.all, {"_id": 1})}
    _reconcile(report, nested, rejected)
    report.unaccounted += len(rejected - nested.keys())  # a reject whose source went

    held = stored_for(db, scope).related
    wanted = {name: set(frame["_id"]) for name, frame in expected.frames.items()}
    present = {name: _existing(db, name, ids) for name, ids in wanted.items()}
    kept = kept_stale(db, {name: set(held[name]) - wanted[name] for name in wanted})
    for name, ids in wanted.items():
        actual = set(held[name]) | present[name]
        report.collections[name] = CollectionCheck(len(ids), len(actual), len(ids - present[name]), len(kept[name]))
    for name, collection in COLLECTIONS.items():
        for column, target in collection.references.items():
            frame = expected.frames[name]
            targets = {ref for ref in frame[column] if pd.notna(ref)} if column in frame else set()
            report.dangling[f"{name}.{column}"] = len(targets - _existing(db, target, targets))
    return report
