"""The quality gate between normalize and load: nothing is written unless the frames pass it.

The rules live as reviewable JSON suites under `expectations/` (one per collection, one for
the nested source leads); this module only prepares the frames and runs them through Great
Expectations. Each expectation carries GX's own `severity`: a failed `critical` one fails
the gate, a failed `warning` one is reported only. Every run also writes Data Docs (see
`leadnorm.quality.datadocs`), which keep the masked results of earlier runs. Otherwise GX stays
behind `run_gate` and runs in memory, so callers deal with frames in and a `GateResult` out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from bson import ObjectId, json_util

from leadnorm import config
from leadnorm.errors import GateFailed
from leadnorm.quality import datadocs
from leadnorm.quality.gx_logging import gx_warnings_only
from leadnorm.quality.suites import SOURCE_SUITE, suite_definitions
from leadnorm.schema import COLLECTIONS

with gx_warnings_only():  # importing GX logs some 200 INFO lines
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

RESOLVES_SUFFIX = "__resolves"  # helper column: the reference is absent or found in its target
RESULT_FORMAT = {"result_format": "SUMMARY"}  # counts plus up to 20 sample values per expectation
DRY_RUN_PREFIX = "dry-run-"  # run names of dry runs, so the Data Docs index tells them apart


class Finding(NamedTuple):
    """One failed expectation. `column` and `unexpected_count` are None for table-level ones."""

    suite: str
    expectation: str
    column: str | None
    unexpected_count: int | None


@dataclass(frozen=True)
class GateResult:
    passed: bool  # no critical expectation failed
    failures: list[Finding]  # failed critical expectations
    warnings: list[Finding]  # failed warning expectations
    docs_index: Path  # Data Docs of this run

    def summary(self) -> str:
        """One paragraph for logs and exceptions: the verdict, what failed and how often."""
        verdict = (
            "Quality gate passed."
            if self.passed
            else (
                f"Quality gate FAILED: {len(self.failures)} critical expectation(s) failed: {_describe(self.failures)}."
            )
        )
        warned = f"{len(self.warnings)} warning(s): {_describe(self.warnings)}." if self.warnings else "No warnings."
        return f"{verdict} {warned} Data Docs: {self.docs_index}"

    def log_line(self) -> str:
        """One line for the task log, naming every failed expectation: a pass with warnings shows them."""
        if self.passed:
            verdict = "validation passed"
        else:
            verdict = f"validation FAILED with {_count(self.failures, 'critical failure')}: {_describe(self.failures)}"
        if self.warnings:
            joiner = " with " if self.passed else "; "
            verdict += f"{joiner}{_count(self.warnings, 'warning')}: {_describe(self.warnings)}"
        return f"{verdict}; Data Docs: {self.docs_index}"

    def raise_if_failed(self) -> None:
        if not self.passed:
            raise GateFailed(self.summary())


def _count(findings: list[Finding], noun: str) -> str:
    return f"{len(findings)} {noun}{'' if len(findings) == 1 else 's'}"


def _describe(findings: list[Finding]) -> str:
    def one(finding: Finding) -> str:
        where = f"{finding.suite}.{finding.column}" if finding.column else finding.suite
        count = "" if finding.unexpected_count is None else f" ({finding.unexpected_count} unexpected)"
        return f"{where} {finding.expectation}{count}"

    return "; ".join(one(finding) for finding in findings)


def run_gate(
    frames: dict[str, pd.DataFrame],
    source: pd.DataFrame,
    *,
    reports_dir: Path | None = None,
    run_name: str = "leadnorm",
    dry_run: bool = False,
) -> GateResult:
    """Validate the nine normalized frames and the source outcomes; write Data Docs.

    `frames` maps each collection of `schema.COLLECTIONS` to its frame; `source` has one
    row per nested source lead (`_id`, `outcome`, `reject_reason`). Data Docs go to
    `<reports_dir>/data_docs/` (default `config.reports_dir()`), the masked results they are
    built from to `<reports_dir>/gx_results/`, so the index lists earlier runs too. A dry
    run's name gets the prefix `dry-run-`: it shows as such and next to the real runs.
    """
    reports = Path(reports_dir or config.reports_dir())
    docs_dir = reports / "data_docs"
    suites = suite_definitions()
    batches = validation_frames(frames, source)
    with gx_warnings_only():
        context = _context(docs_dir, reports / "gx_results")
        run_name = DRY_RUN_PREFIX + run_name if dry_run else run_name
        results = _validate(context, suites, batches, reconciliation_parameters(source), run_name)

        failures, warnings = [], []
        for result in results.values():
            for expectation in result.results:
                if not expectation.success:
                    critical = expectation.expectation_config.severity == "critical"  # a str enum
                    (failures if critical else warnings).append(_finding(result.suite_name, expectation))
        personal = {name: suite.get("meta", {}).get("personal_data_columns", []) for name, suite in suites.items()}
        docs_index = datadocs.publish(context, results, personal, docs_dir)
    return GateResult(not failures, failures, warnings, docs_index)


def reconciliation_parameters(source: pd.DataFrame) -> dict[str, int]:
    """Suite parameters (`$PARAMETER`) that tie the row counts to the source outcomes."""
    outcomes = source["outcome"].value_counts() if "outcome" in source else pd.Series(dtype=int)
    migrated, rejected = int(outcomes.get("migrated", 0)), int(outcomes.get("rejected", 0))
    return {"migrated_count": migrated, "migrated_plus_rejected": migrated + rejected}


def validation_frames(frames: dict[str, pd.DataFrame], source: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The frames as GX sees them: ids as text, plus one `<ref>__resolves` column per reference.

    GX validates one frame at a time, so whether a reference finds its target is worked
    out here. An ObjectId becomes its hex string and any other non-null id `<type>:<value>`
    (see `id_text`). A missing frame or column is left missing: the suites then report it.
    """
    batches = {name: frames.get(name, pd.DataFrame()).copy(deep=False) for name in COLLECTIONS}
    batches[SOURCE_SUITE] = source.copy(deep=False)
    for name, batch in batches.items():
        id_columns = ["_id", *COLLECTIONS[name].references] if name in COLLECTIONS else ["_id"]
        if name == "leads":
            id_columns.append("legacy_lead_id")
        for column in id_columns:
            if column in batch:
                source_ids = name == SOURCE_SUITE or column == "legacy_lead_id"
                batch[column] = _id_texts(batch[column], source=source_ids)

    known_ids = {name: set(batches[name]["_id"].dropna()) if "_id" in batches[name] else set() for name in COLLECTIONS}
    for name, collection in COLLECTIONS.items():
        batch = batches[name]
        for column, target in collection.references.items():
            if column in batch:
                batch[column + RESOLVES_SUFFIX] = _resolves(batch[column], known_ids[target])

    leads, nested = batches["leads"], batches[SOURCE_SUITE]
    if "legacy_lead_id" in leads and {"_id", "outcome"} <= set(nested.columns):
        migrated = set(nested.loc[nested["outcome"] == "migrated", "_id"].dropna())
        leads["legacy_lead_id" + RESOLVES_SUFFIX] = leads["legacy_lead_id"].isin(migrated)
    return batches


