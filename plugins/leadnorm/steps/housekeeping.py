"""Which backups a backup folder holds, and pruning the old ones.

Backups are named `<db>-<UTC stamp>[-n]` (`steps/backup.py`) and appear under that name
only once complete; a `.partial` folder is a backup still being written, or one a killed
run left behind; an `.undone` one belongs to a run a rollback undid. Pruning keeps the newest
backups and, always, the one taken before the database's first migration: the only copy of the
source as it was before any of our writes. Every chain stays restorable: a rollback to a backup
replays it and the backups after it (`leadnorm.steps.rollback`), and those are the newest; the
pre-migration backup is a full one, restorable alone.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from leadnorm.contract import COLLECTION_NAMES, REJECTS_COLLECTION, SOURCE_COLLECTION
from leadnorm.errors import ConfigError
from leadnorm.steps.backup import MANIFEST, PARTIAL, UNDONE, backup_name_pattern, list_backups

LEFTOVER_MAX_AGE_S = 24 * 3600  # a backup still being written is younger than this
MIGRATION_WRITTEN = frozenset({*COLLECTION_NAMES, REJECTS_COLLECTION} - {SOURCE_COLLECTION})


def is_pre_migration(folder: Path) -> bool:
    """Whether the backup holds nothing a migration writes: it was taken before the first one."""
    try:
        collections = json.loads((folder / MANIFEST).read_text())["collections"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return not MIGRATION_WRITTEN.intersection(collections)


def prune_backups(backup_dir: Path, db_name: str, keep: int = 10) -> list[Path]:
    """Remove all but the newest `keep` backups of `db_name`, never the pre-first-migration one,
    and `.partial` and `.undone` leftovers older than a day; returns what was removed, oldest first."""
    if keep < 0:
        raise ConfigError(f"keep must be 0 or more, got {keep}")
    backups = list_backups(backup_dir, db_name)
    first = next((folder for folder in backups if is_pre_migration(folder)), None)
    kept = set(backups[max(0, len(backups) - keep) :])
    removed = [folder for folder in backups if folder not in kept and folder != first]
    pattern = backup_name_pattern(db_name)
    cutoff = time.time() - LEFTOVER_MAX_AGE_S
    removed += sorted(
        folder
        for folder in (backup_dir.iterdir() if backup_dir.is_dir() else ())
        if folder.suffix in (PARTIAL, UNDONE)
        and pattern.fullmatch(folder.name.removesuffix(folder.suffix))
        and folder.stat().st_mtime < cutoff
    )
    for folder in removed:
        shutil.rmtree(folder)
    return removed
