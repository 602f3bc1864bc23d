"""What a read-only user sees of a joined lead: the fields named here, every other value masked.

An allowlist, not a list of personal fields: a source may put a person's name, phone, home
address or birthday under any name the contract does not map (the migration keeps those in
`extra`), so a field is shown in clear to a user who may not edit DAGs only when it is named
below, and a field added later stays masked until someone names it. Every other value becomes
`masked:<hash>` (`leadnorm.analysis.mask`: equal values give equal masks, so they still group),
a document or a list as a whole; `extra` is never named, so it is masked whole wherever it
occurs. Field names stay visible, and so do empty values (null, "", [] or {}), which tell only
that a field has none.

Shown in clear, by kind of document of a joined lead:

- lead: _id, title, status, company_id, persona_id, created_at, updated_at, origin (where it
  comes from: migrated, uploaded, ...; not name or email;
  not legacy_lead_id either, which may be an email)
- company: every field of the contract but extra (a company is not a person)
- persona: _id, title, seniority, department, decision_authority (not full_name, email,
  linkedin_url, location or bio)
- technographics: _id, company_id, name, category, confidence
- detected_signals: _id, lead_id, research_run_id, type, signal, strength, detected_at (not
  source_url, which may be a person's page)
- research: _id, lead_id, company_id, persona_id, and of research_meta its contract keys
  run_id, model, started_at_utc, completed_at_utc, duration_ms, confidence
- citations: _id, research_run_id, source_name, accessed_at_utc (not url)
- icp: _id, lead_id, icp_score, fit_tier, score_breakdown, scored_at, model_version (not the
  free-text rationale)
- factor_breakdowns: _id, icp_score_id, category, score, max_score, and of each of its
  `factors` the name and points only
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bson import json_util

from leadnorm.analysis import mask
from leadnorm.schema import COLLECTIONS


@dataclass(frozen=True)
class Shown:
    """The fields of one kind of document shown in clear, and the documents nested in it (a
    document or a list of them under a field), each with its own."""

    fields: frozenset[str]
    nested: Mapping[str, Shown] = field(default_factory=dict)


def shown(*fields: str, **nested: Shown) -> Shown:
    return Shown(frozenset(fields), nested)


FACTOR = shown("name", "points")
FACTOR_BREAKDOWN = shown("_id", "icp_score_id", "category", "score", "max_score", factors=FACTOR)
ICP = shown(
    "_id",
    "lead_id",
    "icp_score",
    "fit_tier",
    "score_breakdown",
    "scored_at",
    "model_version",
    factor_breakdowns=FACTOR_BREAKDOWN,
)
RESEARCH_META = shown("run_id", "model", "started_at_utc", "completed_at_utc", "duration_ms", "confidence")
CITATION = shown("_id", "research_run_id", "source_name", "accessed_at_utc")
RESEARCH = shown("_id", "lead_id", "company_id", "persona_id", research_meta=RESEARCH_META, citations=CITATION)
SIGNAL = shown("_id", "lead_id", "research_run_id", "type", "signal", "strength", "detected_at")
TECHNOGRAPHIC = shown("_id", "company_id", "name", "category", "confidence")
PERSONA = shown("_id", "title", "seniority", "department", "decision_authority")
COMPANY = shown("_id", *(name for name in COLLECTIONS["companies"].fields if name != "extra"))
LEAD = shown(
    "_id",
    "title",
    "status",
    "company_id",
    "persona_id",
    "created_at",
    "updated_at",
    "origin",
    company=COMPANY,
    persona=PERSONA,
    technographics=TECHNOGRAPHIC,
    detected_signals=SIGNAL,
    research=RESEARCH,
    icp=ICP,
)


def for_viewer(value, kind: Shown = LEAD):
    """`value` (a joined lead, or a list of them) as a user who may not see personal data sees
    it. The input is not changed."""
    if isinstance(value, Mapping):
        return {key: _field(key, item, kind) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [for_viewer(item, kind) for item in value]
    return masked(value)


def _field(key: str, value, kind: Shown):
    if key in kind.nested:
        return for_viewer(value, kind.nested[key])
    return value if key in kind.fields else masked(value)


def masked(value):
    """`masked:<hash>` of the value, of a document or list as a whole; an empty value as it is."""
    if value is None or value == "" or (isinstance(value, Mapping | list | tuple) and not value):
        return value
    if isinstance(value, Mapping | list | tuple):
        return mask(json_util.dumps(value, sort_keys=True))
    return mask(str(value))
