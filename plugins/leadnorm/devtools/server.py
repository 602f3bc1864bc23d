"""The embedded MongoDB: SecantusDB (`secantusd-py`) as its own process on 127.0.0.1.

The official mongod cannot be installed here, so this is the default server for the
demo, the tests and a developer's machine. Nothing else in leadnorm knows about it:
everything talks to a URI, so a real MongoDB works the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from leadnorm.config import state_dir
from leadnorm.errors import ConfigError

STARTUP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class EmbeddedServer:
    pid: int
    port: int
    uri: str
    data_dir: str
    log_file: str


def _state_file() -> Path:
    return state_dir() / "mongo.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_file() -> Path:
    return state_dir() / "mongo-port"


def _last_port() -> int | None:
    """The port the checkout's server had last time, if it is free: Airflow names the Assets after
    the server's address, so a restarted server keeps it (else every restart adds nine names)."""
    try:
        port = int(_port_file().read_text())
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
        return port
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# A day's window, or a million entries: like a production replica set's oplog, and longer than a
# 20,000-lead migration plus the hourly refresh after it, so a refresh can resume the change
# stream where the last run started (SecantusDB's default keeps one hour or 100,000 entries).
OPLOG = ("--oplog-retention-seconds", "86400", "--oplog-max-entries", "1000000")


def _secantusd() -> str:
    beside_python = Path(sys.executable).with_name("secantusd-py")
    found = str(beside_python) if beside_python.exists() else shutil.which("secantusd-py")
    if not found:
        raise ConfigError("secantusd-py not found: install requirements.txt (make setup)")
    return found


def ping(uri: str, timeout_ms: int = 1000) -> bool:
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    client = MongoClient(uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms)
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


def spawn(data_dir: Path, port: int | None = None, log_file: Path | None = None) -> EmbeddedServer:
    """Start secantusd-py on 127.0.0.1 and wait until it answers ping."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_file = log_file or data_dir.parent / "mongo.log"
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            [
                _secantusd(),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--storage-path",
                str(data_dir),
                "--log-level",
                "WARNING",
                *OPLOG,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    uri = f"mongodb://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ConfigError(f"secantusd-py exited with {proc.returncode} on start; see {log_file}")
        if ping(uri, timeout_ms=500):
            return EmbeddedServer(proc.pid, port, uri, str(data_dir), str(log_file))
        time.sleep(0.2)
    terminate(proc.pid)
    raise ConfigError(f"secantusd-py did not answer ping within {STARTUP_TIMEOUT_S:.0f}s; see {log_file}")


def terminate(pid: int, grace_s: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after the grace period: WiredTiger gets a clean close first."""
    if not _alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
        except ChildProcessError:
            if not _alive(pid):
                return
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


def running_server() -> EmbeddedServer | None:
    """The embedded server this checkout started, if it still runs."""
    path = _state_file()
    if not path.exists():
        return None
    server = EmbeddedServer(**json.loads(path.read_text()))
    return server if _alive(server.pid) else None


def start(port: int | None = None, data_dir: Path | None = None) -> EmbeddedServer:
    """Start the checkout's embedded server, or return the one already running."""
    server = running_server()
    if server is not None:
        return server
    data_dir = data_dir or state_dir() / "mongo-data"
    state_dir().mkdir(parents=True, exist_ok=True)
    server = spawn(data_dir, port or _last_port(), log_file=state_dir() / "mongo.log")
    _state_file().write_text(json.dumps(asdict(server)))
    _port_file().write_text(str(server.port))
    return server


def stop() -> EmbeddedServer | None:
    server = running_server()
    if server is not None:
        terminate(server.pid)
    _state_file().unlink(missing_ok=True)
    return server
