"""One run at a time per database: a lease lock shared by migrate, refresh, rollback and cleanup.

The lock is one document (`_id` "leadnorm") in `migration_locks`. Taking it is atomic: an
insert with the fixed `_id` (a duplicate key means someone holds it), or, when the holder is
stale, a compare-and-swap replace filtered on the token and lease the taker saw, so of two
racing processes exactly one wins. A holder is stale when its lease has run out, or at once
when it ran on this machine (same host name) and its process is gone, so a killed run can be
rerun straight away. A lock taken with `outlives_process=True` (a DAG's: its tasks are
separate processes) expires with its lease only.

Times are the client's UTC clock: hosts sharing a database are assumed to agree within the
lease, else one could take over a lock whose holder still renews it.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pymongo import ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError, PyMongoError

from leadnorm.contract import LOCKS_COLLECTION
from leadnorm.errors import LockHeld

log = logging.getLogger("leadnorm")

LOCK_ID = "leadnorm"
DEFAULT_LEASE_S = 60.0
# A takeover can lose its compare-and-swap to another taker or to a renewal; each retry looks again.
_ACQUIRE_ATTEMPTS = 3


@dataclass(frozen=True)
class Lock:
    """The lock as its holder knows it; `token` is what proves ownership when renewing or releasing."""

    database: str
    what: str
    host: str
    pid: int
    since: datetime
    token: str
    outlives_process: bool = False

    def to_dict(self) -> dict:
        """A small JSON-safe reference, e.g. for an XCom between the tasks of one DAG run."""
        return {
            "database": self.database,
            "what": self.what,
            "host": self.host,
            "pid": self.pid,
            "since": self.since.isoformat(),
            "token": self.token,
            "outlives_process": self.outlives_process,
        }

    @classmethod
    def from_dict(cls, ref: dict) -> Lock:
        return cls(**{**ref, "since": datetime.fromisoformat(ref["since"])})


def _now() -> datetime:
    """UTC now at BSON's millisecond precision, so a Lock's times equal the stored ones."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _utc(moment: datetime) -> datetime:
    """A stored datetime as aware UTC, whatever the codec options of the Database it was read with."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def _span(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def describe_holder(database: str, holder: dict, now: datetime | None = None) -> str:
    """The one line an operator reads when refused: who holds the lock, where, since when, for how long."""
    now = now or _now()
    since, expires = _utc(holder["since"]), _utc(holder["expires_at"])
    lease = f"in {_span((expires - now).total_seconds())}" if expires > now else "expired"
    return (
        f"database {database} is locked by {_one_line(holder['what'])} on {_one_line(holder['host'])} "
        f"(pid {holder['pid']}) since {_iso(since)} ({_span((now - since).total_seconds())} ago); "
        f"lease until {_iso(expires)} ({lease})"
    )


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def _is_stale(holder: dict, now: datetime) -> bool:
    if _utc(holder["expires_at"]) <= now:
        return True
    on_this_host = holder["host"] == socket.gethostname()
    return on_this_host and not holder.get("outlives_process", False) and not _process_alive(holder["pid"])


def current_holder(db: Database) -> dict | None:
    """The lock document as stored (what, host, pid, since, token, expires_at), or None when free."""
    return db[LOCKS_COLLECTION].find_one({"_id": LOCK_ID})


def acquire(db: Database, what: str, lease_s: float = DEFAULT_LEASE_S, *, outlives_process: bool = False) -> Lock:
    """Take the lock at once or raise LockHeld naming the holder; never waits.

    `what` says what holds it ("migrate", "leads_refresh/<run id>"). A DAG acquiring in one task
    and releasing in another passes `outlives_process=True`: its lock must survive the task's
    process, and expires with its lease (which its later tasks renew) only.
    """
    locks = db[LOCKS_COLLECTION]
    holder = None
    for _ in range(_ACQUIRE_ATTEMPTS):
        now = _now()
        lock = Lock(db.name, what, socket.gethostname(), os.getpid(), now, secrets.token_hex(16), outlives_process)
        document = {
            "_id": LOCK_ID,
            "what": lock.what,
            "host": lock.host,
            "pid": lock.pid,
            "since": now,
            "token": lock.token,
            "outlives_process": outlives_process,
            "expires_at": now + timedelta(seconds=lease_s),
        }
        try:
            locks.insert_one(document)
            return lock
        except DuplicateKeyError:
            holder = current_holder(db)
        if holder is None:  # released between our insert and our read: try again
            continue
        if not _is_stale(holder, now):
            raise LockHeld(describe_holder(db.name, holder, now))
        taken = locks.replace_one(
            {"_id": LOCK_ID, "token": holder["token"], "expires_at": holder["expires_at"]}, document
        )
        if taken.matched_count == 1:
            log.warning("took over a stale lock: %s", describe_holder(db.name, holder, now))
            return lock
    holder = current_holder(db) or holder
    raise LockHeld(describe_holder(db.name, holder) if holder else f"database {db.name}'s lock keeps changing hands")


def _token(lock: Lock | dict | str) -> str:
    if isinstance(lock, Lock):
        return lock.token
    return lock["token"] if isinstance(lock, dict) else lock


def renew(db: Database, lock: Lock | dict | str, lease_s: float = DEFAULT_LEASE_S) -> datetime:
    """Extend the lease by `lease_s` from now; the new expiry. LockHeld if the lock is no longer ours
    (released, or taken over after its lease ran out)."""
    renewed = db[LOCKS_COLLECTION].find_one_and_update(
        {"_id": LOCK_ID, "token": _token(lock)},
        {"$set": {"expires_at": _now() + timedelta(seconds=lease_s)}},
        projection={"expires_at": 1},
        return_document=ReturnDocument.AFTER,
    )
    if renewed is None:
        holder = current_holder(db)
        now_held_by = describe_holder(db.name, holder) if holder else f"database {db.name} is not locked"
        raise LockHeld(f"the lock is no longer ours: {now_held_by}")
    return _utc(renewed["expires_at"])


def release(db: Database, lock: Lock | dict | str) -> bool:
    """Delete the lock if it is still ours; True when it was. Someone else's lock is never touched."""
    return db[LOCKS_COLLECTION].delete_one({"_id": LOCK_ID, "token": _token(lock)}).deleted_count == 1


@contextmanager
def keep_renewed(db: Database, lock: Lock | dict | str, *, lease_s: float = DEFAULT_LEASE_S) -> Generator[None]:
    """Renew the lease every `lease_s`/3 in a daemon thread while the block runs, so a long step keeps
    the lock: a transient server error is retried at the next tick, a lost lock is logged and ends it."""
    stop = threading.Event()

    def renew_until_stopped() -> None:
        while not stop.wait(lease_s / 3):
            try:
                renew(db, lock, lease_s)
            except LockHeld as lost:
                log.error("%s", lost)
                return
            except PyMongoError as error:
                log.warning("could not renew the lock's lease, retrying: %s", _one_line(error))

    renewer = threading.Thread(target=renew_until_stopped, name="leadnorm-lock-renewer", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()


@contextmanager
def hold_lock(db: Database, what: str, *, lease_s: float = DEFAULT_LEASE_S) -> Generator[Lock]:
    """Hold the database's lock for the block, renewed while it runs, released after; LockHeld at once
    (one line naming the holder) if another run holds it."""
    lock = acquire(db, what, lease_s)
    try:
        with keep_renewed(db, lock, lease_s=lease_s):
            yield lock
    finally:
        release(db, lock)
