"""The migration as steps over a run folder: backup, extract, normalize, validate, load, mark, verify.

Each step reads what the previous one left in the run folder and writes its own
output there, so the DAG runs them as separate tasks passing only the folder's path,
and the command line runs them one after the other. Every step can be rerun: it
rewrites its own output, and the database steps write only what differs.
"""

from __future__ import annotations

import importlib
import logging
import math
import threading
import time
from collections import Counter
from contextlib import suppress
from dataclasses import fields
from pathlib import Path

import pandas as pd
from pymongo.database import Database

from leadnorm.config import backups_dir, reports_dir
from leadnorm.contract import CLEANED_COLLECTION, NESTED_FIELD, REJECTS_COLLECTION, SOURCE_COLLECTION
from leadnorm.errors import StagingError
from leadnorm.mongo import retry_transient
from leadnorm.schema import COLLECTIONS
from leadnorm.steps import extract
from leadnorm.steps.backup import backup
from leadnorm.steps.changes import Changes, detect_changes
from leadnorm.steps.load import build_indexes_after_load, ensure_indexes, load_collection
from leadnorm.steps.mark import fingerprints_by_source, mark_migrated, write_rejects
from leadnorm.steps.progress import Progress
from leadnorm.steps.prune import prune
from leadnorm.steps.runstore import RunFolder
from leadnorm.steps.scope import (
    Scope,
    find_scope,
    key_store_complete,
    occupied_outside,
    save_lead_keys,
    set_key_store_complete,
    stored_for,
)
from leadnorm.steps.verify import VerifyReport, verify, verify_scope
from leadnorm.transform.clean import Warnings
from leadnorm.transform.normalize import resolve_with_keys
from leadnorm.transform.resolve import Normalized, rejects_of
from leadnorm.transform.split import Mentions, split_batch, split_documents
from leadnorm.transform.stable_ids import keep_ids

log = logging.getLogger("leadnorm")

DEFAULT_BATCH_SIZE = 1000
PARTITION_LEADS = 25_000
BACKED_UP = [
    SOURCE_COLLECTION,
    *(c for c in COLLECTIONS if c != SOURCE_COLLECTION),
    REJECTS_COLLECTION,
    CLEANED_COLLECTION,
]


def backup_step(db: Database, run: RunFolder, backup_dir: Path | None = None) -> Path:
    """Once per run: a rerun of the run keeps its first backup, taken before any of its writes."""
    taken = run.read_result("backup")
    if taken and Path(taken["folder"]).exists():
        return Path(taken["folder"])
    folder = backup(db, backup_dir or backups_dir(), BACKED_UP)
    log.info("backup: %s", folder)
    run.write_result("backup", {"folder": str(folder)})
    return folder


def default_partitions(documents: int) -> int:
    """One partition per 25,000 nested leads, at most 8."""
    return max(1, min(8, math.ceil(documents / PARTITION_LEADS)))


def plan_step(db: Database, run: RunFolder, partitions: int = 0, *, changes: Changes | None = None) -> list[int]:
    """Decide what the run reads and in how many partitions; returns the partition numbers.

    A refresh given its `changes` reads its scope (`leadnorm.steps.scope`) when the key store
    is complete; otherwise the run reads the whole source. `partitions` 0 picks from the size.
    More than one partition splits the source by `_id` ranges, staged as the ids they hold
    (type-exact, and fixed for the run however the source changes meanwhile)."""
    keys = None
    documents = extract.count_nested_leads(db)
    if changes is not None and key_store_complete(db):
        found = find_scope(db, changes)
        run.write_frame("scope", found.to_frame())
        run.write_result("scope", {"leads": len(found.leads), "gone": len(found.gone)})
        log.info("refresh scope: %d source leads tied to the changes, %d gone", len(found.leads), len(found.gone))
        keys = sorted(found.leads)
        documents = len(keys)
    parts = partitions or default_partitions(documents)
    if keys is None and parts > 1:
        keys = extract.source_keys(db)
        documents = len(keys)
    if keys is not None:
        size = max(1, math.ceil(len(keys) / parts))
        for number in range(parts):
            part = keys[number * size : (number + 1) * size]
            run.write_frame(f"partition-{number}", pd.DataFrame({"key": pd.Series(part, dtype=object)}))
    run.write_result("plan", {"partitions": parts, "whole_source": keys is None, "documents": documents})
    return list(range(parts))