def id_text(value, *, source: bool = False) -> str | None:
    """Any id as text that keeps distinct ids distinct: an ObjectId its hex, others `<type>:<value>`.

    So a string id never passes for an ObjectId, `"42"` and `42` stay apart (`str:42`,
    `int:42`) and an embedded document gets its canonical Extended JSON (key order kept, as
    MongoDB compares it). None and NaN are no id, except as a source `_id` (`source=True`):
    there `null` and NaN are legacy ids like any other (`NoneType:None`, `float:nan`).
    """
    if type(value) is ObjectId:  # nearly always: checked first
        return str(value)
    if not source and (value is None or value is pd.NA or (isinstance(value, float) and value != value)):
        return None
    if isinstance(value, np.generic):  # a numeric pandas column hands out numpy scalars
        value = value.item()
    if isinstance(value, dict):
        return "dict:" + json_util.dumps(value, json_options=json_util.CANONICAL_JSON_OPTIONS)
    return f"{type(value).__name__}:{value}"


def _id_texts(ids: pd.Series, *, source: bool = False) -> pd.Series:
    return pd.Series([id_text(value, source=source) for value in ids], index=ids.index, dtype=object)


def _resolves(references: pd.Series, targets: set[str]) -> pd.Series:
    return references.isna() | references.isin(targets)


def _finding(suite_name: str, expectation) -> Finding:
    kwargs = expectation.expectation_config.kwargs
    column = kwargs.get("column") or (",".join(kwargs["column_list"]) if "column_list" in kwargs else None)
    count = (expectation.result or {}).get("unexpected_count")
    return Finding(suite_name, expectation.expectation_config.type, column, None if count is None else int(count))


def _context(docs_dir: Path, results_dir: Path):
    """An in-memory GX context whose only outputs are the Data Docs in `docs_dir` and their masked
    results in `results_dir`: GX's own results store keeps the unmasked ones, in memory only."""
    in_memory = InMemoryStoreBackendDefaults()
    return gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(
            store_backend_defaults=in_memory,
            stores={**in_memory.stores, **datadocs.results_store(results_dir)},
            data_docs_sites=datadocs.site_config(docs_dir),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
        ),
    )


def _validate(
    context, suites: dict[str, dict], batches: dict[str, pd.DataFrame], parameters: dict[str, int], run_name: str
) -> dict:
    """Run every suite on its frame, one checkpoint each; results by their store key."""
    data_source = context.data_sources.add_pandas("leadnorm")
    run_id = RunIdentifier(run_name=run_name, run_time=dt.datetime.now(dt.UTC))
    results = {}
    for name, definition in suites.items():
        suite = gx.ExpectationSuite(**definition)
        if len(suite.expectations) != len(definition["expectations"]):  # GX logs and drops bad ones
            raise ValueError(f"suite {name}: some expectations are invalid (see the log above)")
        suite = context.suites.add(suite)
        batch_definition = data_source.add_dataframe_asset(name).add_batch_definition_whole_dataframe(name)
        validation = context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=batch_definition, suite=suite)
        )
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(name=name, validation_definitions=[validation], result_format=RESULT_FORMAT)
        )
        outcome = checkpoint.run(
            batch_parameters={"dataframe": batches[name]}, expectation_parameters=parameters, run_id=run_id
        )
        results.update(outcome.run_results)
    return results
