"""Nested leads in, the nine normalized frames out: split each batch, then resolve once.

Pure: frames in, frames out, no I/O. The command line, the DAG and the notebooks all
call these two functions.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from leadnorm.transform.keys import lead_keys
from leadnorm.transform.resolve import Normalized, resolve
from leadnorm.transform.split import Mentions, split_batch, split_documents


def normalize(source: pd.DataFrame) -> Normalized:
    """One source frame (a nested lead per row) into the nine normalized frames."""
    return resolve(split_batch(source))


def split_batches(sources: Iterable[pd.DataFrame]) -> Mentions:
    """Every batch split, the mentions concatenated (none at all included)."""
    return Mentions.concat([split_documents([]), *(split_batch(source) for source in sources)])


def normalize_batches(sources: Iterable[pd.DataFrame]) -> Normalized:
    """The same over many batches: identical result, whatever the batching."""
    return resolve(split_batches(sources))


def resolve_with_keys(mentions: Mentions) -> tuple[Normalized, pd.DataFrame]:
    """`resolve`, and each migrated lead's identity keys (a later refresh's scope)."""
    return resolve(mentions), lead_keys(mentions)
