"""Where things live and which MongoDB to talk to: paths, URIs, credential masking.

Every door (command line, DAG, notebook, tests) resolves the same way, so a run
started from any of them reads and writes the same places.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

# The checkout (editable install); an installed wheel keeps its state below the working folder.
_SOURCE_TREE = Path(__file__).resolve().parents[2]
PROJECT_ROOT = _SOURCE_TREE if (_SOURCE_TREE / "pyproject.toml").exists() else Path.cwd()


def state_dir() -> Path:
    """Run-time state of this checkout: embedded server pid/URI, staging."""
    return Path(os.environ.get("LEADNORM_STATE_DIR", PROJECT_ROOT / ".leadnorm"))


def reports_dir() -> Path:
    return Path(os.environ.get("LEADNORM_REPORTS_DIR", PROJECT_ROOT / "reports"))


def inbox_dir() -> Path:
    """Where the Leads page's upload form stores CSV files for `leads_csv_ingest` (owner-only).
    With workers on other machines, a folder they share."""
    return Path(os.environ.get("LEADNORM_INBOX_DIR", state_dir() / "inbox"))


def backups_dir() -> Path:
    return Path(os.environ.get("LEADNORM_BACKUP_DIR", PROJECT_ROOT / "backups"))


def staging_location() -> str:
    """Where run folders go: `LEADNORM_STAGING_DIR`, a local folder or any URL Airflow's
    ObjectStoragePath reads (shared by workers on several machines), else .leadnorm/staging."""
    return os.environ.get("LEADNORM_STAGING_DIR") or str(state_dir() / "staging")


_CREDENTIALS = re.compile(r"(?P<scheme>[a-z0-9+.-]+://)(?P<userinfo>[^@/\s]+)@", re.IGNORECASE)


def mask_uri(text: str) -> str:
    """Hide user and password of every URI in `text`: safe to log, print or raise."""
    return _CREDENTIALS.sub(lambda m: f"{m['scheme']}***:***@", text)


def database_from_uri(uri: str) -> str | None:
    """The database a URI's path names (mongodb://host/db), as MongoHook reads it."""
    path = urlsplit(uri).path.lstrip("/")
    return path or None


def uri_has_password(uri: str) -> bool:
    """Whether `uri` carries a password (worth a warning when it came on the command line)."""
    found = _CREDENTIALS.search(uri)
    return bool(found and found["userinfo"].partition(":")[2])


def uri_hosts(uri: str) -> str:
    """The `host:port` list of a URI, credentials left out, for messages (27017 when no port is given)."""
    hosts = uri.split("://", 1)[-1].rpartition("@")[2].split("/", 1)[0].split("?", 1)[0]
    if uri.startswith("mongodb+srv://"):
        return hosts
    return ", ".join(host if host.rpartition(":")[2].isdigit() else f"{host}:27017" for host in hosts.split(","))
