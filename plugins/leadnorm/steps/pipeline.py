"""The migration as steps over a run folder: backup, extract, normalize, validate, load, mark, verify.

Each step reads what the previous one left in the run folder and writes its own
output there, so the DAG runs them as separate tasks passing only the folder's path,
and the command line runs them one after the other. Every step can be rerun: it
rewrites its own output, and the database steps write only what differs.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from pymongo.database import Database

from leadnorm.config import backups_dir, staging_dir
from leadnorm.contract import REJECTS_COLLECTION, SOURCE_COLLECTION
from leadnorm.schema import COLLECTIONS
from leadnorm.steps import extract
from leadnorm.steps.backup import backup
from leadnorm.steps.load import load_collection
from leadnorm.steps.mark import mark_migrated, write_rejects
from leadnorm.steps.progress import Progress
from leadnorm.steps.verify import VerifyReport, verify
from leadnorm.transform.clean import Warnings
from leadnorm.transform.normalize import normalize_batches
from leadnorm.transform.resolve import Normalized, rejects_of

log = logging.getLogger("leadnorm")

DEFAULT_BATCH_SIZE = 1000
BACKED_UP = [SOURCE_COLLECTION, *(c for c in COLLECTIONS if c != SOURCE_COLLECTION), REJECTS_COLLECTION]


@dataclass(frozen=True)
class RunFolder:
    """Where one run keeps its staged batches and frames (a path is all a task passes on)."""

    root: Path

    @classmethod
    def new(cls, name: str | None = None) -> RunFolder:
        name = name or "run-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        return cls(staging_dir() / name.replace(":", "_").replace("+", "_"))

    @property
    def batches(self) -> Path:
        return self.root / "source"

    def frame(self, name: str) -> Path:
        return self.root / "frames" / f"{name}.pkl"


def write_result(run: RunFolder, name: str, result: dict) -> dict:
    """Record what a step did in the run folder: the summary and later tasks read it back."""
    path = run.root / "results" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str))
    return result


def read_result(run: RunFolder, name: str) -> dict | None:
    path = run.root / "results" / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def backup_step(db: Database, run: RunFolder, backup_dir: Path | None = None) -> Path:
    """Once per run: a rerun of the run keeps its first backup, taken before any of its writes."""
    taken = read_result(run, "backup")
    if taken and Path(taken["folder"]).exists():
        return Path(taken["folder"])
    folder = backup(db, backup_dir or backups_dir(), BACKED_UP)
    log.info("backup: %s", folder)
    write_result(run, "backup", {"folder": str(folder)})
    return folder


def extract_step(db: Database, run: RunFolder, batch_size: int = DEFAULT_BATCH_SIZE) -> int:
    """Stage the nested leads as BSON batch files; returns how many there are."""
    progress = Progress("extract", extract.count_nested_leads(db))
    paths = extract.write_batches(db, run.batches, batch_size, progress)
    write_result(run, "extract", {"documents": progress.done, "batches": len(paths)})
    return len(paths)


def normalize_step(run: RunFolder) -> dict:
    """Split every staged batch, resolve them together, stage the frames; returns the counts."""
    progress = Progress("normalize", read_result(run, "extract")["documents"])

    def batches():
        for path in sorted(run.batches.glob("batch-*.bson")):
            source = extract.read_batch(path)
            yield source
            progress.advance(len(source))

    return save_normalized(run, normalize_batches(batches()))


def save_normalized(run: RunFolder, normalized: Normalized) -> dict:
    run.frame("outcomes").parent.mkdir(parents=True, exist_ok=True)
    for name, frame in {**normalized.frames, "outcomes": normalized.outcomes}.items():
        frame.to_pickle(run.frame(name))
    rejects = normalized.rejects
    return write_result(
        run,
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
    frames = {name: pd.read_pickle(run.frame(name)) for name in COLLECTIONS}
    warnings = Warnings(read_result(run, "normalize")["warnings"])
    return Normalized(frames, pd.read_pickle(run.frame("outcomes")), warnings)


def validate_step(run: RunFolder) -> dict:
    """The Great Expectations gate: raises before any write when a critical expectation fails."""
    from leadnorm.quality.validate import run_gate

    normalized = read_normalized(run)
    result = run_gate(normalized.frames, normalized.outcomes, run_name=run.root.name)
    log.info("validation %s; Data Docs: %s", "passed" if result.passed else "FAILED", result.docs_index)
    write_result(
        run,
        "validate",
        {
            "passed": result.passed,
            "docs_index": str(result.docs_index),
            "failures": result.failures,
            "warnings": result.warnings,
        },
    )
    result.raise_if_failed()
    return read_result(run, "validate")


def load_step(
    db: Database, run: RunFolder, collection: str, *, dry_run: bool = False, batch_size: int = DEFAULT_BATCH_SIZE
) -> dict:
    """Indexes first (so unique keys are enforced while writing), then the diff-load."""
    if not dry_run:
        db[collection].create_indexes(list(COLLECTIONS[collection].indexes))
    frame = pd.read_pickle(run.frame(collection))
    result = load_collection(db, collection, frame, dry_run=dry_run, batch_size=batch_size)
    log.info(
        "load %s: %d inserted, %d replaced, %d unchanged",
        collection,
        result.inserted,
        result.replaced,
        result.unchanged,
    )
    return write_result(run, f"load-{collection}", result.as_dict())


def mark_step(db: Database, run: RunFolder, *, dry_run: bool = False, batch_size: int = DEFAULT_BATCH_SIZE) -> dict:
    """Only the two frames it needs: leads (new ids by source id) and outcomes (rejects)."""
    result = mark_migrated(db, pd.read_pickle(run.frame("leads")), dry_run=dry_run, batch_size=batch_size)
    rejects = rejects_of(pd.read_pickle(run.frame("outcomes")))
    result = write_rejects(db, rejects, result, dry_run=dry_run)
    return write_result(run, "mark", result.as_dict())


def verify_step(db: Database, run: RunFolder) -> VerifyReport:
    report = verify(db, read_normalized(run))
    log.info("%s", report.render())
    write_result(run, "verify", {"ok": report.ok, "text": report.render()})
    return report


def summary(run: RunFolder, dry_run: bool = False) -> str:
    """The run's table, from what its steps saved: the same text after the CLI or the DAG."""
    n = read_result(run, "normalize")
    head = "DRY RUN: nothing written; the counts are what a run would write" if dry_run else "migration summary"
    lines = [head, f"{'collection':<24}{'rows':>9}{'written':>9}{'inserted':>10}{'replaced':>10}{'unchanged':>11}"]
    for name in COLLECTIONS:
        r = read_result(run, f"load-{name}")
        if r:
            lines.append(
                f"{name:<24}{n['rows'][name]:>9}{r['inserted'] + r['replaced']:>9}{r['inserted']:>10}"
                f"{r['replaced']:>10}{r['unchanged']:>11}"
            )
    lines.append(f"nested leads {n['nested']}: migrated {n['migrated']}, rejected {n['rejected']}")
    lines += [f"  rejected: {count} x {reason}" for reason, count in n["reject_reasons"].items()]
    mark = read_result(run, "mark")
    if mark:
        lines.append(
            f"source leads marked _migrated: {mark['marked']} now, {mark['already_marked']} before; "
            f"migration_rejects: {mark['rejects_written']} written, {mark['rejects_removed']} removed"
        )
    if n["warnings"]:
        lines.append("unreadable values (given their default), per field:")
        lines += [f"  {name:<40}{count:>8}" for name, count in n["warnings"].items()]
    for name, label in (("backup", "backup"), ("validate", "data docs")):
        saved = read_result(run, name)
        if saved:
            lines.append(f"{label}: {saved.get('folder') or saved.get('docs_index')}")
    verified = read_result(run, "verify")
    if verified:
        lines.append(verified["text"])
    return "\n".join(lines)


def migrate(
    db: Database,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dry_run: bool = False,
    backup_dir: Path | None = None,
    skip_validation: bool = False,
    run: RunFolder | None = None,
) -> tuple[RunFolder, VerifyReport | None]:
    """The whole migration in this process: the same steps the DAG runs as tasks."""
    run = run or RunFolder.new()
    if not dry_run:
        backup_step(db, run, backup_dir)
    extract_step(db, run, batch_size)
    normalize_step(run)
    if not skip_validation:
        validate_step(run)
    for name in COLLECTIONS:
        load_step(db, run, name, dry_run=dry_run, batch_size=batch_size)
    mark_step(db, run, dry_run=dry_run, batch_size=batch_size)
    return run, (None if dry_run else verify_step(db, run))
