"""One log line per batch: how far, how fast, how long still. Same lines in CLI and task logs."""

from __future__ import annotations

import logging
import time

log = logging.getLogger("leadnorm")


class Progress:
    def __init__(self, step: str, total: int | None) -> None:
        self.step, self.total, self.done = step, total, 0
        self.started = time.monotonic()

    def advance(self, count: int) -> None:
        self.done += count
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        if self.total:
            eta = (self.total - self.done) / rate if rate else 0.0
            log.info(
                "%s: %d/%d docs (%.0f%%), %.0f docs/s, ETA %.0fs",
                self.step,
                self.done,
                self.total,
                100 * self.done / self.total,
                rate,
                eta,
            )
        else:
            log.info("%s: %d docs, %.0f docs/s", self.step, self.done, rate)
