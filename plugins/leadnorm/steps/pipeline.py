"""The migration as steps over a run folder: plan, extract, split, resolve, validate, backup, load,
mark, prune, keys, verify.

Each step reads what the previous one left in the run folder (`leadnorm.steps.layout`) and
writes its own output there, so the DAG runs them as separate tasks passing only the folder's
path, and the command line runs them one after the other. Every step can be rerun: it rewrites
its own output, and the database steps write only what differs.

Nothing holds a whole collection: extract stages the source a batch at a time, split turns each
batch into Parquet tables (the lead-level documents encoded, the company and persona mentions),
the dedupe runs on the engine over those files (`leadnorm.transform.dedupe`, spilling beyond
its memory budget), and load, mark, keys and verify stream the staged tables back a batch at a
time.
"""

from __future__ import annotations

import importlib
import logging
import math
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import contextmanager, suppress
from pathlib import Path

import duckdb
import pyarrow as pa
from bson import ObjectId
from pymongo.database import Database

from leadnorm.config import backups_dir
from leadnorm.contract import (
    CLEANED_COLLECTION,
    NESTED_FIELD,
    REJECT_REASONS,
    REJECTS_COLLECTION,
    SOURCE_COLLECTION,
    legacy_key,
)
from leadnorm.errors import StagingError
from leadnorm.mongo import released_leads, retry_transient, source_id, split_bson
from leadnorm.schema import COLLECTIONS
from leadnorm.source import MARK_KINDS
from leadnorm.steps import extract, layout
from leadnorm.steps.allocation import bulk_allocation
from leadnorm.steps.backup import backup, backup_increment
from leadnorm.steps.changes import Changes, detect_changes, nothing_changed
from leadnorm.steps.feed import current_position, resume_after_run
from leadnorm.steps.load import (
    build_indexes_after_load,
    ensure_indexes,
    ensure_validator,
    key_clashes,
    load_collection,
    natural_key_columns,
    release_unique_keys,
)
from leadnorm.steps.mark import mark_migrated, write_rejects
from leadnorm.steps.progress import Progress
from leadnorm.steps.prune import prune
from leadnorm.steps.runplan import DEFAULT_BATCH_SIZE, STEPS, Resources, Settings
from leadnorm.steps.runstate import key_store_complete, set_key_store_complete
from leadnorm.steps.runstore import RunFolder, staging_path
from leadnorm.steps.scope import (
    Scope,
    find_scope,
    lead_level_held,
    leads_referencing,
    occupied_outside,
    save_lead_keys,
    stored_for,
)
from leadnorm.steps.verify import VerifyReport, verify, verify_scope
from leadnorm.transform import columns, dedupe, engine
from leadnorm.transform.clean import Warnings
from leadnorm.transform.ids import lead_id
from leadnorm.transform.split import LEAD_LEVEL, MENTIONS, TABLE_KINDS, split_raw

log = logging.getLogger("leadnorm")

PARTITION_LEADS = 25_000
BACKED_UP = [
    SOURCE_COLLECTION,
    *(c for c in COLLECTIONS if c != SOURCE_COLLECTION),
    REJECTS_COLLECTION,
    CLEANED_COLLECTION,
]
IDS = {"_id": "oid"}
REWRITTEN_KINDS = {"_id": "key"}  # source leads by legacy key
PARTITION_KEY_SCHEMA = pa.schema([("key", pa.binary())])


def backup_step(db: Database, run: RunFolder, backup_dir: Path | None = None) -> Path:
    """Once per run, before its first write (a rerun of the run keeps its first backup): of a scope's
    run, an increment of what it may change (`touched`); of any other, a full backup."""
    taken = run.read_result(layout.Results.BACKUP)
    if taken and Path(taken["folder"]).exists():
        return Path(taken["folder"])
    directory = backup_dir or backups_dir()
    found = read_scope(run)
    if found is None:
        folder = backup(db, directory, BACKED_UP)
    else:
        folder = backup_increment(db, directory, touched(db, run, found))
    log.info("backup: %s", folder)
    run.write_result(layout.Results.BACKUP, {"folder": str(folder)})
    return folder


def scope_ids(run: RunFolder, collection: str) -> set[ObjectId]:
    """The documents of `collection` a scope's run compares, writes or deletes: those its leads held
    before the run, and those it staged."""
    held = run.read_table(layout.related(collection))["_id"].to_pylist()
    staged = run.read_table(layout.frame(collection), ["_id"])["_id"].to_pylist()
    return {ObjectId(i) for i in (*held, *staged)}


CLASH_KINDS = {"fields": "text", "_id": "key"}  # a key: any id a client wrote


