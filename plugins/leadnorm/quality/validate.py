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
from leadnorm.mongo import source_id
from leadnorm.quality import datadocs
from leadnorm.quality.gx_logging import gx_warnings_only, without_iri_format_checker
from leadnorm.quality.suites import SOURCE_SUITE, suite_definitions
from leadnorm.schema import COLLECTIONS, KINDS

without_iri_format_checker()
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

    def report(self) -> str:
        """The task log's account: the verdict on one line, then each failed expectation on its
        own, critical ones first, then where the Data Docs are."""
        if self.passed:
            verdict = "validation passed" + (f" with {_count(self.warnings, 'warning')}" if self.warnings else "")
        else:
            verdict = f"validation FAILED with {_count(self.failures, 'critical failure')}"
            verdict += f" and {_count(self.warnings, 'warning')}" if self.warnings else ""
        lines = [verdict]
        lines += [f"  critical  {_describe([finding])}" for finding in self.failures]
        lines += [f"  warning   {_describe([finding])}" for finding in self.warnings]
        lines.append(f"Data Docs: {self.docs_index}")
        return "\n".join(lines)

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
    """Validate the nine normalized frames and the source outcomes, each whole; write Data Docs.

    `frames` maps each collection of `schema.COLLECTIONS` to its frame; `source` has one
    row per nested source lead (`_id`, `outcome`, `reject_reason`). Data Docs go to
    `<reports_dir>/data_docs/` (default `config.reports_dir()`), the masked results they are
    built from to `<reports_dir>/gx_results/`, so the index lists earlier runs too. A dry
    run's name gets the prefix `dry-run-`: it shows as such and next to the real runs.
    """
    batches = {name: [frame] for name, frame in validation_frames(frames, source).items()}
    result, publication = _gate(batches, reconciliation_parameters(source), {}, reports_dir, run_name, dry_run)
    publication.write()
    return result


@dataclass(frozen=True)
class Publication:
    """The Data Docs of a gate's results, still to be written: the verdict need not wait for them."""

    context: object
    results: dict
    personal_columns: dict[str, list[str]]
    docs_dir: Path

    def write(self) -> Path:
        with gx_warnings_only():
            return datadocs.publish(self.context, self.results, self.personal_columns, self.docs_dir)


def _gate(batches, parameters: dict, overrides: dict, reports_dir: Path | None, run_name: str, dry_run: bool):
    """Every suite over its batches (one, or many: their results merged, `overrides` replacing
    what a batch cannot see alone): the verdict, and the Data Docs of the merged results to write."""
    reports = Path(reports_dir or config.reports_dir())
    docs_dir = reports / "data_docs"
    suites = suite_definitions()
    with gx_warnings_only():
        context = _context(docs_dir, reports / "gx_results")
        run_name = DRY_RUN_PREFIX + run_name if dry_run else run_name
        results = _validate(context, suites, batches, parameters, run_name, overrides)

        failures, warnings = [], []
        for result in results.values():
            for expectation in result.results:
                if not expectation.success:
                    critical = expectation.expectation_config.severity == "critical"  # a str enum
                    (failures if critical else warnings).append(_finding(result.suite_name, expectation))
        personal = {name: suite.get("meta", {}).get("personal_data_columns", []) for name, suite in suites.items()}
        datadocs.prune_history(
            reports / "gx_results", docs_dir, datadocs.kept_runs() - 1
        )  # this run makes it `kept_runs`
    verdict = GateResult(not failures, failures, warnings, docs_dir / "index.html")
    return verdict, Publication(context, results, personal, docs_dir)


GATE_ROWS = 50_000  # rows of one validation: GX holds its batch as a frame


def gate_on_staged(
    con, *, reports_dir: Path | None = None, run_name: str = "leadnorm", dry_run: bool = False
) -> tuple[GateResult, Publication]:
    """The same suites over a run's staged tables (views of the engine `con`: the nine collections,
    the split `outcomes`, and `kept_references(reference, id)`: what a refresh's relinked leads
    point at that it does not stage), `GATE_ROWS` rows at a time, so the gate's memory is bounded. What
    no batch sees alone comes from the engine over every row: whether a reference finds its
    target (the `__resolves` columns, worked out per row against the whole target), whether a
    key is unique (the engine's group-by replaces each batch's own count), and the row counts
    (summed). One result per suite: the Data Docs read as after a run over whole frames."""
    parameters = staged_reconciliation(con)
    batches = {name: staged_batches(con, name) for name in [*COLLECTIONS, SOURCE_SUITE]}
    overrides = staged_uniqueness(con, suite_definitions())
    return _gate(batches, parameters, overrides, reports_dir, run_name, dry_run)


