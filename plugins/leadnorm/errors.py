"""Every error an operator can act on, in one place.

Each carries a one-line message with no credentials and no personal data in it: the
command line prints it as `leadnorm: error: <message>`, a DAG task fails with it.
"""

from __future__ import annotations


class LeadnormError(Exception):
    """An error the operator can act on: its message is one line, with no credentials in it."""


class ConfigError(LeadnormError):
    """A setting is missing or wrong."""


class SourceError(LeadnormError):
    """The database given holds no source to work on (a mistyped name, say)."""


class LoadError(LeadnormError):
    """The server refused writes; the message names no personal data."""


class GateFailed(LeadnormError):
    """A critical expectation failed; the message is `GateResult.summary()`."""


class StagingError(LeadnormError):
    """A run folder is missing, incomplete or not what this version writes."""


class ServerUnreachable(LeadnormError):
    """MongoDB cannot be reached (refused, unknown host, no reply): names host and port, never credentials."""


class LockHeld(LeadnormError):
    """Another migrate, refresh, rollback or cleanup holds the database's lock; names the holder."""


class BackupError(LeadnormError):
    """A backup is missing, altered or truncated: nothing was restored."""


class UploadError(LeadnormError):
    """A CSV upload that cannot be read as the contract's columns: nothing of it was written."""


class LeadNotFound(LeadnormError):
    """No lead of the application or of the migration has that id (a nested source lead is none)."""


class ResearchRefused(LeadnormError):
    """A research or ICP object the write path cannot save (its documents would not fit, say): nothing written."""
