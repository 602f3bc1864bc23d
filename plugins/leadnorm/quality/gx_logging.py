"""Great Expectations at WARNING: importing it alone logs some 200 INFO lines, a run more.

Those lines buried the gate's own in the task log, so the gate imports and runs GX inside
`gx_warnings_only()`. Without GX imported, light on purpose.
"""

from __future__ import annotations

import contextlib
import logging
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
