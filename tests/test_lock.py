"""The lease lock against a real server: one holder at a time, stale holders taken over, renewal, release."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from leadnorm.errors import LockHeld
from leadnorm.steps.lock import (
    LOCK_ID,
    LOCKS_COLLECTION,
    Lock,
    acquire,
    current_holder,
    hold_lock,
    release,
    renew,
)


def _dead_pid() -> int:
    """A pid no process has: one of a child that has already exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _write_holder(db, *, host: str, pid: int, expires_in_s: float, what: str = "refresh") -> None:
    now = datetime.now(UTC)
    db[LOCKS_COLLECTION].insert_one(
        {
            "_id": LOCK_ID,
            "what": what,
            "host": host,
            "pid": pid,
            "since": now - timedelta(minutes=3),
            "token": "theirs",
            "outlives_process": False,
            "expires_at": now + timedelta(seconds=expires_in_s),
        }
    )


def test_second_holder_in_one_process_is_refused_with_one_line_naming_the_first(db):
    with hold_lock(db, "migrate") as first:
        with pytest.raises(LockHeld) as refused:
            with hold_lock(db, "refresh"):
                pass
        message = str(refused.value)
        assert "\n" not in message
        assert f"database {db.name} is locked by migrate on {socket.gethostname()} (pid {os.getpid()})" in message
        assert " since " in message and " ago" in message and "lease until" in message
        assert current_holder(db)["token"] == first.token
    assert current_holder(db) is None


_RACER = """
import sys
from leadnorm.errors import LockHeld
from leadnorm.mongo import connect
from leadnorm.steps.lock import acquire

db = connect(sys.argv[1], sys.argv[2])
print("ready", flush=True)
for line in sys.stdin:
    try:
        acquire(db, "racer")
        print("won", flush=True)
    except LockHeld:
        print("refused", flush=True)
"""


def test_two_processes_racing_exactly_one_wins_each_round(db, mongo_uri):
    """Both racers are connected and waiting before each round's go; a winner stays alive until
    the round is scored, so its lock cannot be taken over as a dead process's."""
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, mongo_uri, db.name], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    try:
        assert [racer.stdout.readline().strip() for racer in racers] == ["ready", "ready"]
        for _ in range(5):
            for racer in racers:
                racer.stdin.write("go\n")
                racer.stdin.flush()
            outcomes = sorted(racer.stdout.readline().strip() for racer in racers)
            assert outcomes == ["refused", "won"]
            assert current_holder(db)["pid"] in {racer.pid for racer in racers}
            db[LOCKS_COLLECTION].delete_many({})
    finally:
        for racer in racers:
            racer.stdin.close()
            racer.wait(timeout=30)


def test_holder_on_this_host_whose_process_is_gone_is_taken_over_at_once(db):
    _write_holder(db, host=socket.gethostname(), pid=_dead_pid(), expires_in_s=3600)
    with hold_lock(db, "migrate") as lock:
        assert current_holder(db)["token"] == lock.token


def test_live_holder_on_this_host_keeps_the_lock(db):
    _write_holder(db, host=socket.gethostname(), pid=os.getppid(), expires_in_s=3600)
    with pytest.raises(LockHeld, match=rf"locked by refresh on {socket.gethostname()} \(pid {os.getppid()}\)"):
        acquire(db, "migrate")


def test_holder_elsewhere_keeps_the_lock_until_its_lease_runs_out(db):
    _write_holder(db, host="host-a", pid=4242, expires_in_s=1.0)
    with pytest.raises(LockHeld) as refused:
        acquire(db, "migrate")
    message = str(refused.value)
    assert "locked by refresh on host-a (pid 4242)" in message and "(3 min ago)" in message
    time.sleep(1.2)
    lock = acquire(db, "migrate")
    assert current_holder(db)["token"] == lock.token


def test_renewal_keeps_the_lock_past_its_initial_lease(db):
    with hold_lock(db, "migrate", lease_s=1.5) as lock:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            with pytest.raises(LockHeld, match="locked by migrate"):
                acquire(db, "refresh", lease_s=1.5)
            time.sleep(0.5)
        assert current_holder(db)["token"] == lock.token


def test_release_deletes_only_our_own_token(db):
    ours = acquire(db, "migrate")
    assert release(db, "not-our-token") is False
    assert current_holder(db)["token"] == ours.token
    assert release(db, ours) is True
    assert current_holder(db) is None
    assert release(db, ours) is False


def test_dag_lock_travels_as_a_dict_and_outlives_its_process(db):
    """A DAG's first task acquires, a later one renews and the last releases, each in its own process."""
    first_task = acquire(db, "leads_refresh/manual__1", lease_s=30, outlives_process=True)
    ref = first_task.to_dict()
    assert Lock.from_dict(ref) == first_task
    assert current_holder(db)["since"] == first_task.since
    db[LOCKS_COLLECTION].update_one({"_id": LOCK_ID}, {"$set": {"pid": _dead_pid()}})  # the first task's process ended
    with pytest.raises(LockHeld, match="locked by leads_refresh/manual__1"):
        acquire(db, "migrate")
    before = current_holder(db)["expires_at"]
    assert renew(db, ref, lease_s=60) > before
    assert release(db, ref) is True
    with pytest.raises(LockHeld, match="no longer ours"):
        renew(db, ref)