def stage_clashes(run: RunFolder, name: str, clashes: list[tuple[tuple, set]]) -> None:
    rows = [{"fields": ",".join(fields), "_id": i} for fields, ids in clashes for i in ids]
    run.write_table(layout.clashes(name), columns.table(rows, CLASH_KINDS), columns.schema(CLASH_KINDS))


def staged_clashes(run: RunFolder, name: str) -> list[tuple[tuple, set]]:
    found: dict[tuple, set] = {}
    for row in columns.rows_of(run.read_table(layout.clashes(name)), CLASH_KINDS):
        found.setdefault(tuple(row["fields"].split(",")), set()).add(row["_id"])
    return list(found.items())


def touched(db: Database, run: RunFolder, found: Scope) -> dict[str, set[bytes]]:
    """Every id a scope's run may write or delete, by collection, as legacy keys: in each of the nine,
    its `scope_ids` and the stored documents a staged unique key is taken from; in `leads` also the
    source leads it marks; in `migration_rejects`, those of the leads it split or lost."""
    ids: dict[str, set[bytes]] = {}
    for name in COLLECTIONS:
        found_ids = scope_ids(run, name)
        clashes = list(key_clashes(db, name, run.table_batches(layout.frame(name), natural_key_columns(name))))
        stage_clashes(run, name, clashes)  # the load releases them: found once, before any write
        for _, clashing in clashes:
            found_ids |= clashing
        ids[name] = {legacy_key(i) for i in found_ids}
    for partition in range(_plan(run)["partitions"]):
        ids[SOURCE_COLLECTION] |= set(run.read_table(layout.marks(partition), ["_id"])["_id"].to_pylist())
    ids[REJECTS_COLLECTION] = set(found.changed)
    return ids


def default_partitions(documents: int) -> int:
    """One partition per 25,000 nested leads, at most 8."""
    return max(1, min(8, math.ceil(documents / PARTITION_LEADS)))


def plan_step(db: Database, run: RunFolder, partitions: int = 0, *, changes: Changes | None = None) -> list[int]:
    """Decide what the run reads and in how many partitions; returns the partition numbers.

    A refresh given its `changes` reads its scope (`leadnorm.steps.scope`) when the key store
    is complete; otherwise the run reads the whole source. `partitions` 0 picks from the size.
    More than one partition splits the source by `_id` ranges, staged as the ids they hold
    (type-exact, and fixed for the run however the source changes meanwhile). Records where the
    source's change stream stands before anything is read: the next refresh reads on from there."""
    keys = None
    position = changes.position if changes is not None else current_position(db)
    if changes is not None and key_store_complete(db):
        found, mentions = find_scope(db, changes)
        stage_stored_mentions(run, found, mentions)
        run.write_table(layout.SCOPE, found.to_table(), found.to_table().schema)
        run.write_result(layout.Results.SCOPE, found.summary())
        log.info(
            "refresh scope: %d source leads changed, %d gone; %d more tied by a company, %d by a persona (their"
            " mentions from the key store)",
            len(found.seeds),
            len(found.gone),
            len(found.companies),
            len(found.personas),
        )
        keys = sorted(found.seeds)
        documents = len(keys)
    else:
        documents = extract.count_nested_leads(db)
    parts = partitions or default_partitions(documents)
    if keys is None and parts > 1:
        keys = extract.source_keys(db)
        documents = len(keys)
    if keys is not None:
        size = max(1, math.ceil(len(keys) / parts))
        for number in range(parts):
            part = keys[number * size : (number + 1) * size]
            table = pa.table({"key": pa.array(part, pa.binary())})
            run.write_table(layout.partition_keys(number), table, PARTITION_KEY_SCHEMA)
    run.write_result(
        layout.Results.PLAN,
        {"partitions": parts, "whole_source": keys is None, "documents": documents, "position": position},
    )
    return list(range(parts))


STORED_LEAD_KINDS = {"legacy_lead_id": "key", "_id": "oid"}


def stage_stored_mentions(run: RunFolder, found: Scope, mentions: dict[str, list[dict]]) -> None:
    """The mentions the scope's unchanged leads bring from the key store, as split stages them, and
    the ids of those leads' normalized leads."""
    for name in MENTIONS:
        kinds = TABLE_KINDS[name]
        table = pa.Table.from_pylist(mentions.get(name, []), schema=columns.schema(kinds))
        run.write_table(layout.stored(name), table, columns.schema(kinds))
    unchanged = sorted(found.companies | found.personas)
    leads = pa.table(
        {
            "legacy_lead_id": pa.array(unchanged, pa.binary()),
            "_id": pa.array([lead_id(source_id(key)).binary for key in unchanged], pa.binary(12)),
        }
    )
    run.write_table(layout.STORED_LEADS, leads, columns.schema(STORED_LEAD_KINDS))


def _plan(run: RunFolder) -> dict:
    plan = run.read_result(layout.Results.PLAN)
    if plan is None:
        raise StagingError(f"{run.root}: no plan yet; run the plan step first")
    return plan


