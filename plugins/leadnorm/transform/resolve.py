"""Deduplicate companies, personas and technographics over all mentions at once: pure.

Identity (which mentions are one company or persona) follows the contract's keys;
the values of a deduplicated document come from its most recent mention that has
one, per field. Both depend only on the set of mentions, never on their order, so
batches and partitions cannot change the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from leadnorm.contract import DEFAULT_LEVEL, legacy_key
from leadnorm.schema import COLLECTIONS
from leadnorm.transform.clean import Warnings, is_blank, name_key
from leadnorm.transform.ids import derived_id
from leadnorm.transform.split import Mentions

_INTEGER_FIELDS = {"employee_count", "founded_year"}


@dataclass
class Normalized:
    """The nine target frames, what happened to each source lead, and the unreadable values."""

    frames: dict[str, pd.DataFrame]
    outcomes: pd.DataFrame
    warnings: Warnings

    @property
    def rejects(self) -> pd.DataFrame:
        return rejects_of(self.outcomes)


def rejects_of(outcomes: pd.DataFrame) -> pd.DataFrame:
    """The rejected source leads of an outcomes frame, with their reasons."""
    return outcomes.loc[outcomes["outcome"] == "rejected", ["_id", "reject_reason"]]


def _by_recency(mentions: pd.DataFrame) -> pd.DataFrame:
    """Oldest first, ties broken by source id, so `last` means most recent."""
    order = pd.DataFrame(
        {
            "recency": pd.to_datetime(mentions["recency"], utc=True),
            "tie": mentions["legacy_lead_id"].map(legacy_key),
        }
    )
    return mentions.loc[order.sort_values(["recency", "tie"], na_position="first").index]


def _merge(mentions: pd.DataFrame, key: str, columns: list[str]) -> pd.DataFrame:
    """One row per `key`: each column from the most recent mention that has a value."""
    ordered = _by_recency(mentions)
    values = ordered[[key, *[c for c in columns if c != "extra"]]].astype(object)
    merged = values.groupby(key, sort=True).last()
    if "extra" in columns:
        extras: dict = {}
        for entity, extra in zip(ordered[key], ordered["extra"]):
            if isinstance(extra, dict):
                extras.setdefault(entity, {}).update({k: v for k, v in extra.items() if not is_blank(v)})
        merged["extra"] = [extras.get(entity) or None for entity in merged.index]
    return merged


def with_defaults(frame: pd.DataFrame, optional: set[str]) -> pd.DataFrame:
    """The contract's defaults where no mention had a value; optional fields stay absent (None)."""
    out = frame.copy()
    for column in out.columns:
        if column in optional or column in ("_id", "extra") or column.endswith("_id"):
            out[column] = out[column].astype(object).where(out[column].notna(), None)
        elif column in _INTEGER_FIELDS:
            out[column] = out[column].fillna(0).astype("int64")
        elif column == "confidence":
            out[column] = out[column].fillna(DEFAULT_LEVEL)
        else:
            out[column] = out[column].fillna("").astype(object)
    return out


def _smallest_by(frame: pd.DataFrame, by: str, value: str) -> pd.Series:
    """The smallest `value` per `by` (a vectorized groupby-min for text columns)."""
    first = frame.sort_values([by, value]).drop_duplicates(by)
    return pd.Series(first[value].values, index=first[by].values)


def company_keys(mentions: pd.DataFrame) -> pd.Series:
    """Identity of each company mention: its domain, else a domain company bearing its name
    (the smallest domain where several do), else its name; a profile with neither is a
    company of its own lead's, so its data is not lost."""
    domain = mentions["domain"]
    has_domain = domain.notna()
    named = mentions.loc[has_domain & mentions["name_key"].notna(), ["name_key", "domain"]]
    joined = mentions["name_key"].map(_smallest_by(named, "name_key", "domain")).astype(object)
    key = pd.Series(
        [
            f"name:{name}" if isinstance(name, str) else f"lead:{legacy_key(legacy).hex()}"
            for name, legacy in zip(mentions["name_key"], mentions["legacy_lead_id"])
        ],
        index=mentions.index,
        dtype=object,
    )
    key[joined.notna()] = "domain:" + joined[joined.notna()]
    key[has_domain] = "domain:" + domain[has_domain]
    return key


def persona_keys(mentions: pd.DataFrame) -> pd.Series:
    """Identity of each persona mention: the connected component of shared emails and
    LinkedIn URLs (named by its smallest identifier), else a component bearing its
    full name (the smallest where several do), else its name."""
    parent: dict[str, str] = {}

    def find(node: str) -> str:
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)  # the root is always the component's smallest node

    identifiers = []
    for email, linkedin in zip(mentions["email"], mentions["linkedin_url"]):
        nodes = [f"email:{email}"] if isinstance(email, str) else []
        if isinstance(linkedin, str):
            nodes.append(f"linkedin:{linkedin}")
        identifiers.append(nodes)
    for nodes in identifiers:
        for node in nodes:
            find(node)
        if len(nodes) == 2:
            union(*nodes)
    key = pd.Series([find(nodes[0]) if nodes else None for nodes in identifiers], index=mentions.index, dtype=object)
    identified = key.notna()
    named = pd.DataFrame({"name_key": mentions["name_key"], "key": key}).loc[identified].dropna()
    joined = mentions["name_key"].map(_smallest_by(named, "name_key", "key")).astype(object)
    name_only = ~identified & joined.notna()
    key[name_only] = joined[name_only]
    alone = key.isna()
    key[alone] = "name:" + mentions.loc[alone, "name_key"].astype(object).fillna("")
    return key