def _plan(run: RunFolder) -> dict:
    plan = run.read_result("plan")
    if plan is None:
        raise StagingError(f"{run.root}: no plan yet; run the plan step first")
    return plan


def extract_step(db: Database, run: RunFolder, batch_size: int = DEFAULT_BATCH_SIZE, partition: int = 0) -> int:
    """Stage one partition's nested leads as BSON batch files; returns how many leads."""
    plan = _plan(run)
    if plan["whole_source"]:
        progress = Progress("extract", plan["documents"])
        raw = extract.iter_raw_batches(db, batch_size)
    else:
        keys = [bytes(key) for key in run.read_frame(f"partition-{partition}")["key"]]
        progress = Progress(f"extract {partition}" if plan["partitions"] > 1 else "extract", len(keys))
        raw = extract.iter_raw_batches_of(db, keys, batch_size)
    for documents in run.write_batches(raw, partition):
        progress.advance(documents)
    run.write_result(f"extract-{partition}", {"documents": progress.done})
    return progress.done


def extract_all(
    db: Database,
    run: RunFolder,
    batch_size: int = DEFAULT_BATCH_SIZE,
    partitions: int = 1,
    *,
    changes: Changes | None = None,
) -> int:
    """Plan, then extract every partition in this process; returns how many leads."""
    return sum(extract_step(db, run, batch_size, part) for part in plan_step(db, run, partitions, changes=changes))


def split_step(run: RunFolder, partition: int = 0) -> int:
    """Split one partition's staged leads into mention frames; pure but for the files."""
    plan = _plan(run)
    extracted = run.read_result(f"extract-{partition}")
    if extracted is None:
        raise StagingError(f"{run.root}: partition {partition} not extracted yet; run the extract step first")
    progress = Progress(f"normalize {partition}" if plan["partitions"] > 1 else "normalize", extracted["documents"])
    parts, fingerprints = [split_documents([])], [_NO_FINGERPRINTS]
    for path in run.batch_paths(partition):
        source, batch_fingerprints = extract.read_batch(path)
        parts.append(split_batch(source))
        fingerprints.append(batch_fingerprints)
        progress.advance(len(source))
    mentions = Mentions.concat(parts)
    for name, frame in mention_frames(mentions).items():
        run.write_frame(f"mentions-{partition}-{name}", frame)
    run.write_frame(f"fingerprints-{partition}", pd.concat(fingerprints, ignore_index=True))
    run.write_result(f"split-{partition}", {"warnings": dict(mentions.warnings)})
    return progress.done


def resolve_step(run: RunFolder, db: Database | None = None) -> dict:
    """Resolve every partition's mentions at once, so companies and personas dedupe exactly
    across partitions; keep the company and persona ids already stored in `db` (when given);
    stage the frames, each lead's fingerprint and identity keys; returns the counts."""
    partitions = range(_plan(run)["partitions"])
    for partition in partitions:
        if run.read_result(f"split-{partition}") is None:
            raise StagingError(f"{run.root}: partition {partition} not split yet; run the normalize step first")
    mentions = Mentions.concat([read_mentions(run, partition) for partition in partitions])
    normalized, keys = resolve_with_keys(mentions)
    run.write_frame("lead_keys", keys)
    found = read_scope(run)
    if db is not None and found is None:
        normalized = keep_ids(normalized, *stored_references(db))
    elif db is not None:
        normalized = _keep_ids_in_scope(db, run, found, normalized)
    fingerprints = [run.take_frame(f"fingerprints-{partition}") for partition in partitions]
    run.write_frame("fingerprints", pd.concat(fingerprints, ignore_index=True))
    return save_normalized(run, normalized)


def _keep_ids_in_scope(db: Database, run: RunFolder, found: Scope, normalized: Normalized) -> Normalized:
    """`keep_ids` over a refresh's scope. What its leads hold is read before any write and staged
    (the load compares and prunes only those documents); ids that leads outside it hold are
    never given out."""
    stored = stored_for(db, found)
    for name, ids in stored.related.items():
        run.write_frame(f"related-{name}", pd.DataFrame({"_id": pd.Series(ids, dtype=object)}))
    occupied = {}
    for collection, column in (("companies", "company_id"), ("personas", "persona_id")):
        fresh = set(normalized.frames[collection]["_id"]) - set(stored.related[collection])
        occupied[column] = frozenset(occupied_outside(db, found, column, fresh))
    return keep_ids(normalized, stored.refs, stored.lead_counts, occupied)