@bulk_allocation()
def extract_step(db: Database, run: RunFolder, batch_size: int = DEFAULT_BATCH_SIZE, partition: int = 0) -> int:
    """Stage one partition's nested leads as raw BSON batch files (their content, as the application
    wrote it) and each lead's fingerprint and marks; returns how many leads. The leads the application
    took over (`leadnorm.steps.research`) are the pipeline's no more: a run without a scope leaves
    them out (a scope never holds them)."""
    plan = _plan(run)
    released = released_leads(db) if read_scope(run) is None else set()
    if plan["whole_source"]:
        progress = Progress("extract", plan["documents"])
        batches = extract.source_batches(db, batch_size)
    else:
        keys = run.read_table(layout.partition_keys(partition))["key"].to_pylist()
        progress = Progress(f"extract {partition}" if plan["partitions"] > 1 else "extract", len(keys))
        batches = extract.source_batches_of(db, keys, batch_size)
    run.clear_batches(partition)

    def staged():
        number = 0
        for batch in batches:
            leads = [lead for lead in batch if not released or legacy_key(lead.source_id) not in released]
            if leads:
                run.write_batch(partition, number, b"".join(lead.content for lead in leads))
                number += 1
                progress.advance(len(leads))
                yield columns.batch([lead.row() for lead in leads], MARK_KINDS)

    run.write_table(layout.marks(partition), staged(), columns.schema(MARK_KINDS))
    run.write_result(layout.Results.extracted(partition), {"documents": progress.done})
    return progress.done


@bulk_allocation()
def split_step(run: RunFolder, partition: int = 0) -> int:
    """Split one partition's staged leads into the tables dedupe and load take; pure but for the files."""
    plan = _plan(run)
    extracted = run.read_result(layout.Results.extracted(partition))
    if extracted is None:
        raise StagingError(f"{run.root}: partition {partition} not extracted yet; run the extract step first")
    progress = Progress(f"split {partition}" if plan["partitions"] > 1 else "split", extracted["documents"])
    warnings = Warnings()
    schemas = {layout.split(partition, name): columns.schema(kinds) for name, kinds in TABLE_KINDS.items()}
    with run.table_writers(schemas) as writers:
        for path in run.batch_paths(partition):
            raws = split_bson(path.read_bytes())
            mentions = split_raw(raws)
            for name, table in mentions.tables.items():
                writers[layout.split(partition, name)].write_table(table)
            warnings.update(mentions.warnings)
            progress.advance(len(raws))
    run.write_result(layout.Results.split(partition), {"warnings": dict(warnings)})
    return progress.done


@contextmanager
def opened_engine(run: RunFolder, *, split: bool = False, frames: bool = False, rewritten: bool = False):
    """The engine over this run's staged tables (the split ones of every partition, or the final
    frames), spilling into a private folder of the run that goes with the step. With `rewritten`,
    the outcomes are those of what the frames hold: the rejects and the leads rewritten."""
    spill = Path(tempfile.mkdtemp(prefix="leadnorm-engine-"))  # 0700; local even when staging is not
    con = engine.connect(spill)
    try:
        if not isinstance(run.root, Path):
            con.register_filesystem(run.root.fs)
        if split:
            split_views(con, run, rewritten=rewritten)
        kept = [str(run.table_path(layout.KEPT_REFERENCES))] if run.has_table(layout.KEPT_REFERENCES) else []
        engine.view(con, "kept_references", _files(run, kept), columns.schema(KEPT_KINDS))
        if rewritten:
            rewritten_files = _files(run, [str(run.table_path(layout.REWRITTEN))])
            engine.view(con, "rewritten", rewritten_files, columns.schema(REWRITTEN_KINDS))
            con.execute(
                "CREATE OR REPLACE VIEW outcomes AS SELECT * FROM split_outcomes "
                "WHERE outcome <> 'migrated' OR _id IN (SELECT _id FROM rewritten)"
            )
        if frames:
            for name, kinds in dedupe.FINAL_KINDS.items():
                engine.view(con, name, _files(run, [str(run.table_path(layout.frame(name)))]), columns.schema(kinds))
        yield con
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)