def resolve_companies(mentions: pd.DataFrame, tech_mentions: pd.DataFrame):
    """companies and technographics frames, and each source lead's company id."""
    companies_columns = COLLECTIONS["companies"].columns
    if mentions.empty:
        empty = pd.Series(dtype=object)
        return (
            pd.DataFrame(columns=companies_columns),
            pd.DataFrame(columns=COLLECTIONS["technographics"].columns),
            empty,
        )
    mentions = mentions.assign(key=company_keys(mentions))
    merged = _merge(mentions, "key", [c for c in companies_columns if c not in ("_id", "domain")])
    merged["domain"] = [k[len("domain:") :] if k.startswith("domain:") else None for k in merged.index]
    merged["_id"] = [derived_id("company", k) for k in merged.index]
    companies = with_defaults(merged.reset_index(drop=True)[companies_columns], {"domain"})
    company_by_lead = pd.Series(
        mentions["key"].map(dict(zip(merged.index, merged["_id"]))).values,
        index=mentions["legacy_lead_id"].map(legacy_key).values,
    )
    return companies, _technographics(tech_mentions, company_by_lead), company_by_lead


def _technographics(tech_mentions: pd.DataFrame, company_by_lead: pd.Series) -> pd.DataFrame:
    columns = COLLECTIONS["technographics"].columns
    if tech_mentions.empty:
        return pd.DataFrame(columns=columns)
    company_id = tech_mentions["legacy_lead_id"].map(legacy_key).map(company_by_lead)
    techs = tech_mentions.assign(
        key=[f"{c}\x1f{n}" for c, n in zip(company_id, tech_mentions["name_key"])], company_id=company_id
    )
    merged = _merge(techs, "key", ["company_id", "name", "category", "confidence", "extra"])
    merged["_id"] = [technographic_id(c, n) for c, n in zip(merged["company_id"], merged["name"])]
    return with_defaults(merged.reset_index(drop=True)[columns], set())


def technographic_id(company_id, name: str):
    """One technographic per (company, name without case): follows its company's id, kept or derived."""
    return derived_id("technographic", company_id, name_key(name))


def resolve_personas(mentions: pd.DataFrame):
    """personas frame and each source lead's persona id."""
    columns = COLLECTIONS["personas"].columns
    if mentions.empty:
        return pd.DataFrame(columns=columns), pd.Series(dtype=object)
    mentions = mentions.assign(key=persona_keys(mentions))
    merged = _merge(mentions, "key", [c for c in columns if c != "_id"])
    merged["_id"] = [derived_id("persona", k) for k in merged.index]
    personas = with_defaults(merged.reset_index(drop=True)[columns], {"email", "linkedin_url"})
    persona_by_lead = pd.Series(
        mentions["key"].map(dict(zip(merged.index, merged["_id"]))).values,
        index=mentions["legacy_lead_id"].map(legacy_key).values,
    )
    return personas, persona_by_lead


def resolve(mentions: Mentions) -> Normalized:
    """All mentions in, the nine normalized frames out."""
    companies, technographics, company_by_lead = resolve_companies(mentions.company_mentions, mentions.tech_mentions)
    personas, persona_by_lead = resolve_personas(mentions.persona_mentions)

    def linked(frame: pd.DataFrame, collection: str) -> pd.DataFrame:
        legacy = frame["legacy_lead_id"].map(legacy_key)
        out = frame.assign(
            company_id=legacy.map(company_by_lead).astype(object), persona_id=legacy.map(persona_by_lead).astype(object)
        )
        out[["company_id", "persona_id"]] = out[["company_id", "persona_id"]].where(
            out[["company_id", "persona_id"]].notna(), None
        )
        return out[COLLECTIONS[collection].columns].reset_index(drop=True)

    frames = {
        "companies": companies,
        "personas": personas,
        "leads": linked(mentions.leads, "leads"),
        "technographics": technographics,
        "research_runs": linked(mentions.research_runs, "research_runs"),
        "citations": mentions.citations,
        "detected_signals": mentions.detected_signals,
        "icp_scores": mentions.icp_scores,
        "icp_factor_breakdowns": mentions.icp_factor_breakdowns,
    }
    frames = {
        name: frame.sort_values("_id", key=lambda ids: ids.map(str)).reset_index(drop=True)
        for name, frame in frames.items()
    }
    return Normalized(frames, mentions.outcomes, mentions.warnings)
