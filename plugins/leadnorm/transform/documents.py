"""Target documents as the BSON the server stores, built once, when their values are final.

A lead-level document (a citation, a signal, an ICP score, ...) is final when its lead is split,
so it is encoded then and travels as bytes to the load, which sends them as they are and
compares them with the stored bytes. A lead and its research run are final but for the company
and persona they reference, which only the dedupe knows: they travel as the encoded fields before
and after those two, and `linked` puts the references in between.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import bson
import pandas as pd
from bson import ObjectId

from leadnorm.mongo import CODEC_OPTIONS, bson_document, elements

# The source `_id` is data whatever it holds: null and NaN are legacy ids too.
ALWAYS_STORED = frozenset({"legacy_lead_id"})
REFERENCES = ("company_id", "persona_id")  # what the dedupe adds to a lead and to its research run


def missing(value) -> bool:
    """No value: the field is left out of the document (absent, not null)."""
    return value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def present(row: dict, columns: Sequence[str]) -> dict:
    """The row's fields as a document holds them: in the collection's order, without missing ones."""
    return {c: row[c] for c in columns if c in row and (c in ALWAYS_STORED or not missing(row[c]))}


def document(row: dict, columns: Sequence[str]) -> bytes:
    return bson.encode(present(row, columns), codec_options=CODEC_OPTIONS)


def halves(row: dict, columns: Sequence[str]) -> tuple[bytes, bytes]:
    """The encoded fields before the references and those after them (see `linked`)."""
    cut = columns.index(REFERENCES[0])
    head, tail = columns[:cut], columns[cut + len(REFERENCES) :]
    return elements(document(row, head)), elements(document(row, tail))


_REFERENCE_ELEMENTS = tuple(b"\x07" + name.encode() + b"\x00" for name in REFERENCES)


def linked(head: bytes, tail: bytes, company_id: ObjectId | None, persona_id: ObjectId | None) -> bytes:
    """The whole document: its fields before, the references that have a target, its fields after."""
    parts = [head]
    for prefix, reference in zip(_REFERENCE_ELEMENTS, (company_id, persona_id)):
        if reference is not None:
            parts.append(prefix + (reference if isinstance(reference, bytes) else reference.binary))
    parts.append(tail)
    return bson_document(parts)


def to_documents(frame: pd.DataFrame) -> Iterator[dict]:
    """The rows of a frame (the pure doors' frames) as documents: `present` fields, the values as
    stored (`itertuples` keeps an Int64 an Int64, where `to_dict` makes it an int)."""
    columns = [str(column) for column in frame.columns]
    for row in frame.itertuples(index=False, name=None):
        yield present(dict(zip(columns, row)), columns)
