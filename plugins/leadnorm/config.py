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


def backups_dir() -> Path:
    return Path(os.environ.get("LEADNORM_BACKUP_DIR", PROJECT_ROOT / "backups"))


def staging_dir() -> Path:
    return Path(os.environ.get("LEADNORM_STAGING_DIR", state_dir() / "staging"))


_CREDENTIALS = re.compile(r"(?P<scheme>[a-z0-9+.-]+://)(?P<userinfo>[^@/\s]+)@", re.IGNORECASE)


def mask_uri(text: str) -> str:
    """Hide user and password of every URI in `text`: safe to log, print or raise."""
    return _CREDENTIALS.sub(lambda m: f"{m['scheme']}***:***@", text)


def database_from_uri(uri: str) -> str | None:
    """The database a URI's path names (mongodb://host/db), as MongoHook reads it."""
    path = urlsplit(uri).path.lstrip("/")
    return path or None
