"""What the last run leaves for the next: whether the key store is complete, and where in the
source's change stream that run started reading.

One document of the key store (`migration_lead_keys`, `_id: "state"`). It says incomplete from
a run's first write until its last, so a run that dies leaves it incomplete; a rollback drops
the store. Either way the next refresh trusts neither the keys nor the position, and resolves
and scans the whole source (`leadnorm.steps.scope`, `leadnorm.steps.changes`).
"""

from __future__ import annotations

from pymongo.database import Database

from leadnorm.contract import KEYS_COLLECTION

STATE_ID = "state"  # {_id: "state", complete: bool, position: the change stream's resume token | None}


def key_store_complete(db: Database) -> bool:
    state = db[KEYS_COLLECTION].find_one({"_id": STATE_ID})
    return bool(state and state.get("complete"))


def set_key_store_complete(db: Database, complete: bool, position: dict | None = None) -> None:
    """Incomplete from a run's first write; complete, with the position the run started reading
    from (None: no change stream), as its last."""
    fields = {"complete": complete, **({"position": position} if complete else {})}
    db[KEYS_COLLECTION].update_one({"_id": STATE_ID}, {"$set": fields}, upsert=True)


def trusted_position(db: Database) -> dict | None:
    """The change stream's position the last finished run recorded, while the store is complete."""
    state = db[KEYS_COLLECTION].find_one({"_id": STATE_ID})
    return state.get("position") if state and state.get("complete") else None


def advance_position(db: Database, position: dict | None) -> None:
    """After a refresh that found nothing to write: nothing before `position` needs looking at
    again. Only while the store is complete (a run in between keeps its own)."""
    if position is not None:
        db[KEYS_COLLECTION].update_one({"_id": STATE_ID, "complete": True}, {"$set": {"position": position}})