def split_views(con: duckdb.DuckDBPyConnection, run: RunFolder, *, rewritten: bool = False) -> None:
    """The tables split hands on, over every partition, as views; in a refresh of a scope, the mentions
    its unchanged leads bring from the key store besides, and the lead-level tables of those whose
    company or persona id moved. `lead_ids` maps every source lead with mentions to its lead's id."""
    for name, kinds in TABLE_KINDS.items():
        files = run.table_files(layout.splits(name))
        extras = [layout.stored(name)] if name in MENTIONS else [layout.relinked(name)] if name in RELINKED else []
        files += [str(run.table_path(extra)) for extra in extras if run.has_table(extra)]
        engine.view(
            con,
            "split_outcomes" if rewritten and name == "outcomes" else name,
            _files(run, files),
            columns.schema(kinds),
        )
    stored = [str(run.table_path(layout.STORED_LEADS))] if run.has_table(layout.STORED_LEADS) else []
    engine.view(con, "stored_leads", _files(run, stored), columns.schema(STORED_LEAD_KINDS))
    con.execute(
        "CREATE OR REPLACE TEMP VIEW lead_ids AS SELECT legacy_lead_id, _id FROM leads UNION ALL "
        "SELECT legacy_lead_id, _id FROM stored_leads WHERE legacy_lead_id NOT IN (SELECT legacy_lead_id FROM leads)"
    )


def _files(run: RunFolder, paths: list[str]) -> list[str]:
    """Paths as the engine reads them: local ones as they are, object storage by its protocol."""
    if isinstance(run.root, Path):
        return paths
    protocol = run.root.fs.protocol
    protocol = protocol[0] if isinstance(protocol, tuple) else protocol
    return [f"{protocol}://{staging_path(path).path}" for path in paths]


def resolve_step(run: RunFolder, db: Database | None = None) -> dict:
    """Resolve every partition's mentions at once, so companies and personas dedupe exactly
    across partitions; keep the company and persona ids already stored in `db` (when given);
    stage the nine collections in `_id` order and each lead's identity keys; returns the counts."""
    partitions = range(_plan(run)["partitions"])
    for partition in partitions:
        if run.read_result(layout.Results.split(partition)) is None:
            raise StagingError(f"{run.root}: partition {partition} not split yet; run the split step first")
    with opened_engine(run, split=True) as con:
        dedupe.resolve_companies(con)
        dedupe.resolve_personas(con)
        found = read_scope(run)
        stored = db is not None and (
            _stage_stored_references(con, db) if found is None else _stage_scope_references(con, db, run, found)
        )
        for kind, column in (("company", "company_id"), ("persona", "persona_id")):
            if stored:
                dedupe.keep_ids(con, kind, column)
            else:
                dedupe.no_kept_ids(con, kind)
        dedupe.link_leads(con)
        narrowed = db is not None and found is not None
        if narrowed:
            _stage_rewritten(con, db, run, found)
        rows = {}
        for name, batches in dedupe.collections(con, rewritten=narrowed).items():
            rows[name] = run.write_table(layout.frame(name), batches, columns.schema(dedupe.FINAL_KINDS[name]))
        # The key store changes only for the leads the run split (a scope's: the changed ones).
        keys = dedupe.lead_keys(con, where="l.legacy_lead_id IN (SELECT key FROM scope_seeds)" if narrowed else "true")
        run.write_table(layout.LEAD_KEYS, keys, keys.schema)
        outcomes = dict(con.execute("SELECT coalesce(reject_reason, ''), count(*) FROM outcomes GROUP BY 1").fetchall())
    warnings = Warnings()
    for partition in partitions:
        warnings.update(run.read_result(layout.Results.split(partition))["warnings"])
    migrated = outcomes.pop("", 0)
    rejected = {reason: outcomes[reason] for reason in REJECT_REASONS if reason in outcomes}
    return run.write_result(
        layout.Results.NORMALIZE,
        {
            "nested": migrated + sum(rejected.values()),
            "migrated": migrated,
            "rejected": sum(rejected.values()),
            "reject_reasons": rejected,
            "rows": rows,
            "warnings": dict(sorted(warnings.items())),
        },
    )


REFERENCE_KINDS = {"lead_id": "oid", "company_id": "oid", "persona_id": "oid"}
COUNT_KINDS = {"reference": "text", "id": "oid", "n": "int"}


