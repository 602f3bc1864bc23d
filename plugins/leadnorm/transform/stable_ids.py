"""Keep the ids that already exist: companies and personas survive reruns, refreshes and merges.

A from-scratch resolve names every company and persona by a hash of its natural key. Once
written, those ids are references held by other documents (and by the application), so a
later run maps each resolved entity onto the id its leads already point at. Where its leads
point at several (two entities merged), the id with the most leads survives, then the
smallest; where two entities claim one id (an entity split), the one holding more of its
leads keeps it. An entity no lead pointed at keeps its derived id. Pure: frames in, frames out.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import pandas as pd
from bson import ObjectId

from leadnorm.transform.ids import derived_id
from leadnorm.transform.resolve import Normalized, technographic_id

# entity kind -> (its collection, the reference column naming it elsewhere)
ENTITIES = {"company": ("companies", "company_id"), "persona": ("personas", "persona_id")}


def surviving_ids(
    new_refs: pd.Series, old_refs: pd.Series, lead_counts: Counter, kind: str, occupied: frozenset = frozenset()
) -> dict[ObjectId, ObjectId]:
    """Derived entity id -> the id to store, from each lead's new (derived) and old (stored) reference.

    `new_refs` and `old_refs` are indexed by lead id; `lead_counts` counts the leads that
    reference each stored id today (all leads, those outside this run included); `occupied`
    ids belong to entities outside this run and are never given out.
    """
    claims: dict[ObjectId, Counter] = defaultdict(Counter)  # derived id -> old id -> its leads in this entity
    for lead, new in new_refs.dropna().items():
        old = old_refs.get(lead)
        if old is not None and not pd.isna(old):
            claims[new][old] += 1

    def preference(old: ObjectId) -> tuple:
        return (-lead_counts.get(old, 0), str(old))  # more leads first, then the smaller id

    wanted = {new: sorted(olds, key=preference) for new, olds in claims.items()}
    survivors: dict[ObjectId, ObjectId] = {}
    taken: set[ObjectId] = set(occupied)
    # Entities holding more of an id's leads choose first: a split leaves the id where most of its leads stay.
    order = sorted(wanted, key=lambda new: (-max(claims[new].values()), str(new)))
    for new in order:
        for old in wanted[new]:
            if old not in taken:
                survivors[new] = old
                taken.add(old)
                break
    for new in sorted(set(new_refs.dropna()) - survivors.keys(), key=str):
        candidate, salt = new, 0
        while candidate in taken:  # its derived id now names another entity (kept across a key change)
            salt += 1
            candidate = derived_id(kind, str(new), salt)
        survivors[new] = candidate
        taken.add(candidate)
    return survivors


def keep_ids(
    normalized: Normalized,
    stored_refs: pd.DataFrame,
    lead_counts: dict[str, Counter],
    occupied: dict[str, frozenset] | None = None,
) -> Normalized:
    """`normalized` with company and persona ids mapped onto the stored ones.

    `stored_refs` has one row per normalized lead already stored (`_id`, `company_id`,
    `persona_id`); `lead_counts` maps `company_id`/`persona_id` to a Counter of leads per
    stored id; `occupied` maps them to ids held outside this run (a scoped refresh). With
    nothing stored, the result is `normalized` itself.
    """
    occupied = occupied or {}
    if stored_refs.empty and not any(occupied.values()):
        return normalized
    frames = dict(normalized.frames)
    leads = frames["leads"].set_index("_id")
    stored = stored_refs.set_index("_id")
    for kind, (collection, column) in ENTITIES.items():
        mapping = surviving_ids(
            leads[column], stored[column], lead_counts.get(column, Counter()), kind, occupied.get(column, frozenset())
        )
        if all(new == old for new, old in mapping.items()):
            continue

        def remap(ids: pd.Series, mapping=mapping) -> pd.Series:
            return ids.map(lambda value: mapping.get(value, value)).astype(object)

        frames[collection] = frames[collection].assign(_id=remap(frames[collection]["_id"]))
        for name, frame in frames.items():
            if column in frame.columns and name != collection:
                frames[name] = frame.assign(**{column: remap(frame[column])})
    techs = frames["technographics"]
    if not techs.empty:
        frames["technographics"] = techs.assign(
            _id=[technographic_id(company, name) for company, name in zip(techs["company_id"], techs["name"])]
        )
    frames = {
        name: frame.sort_values("_id", key=lambda ids: ids.map(str)).reset_index(drop=True)
        for name, frame in frames.items()
    }
    return Normalized(frames, normalized.outcomes, normalized.warnings)
