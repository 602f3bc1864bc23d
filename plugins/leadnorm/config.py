"""Where things live and which MongoDB to talk to: paths, URIs, credential masking.

Every door (command line, DAG, notebook, tests) resolves the same way, so a run
started from any of them reads and writes the same places.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_DB = "jazon_ai_sdr"
SOURCE_COLLECTION = "leads"

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class LeadnormError(Exception):
    """An error the operator can act on: its message is one line, with no credentials in it."""


class ConfigError(LeadnormError):
    """A setting is missing or wrong."""


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


def resolve_uri(uri: str | None = None) -> str:
    """--uri, else $MONGO_URI, else the embedded server this checkout started."""
    if uri:
        return uri
    if os.environ.get("MONGO_URI"):
        return os.environ["MONGO_URI"]
    from leadnorm.server import running_server

    server = running_server()
    if server is None:
        raise ConfigError(
            "no MongoDB given: pass --uri, set MONGO_URI, or start the embedded one "
            "with `python -m leadnorm mongo start`"
        )
    return server.uri


def resolve_db(db: str | None, uri: str) -> str:
    """--db, else the database named in the URI's path, else jazon_ai_sdr."""
    return db or database_from_uri(uri) or DEFAULT_DB