def _stage_stored_references(con: duckdb.DuckDBPyConnection, db: Database) -> bool:
    """The references every stored lead holds, into the engine (`stored_refs`: the normalized
    leads', `lead_counts`: everyone's, uploaded leads included); whether there are any."""
    found = db[SOURCE_COLLECTION].find(
        {"$or": [{"company_id": {"$exists": True}}, {"persona_id": {"$exists": True}}]},
        {"company_id": 1, "persona_id": 1, "legacy_lead_id": 1, NESTED_FIELD: 1},
        batch_size=5000,
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE all_refs (lead_id BLOB, company_id BLOB, persona_id BLOB, normalized BOOLEAN)"
    )
    rows = []

    def flush() -> None:
        if rows:
            kinds = {**REFERENCE_KINDS, "normalized": "bool"}
            con.register("refs_batch", columns.table(rows, kinds))
            con.execute("INSERT INTO all_refs SELECT * FROM refs_batch")
            con.unregister("refs_batch")
            rows.clear()

    for lead in found:
        if NESTED_FIELD in lead:  # a nested lead's own `company_id` is its data, no reference
            continue
        row = {"lead_id": lead["_id"], "normalized": "legacy_lead_id" in lead}
        for column in ("company_id", "persona_id"):
            row[column] = lead.get(column) if _is_oid(lead.get(column)) else None
        rows.append(row)
        if len(rows) >= 10_000:
            flush()
    flush()
    con.execute(
        "CREATE OR REPLACE TEMP VIEW stored_refs AS "
        "SELECT lead_id, company_id, persona_id FROM all_refs WHERE normalized"
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE lead_counts AS
        SELECT 'company_id' AS reference, company_id AS id, count(*) AS n FROM all_refs
        WHERE company_id IS NOT NULL GROUP BY 2
        UNION ALL
        SELECT 'persona_id', persona_id, count(*) FROM all_refs WHERE persona_id IS NOT NULL GROUP BY 2
        """
    )
    con.execute("CREATE OR REPLACE TEMP TABLE occupied (reference VARCHAR, id BLOB)")
    return con.execute("SELECT count(*) FROM all_refs WHERE normalized").fetchone()[0] > 0


def _is_oid(value) -> bool:
    return type(value) is ObjectId


def _stage_scope_references(con: duckdb.DuckDBPyConnection, db: Database, run: RunFolder, found: Scope) -> bool:
    """The same over a refresh's scope: what its leads hold is read before any write and staged
    (the load compares and prunes only those documents); ids that leads outside it hold are
    never given out (`occupied`)."""
    stored = stored_for(db, found)
    for name in ("companies", "personas", "technographics"):
        _write_ids(run, layout.related(name), stored.related[name])
    refs = [
        {"lead_id": lead, "company_id": company, "persona_id": persona}
        for lead, company, persona in stored.refs[["_id", "company_id", "persona_id"]].itertuples(
            index=False, name=None
        )
    ]
    con.register("stored_refs", columns.table(refs, REFERENCE_KINDS))
    counts = []  # every lead's references counted, uploaded ones too; needed only where entities merge
    for kind, column in (("company", "company_id"), ("persona", "persona_id")):
        merging = [ObjectId(i) for i in dedupe.merging_ids(con, kind, column)]
        held_by = Counter(lead[column] for lead in leads_referencing(db, column, merging))
        counts += [{"reference": column, "id": entity, "n": n} for entity, n in held_by.items()]
    con.register("lead_counts", columns.table(counts, COUNT_KINDS))
    occupied = []
    for kind, column, collection in (("company", "company_id", "companies"), ("persona", "persona_id", "personas")):
        derived = {ObjectId(row[0]) for row in con.execute(f"SELECT _id FROM {kind}_ids").fetchall()}
        fresh = derived - set(stored.related[collection])
        occupied += [{"reference": column, "id": entity} for entity in occupied_outside(db, found, column, fresh)]
    con.register("occupied", columns.table(occupied, {"reference": "text", "id": "oid"}))
    return bool(refs or occupied)


def _stage_rewritten(con: duckdb.DuckDBPyConnection, db: Database, run: RunFolder, found: Scope) -> None:
    """Of the scope's leads, those whose lead-level documents change (`rewritten`): the new and
    changed ones, and those whose company or persona id moved. Those last are read from the source
    and split again (`relink`); the other leads are in the scope for their companies' and personas'
    sake, their documents stay as they are, and are neither staged nor read. Stages what the
    rewritten (and the gone) leads hold before the run writes."""
    con.register("scope_seeds", pa.table({"key": pa.array(sorted(found.seeds), pa.binary())}))
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE rewritten AS
        SELECT l.legacy_lead_id, l._id FROM lead_ids l
        LEFT JOIN stored_refs s ON s.lead_id = l._id
        LEFT JOIN company_by_lead c ON c.legacy_lead_id = l.legacy_lead_id
        LEFT JOIN persona_by_lead p ON p.legacy_lead_id = l.legacy_lead_id
        WHERE l.legacy_lead_id IN (SELECT key FROM scope_seeds) OR s.lead_id IS NULL
            OR (c.legacy_lead_id IS NOT NULL AND s.company_id IS DISTINCT FROM c.company_id)
            OR (p.legacy_lead_id IS NOT NULL AND s.persona_id IS DISTINCT FROM p.persona_id)
        """
    )
    moved = [
        row[0]
        for row in con.execute(
            "SELECT legacy_lead_id FROM rewritten WHERE legacy_lead_id NOT IN (SELECT key FROM scope_seeds) ORDER BY 1"
        ).fetchall()
    ]
    _relink(con, db, run, moved)
    keys = con.sql("SELECT legacy_lead_id AS _id FROM rewritten ORDER BY 1").to_arrow_table()
    run.write_table(layout.REWRITTEN, keys.cast(columns.schema(REWRITTEN_KINDS)), columns.schema(REWRITTEN_KINDS))
    held = con.execute(  # a stored lead no longer produced (gone, or rejected now) is stale with all it holds
        "SELECT lead_id FROM stored_refs WHERE lead_id IN (SELECT _id FROM rewritten) "
        "OR lead_id NOT IN (SELECT _id FROM lead_ids)"
    ).fetchall()
    for name, ids in lead_level_held(db, [ObjectId(row[0]) for row in held]).items():
        _write_ids(run, layout.related(name), ids)


