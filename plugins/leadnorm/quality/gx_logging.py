"""Importing Great Expectations quietly and leanly, without importing it here (light on purpose).

Quietly: importing GX alone logs some 200 INFO lines, a run more; they buried the gate's own in
the task log, so the gate imports and runs GX inside `gx_warnings_only()`.

Leanly: GX imports altair (for one expectation's chart), altair imports jsonschema, and
jsonschema loads the optional IRI format checker `rfc3987_syntax`, which compiles a grammar: a
second of CPU at the start of every run, a tenth of a small refresh. Neither the gate nor its Data
Docs check an IRI, so `without_iri_format_checker()` marks that module missing first and
jsonschema goes without it (IRI formats are then not checked by jsonschema in this process).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Generator

GX_LOGGER = "great_expectations"


@contextlib.contextmanager
def gx_warnings_only() -> Generator[None]:
    """GX's loggers log WARNING and above only inside the block; their levels are restored after."""
    children = [
        logger
        for name, logger in logging.Logger.manager.loggerDict.items()
        if name.startswith(GX_LOGGER + ".") and isinstance(logger, logging.Logger)
    ]
    # Children without a level of their own (most) follow the parent; lower ones of their own are raised too.
    quieted = [logging.getLogger(GX_LOGGER), *(logger for logger in children if logger.level != logging.NOTSET)]
    levels = [logger.level for logger in quieted]
    for logger in quieted:
        logger.setLevel(max(logger.level, logging.WARNING))
    try:
        yield
    finally:
        for logger, level in zip(quieted, levels, strict=True):
            logger.setLevel(level)


def without_iri_format_checker() -> None:
    """Before GX is imported: jsonschema, not yet loaded, will load without `rfc3987_syntax`."""
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)  # None: `import` raises ImportError