def normalize_step(run: RunFolder, db: Database | None = None) -> dict:
    """Split every partition, then resolve them together: what the DAG runs as two tasks."""
    for partition in range(_plan(run)["partitions"]):
        split_step(run, partition)
    return resolve_step(run, db)


def mention_frames(mentions: Mentions) -> dict[str, pd.DataFrame]:
    return {f.name: getattr(mentions, f.name) for f in fields(Mentions) if f.name != "warnings"}


def read_mentions(run: RunFolder, partition: int) -> Mentions:
    """One partition's staged mentions (dropped from this process's memory: resolve holds them now)."""
    frames = {name: run.take_frame(f"mentions-{partition}-{name}") for name in mention_frames(split_documents([]))}
    return Mentions(**frames, warnings=Warnings(run.read_result(f"split-{partition}")["warnings"]))


_NO_FINGERPRINTS = pd.DataFrame({"_id": pd.Series(dtype=object), "fingerprint": pd.Series(dtype=object)})


def read_scope(run: RunFolder) -> Scope | None:
    """The run's refresh scope, or None when it covers the whole source."""
    return Scope.from_frame(run.read_frame("scope")) if run.read_result("scope") else None


def stored_references(db: Database) -> tuple[pd.DataFrame, dict[str, Counter]]:
    """Each stored normalized lead's company and persona, and how many leads point at each
    company and persona (all leads, uploaded and cleaned-up ones included)."""
    columns = {"_id": 1, "company_id": 1, "persona_id": 1, "legacy_lead_id": 1, NESTED_FIELD: 1}
    rows, counts = [], {"company_id": Counter(), "persona_id": Counter()}
    for lead in db[SOURCE_COLLECTION].find(
        {"$or": [{"company_id": {"$exists": True}}, {"persona_id": {"$exists": True}}]}, columns
    ):
        if NESTED_FIELD in lead:  # a nested lead's own `company_id` is its data, no reference
            continue
        for column, counter in counts.items():
            if lead.get(column) is not None:
                counter[lead[column]] += 1
        if "legacy_lead_id" in lead:
            rows.append(
                {"_id": lead["_id"], "company_id": lead.get("company_id"), "persona_id": lead.get("persona_id")}
            )
    refs = pd.DataFrame(rows, columns=["_id", "company_id", "persona_id"], dtype=object)
    return refs, counts


def save_normalized(run: RunFolder, normalized: Normalized) -> dict:
    for name, frame in {**normalized.frames, "outcomes": normalized.outcomes}.items():
        run.write_frame(name, frame)
    rejects = normalized.rejects
    return run.write_result(
        "normalize",
        {
            "nested": len(normalized.outcomes),
            "migrated": len(normalized.outcomes) - len(rejects),
            "rejected": len(rejects),
            "reject_reasons": dict(Counter(rejects["reject_reason"])),
            "rows": {name: len(frame) for name, frame in normalized.frames.items()},
            "warnings": dict(sorted(normalized.warnings.items())),
        },
    )


def read_normalized(run: RunFolder) -> Normalized:
    frames = {name: run.read_frame(name) for name in COLLECTIONS}
    warnings = Warnings(run.read_result("normalize")["warnings"])
    return Normalized(frames, run.read_frame("outcomes"), warnings)


def validate_step(run: RunFolder, *, dry_run: bool = False) -> dict:
    """The Great Expectations gate: raises before any write when a critical expectation fails."""
    from leadnorm.quality.validate import run_gate

    normalized = read_normalized(run)
    result = run_gate(normalized.frames, normalized.outcomes, run_name=run.root.name, dry_run=dry_run)
    log.info("%s", result.log_line())
    run.write_result(
        "validate",
        {
            "passed": result.passed,
            "docs_index": str(result.docs_index),
            "failures": result.failures,
            "warnings": result.warnings,
        },
    )
    result.raise_if_failed()
    return run.read_result("validate")