RELINKED = (*LEAD_LEVEL, "outcomes")
KEPT_KINDS = {"reference": "text", "id": "bytes"}


def _relink(con: duckdb.DuckDBPyConnection, db: Database, run: RunFolder, moved: list[bytes]) -> None:
    """The unchanged leads whose company or persona id moved: read from the source and split again,
    their lead-level tables added to the engine's (their mentions are there already, from the key
    store); the company or persona the scope does not resolve for them stays the one they point at."""
    if not moved and not run.has_table(layout.KEPT_REFERENCES):  # (a rerun rewrites what it staged)
        return
    contents = [lead.content for batch in extract.source_batches_of(db, moved, DEFAULT_BATCH_SIZE) for lead in batch]
    split = split_raw(contents)
    for name in RELINKED:
        run.write_table(layout.relinked(name), split.tables[name], columns.schema(TABLE_KINDS[name]))
    split_views(con, run)
    kept = []
    for kind, column in (("company", "company_id"), ("persona", "persona_id")):
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE kept_{kind} AS
            SELECT r.legacy_lead_id, s.{column} FROM rewritten r JOIN stored_refs s ON s.lead_id = r._id
            WHERE s.{column} IS NOT NULL AND r.legacy_lead_id NOT IN (SELECT key FROM scope_seeds)
                AND r.legacy_lead_id NOT IN (SELECT legacy_lead_id FROM {kind}_by_lead)
            """
        )
        con.execute(f"INSERT INTO {kind}_by_lead SELECT * FROM kept_{kind}")
        kept += [
            {"reference": column, "id": row[0]}
            for row in con.execute(f"SELECT DISTINCT {column} FROM kept_{kind}").fetchall()
        ]
    run.write_table(layout.KEPT_REFERENCES, columns.table(kept, KEPT_KINDS), columns.schema(KEPT_KINDS))


def _write_ids(run: RunFolder, name: str, ids: list) -> None:
    run.write_table(name, columns.table([{"_id": i} for i in ids], IDS), columns.schema(IDS))


def read_scope(run: RunFolder) -> Scope | None:
    """The run's refresh scope, or None when it covers the whole source."""
    return Scope.from_table(run.read_table(layout.SCOPE)) if run.read_result(layout.Results.SCOPE) else None


def validate_step(run: RunFolder, *, dry_run: bool = False) -> dict:
    """The Great Expectations gate: raises before any write when a critical expectation fails.
    A passing gate's Data Docs are written in the background while the run goes on
    (`wait_for_data_docs`); a failing one's before it raises."""
    from leadnorm.quality.validate import gate_on_staged

    with opened_engine(run, split=True, frames=True, rewritten=read_scope(run) is not None) as con:
        result, publication = gate_on_staged(con, run_name=run.root.name, dry_run=dry_run)
    if result.passed:
        _in_background(publication.write, "write-data-docs")
    else:
        publication.write()
    log.info("%s", result.report())
    run.write_result(
        layout.Results.VALIDATE,
        {
            "passed": result.passed,
            "docs_index": str(result.docs_index),
            "failures": result.failures,
            "warnings": result.warnings,
        },
    )
    result.raise_if_failed()
    return run.read_result(layout.Results.VALIDATE)


