"""The collector's settings for the steps that allocate millions of short-lived objects.

Decoding BSON and splitting leads allocates a dict per document and value, almost all freed within
the batch. CPython's cyclic collector runs every 700 allocations and, each time it reaches the
oldest generation, walks every object alive: the imported libraries (Airflow, Great Expectations,
DuckDB, pyarrow) as well as the batch. Measured with `bench --client-only --leads 100000`, that
walk was about a tenth of the client's CPU. Inside `bulk_allocation` the objects alive at its
start are frozen (left out of every collection) and the youngest generation is collected less
often; both are undone on the way out. Reference counting still frees everything as before: only
the search for cycles runs less, so memory stays as bounded as the batches.
"""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager

YOUNGEST_THRESHOLD = 50_000  # allocations between collections of the youngest generation (CPython: 700)

_depth = 0
_depth_lock = threading.Lock()


@contextmanager
def bulk_allocation():
    """Fewer cyclic collections while the block runs; reentrant, the outermost block restores."""
    global _depth
    with _depth_lock:
        _depth += 1
        outermost = _depth == 1
        if outermost:
            saved = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(YOUNGEST_THRESHOLD, *saved[1:])
    try:
        yield
    finally:
        with _depth_lock:
            _depth -= 1
            if outermost:
                gc.set_threshold(*saved)
                gc.unfreeze()
