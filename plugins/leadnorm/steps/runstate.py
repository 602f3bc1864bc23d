"""What the last run leaves for the next: whether the key store is complete, where in the
source's change stream the next refresh starts reading, and the leads named before that position
that the last run did not see.

One document of the key store (`migration_lead_keys`, `_id: "state"`). It says incomplete from
a run's first write until its last, so a run that dies leaves it incomplete; a rollback drops
the store; a store an earlier release wrote (its documents of another `FORMAT`) is not trusted
either. Then the next refresh trusts neither the keys nor the position, and resolves and scans
the whole source (`leadnorm.steps.scope`, `leadnorm.steps.changes`), which rebuilds the store.
"""

from __future__ import annotations

from dataclasses import dataclass

from bson import Binary
from pymongo.database import Database

from leadnorm.contract import KEYS_COLLECTION, STATE_ID

# {_id: STATE_ID, complete: bool, format: int, position: the change stream's resume token | None,
#  pending: [legacy keys]}
FORMAT = 2  # the store's documents: 1, the leads' keys; 2, their mentions besides


@dataclass(frozen=True)
class Resume:
    """Where the next read of the change stream starts, and the leads it must compare besides:
    those the stream named while the last run ran, which that run may have read before they changed."""

    position: dict
    pending: frozenset[bytes] = frozenset()


def key_store_complete(db: Database) -> bool:
    return _trusted(db[KEYS_COLLECTION].find_one({"_id": STATE_ID}))


def _trusted(state: dict | None) -> bool:
    return bool(state and state.get("complete") and state.get("format") == FORMAT)


def set_key_store_complete(db: Database, complete: bool, resume: Resume | None = None) -> None:
    """Incomplete from a run's first write; complete, with where the next refresh resumes (None:
    no change stream), as its last."""
    fields: dict = {"complete": complete}
    if complete:
        fields["format"] = FORMAT
        fields["position"] = resume.position if resume else None
        fields["pending"] = [Binary(key) for key in sorted(resume.pending)] if resume else []
    db[KEYS_COLLECTION].update_one({"_id": STATE_ID}, {"$set": fields}, upsert=True)


def trusted_resume(db: Database) -> Resume | None:
    """Where the last finished run left the change stream, while the store is complete."""
    state = db[KEYS_COLLECTION].find_one({"_id": STATE_ID})
    if not (_trusted(state) and state.get("position")):
        return None
    return Resume(state["position"], frozenset(bytes(key) for key in state.get("pending", ())))


def advance_position(db: Database, position: dict | None) -> None:
    """After a refresh that found nothing to write: nothing before `position` (the pending leads
    among it) needs looking at again. Only while the store is complete (a run in between keeps its own)."""
    if position is not None:
        db[KEYS_COLLECTION].update_one(
            {"_id": STATE_ID, "complete": True}, {"$set": {"position": position, "pending": []}}
        )