@bulk_allocation()
def load_step(
    db: Database, run: RunFolder, collection: str, *, dry_run: bool = False, batch_size: int = DEFAULT_BATCH_SIZE
) -> dict:
    """The diff-load, indexes first so unique keys are enforced while writing; into an empty
    collection, a bulk load with its indexes built after it (a third faster, and a duplicate
    still fails the index build)."""
    indexes = list(COLLECTIONS[collection].indexes)
    frame = layout.frame(collection)
    scoped = read_scope(run) is not None
    # A scope's run follows a complete one, so the collection has its indexes (an empty one too); only
    # a whole-source run asks whether it is empty (one document read: on SecantusDB, a collection scan).
    empty = not scoped and db[collection].find_one({}, {"_id": 1}) is None
    bulk = empty and not dry_run
    if not dry_run:
        set_key_store_complete(db, False)  # until the run's last write
        ensure_validator(db, collection)
        if not bulk:
            ensure_indexes(db, collection, indexes)
    ids = list(scope_ids(run, collection)) if scoped else None
    released = 0
    if not empty:  # an empty collection holds no key to give up
        if run.has_table(layout.clashes(collection)):  # found by the backup of a scope's run
            clashes = staged_clashes(run, collection)
        else:
            clashes = key_clashes(db, collection, run.table_batches(frame, natural_key_columns(collection), batch_size))
        released = release_unique_keys(db, collection, clashes, dry_run=dry_run)
    rows = run.table_batches(frame, ["_id", "document"], batch_size)
    result = load_collection(
        db, collection, rows, run.table_rows(frame), dry_run=dry_run, batch_size=batch_size, ids=ids
    )
    result.released = released
    if bulk:
        build_indexes_after_load(db, collection, indexes)
    stale = columns.table([{"_id": i} for i in result.stale_ids if _is_oid(i)], IDS)
    run.write_table(layout.stale(collection), stale, columns.schema(IDS))
    log.info(
        "load %s: %d inserted, %d replaced, %d unchanged, %d stale",
        collection,
        result.inserted,
        result.replaced,
        result.unchanged,
        len(result.stale_ids),
    )
    return run.write_result(layout.Results.loaded(collection), result.as_dict())


def prune_step(db: Database, run: RunFolder, *, dry_run: bool = False) -> dict:
    """After every load: delete what the source no longer produces (see `leadnorm.steps.prune`)."""
    stale = {name: {ObjectId(i) for i in run.read_table(layout.stale(name))["_id"].to_pylist()} for name in COLLECTIONS}
    deleted = prune(db, stale, dry_run=dry_run)
    log.info("prune: %s", ", ".join(f"{count} {name}" for name, count in deleted.items() if count) or "nothing stale")
    return run.write_result(layout.Results.PRUNE, deleted)


def keys_step(db: Database, run: RunFolder, *, dry_run: bool = False) -> int:
    """The run's last write: record its leads' identity keys, then call the key store complete with
    where the next refresh resumes the change stream (`resume_after_run`), so it can work on its
    scope alone and read only the changes since."""
    written = save_lead_keys(db, run.table_batches(layout.LEAD_KEYS), read_scope(run), dry_run=dry_run)
    if not dry_run:
        set_key_store_complete(db, True, resume_after_run(db, _plan(run).get("position")))
    return written


@bulk_allocation()
def mark_step(db: Database, run: RunFolder, *, dry_run: bool = False, batch_size: int = DEFAULT_BATCH_SIZE) -> dict:
    """Mark the migrated source leads and unmark the rejected ones, from what extract found on them
    (no second read of the source), then make `migration_rejects` hold exactly this run's rejects."""
    partitions = range(_plan(run)["partitions"])
    outcomes = (
        (batch, marks)
        for partition in partitions
        for batch, marks in zip(
            run.table_batches(layout.split(partition, "outcomes"), rows=batch_size),
            run.table_batches(layout.marks(partition), rows=batch_size),
        )
    )
    result, rejects = mark_migrated(db, outcomes, dry_run=dry_run, batch_size=batch_size)
    result = write_rejects(db, rejects, result, dry_run=dry_run, scope=read_scope(run))
    return run.write_result(layout.Results.MARK, result.as_dict())


@bulk_allocation()
def verify_step(db: Database, run: RunFolder) -> VerifyReport:
    found = read_scope(run)
    with opened_engine(run, frames=True) as con:
        if found is None:
            report = verify(db, con)
        else:  # what the scope held before the run, and what it staged
            held = {
                name: {ObjectId(i) for i in run.read_table(layout.related(name))["_id"].to_pylist()}
                for name in COLLECTIONS
            }
            report = verify_scope(db, con, found, held)
    log.debug("%s", report.render())  # the run's summary shows it, and `verify` prints it
    run.write_result(layout.Results.VERIFY, {"ok": report.ok, "text": report.render()})
    return report


# While a thread works beside the steps, the interpreter switches threads every 0.5 ms instead of
# 5: the steps' reads, each waiting for the GIL after its reply, then wait a tenth as long.
BACKGROUND_SWITCH_S = 0.0005
_background: list[tuple[threading.Thread, list[BaseException]]] = []


def _in_background(work, name: str, *, errors_matter: bool = True) -> None:
    """`work()` in a thread beside the steps; `wait_for_data_docs` joins it and raises what it raised."""
    errors: list[BaseException] = []

    def run() -> None:
        usual = sys.getswitchinterval()
        sys.setswitchinterval(min(usual, BACKGROUND_SWITCH_S))
        try:
            work()
        except BaseException as exc:
            errors.append(exc)
        finally:
            sys.setswitchinterval(usual)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    if errors_matter:
        _background.append((thread, errors))