def load_step(
    db: Database, run: RunFolder, collection: str, *, dry_run: bool = False, batch_size: int = DEFAULT_BATCH_SIZE
) -> dict:
    """The diff-load, indexes first so unique keys are enforced while writing; into an empty
    collection, a bulk load with its indexes built after it (a third faster, and a duplicate
    still fails the index build)."""
    indexes = list(COLLECTIONS[collection].indexes)
    bulk = False
    if not dry_run:
        set_key_store_complete(db, False)  # until the run's last write
        bulk = db[collection].find_one({}, {"_id": 1}) is None
        if not bulk:
            ensure_indexes(db, collection, indexes)
    frame = run.read_frame(collection)
    ids = None
    if read_scope(run) is not None:
        ids = list({*run.read_frame(f"related-{collection}")["_id"], *frame["_id"]})
    result = load_collection(db, collection, frame, dry_run=dry_run, batch_size=batch_size, ids=ids)
    if bulk:
        build_indexes_after_load(db, collection, indexes)
    run.write_frame(f"stale-{collection}", pd.DataFrame({"_id": pd.Series(result.stale_ids, dtype=object)}))
    log.info(
        "load %s: %d inserted, %d replaced, %d unchanged, %d stale",
        collection,
        result.inserted,
        result.replaced,
        result.unchanged,
        len(result.stale_ids),
    )
    return run.write_result(f"load-{collection}", result.as_dict())


def prune_step(db: Database, run: RunFolder, *, dry_run: bool = False) -> dict:
    """After every load: delete what the source no longer produces (see `leadnorm.steps.prune`)."""
    stale = {name: set(run.read_frame(f"stale-{name}")["_id"]) for name in COLLECTIONS}
    deleted = prune(db, stale, dry_run=dry_run)
    log.info("prune: %s", ", ".join(f"{count} {name}" for name, count in deleted.items() if count) or "nothing stale")
    return run.write_result("prune", deleted)


def keys_step(db: Database, run: RunFolder, *, dry_run: bool = False) -> int:
    """The run's last write: record its leads' identity keys, then call the key store complete,
    so the next refresh can work on its scope alone."""
    written = save_lead_keys(db, run.read_frame("lead_keys"), read_scope(run), dry_run=dry_run)
    if not dry_run:
        set_key_store_complete(db, True)
    return written


def mark_step(db: Database, run: RunFolder, *, dry_run: bool = False, batch_size: int = DEFAULT_BATCH_SIZE) -> dict:
    """Only the two frames it needs: leads (new ids by source id) and outcomes (rejects)."""
    fingerprints = fingerprints_by_source(run.read_frame("fingerprints"))
    found = read_scope(run)
    leads = run.read_frame("leads")
    result = mark_migrated(db, leads, fingerprints, dry_run=dry_run, batch_size=batch_size, scope=found)
    rejects = rejects_of(run.read_frame("outcomes"))
    result = write_rejects(db, rejects, result, fingerprints, dry_run=dry_run, scope=found)
    return run.write_result("mark", result.as_dict())


def verify_step(db: Database, run: RunFolder) -> VerifyReport:
    found = read_scope(run)
    report = verify(db, read_normalized(run)) if found is None else verify_scope(db, read_normalized(run), found)
    log.info("%s", report.render())
    run.write_result("verify", {"ok": report.ok, "text": report.render()})
    return report