def staged_reconciliation(con) -> dict[str, int]:
    migrated, total = con.execute(
        "SELECT count(*) FILTER (WHERE outcome = 'migrated'), count(*) FROM outcomes"
    ).fetchone()
    return {"migrated_count": migrated, "migrated_plus_rejected": total}


def _staged_query(name: str) -> str:
    """A collection (or the source outcomes) as GX sees it: ObjectIds as hex text, a `__resolves`
    column per reference, worked out against the whole target."""
    if name == SOURCE_SUITE:
        return "SELECT _id, outcome, reject_reason FROM outcomes"
    kinds, references = KINDS[name], COLLECTIONS[name].references
    selected = [f"lower(hex({c})) AS {c}" if kind == "oid" else c for c, kind in kinds.items()]
    selected += [
        f"({c} IS NULL OR {c} IN (SELECT _id FROM {target})"
        f" OR {c} IN (SELECT id FROM kept_references WHERE reference = '{c}')) AS {c}{RESOLVES_SUFFIX}"
        for c, target in references.items()
    ]
    if name == "leads":
        selected.append(
            "legacy_lead_id IN (SELECT _id FROM outcomes WHERE outcome = 'migrated') AS legacy_lead_id"
            + RESOLVES_SUFFIX
        )
    return f"SELECT {', '.join(selected)} FROM {name}"


def staged_batches(con, name: str):
    """The batches of one suite: frames of at most `GATE_ROWS` rows (at least one, maybe empty)."""
    relation = con.sql(_staged_query(name))
    source_ids = ["_id"] if name == SOURCE_SUITE else ["legacy_lead_id"] if name == "leads" else []
    empty = True
    for batch in relation.to_arrow_reader(GATE_ROWS):
        empty = False
        yield _as_gx_sees(batch, source_ids)
    if empty:
        yield _as_gx_sees(relation.limit(0).to_arrow_table(), source_ids)


def _as_gx_sees(batch, source_ids: list[str]) -> pd.DataFrame:
    frame = batch.to_pandas(types_mapper=None)
    for column in source_ids:  # legacy ids as `<type>:<value>` (see `id_text`)
        frame[column] = pd.Series([id_text(source_id(key), source=True) for key in frame[column]], dtype=object)
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].where(frame[column].notna(), None)
    return frame


UNIQUE = ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique")


def _identity(expectation_type: str, kwargs: dict) -> tuple:
    """What tells an expectation of a suite from the others: its type and its columns."""
    return expectation_type, kwargs.get("column"), tuple(kwargs.get("column_list") or ())


def staged_uniqueness(con, suites: dict[str, dict]) -> dict[tuple, dict]:
    """Each uniqueness expectation's result over every staged row: (suite, identity) -> GX result."""
    overrides = {}
    for name, suite in suites.items():
        table = "outcomes" if name == SOURCE_SUITE else name
        kinds = {"_id": "key"} if name == SOURCE_SUITE else KINDS[name]
        for expectation in suite["expectations"]:
            if expectation["type"] not in UNIQUE:
                continue
            kwargs = expectation["kwargs"]
            keys = kwargs.get("column_list") or [kwargs["column"]]
            present = " AND ".join(f"{k} IS NOT NULL" for k in keys)
            listed = ", ".join(keys)
            total, missing = con.execute(
                f"SELECT count(*), count(*) FILTER (WHERE NOT ({present})) FROM {table}"
            ).fetchone()
            duplicated = f"SELECT {listed} FROM {table} WHERE {present} GROUP BY {listed} HAVING count(*) > 1"
            unexpected = con.execute(
                f"SELECT count(*) FROM {table} WHERE ({listed}) IN ({duplicated})"
                if len(keys) > 1
                else f"SELECT count(*) FROM {table} WHERE {listed} IN ({duplicated})"
            ).fetchone()[0]
            shown = ", ".join(f"lower(hex({k}))" if kinds.get(k) in ("oid", "key") else k for k in keys)
            sample = [
                row if len(keys) > 1 else row[0]
                for row in con.execute(
                    f"SELECT {shown} FROM {table} WHERE ({listed}) IN ({duplicated}) LIMIT 20"
                    if len(keys) > 1
                    else f"SELECT {shown} FROM {table} WHERE {listed} IN ({duplicated}) LIMIT 20"
                ).fetchall()
            ]
            overrides[(name, _identity(expectation["type"], kwargs))] = _counts_result(
                total, missing, unexpected, sample
            )
    return overrides


