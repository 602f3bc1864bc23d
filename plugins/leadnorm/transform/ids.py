"""Deterministic ObjectIds: the id of every target document is a hash of its natural key.

So the result does not depend on document order, batches, partitions or reruns: a
killed run rerun, or a refresh, computes the same ids and finds the documents it
already wrote. The key is hashed as BSON, so its parts keep their types: a source
`_id` of `"42"` and one of `42` give different ids, and any BSON value (an embedded
document, a UUID, a Decimal128) can be a key. The 12 bytes are a BLAKE2b digest, so
ObjectId.generation_time means nothing on these ids; created_at/updated_at carry the times.
"""

from __future__ import annotations

from hashlib import blake2b

import bson
from bson import ObjectId


def derived_id(kind: str, *key: object) -> ObjectId:
    """The id of the `kind` document whose natural key is `key`."""
    return ObjectId(blake2b(bson.encode({"k": [kind, *key]}), digest_size=12).digest())


def lead_id(legacy_id: object) -> ObjectId:
    return derived_id("lead", legacy_id)


def technographic_id(company_id, key: str | None) -> ObjectId:
    """One technographic per (company, name without case, `name_key`): follows its company's id."""
    return derived_id("technographic", company_id, key)
