"""What a run folder holds, named once: the tables each step leaves for the next.

A step's results (`run.write_result`) are small JSON records under the step's name; the tables
below are Parquet (`leadnorm.steps.runstore`), their columns of the kinds their producers
declare (`leadnorm.transform.columns`).
"""

from __future__ import annotations

SCOPE = "refresh/scope"  # a refresh's source leads by legacy key, and the part each plays in it
REWRITTEN = "refresh/rewritten"  # the scope's leads (legacy keys) whose lead-level documents a refresh stages
KEPT_REFERENCES = "refresh/kept-references"  # what relinked leads point at that the run does not resolve
STORED_LEADS = "refresh/stored-lead-ids"  # the leads whose mentions come from the key store: legacy key, lead id
LEAD_KEYS = "frames/lead_keys"  # each migrated lead's identity keys, for the key store


def partition_keys(partition: int) -> str:
    """The legacy keys a partition holds (when the run reads the source in several)."""
    return f"plan/partition-{partition:03d}"


def marks(partition: int) -> str:
    """Each extracted lead's content fingerprint and the marks it carried (`leadnorm.source`)."""
    return f"source/part-{partition:03d}/marks"


def split(partition: int, table: str) -> str:
    """One of the tables split hands on (`leadnorm.transform.split.TABLE_KINDS`)."""
    return f"split/part-{partition:03d}/{table}"


def splits(table: str) -> str:
    """The pattern of that table over every partition."""
    return f"split/part-*/{table}"


def stored(table: str) -> str:
    """A mention table (`company_mentions`, ...) of the leads a refresh reads from the key store."""
    return f"refresh/stored-{table}"


def relinked(table: str) -> str:
    """A lead-level table split hands on, of the unchanged leads whose company or persona id moved."""
    return f"refresh/relinked-{table}"


def frame(collection: str) -> str:
    """A collection as it is to be stored, in `_id` order (`leadnorm.transform.dedupe.FINAL_KINDS`)."""
    return f"frames/{collection}"


def related(collection: str) -> str:
    """The ids a refresh's leads hold in a collection before the run writes."""
    return f"refresh/related-{collection}"


def clashes(collection: str) -> str:
    """The stored ids holding a unique key a scope's run gives to another id, found before its backup."""
    return f"refresh/clashes-{collection}"


def stale(collection: str) -> str:
    """The stored ids a load found no longer produced."""
    return f"load/stale-{collection}"


class Results:
    """The steps' results (`run.write_result`), by name: small JSON records a later step, the
    summary or a rerun reads."""

    BACKUP = "backup"  # the backup folder, kept for a rerun of the run
    PLAN = "plan"  # partitions, whether the run reads the whole source, how many leads
    SCOPE = "scope"  # a refresh's scope: how many leads, how many gone
    NORMALIZE = "normalize"  # the counts and the reasons of the rejects
    VALIDATE = "validate"  # the gate's verdict and its Data Docs
    MARK = "mark"
    PRUNE = "prune"
    VERIFY = "verify"
    TIMINGS = "timings"  # seconds per step

    @staticmethod
    def extracted(partition: int) -> str:
        return f"extract-{partition}"

    @staticmethod
    def split(partition: int) -> str:
        return f"split-{partition}"

    @staticmethod
    def loaded(collection: str) -> str:
        return f"load-{collection}"
