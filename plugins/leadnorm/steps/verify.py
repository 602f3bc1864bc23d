"""Reconciliation after a load: every nested lead accounted for, every document and reference there.

Checks, against the database as it is now:
- nested leads = migrated (marked by the migration, `leadnorm.source`) + rejected (in `migration_rejects`), none both;
- each collection holds every document the normalized frames expect, and as many;
- every reference (company_id, lead_id, ...) resolves to a document of its target.
Source ids are compared by `legacy_key`, so any `_id` type (an embedded document too) works.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
from bson import ObjectId
from pymongo.database import Database

from leadnorm.contract import NESTED_FIELD, NESTED_LEAD, REJECTS_COLLECTION, SOURCE_COLLECTION, legacy_key
from leadnorm.mongo import find_exactly, in_chunks, released_leads
from leadnorm.schema import COLLECTIONS
from leadnorm.source import MARK_PROJECTION, is_marked
from leadnorm.steps.load import is_owned
from leadnorm.steps.prune import kept_stale
from leadnorm.steps.scope import Scope
from leadnorm.transform import columns


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
    released: int = 0  # migrated, whose leads the application took over (kept: no run rewrites them)
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
            f"  nested leads {self.nested} = migrated {self.migrated} + rejected {self.rejected}"
            + (f" ({self.released} of the migrated kept by the application)" if self.released else ""),
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


def _insert(con: duckdb.DuckDBPyConnection, table: str, rows: list[dict], kinds: dict[str, str]) -> None:
    if rows:
        con.register("verify_batch", columns.table(rows, kinds))
        con.execute(f"INSERT INTO {table} SELECT * FROM verify_batch")
        con.unregister("verify_batch")
        rows.clear()


_STORED = {"collection": "text", "_id": "oid"}
APPLICATION_LEADS = "leads of the application"  # beside the collections in `stored_ids`: references' targets
_REFERENCE = {"collection": "text", "reference": "text", "target": "text", "ref": "oid"}
_NESTED = {"key": "bytes", "marked": "bool"}


def verify(db: Database, con: duckdb.DuckDBPyConnection) -> VerifyReport:
    """One read of each collection (ids and references, and in `leads` the nested leads' marks),
    a batch at a time into the engine, compared there with the staged frames (`con`'s views)."""
    report = VerifyReport()
    con.execute("CREATE OR REPLACE TEMP TABLE stored_ids (collection VARCHAR, _id BLOB)")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE stored_references "
        "(collection VARCHAR, reference VARCHAR, target VARCHAR, ref BLOB)"
    )
    con.execute("CREATE OR REPLACE TEMP TABLE nested_leads (key BLOB, marked BOOLEAN)")
    con.execute("CREATE OR REPLACE TEMP TABLE rejected (key BLOB)")
    for name, collection in COLLECTIONS.items():
        projection = dict.fromkeys(collection.references, 1)
        if name == SOURCE_COLLECTION:
            projection.update({**MARK_PROJECTION, NESTED_FIELD: 1, "legacy_lead_id": 1})
        ids, references, nested = [], [], []
        for doc in db[name].find({}, projection or {"_id": 1}, batch_size=5000):
            if name == SOURCE_COLLECTION and NESTED_FIELD in doc:
                nested.append({"key": legacy_key(doc["_id"]), "marked": is_marked(doc)})
            if type(doc["_id"]) is not ObjectId:
                continue
            if not is_owned(name, doc):  # the application's own leads: what hangs on them points at them
                if NESTED_FIELD not in doc:
                    ids.append({"collection": APPLICATION_LEADS, "_id": doc["_id"]})
                continue
            ids.append({"collection": name, "_id": doc["_id"]})
            for column, target in collection.references.items():
                if type(doc.get(column)) is ObjectId:
                    references.append({"collection": name, "reference": column, "target": target, "ref": doc[column]})
            if len(ids) >= 10_000:
                _insert(con, "stored_ids", ids, _STORED)
                _insert(con, "stored_references", references, _REFERENCE)
                _insert(con, "nested_leads", nested, _NESTED)
        _insert(con, "stored_ids", ids, _STORED)
        _insert(con, "stored_references", references, _REFERENCE)
        _insert(con, "nested_leads", nested, _NESTED)
    rejects = [{"key": legacy_key(doc["_id"])} for doc in db[REJECTS_COLLECTION].find({}, {"_id": 1})]
    _insert(con, "rejected", rejects, {"key": "bytes"})
    nested, migrated, rejected, both = con.execute(
        """
        SELECT count(*), count(*) FILTER (WHERE marked), count(r.key), count(r.key) FILTER (WHERE marked)
        FROM nested_leads n LEFT JOIN (SELECT DISTINCT key FROM rejected) r ON r.key = n.key
        """
    ).fetchone()
    report.nested, report.migrated, report.rejected, report.marked_and_rejected = nested, migrated, rejected, both
    report.unaccounted = con.execute(
        "SELECT count(*) FROM nested_leads n WHERE NOT marked AND n.key NOT IN (SELECT key FROM rejected)"
    ).fetchone()[0]
    stale = {}
    for name in COLLECTIONS:
        expected, actual, missing = con.execute(
            f"""
            SELECT (SELECT count(*) FROM {name}),
                (SELECT count(*) FROM stored_ids WHERE collection = '{name}'),
                (SELECT count(*) FROM {name} f
                 WHERE f._id NOT IN (SELECT _id FROM stored_ids WHERE collection = '{name}'))
            """
        ).fetchone()
        report.collections[name] = CollectionCheck(expected, actual, missing)
        stale[name] = {
            ObjectId(row[0])
            for row in con.execute(
                f"SELECT _id FROM stored_ids WHERE collection = '{name}' AND _id NOT IN (SELECT _id FROM {name})"
            ).fetchall()
        }
    for name, ids in kept_stale(db, stale).items():
        report.collections[name].kept = len(ids)
    for name, column, count in con.execute(
        f"""
        SELECT r.collection, r.reference, count(*) FROM stored_references r
        WHERE r.ref NOT IN (
            SELECT _id FROM stored_ids s
            WHERE s.collection = r.target OR (r.target = '{SOURCE_COLLECTION}' AND s.collection = '{APPLICATION_LEADS}')
        )
        GROUP BY 1, 2
        """
    ).fetchall():
        report.dangling[f"{name}.{column}"] = count
    released = released_leads(db)
    con.register("released", pa.table({"key": pa.array(sorted(released), pa.binary())}))
    report.released = con.execute(
        "SELECT count(*) FROM nested_leads WHERE key IN (SELECT key FROM released)"
    ).fetchone()[0]
    return report


def _existing(db: Database, collection: str, ids: set) -> set:
    return {doc["_id"] for part in in_chunks(ids) for doc in db[collection].find({"_id": {"$in": part}}, {"_id": 1})}


def verify_scope(db: Database, con: duckdb.DuckDBPyConnection, scope: Scope, held: dict[str, set]) -> VerifyReport:
    """The same checks over a refresh's scope only: the source leads it split (each marked or
    rejected), the documents it staged (each stored), those its leads `held` before it (each gone,
    unless a rule keeps it), and where the staged documents' references lead. What lies outside was
    verified when it was written and nothing has touched it since. (The scope's frames are its size.)"""
    report = VerifyReport(
        scope=f"refresh scope: {len(scope.seeds)} source leads changed, {len(scope.gone)} gone, "
        f"{len(scope.companies | scope.personas)} tied to them"
    )
    nested = {
        legacy_key(doc["_id"]): is_marked(doc)
        for doc in find_exactly(db[SOURCE_COLLECTION], "_id", scope.seeds, MARK_PROJECTION, **NESTED_LEAD)
    }
    rejected = {
        legacy_key(doc["_id"]) for doc in find_exactly(db[REJECTS_COLLECTION], "_id", scope.changed, {"_id": 1})
    }
    _reconcile(report, nested, rejected)
    report.unaccounted += len(rejected - nested.keys())  # a reject whose source went

    wanted = {
        name: {ObjectId(row[0]) for row in con.execute(f"SELECT _id FROM {name}").fetchall()} for name in COLLECTIONS
    }
    present = {name: _existing(db, name, ids) for name, ids in wanted.items()}
    left = {name: _existing(db, name, set(held[name]) - wanted[name]) for name in wanted}
    kept = kept_stale(db, left)
    for name, ids in wanted.items():
        actual = present[name] | left[name]
        report.collections[name] = CollectionCheck(len(ids), len(actual), len(ids - present[name]), len(kept[name]))
    for name, collection in COLLECTIONS.items():
        for column, target in collection.references.items():
            rows = con.execute(f"SELECT DISTINCT {column} FROM {name} WHERE {column} IS NOT NULL").fetchall()
            targets = {ObjectId(row[0]) for row in rows}
            report.dangling[f"{name}.{column}"] = len(targets - _existing(db, target, targets))
    return report
