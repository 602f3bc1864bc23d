"""`python -m leadnorm bench`: this migration beside the naive one and the I/O floor, on one server.

Each run seeds N nested leads into a fresh database and measures, on that data and server:

- **naive**: the seed design's per-lead `findOrCreate` migration (`leadnorm.devtools.naive`)
  on the first `--naive-leads` of the same leads in a twin database, run first;
- **ours**: `python -m leadnorm migrate` as a user runs it (a child process), with its own
  CPU time and peak RSS from `wait4`, and the seconds of each step;
- **floor**: the I/O no migration can avoid on this server: one cursor over the nested
  leads, `insert_many` of exactly the documents *ours* wrote into collections carrying the
  same indexes, and unordered bulks of 1,000 per-lead marks (as ours writes them);
- with `--refresh-percent P`: `python -m leadnorm refresh` after P% of the leads were
  re-researched (their signals dropped, `updated_at` untouched), then once more with nothing
  changed.

Speeds are compared as ratios measured side by side; with `--runs K` every figure is the
median of K runs. Without `--uri` (or `MONGO_URI`) a fresh embedded server is started for
the bench and stopped after it. The bench databases are dropped at the end.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pymongo import InsertOne, UpdateOne
from pymongo.database import Database

from leadnorm.config import reports_dir
from leadnorm.contract import (
    MIGRATED,
    MIGRATED_FINGERPRINT,
    MIGRATED_LEAD_ID,
    NESTED_LEAD,
    NORMALIZED_LEAD,
    SOURCE_COLLECTION,
)
from leadnorm.mongo import connect
from leadnorm.schema import COLLECTIONS
from leadnorm.steps.extract import WITHOUT_MARKERS
from leadnorm.steps.runplan import STEP_NAMES

MARKS = (MIGRATED, MIGRATED_LEAD_ID, MIGRATED_FINGERPRINT)  # what a migration sets on a source lead
TARGETS = {  # issue 10, on this machine at N=20,000
    "speedup_vs_naive": (">=", 10),
    "ratio_to_floor": ("<=", 1.3),
    "client_cpu_ms_per_lead": ("<=", 0.3),
    "gate_share": ("<=", 0.10),
}


@dataclass
class Child:
    """A finished child process: wall seconds, its own CPU seconds, its peak RSS."""

    seconds: float
    cpu_s: float
    peak_rss_mb: float
    returncode: int


def run_child(args: list[str], env: dict, log: Path, stdin=subprocess.DEVNULL) -> Child:
    started = time.perf_counter()
    with log.open("ab") as out:
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=stdin)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return Child(
        time.perf_counter() - started,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss / 1024,
        process.returncode,
    )


def last_line(log: Path) -> str:
    """The child's last words (its one-line error): the log goes with the bench's scratch folder."""
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def _copy_nested(source: Database, target: Database, limit: int = 0) -> int:
    """The first `limit` (0: all) nested leads of `source`, as they were before any migration."""
    batch, copied = [], 0
    cursor = source[SOURCE_COLLECTION].find(NESTED_LEAD, WITHOUT_MARKERS, sort=[("_id", 1)], limit=limit)
    for document in cursor:
        batch.append(InsertOne(document))
        if len(batch) == 1000:
            copied += target[SOURCE_COLLECTION].bulk_write(batch, ordered=False).inserted_count
            batch = []
    if batch:
        copied += target[SOURCE_COLLECTION].bulk_write(batch, ordered=False).inserted_count
    return copied


def measure_floor(ours: Database, floor: Database) -> tuple[float, float]:
    """Seconds of the I/O floor (see the module docstring), on a copy of the source, and the CPU
    seconds this process spent on it: what a client cannot do with less."""
    from bson.raw_bson import RawBSONDocument

    _copy_nested(ours, floor)
    for name, collection in COLLECTIONS.items():
        floor[name].create_indexes(list(collection.indexes))
    raw = ours.codec_options.with_options(document_class=RawBSONDocument)
    written = {
        name: list(ours.get_collection(name, codec_options=raw).find(NORMALIZED_LEAD if name == "leads" else {}))
        for name in COLLECTIONS
    }
    marked = ours[SOURCE_COLLECTION].find({**NESTED_LEAD, MIGRATED: True}, list(MARKS))
    marks = [UpdateOne({"_id": doc["_id"]}, {"$set": {key: doc.get(key) for key in MARKS}}) for doc in marked]
    started, cpu = time.perf_counter(), _cpu()
    for _ in floor[SOURCE_COLLECTION].find_raw_batches(NESTED_LEAD, batch_size=1000):
        pass
    for name, documents in written.items():
        for start in range(0, len(documents), 1000):
            floor[name].insert_many(documents[start : start + 1000], ordered=False)
    for start in range(0, len(marks), 1000):  # as ours marks; one bulk of 100,000 outlasts a socket timeout
        floor[SOURCE_COLLECTION].bulk_write(marks[start : start + 1000], ordered=False)
    return time.perf_counter() - started, _cpu() - cpu


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def round_trip_ms(db: Database, pings: int = 50) -> float:
    """The median time of a `ping` to the server: what every round trip costs at least."""
    times = []
    for _ in range(pings):
        started = time.perf_counter()
        db.command("ping")
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def refresh_after_change(db: Database, percent: float) -> int:
    """Re-research `percent`% of the nested leads that have signals: drop them, `updated_at` untouched."""
    with_signals = {**NESTED_LEAD, "research.DetectedSignals.0": {"$exists": True}}
    total = db[SOURCE_COLLECTION].count_documents(NESTED_LEAD)
    wanted = round(total * percent / 100)
    ids = [doc["_id"] for doc in db[SOURCE_COLLECTION].find(with_signals, {"_id": 1}, sort=[("_id", 1)])]
    step = max(1, len(ids) // max(wanted, 1))
    chosen = ids[::step][:wanted]
    db[SOURCE_COLLECTION].update_many({"_id": {"$in": chosen}}, {"$unset": {"research.DetectedSignals": ""}})
    return len(chosen)


def bench_once(uri: str, leads: int, seed: int, naive_leads: int, refresh_percent: float, work: Path) -> dict:
    from leadnorm.devtools.naive import naive_migrate
    from leadnorm.devtools.seed import seed_leads

    tag = uuid.uuid4().hex[:8]
    ours, twin, floor = (connect(uri, f"bench_{tag}{suffix}") for suffix in ("", "_naive", "_floor"))
    env = {**os.environ, "MONGO_URI": uri, "LEADNORM_REPORTS_DIR": str(work / "reports")}
    try:
        seed_leads(ours, leads, seed=seed, drop=True)
        _copy_nested(ours, twin, naive_leads)
        started = time.perf_counter()
        naive = naive_migrate(twin, naive_leads)
        naive_s = time.perf_counter() - started
        twin.client.drop_database(twin.name)

        timings = work / f"{tag}-timings.json"
        command = [sys.executable, "-m", "leadnorm", "migrate", "--db", ours.name]
        command += ["--backup-dir", str(work / "backups"), "--timings-json", str(timings)]
        migrated = run_child(command, env, work / "bench.log")
        if migrated.returncode != 0:
            raise RuntimeError(f"migrate exited {migrated.returncode}: {last_line(work / 'bench.log')}")
        steps = json.loads(timings.read_text())
        result = {
            "leads": leads,
            "seconds": migrated.seconds,
            "leads_per_s": leads / migrated.seconds,
            "naive_leads": naive.migrated,
            "naive_leads_per_s": naive.migrated / naive_s,
            "naive_round_trips_per_lead": naive.round_trips / max(naive.migrated, 1),
            "rtt_ms": round_trip_ms(ours),
            "client_cpu_s": migrated.cpu_s,
            "peak_rss_mb": migrated.peak_rss_mb,
            "steps": {name: steps.get(name, 0.0) for name in STEP_NAMES},
        }
        if refresh_percent:
            changed = refresh_after_change(ours, refresh_percent)
            command = [sys.executable, "-m", "leadnorm", "refresh", "--db", ours.name]
            command += ["--backup-dir", str(work / "backups"), "--timings-json", str(timings)]
            refreshed = run_child(command, env, work / "bench.log")
            if refreshed.returncode != 0:
                raise RuntimeError(f"refresh exited {refreshed.returncode}: {last_line(work / 'bench.log')}")
            refresh_steps = json.loads(timings.read_text())
            idle = run_child(command, env, work / "bench.log")  # nothing changed since
            if idle.returncode != 0:
                raise RuntimeError(f"idle refresh exited {idle.returncode}: {last_line(work / 'bench.log')}")
            result.update(
                refresh_changed=changed,
                refresh_seconds=refreshed.seconds,
                refresh_detection=refresh_steps.pop("change_detection", None),
                refresh_steps=refresh_steps,
                idle_refresh_seconds=idle.seconds,
                idle_refresh_detection=json.loads(timings.read_text()).get("change_detection"),
            )
        # After the refreshes: the floor's hundreds of thousands of writes (to a database of its own)
        # are not in the oplog a refresh reads its changes from.
        result["floor_seconds"], result["floor_cpu_s"] = measure_floor(ours, floor)
        return result
    finally:
        for db in (ours, twin, floor):
            db.client.drop_database(db.name)


def summarize(runs: list[dict], refresh_percent: float) -> dict:
    """Medians over the runs, and the ratios the targets are stated in."""

    def median(key: str) -> float:
        return statistics.median(run[key] for run in runs)

    leads = runs[0]["leads"]
    seconds = median("seconds")
    steps = {name: statistics.median(run["steps"][name] for run in runs) for name in STEP_NAMES}
    figures = {
        "leads": leads,
        "runs": len(runs),
        "seconds": round(seconds, 2),
        "leads_per_s": round(leads / seconds, 1),
        "naive_leads": runs[0]["naive_leads"],
        "naive_leads_per_s": round(median("naive_leads_per_s"), 1),
        "speedup_vs_naive": round(median("leads_per_s") / median("naive_leads_per_s"), 2),
        "naive_round_trips_per_lead": round(median("naive_round_trips_per_lead"), 1),
        "rtt_ms": round(median("rtt_ms"), 3),
        "floor_seconds": round(median("floor_seconds"), 2),
        "ratio_to_floor": round(seconds / median("floor_seconds"), 2),
        "client_cpu_ms_per_lead": round(1000 * median("client_cpu_s") / leads, 3),
        "cpu_ratio_to_floor": round(median("client_cpu_s") / max(median("floor_cpu_s"), 1e-9), 2),
        "peak_rss_mb": round(median("peak_rss_mb"), 1),
        "gate_share": round(steps["validate"] / seconds, 3),
        "steps": {name: round(value, 2) for name, value in steps.items()},
    }
    if refresh_percent:
        refresh_seconds = median("refresh_seconds")
        figures.update(
            refresh_percent=refresh_percent,
            refresh_changed=runs[0]["refresh_changed"],
            refresh_detection=runs[0]["refresh_detection"],
            refresh_seconds=round(refresh_seconds, 2),
            refresh_vs_migrate=round(refresh_seconds / seconds, 3),
            refresh_steps={name: round(value, 2) for name, value in runs[0]["refresh_steps"].items()},
            idle_refresh_seconds=round(median("idle_refresh_seconds"), 2),
            idle_refresh_detection=runs[0]["idle_refresh_detection"],
        )
    return figures


def render(figures: dict) -> str:
    """The figures as a Markdown table, each against its target where the issue sets one."""
    rows = [
        ("leads", f"{figures['leads']:,} (median of {figures['runs']} run(s))"),
        ("migrate, end to end", f"{figures['seconds']} s, {figures['leads_per_s']} leads/s"),
        ("naive per-lead migration", f"{figures['naive_leads_per_s']} leads/s on the first {figures['naive_leads']:,}"),
        ("I/O floor", f"{figures['floor_seconds']} s"),
    ]
    for key in ("speedup_vs_naive", "ratio_to_floor", "client_cpu_ms_per_lead", "peak_rss_mb", "gate_share"):
        target = TARGETS.get(key)
        verdict = ""
        if target:
            op, bound = target
            met = figures[key] >= bound if op == ">=" else figures[key] <= bound
            verdict = f" (target {op} {bound}: {'met' if met else 'not met'})"
        rows.append((key, f"{figures[key]}{verdict}"))
    rows += [(f"step: {name}", f"{seconds} s") for name, seconds in figures["steps"].items()]
    if "refresh_seconds" in figures:
        rows.append(
            (
                f"refresh after {figures['refresh_percent']}% changed ({figures['refresh_changed']:,} leads)",
                f"{figures['refresh_seconds']} s = {figures['refresh_vs_migrate']} x the migration"
                f" (changes found by {figures['refresh_detection']}); per step: "
                + ", ".join(f"{name} {seconds} s" for name, seconds in figures["refresh_steps"].items()),
            )
        )
        rows.append(
            (
                "refresh with nothing changed, whole command",
                f"{figures['idle_refresh_seconds']} s (by {figures['idle_refresh_detection']})",
            )
        )
    width = max(len(name) for name, _ in rows)
    lines = [f"| {'figure':<{width}} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {name:<{width}} | {value} |" for name, value in rows]
    return "\n".join(lines)


def write_report(figures: dict, command: str, text: str) -> Path:
    path = reports_dir() / "bench.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    path.write_text(
        f"# leadnorm bench\n\n`{command}` on {os.uname().nodename} ({os.cpu_count()} cores), {when}\n\n"
        f"{text}\n\n```json\n{json.dumps(figures)}\n```\n"
    )
    return path


def bench(uri: str | None, leads: int, runs: int, seed: int, naive_leads: int, refresh_percent: float) -> dict:
    """Run the bench `runs` times on `uri` (a fresh embedded server when None); the median figures."""
    from leadnorm.devtools.server import spawn, terminate

    with tempfile.TemporaryDirectory(prefix="leadnorm-bench-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o700)
        server = None
        if uri is None:
            server = spawn(work / "mongo-data")
            uri = server.uri
        try:
            results = [bench_once(uri, leads, seed, naive_leads, refresh_percent, work) for _ in range(runs)]
        finally:
            if server is not None:
                terminate(server.pid)
    return summarize(results, refresh_percent)


# --- the client alone: `bench --client-only` -------------------------------------------------


def client_only_once(leads: int, seed: int, work: Path) -> dict:
    """The pipeline over `leads` generated leads into a null sink (`leadnorm.devtools.sink`): the
    generator a process of its own, so its cost is measured apart."""
    report = work / f"client-only-{leads}.json"
    sink = [sys.executable, "-m", "leadnorm.devtools.sink"]
    env = {**os.environ, "LEADNORM_REPORTS_DIR": str(work / "reports")}
    generator = subprocess.Popen(
        [*sink, "generate", "--leads", str(leads), "--seed", str(seed)], stdout=subprocess.PIPE, env=env
    )
    child = run_child(
        [*sink, "run", "--leads", str(leads), "--report", str(report)], env, work / "bench.log", generator.stdout
    )
    generator.stdout.close()
    _, status, usage = os.wait4(generator.pid, 0)
    if child.returncode != 0 or os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"the client-only run failed: {last_line(work / 'bench.log')}")
    figures = json.loads(report.read_text())
    figures.update(
        client_cpu_s=child.cpu_s, peak_rss_mb=child.peak_rss_mb, generator_cpu_s=usage.ru_utime + usage.ru_stime
    )
    return figures


def bench_client_only(sizes: list[int], seed: int) -> dict:
    """Client-only figures at each size, and the marginal CPU a lead between consecutive sizes."""
    with tempfile.TemporaryDirectory(prefix="leadnorm-bench-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o700)
        runs = [client_only_once(size, seed, work) for size in sizes]
    figures = {
        "client_only": True,
        "sizes": [
            {
                "leads": run["leads"],
                "seconds": round(run["seconds"], 2),
                "client_cpu_s": round(run["client_cpu_s"], 2),
                "client_cpu_ms_per_lead": round(1000 * run["client_cpu_s"] / run["leads"], 3),
                "peak_rss_mb": round(run["peak_rss_mb"], 1),
                "generator_cpu_s": round(run["generator_cpu_s"], 2),
                "gate_share": round(run["steps"].get("validate", 0.0) / run["seconds"], 3),
                "steps": {name: round(seconds, 2) for name, seconds in run["steps"].items()},
                "encoded": run["encoded"],
            }
            for run in runs
        ],
    }
    figures["marginal_cpu_ms_per_lead"] = marginal(runs, "client_cpu_s")
    return figures


def marginal(runs: list[dict], cpu: str) -> list[dict]:
    """The CPU a lead costs between consecutive sizes: what a larger source adds, fixed costs aside."""
    return [
        {
            "from": small["leads"],
            "to": large["leads"],
            "ms_per_lead": round(1000 * (large[cpu] - small[cpu]) / (large["leads"] - small["leads"]), 3),
        }
        for small, large in zip(runs, runs[1:])
    ]


def render_client_only(figures: dict) -> str:
    rows = [
        (
            f"{size['leads']:,} leads",
            f"{size['seconds']} s, client CPU {size['client_cpu_ms_per_lead']} ms/lead, "
            f"peak RSS {size['peak_rss_mb']} MB, gate {size['gate_share']:.1%}; steps: "
            + ", ".join(f"{name} {seconds}" for name, seconds in size["steps"].items()),
        )
        for size in figures["sizes"]
    ]
    rows += [
        (f"marginal CPU {step['from']:,} -> {step['to']:,}", f"{step['ms_per_lead']} ms/lead")
        for step in figures["marginal_cpu_ms_per_lead"]
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"| {'figure (client only, no server)':<{width}} | value |", f"|{'-' * (width + 2)}|-------|"]
    return "\n".join(lines + [f"| {name:<{width}} | {value} |" for name, value in rows])
