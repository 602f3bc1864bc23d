"""Which backups a backup folder holds, and pruning the old ones.

Backups are named `<db>-<UTC stamp>[-n]` (`steps/backup.py`) and appear under that name
only once complete; a `.partial` folder is a backup still being written, or one a killed
run left behind. Pruning keeps the newest backups and, always, the one taken before the
database's first migration: the only copy of the source as it was before any of our writes.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

from leadnorm.contract import COLLECTION_NAMES, REJECTS_COLLECTION, SOURCE_COLLECTION
from leadnorm.errors import ConfigError
from leadnorm.steps.backup import MANIFEST

PARTIAL = ".partial"
PARTIAL_MAX_AGE_S = 24 * 3600  # a backup still being written is younger than this
MIGRATION_WRITTEN = frozenset({*COLLECTION_NAMES, REJECTS_COLLECTION} - {SOURCE_COLLECTION})


def _name_pattern(db_name: str) -> re.Pattern:
    """`<db>-<stamp>[-n]`, anchored: database `a` does not claim the backups of `a-b`."""
    return re.compile(rf"{re.escape(db_name)}-(\d{{8}}T\d{{6}}Z)(?:-(\d+))?")


def list_backups(backup_dir: Path, db_name: str) -> list[Path]:
    """The complete backups of `db_name` (named as `backup` names them, with a manifest), oldest first."""
    pattern = _name_pattern(db_name)
    found = []
    for folder in backup_dir.iterdir() if backup_dir.is_dir() else ():
        match = pattern.fullmatch(folder.name)
        if match and (folder / MANIFEST).is_file():
            found.append(((match[1], int(match[2] or 0)), folder))
    return [folder for _, folder in sorted(found)]


def is_pre_migration(folder: Path) -> bool:
    """Whether the backup holds nothing a migration writes: it was taken before the first one."""
    try:
        collections = json.loads((folder / MANIFEST).read_text())["collections"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return not MIGRATION_WRITTEN.intersection(collections)


def prune_backups(backup_dir: Path, db_name: str, keep: int = 10) -> list[Path]:
    """Remove all but the newest `keep` backups of `db_name`, never the pre-first-migration one,
    and `.partial` leftovers older than a day; returns what was removed, oldest first."""
    if keep < 0:
        raise ConfigError(f"keep must be 0 or more, got {keep}")
    backups = list_backups(backup_dir, db_name)
    first = next((folder for folder in backups if is_pre_migration(folder)), None)
    kept = set(backups[max(0, len(backups) - keep) :])
    removed = [folder for folder in backups if folder not in kept and folder != first]
    pattern = _name_pattern(db_name)
    cutoff = time.time() - PARTIAL_MAX_AGE_S
    removed += sorted(
        folder
        for folder in (backup_dir.iterdir() if backup_dir.is_dir() else ())
        if folder.name.endswith(PARTIAL)
        and pattern.fullmatch(folder.name.removesuffix(PARTIAL))
        and folder.stat().st_mtime < cutoff
    )
    for folder in removed:
        shutil.rmtree(folder)
    return removed
