"""A run's summary: the table its steps' results make, the same after the command line or a DAG."""

from __future__ import annotations

from pathlib import Path

from leadnorm.config import reports_dir
from leadnorm.schema import COLLECTIONS
from leadnorm.steps import layout
from leadnorm.steps.runstore import RunFolder, run_name


def summary(run: RunFolder, dry_run: bool = False) -> str:
    """The run's table from what its steps saved: the same text after the CLI or the DAG.
    Any step may be missing (the run failed before it): the table shows what there is."""
    head = "DRY RUN: nothing written; the counts are what a run would write" if dry_run else "migration summary"
    lines = [head]
    normalized = run.read_result(layout.Results.NORMALIZE) or {}
    loads = {name: run.read_result(layout.Results.loaded(name)) for name in COLLECTIONS}
    if any(loads.values()):
        lines.append(f"{'collection':<24}{'rows':>9}{'written':>9}{'inserted':>10}{'replaced':>10}{'unchanged':>11}")
        for name, r in loads.items():
            if r:
                rows = normalized.get("rows", {}).get(name, "?")
                lines.append(
                    f"{name:<24}{rows:>9}{r['inserted'] + r['replaced']:>9}{r['inserted']:>10}"
                    f"{r['replaced']:>10}{r['unchanged']:>11}"
                )
    if normalized:
        lines.append(
            f"nested leads {normalized['nested']}: migrated {normalized['migrated']}, rejected {normalized['rejected']}"
        )
        lines += [f"  rejected: {count} x {reason}" for reason, count in normalized["reject_reasons"].items()]
    mark = run.read_result(layout.Results.MARK)
    if mark:
        lines.append(
            f"source leads marked _migrated: {mark['marked']} now, {mark['already_marked']} before; "
            f"migration_rejects: {mark['rejects_written']} written, {mark['rejects_removed']} removed; "
            f"{mark['unmarked']} rejected leads unmarked"
        )
    pruned = run.read_result(layout.Results.PRUNE)
    if pruned:
        gone = ", ".join(f"{count} {name}" for name, count in pruned.items() if count)
        lines.append(f"deleted as no longer produced by the source: {gone or 'nothing'}")
    if normalized.get("warnings"):
        lines.append("unreadable values (given their default), per field:")
        lines += [f"  {name:<40}{count:>8}" for name, count in normalized["warnings"].items()]
    gate = run.read_result(layout.Results.VALIDATE)
    if gate:
        failed = [("critical", f) for f in gate["failures"]] + [("warning", f) for f in gate["warnings"]]
        lines.append(f"quality gate: {'passed' if gate['passed'] else 'FAILED'}, {len(gate['warnings'])} warning(s)")
        lines += [f"  {level:<9}{_finding(f)}" for level, f in failed]
        lines.append(f"data docs: {gate['docs_index']}")
    timings = run.read_result(layout.Results.TIMINGS)
    if timings:
        lines.append("seconds per step: " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in timings.items()))
    backed_up = run.read_result(layout.Results.BACKUP)
    if backed_up:
        lines.append(f"backup: {backed_up['folder']}")
    verified = run.read_result(layout.Results.VERIFY)
    if verified:
        lines.append(verified["text"])
    return "\n".join(lines)


def save_summary(text: str, name: str) -> Path:
    """Keep a run's summary (counts only, no personal data) under reports/summaries/."""
    path = reports_dir() / "summaries" / f"{run_name(name)}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    return path


def _finding(finding: list) -> str:
    """A saved gate Finding (suite, expectation, column, unexpected_count) as one line."""
    suite, expectation, column, count = finding
    where = f"{suite}.{column}" if column else suite
    return f"{where} {expectation}" + ("" if count is None else f": {count} unexpected")