def wait_for_data_docs() -> None:
    """Until the Data Docs the gate writes in the background are written; raises what failed."""
    while _background:
        thread, errors = _background.pop()
        thread.join()
        if errors:
            raise errors[0]


def import_gate_in_background() -> None:
    """Great Expectations takes seconds of CPU to import: a thread does it while plan, extract
    and resolve wait on the server, and the gate finds it imported (or imports it itself, raising
    whatever went wrong)."""
    _in_background(lambda: importlib.import_module("leadnorm.quality.validate"), "import-gate", errors_matter=False)


# --- the actions of `leadnorm.steps.runplan.STEPS`: a step's function of the run's resources ---


def backup_action(res: Resources, _=None) -> Path:
    return backup_step(res.db, res.run, res.settings.backup_dir)


def plan_action(res: Resources, _=None) -> list[int]:
    changes = res.changes
    if changes is None and res.settings.refresh:
        changes = detect_changes(res.db)
    return plan_step(res.db, res.run, res.settings.partitions, changes=changes)


def extract_action(res: Resources, partition: int) -> int:
    return extract_step(res.db, res.run, res.settings.batch_size, partition)


def split_action(res: Resources, partition: int) -> int:
    return split_step(res.run, partition)


def resolve_action(res: Resources, _=None) -> dict:
    return resolve_step(res.run, res.db)


def validate_action(res: Resources, _=None) -> dict:
    return validate_step(res.run, dry_run=res.settings.dry_run)


def load_action(res: Resources, collection: str) -> dict:
    return load_step(res.db, res.run, collection, dry_run=res.settings.dry_run, batch_size=res.settings.batch_size)


def mark_action(res: Resources, _=None) -> dict:
    dry_run = res.settings.dry_run
    marked = mark_step(res.db, res.run, dry_run=dry_run, batch_size=res.settings.batch_size)
    prune_step(res.db, res.run, dry_run=dry_run)
    keys_step(res.db, res.run, dry_run=dry_run)
    return marked


def verify_action(res: Resources, _=None) -> VerifyReport:
    return verify_step(res.db, res.run)


def run_steps(res: Resources) -> dict[str, object]:
    """Every step of the plan in this process, partitions and collections one after the other,
    each timed and run again after a transient network error; returns each step's last result."""
    timings: dict[str, float] = {}
    results: dict[str, object] = {}
    if not res.settings.skip_validation:
        import_gate_in_background()
    try:
        for step in STEPS:
            if not step.runs(res.settings):
                continue
            started = time.perf_counter()
            try:
                for item in step.items(res):
                    results[step.name] = retry_transient(res.db, lambda: step.run(res, item), step.name)  # noqa: B023
            finally:
                timings[step.name] = time.perf_counter() - started
                res.run.write_result(layout.Results.TIMINGS, timings)
    except BaseException:
        with suppress(Exception):  # the run's own failure is the one to report
            wait_for_data_docs()
        raise
    wait_for_data_docs()
    return results


def migrate(
    db: Database,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    partitions: int = 1,
    dry_run: bool = False,
    backup_dir: Path | None = None,
    skip_validation: bool = False,
    run: RunFolder | None = None,
    changes: Changes | None = None,
    skip: frozenset[str] = frozenset(),
) -> tuple[RunFolder, VerifyReport | None]:
    """The whole migration in this process: the steps the DAG runs as tasks. Given a refresh's
    `changes`, it works on their scope alone when it can (see `plan_step`)."""
    settings = Settings(
        batch_size=batch_size,
        partitions=partitions,
        dry_run=dry_run,
        skip_validation=skip_validation,
        backup_dir=backup_dir,
        skip=skip,
    )
    res = Resources(db, (run or RunFolder.new()).create(), settings, changes)
    return res.run, run_steps(res).get("verify")


def refresh(db: Database, **options) -> tuple[Changes, RunFolder | None, VerifyReport | None]:
    """A migration that runs only when the source changed since the last run (by content).
    With nothing new, changed or gone it writes nothing, not even a backup."""
    changes = detect_changes(db)
    log.info("%s", changes.render())
    if nothing_changed(db, changes, dry_run=options.get("dry_run", False)):
        return changes, None, None
    run, report = migrate(db, changes=changes, **options)
    return changes, run, report


def verify_database(db: Database, batch_size: int = DEFAULT_BATCH_SIZE, run: RunFolder | None = None) -> VerifyReport:
    """`python -m leadnorm verify`: the whole source extracted and normalized again (keeping the
    company and persona ids stored) into a run folder of its own, compared with the database, the
    folder removed. Writes nothing to the database."""
    run = (run or RunFolder.new(command="verify")).create(command="verify")
    try:
        settings = Settings(batch_size=batch_size, skip_validation=True, skip=frozenset({"backup", "load", "mark"}))
        return run_steps(Resources(db, run, settings))["verify"]
    finally:
        run.remove()