def summary(run: RunFolder, dry_run: bool = False) -> str:
    """The run's table from what its steps saved: the same text after the CLI or the DAG.
    Any step may be missing (the run failed before it): the table shows what there is."""
    head = "DRY RUN: nothing written; the counts are what a run would write" if dry_run else "migration summary"
    lines = [head]
    normalized = run.read_result("normalize") or {}
    loads = {name: run.read_result(f"load-{name}") for name in COLLECTIONS}
    if any(loads.values()):
        lines.append(f"{'collection':<24}{'rows':>9}{'written':>9}{'inserted':>10}{'replaced':>10}{'unchanged':>11}")
        for name, r in loads.items():
            if r:
                rows = normalized.get("rows", {}).get(name, "?")
                lines.append(
                    f"{name:<24}{rows:>9}{r['inserted'] + r['replaced']:>9}{r['inserted']:>10}"
                    f"{r['replaced']:>10}{r['unchanged']:>11}"
                )
    if normalized:
        lines.append(
            f"nested leads {normalized['nested']}: migrated {normalized['migrated']}, rejected {normalized['rejected']}"
        )
        lines += [f"  rejected: {count} x {reason}" for reason, count in normalized["reject_reasons"].items()]
    mark = run.read_result("mark")
    if mark:
        lines.append(
            f"source leads marked _migrated: {mark['marked']} now, {mark['already_marked']} before; "
            f"migration_rejects: {mark['rejects_written']} written, {mark['rejects_removed']} removed; "
            f"{mark['unmarked']} rejected leads unmarked"
        )
    pruned = run.read_result("prune")
    if pruned:
        gone = ", ".join(f"{count} {name}" for name, count in pruned.items() if count)
        lines.append(f"deleted as no longer produced by the source: {gone or 'nothing'}")
    if normalized.get("warnings"):
        lines.append("unreadable values (given their default), per field:")
        lines += [f"  {name:<40}{count:>8}" for name, count in normalized["warnings"].items()]
    gate = run.read_result("validate")
    if gate:
        failed = [("critical", f) for f in gate["failures"]] + [("warning", f) for f in gate["warnings"]]
        lines.append(f"quality gate: {'passed' if gate['passed'] else 'FAILED'}, {len(gate['warnings'])} warning(s)")
        lines += [f"  {level:<9}{_finding(f)}" for level, f in failed]
        lines.append(f"data docs: {gate['docs_index']}")
    timings = run.read_result("timings")
    if timings:
        lines.append("seconds per step: " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in timings.items()))
    backed_up = run.read_result("backup")
    if backed_up:
        lines.append(f"backup: {backed_up['folder']}")
    verified = run.read_result("verify")
    if verified:
        lines.append(verified["text"])
    return "\n".join(lines)


def save_summary(text: str, name: str) -> Path:
    """Keep a run's summary (counts only, no personal data) under reports/summaries/."""
    path = reports_dir() / "summaries" / f"{name.replace(':', '_').replace('+', '_')}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    return path


def _finding(finding: list) -> str:
    """A saved gate Finding (suite, expectation, column, unexpected_count) as one line."""
    suite, expectation, column, count = finding
    where = f"{suite}.{column}" if column else suite
    return f"{where} {expectation}" + ("" if count is None else f": {count} unexpected")


def import_gate_in_background() -> None:
    """Great Expectations takes seconds of CPU to import: a thread does it while backup and
    extract wait on the server, and the gate finds it imported (or imports it itself, raising
    whatever went wrong)."""

    def load() -> None:
        with suppress(Exception):
            importlib.import_module("leadnorm.quality.validate")

    threading.Thread(target=load, name="import-gate", daemon=True).start()


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
) -> tuple[RunFolder, VerifyReport | None]:
    """The whole migration in this process: the same steps the DAG runs as tasks, partitions one
    after the other. Given a refresh's `changes`, it works on their scope alone when it can
    (see `plan_step`)."""
    run = (run or RunFolder.new()).create()
    timings: dict[str, float] = {}
    if not skip_validation:
        import_gate_in_background()

    def step(name: str, operation):
        """One step, timed, and run again after a transient network error (every step can be rerun)."""
        started = time.perf_counter()
        try:
            return retry_transient(db, operation, name)
        finally:
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - started
            run.write_result("timings", timings)

    if not dry_run:
        step("backup", lambda: backup_step(db, run, backup_dir))
    step("extract", lambda: extract_all(db, run, batch_size, partitions, changes=changes))
    step("normalize", lambda: normalize_step(run, db))
    if not skip_validation:
        step("validate", lambda: validate_step(run, dry_run=dry_run))
    for name in COLLECTIONS:
        step("load", lambda name=name: load_step(db, run, name, dry_run=dry_run, batch_size=batch_size))
    step("mark", lambda: mark_step(db, run, dry_run=dry_run, batch_size=batch_size))
    step("prune", lambda: prune_step(db, run, dry_run=dry_run))
    step("prune", lambda: keys_step(db, run, dry_run=dry_run))
    if dry_run:
        return run, None
    return run, step("verify", lambda: verify_step(db, run))


def refresh(db: Database, **options) -> tuple[Changes, RunFolder | None, VerifyReport | None]:
    """A migration that runs only when the source changed since the last run (by content).
    With nothing new, changed or gone it writes nothing, not even a backup."""
    changes = detect_changes(db)
    log.info("%s", changes.render())
    if not changes.any:
        return changes, None, None
    run, report = migrate(db, changes=changes, **options)
    return changes, run, report