def _counts_result(elements: int, missing: int, unexpected: int, sample: list) -> dict:
    nonmissing = elements - missing

    def percent(part: int, whole: int) -> float | None:
        return 100.0 * part / whole if whole else None

    counts: dict = {}
    for value in sample:
        counts[str(value)] = counts.get(str(value), 0) + 1
    return {
        "element_count": elements,
        "unexpected_count": unexpected,
        "unexpected_percent": percent(unexpected, nonmissing),
        "partial_unexpected_list": [list(v) if isinstance(v, tuple) else v for v in sample],
        "missing_count": missing,
        "missing_percent": percent(missing, elements),
        "unexpected_percent_total": percent(unexpected, elements),
        "unexpected_percent_nonmissing": percent(unexpected, nonmissing),
        "partial_unexpected_counts": [{"value": v, "count": c} for v, c in counts.items()],
    }


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
    context, suites: dict[str, dict], batches: dict, parameters: dict[str, int], run_name: str, overrides: dict
) -> dict:
    """Run every suite on each of its batches, one checkpoint each; one result per suite (the
    batches' merged), by its store key."""
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
        merged, key, rows = None, None, 0
        for frame in batches[name]:
            outcome = checkpoint.run(
                batch_parameters={"dataframe": frame}, expectation_parameters=parameters, run_id=run_id
            )
            ((key, result),) = outcome.run_results.items()
            merged = result if merged is None else _merge(merged, result, rows)
            rows += len(frame)
        mine = {identity: result for (suite_name, identity), result in overrides.items() if suite_name == name}
        _finish(merged, parameters, mine)
        results[key] = merged
    return results


_COUNTS = ("element_count", "unexpected_count", "missing_count")


def _merge(merged, result, offset: int):
    """Two batches' results of one suite as one: counts summed, samples joined (at most 20),
    row counts summed; an expectation fails when it failed on either batch."""
    for into, extra in zip(merged.results, result.results):
        into.success = bool(into.success and extra.success)
        mine, theirs = into.result or {}, extra.result or {}
        for count in _COUNTS:
            if count in mine:
                mine[count] += theirs.get(count, 0)
        if "partial_unexpected_list" in mine:
            mine["partial_unexpected_list"] = (mine["partial_unexpected_list"] + theirs["partial_unexpected_list"])[:20]
        if "partial_unexpected_index_list" in mine:
            shifted = [offset + index for index in theirs.get("partial_unexpected_index_list", [])]
            mine["partial_unexpected_index_list"] = (mine["partial_unexpected_index_list"] + shifted)[:20]
        if "partial_unexpected_counts" in mine:
            tally: dict = {}
            for item in mine["partial_unexpected_counts"] + theirs.get("partial_unexpected_counts", []):
                tally[repr(item["value"])] = (
                    item["value"],
                    tally.get(repr(item["value"]), (None, 0))[1] + item["count"],
                )
            mine["partial_unexpected_counts"] = [{"value": v, "count": c} for v, c in tally.values()][:20]
        if into.expectation_config.type == "expect_table_row_count_to_equal":
            mine["observed_value"] += theirs["observed_value"]
        into.result = mine
    return merged


def _finish(merged, parameters: dict, overrides: dict) -> None:
    """What the merge cannot sum: percentages, row counts against their expected value, the
    uniqueness over every row (`overrides`), and the suite's statistics."""
    for expectation in merged.results:
        config = expectation.expectation_config
        result = expectation.result or {}
        identity = _identity(config.type, config.kwargs)
        if identity in overrides:
            result = {**result, **overrides[identity]}
            expectation.success = overrides[identity]["unexpected_count"] == 0
        elif "element_count" in result and "unexpected_count" in result:
            elements, missing = result["element_count"], result.get("missing_count", 0)
            for name, whole in (("unexpected_percent", elements - missing), ("unexpected_percent_total", elements)):
                if name in result:
                    result[name] = 100.0 * result["unexpected_count"] / whole if whole else None
            if "unexpected_percent_nonmissing" in result:
                result["unexpected_percent_nonmissing"] = result["unexpected_percent"]
            if "missing_percent" in result:
                result["missing_percent"] = 100.0 * missing / elements if elements else None
        if config.type == "expect_table_row_count_to_equal":
            wanted = config.kwargs["value"]
            wanted = parameters[wanted["$PARAMETER"]] if isinstance(wanted, dict) else wanted
            expectation.success = result["observed_value"] == wanted
        expectation.result = result
    successful = sum(1 for expectation in merged.results if expectation.success)
    evaluated = len(merged.results)
    merged.success = successful == evaluated
    merged.statistics = {
        "evaluated_expectations": evaluated,
        "successful_expectations": successful,
        "unsuccessful_expectations": evaluated - successful,
        "success_percent": 100.0 * successful / evaluated if evaluated else None,
    }
