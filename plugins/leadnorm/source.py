"""A nested source lead as the application wrote it, and the marks a migration adds to it.

A migrated source lead carries `_migrated: true`, `_migrated_lead_id` (the id of its normalized
lead, derived from its `_id`) and `_migrated_fingerprint` (of the content it was migrated from).
The application may have written fields of those names itself: they are its data like any other
unknown field. So the marks count as the migration's only when `_migrated` is true and
`_migrated_lead_id` is the id this source `_id` derives, which nothing but the migration computes;
and marking a lead that holds fields of those names moves the application's values under
`_migrated_displaced` first, from where the lead's content and an unmark take them back.

The content is what fingerprints, extract and every comparison see: the raw document without the
marker fields, the application's own fields of those names appended in the order it wrote them,
so marking, unmarking and re-marking never change it. Works on raw BSON: nothing is decoded but
`_id` and the marker fields.
"""

from __future__ import annotations

from hashlib import blake2b

from bson.raw_bson import RawBSONDocument

from leadnorm.contract import MARKERS, MIGRATED, MIGRATED_DISPLACED, MIGRATED_FINGERPRINT, MIGRATED_LEAD_ID
from leadnorm.mongo import EMPTY_DOCUMENT, RAW_CODEC_OPTIONS, bson_document, cut_fields, elements, raw_id
from leadnorm.transform.ids import lead_id

MARKER_NAMES = frozenset(marker.encode() for marker in MARKERS)


class SourceLead:
    """One raw source lead split into what the application wrote and the migration's marks."""

    __slots__ = ("source_id", "content", "displaced", "marks")

    def __init__(self, raw: bytes):
        rest, cut = cut_fields(raw, MARKER_NAMES)
        self.source_id = raw_id(raw)
        fields = RawBSONDocument(cut, RAW_CODEC_OPTIONS)
        ours = fields.get(MIGRATED) is True and fields.get(MIGRATED_LEAD_ID) == lead_id(self.source_id)
        if ours:
            self.marks = {MIGRATED: True, MIGRATED_LEAD_ID: fields[MIGRATED_LEAD_ID]}
            self.marks[MIGRATED_FINGERPRINT] = fields.get(MIGRATED_FINGERPRINT)
            displaced = fields.get(MIGRATED_DISPLACED)
            self.displaced = displaced.raw if isinstance(displaced, RawBSONDocument) else EMPTY_DOCUMENT
        else:
            self.marks, self.displaced = {}, cut
        appended = elements(self.displaced)
        self.content = bson_document([elements(rest), appended]) if appended else rest

    @property
    def migrated(self) -> bool:
        return bool(self.marks)

    def row(self) -> dict:
        """What the mark step needs of this lead, staged at extract (`MARK_KINDS`)."""
        return {
            "_id": self.source_id,
            "fingerprint": fingerprint(self.content),
            "lead": self.marks.get(MIGRATED_LEAD_ID),
            "marked_fingerprint": self.marks.get(MIGRATED_FINGERPRINT),
            "displaced": self.displaced if self.displaced != EMPTY_DOCUMENT else None,
        }


# A source lead's marks as extract found them, and its content's fingerprint.
MARK_KINDS = {"_id": "key", "fingerprint": "bytes", "lead": "oid", "marked_fingerprint": "bytes", "displaced": "bytes"}


def mark_update(row: dict, new_lead_id, fingerprint_: bytes | None) -> dict | None:
    """The `$set` that marks the lead of `row` migrated to `new_lead_id`, or None when it already is."""
    if row["lead"] == new_lead_id and row["marked_fingerprint"] == fingerprint_:
        return None
    marks = {MIGRATED: True, MIGRATED_LEAD_ID: new_lead_id, MIGRATED_FINGERPRINT: fingerprint_}
    if row["displaced"] is not None:
        marks[MIGRATED_DISPLACED] = RawBSONDocument(row["displaced"])
    return {"$set": marks}


def unmark_update(row: dict) -> dict | None:
    """The update that takes the migration's marks off the lead of `row` and puts the application's
    fields of those names back, or None when it carries no marks of the migration."""
    if row["lead"] is None:
        return None
    restored = dict(RawBSONDocument(row["displaced"] or EMPTY_DOCUMENT, RAW_CODEC_OPTIONS).items())
    update = {"$unset": {name: "" for name in MARKERS if name not in restored}}
    if restored:
        update["$set"] = restored
    return update


def content(raw: bytes) -> bytes:
    """The source lead as the application wrote it (see the module docstring)."""
    return SourceLead(raw).content


def fingerprint(document: bytes) -> bytes:
    """What a source lead's content is, from its raw BSON: a change of any byte is a change,
    whether or not the application bumped `updated_at`."""
    return blake2b(document, digest_size=16).digest()


def is_marked(document) -> bool:
    """Whether a (decoded or raw) source document carries the migration's marks, by the rule above;
    needs its `_id`, `_migrated` and `_migrated_lead_id`."""
    return document.get(MIGRATED) is True and document.get(MIGRATED_LEAD_ID) == lead_id(document["_id"])


MARK_PROJECTION = {MIGRATED: 1, MIGRATED_LEAD_ID: 1}  # what `is_marked` reads
