"""The benchmark's three contestants on the real server: the naive per-lead migration dedupes
as the seed's findOrCreate does, the I/O floor writes exactly what the migration wrote, and
`bench --json` reports the figures the targets are stated in (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

from leadnorm.bench import measure_floor
from leadnorm.contract import NESTED_LEAD, NORMALIZED_LEAD
from leadnorm.devtools.naive import naive_migrate
from leadnorm.devtools.seed import seed_leads
from leadnorm.schema import COLLECTIONS
from leadnorm.steps.pipeline import migrate
from leadnorm.steps.runplan import STEP_NAMES
from leadnorm.steps.runstore import RunFolder


def test_naive_migration_finds_or_creates_each_company_and_persona(db, tmp_path, mongo_uri):
    seed_leads(db, 150, seed=3)
    result = naive_migrate(db, 100)
    done = result.migrated
    assert 0 < done <= 100 and result.round_trips > 5 * done, "one round trip per find, insert and mark"
    assert db.leads.count_documents(NORMALIZED_LEAD) == done
    assert db.leads.count_documents({**NESTED_LEAD, "_migrated": True}) == done
    domains = [d["domain"] for d in db.companies.find({"domain": {"$exists": True}})]
    assert len(domains) == len(set(domains)) > 0, "findOrCreate by domain creates each company once"
    assert db.companies.count_documents({}) < done, "leads of one company share it"
    for lead in db.leads.find(NORMALIZED_LEAD):
        assert db.companies.count_documents({"_id": lead["company_id"]}) == 1
        assert db.personas.count_documents({"_id": lead["persona_id"]}) == 1


def test_the_floor_writes_exactly_what_the_migration_wrote(db, tmp_path, mongo_uri):
    from leadnorm.mongo import connect

    seed_leads(db, 120, seed=4)
    _, report = migrate(db, backup_dir=tmp_path / "b", run=RunFolder(tmp_path / "run"), skip_validation=True)
    assert report.ok
    floor = connect(mongo_uri, db.name + "_floor")
    try:
        seconds, cpu = measure_floor(db, floor)
        assert seconds > 0 and cpu > 0
        for name in COLLECTIONS:
            scope = NORMALIZED_LEAD if name == "leads" else {}
            assert floor[name].count_documents(scope) == db[name].count_documents(scope), name
        marked = {"_migrated": True, "_migrated_fingerprint": {"$exists": True}}
        assert floor.leads.count_documents(marked) == db.leads.count_documents(marked) > 0
    finally:
        floor.client.drop_database(floor.name)


def test_bench_prints_one_json_line_with_the_figures(mongo_uri, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "MONGO_URI": mongo_uri, "LEADNORM_REPORTS_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "leadnorm", "bench", "--leads", "300", "--naive-leads", "100", "--json"]
    done = subprocess.run(command + ["--refresh-percent", "2"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    for key in (
        "leads",
        "seconds",
        "leads_per_s",
        "speedup_vs_naive",
        "ratio_to_floor",
        "client_cpu_ms_per_lead",
        "cpu_ratio_to_floor",
    ):
        assert figures[key] > 0, key
    assert figures["leads"] == 300 and figures["naive_leads"] <= 100 and figures["peak_rss_mb"] > 50
    assert figures["naive_round_trips_per_lead"] > 5 and figures["rtt_ms"] > 0
    assert set(figures["steps"]) == set(STEP_NAMES)  # every step ran and was timed
    assert figures["refresh_changed"] == 6 and 0 < figures["refresh_vs_migrate"]
    assert figures["refresh_detection"] == "change stream"  # the migration recorded its position
    assert figures["idle_refresh_detection"] == "change stream" and figures["idle_refresh_seconds"] > 0
    assert "speedup_vs_naive" in (tmp_path / "bench.md").read_text()


def test_client_only_runs_the_pipeline_into_nothing_and_reports_the_marginal_cpu(tmp_path):
    """No server: the generated source streams in, every document is encoded once, per collection."""
    env = {"PATH": "/usr/bin:/bin", "LEADNORM_REPORTS_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "leadnorm", "bench", "--client-only", "--leads", "200,400", "--json"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    small, large = figures["sizes"]
    assert (small["leads"], large["leads"]) == (200, 400)
    assert large["encoded"]["leads"] > small["encoded"]["leads"] > 100  # the source's leads, less the rejected
    assert set(large["encoded"]) >= set(COLLECTIONS) and large["peak_rss_mb"] > 50
    assert set(large["steps"]) == set(STEP_NAMES) - {"backup", "verify"}
    assert [(m["from"], m["to"]) for m in figures["marginal_cpu_ms_per_lead"]] == [(200, 400)]
