"""The application's write path on the real server (`leadnorm.steps.research`): research and an ICP
score posted for a migrated lead land normalized (its company found by a domain written as a URL,
its persona kept by an upper-cased email), exactly the posted run, signals, citation, score and
breakdowns; the same call again writes nothing; a later refresh and a rollback keep it; where the
posted keys tie two personas together they merge by the refresh's rules."""

from __future__ import annotations

import pytest
from bson import ObjectId
from test_rollback import data_state

from leadnorm.contract import NESTED_LEAD, NORMALIZED_LEAD, RELEASED_COLLECTION, legacy_key
from leadnorm.devtools.seed import seed_leads
from leadnorm.errors import LeadNotFound
from leadnorm.steps import pipeline
from leadnorm.steps.research import write_research
from leadnorm.steps.rollback import latest_backup, rollback
from leadnorm.steps.runstore import RunFolder


def posted_for(db, lead: dict) -> tuple[dict, dict, dict]:
    """Research and an ICP score for `lead`: another company's domain as a URL, the lead's persona
    email in upper case, messy values; and that other company."""
    other = db.companies.find_one({"domain": {"$exists": True}, "_id": {"$ne": lead["company_id"]}})
    email = db.personas.find_one({"_id": lead["persona_id"]})["email"]
    research = {
        "CompanyProfile": {
            "name": "Posted Name Inc",
            "domain": f"https://www.{other['domain'].upper()}/about",
            "industry": "Robotics",
            "technographics": ["Snowflake", {"name": "dbt", "category": "data", "confidence": "high"}],
        },
        "PersonaProfile": {"email": f"  {email.upper()} ", "seniority": "VP"},
        "DetectedSignals": [
            {"type": "hiring", "signal": "3 data roles open", "strength": "HIGH"},
            {"type": "funding", "signal": "Series B", "strength": "enormous"},  # unreadable: Low, and a warning
        ],
        "ResearchMeta": {
            "model": "sdr-research-2",
            "completed_at_utc": "2026-12-01T10:00:00Z",
            "citations": [{"source_name": "Careers page", "url": "https://example.com/jobs"}],
        },
    }
    icp = {
        "icp_score": "82",
        "fit_tier": "tier a",
        "score_breakdown": {"firmographics": {"score": 40, "max_score": 50, "factors": ["Series B", {"name": "size"}]}},
        "model_version": "icp-7",
        "rationale": "fits",
    }
    return research, icp, other


@pytest.fixture
def migrated(db, tmp_path):
    seed_leads(db, 200, seed=41)
    pipeline.migrate(db, backup_dir=tmp_path / "b", skip_validation=True, run=RunFolder(tmp_path / "migrate"))
    lead = db.leads.find_one({**NORMALIZED_LEAD, "company_id": {"$exists": True}, "persona_id": {"$exists": True}})
    return db, lead


def test_posted_research_lands_normalized_exactly_as_posted(migrated):
    db, lead = migrated
    research, icp, other = posted_for(db, lead)
    written = write_research(db, lead["_id"], research, icp)

    assert written.company_id == other["_id"] and written.persona_id == lead["persona_id"]
    assert written.status == "icp_scored" and written.warnings == {"detected_signals.strength": 1}
    stored = db.leads.find_one({"_id": lead["_id"]})
    assert stored["company_id"] == other["_id"] and stored["persona_id"] == lead["persona_id"]
    assert stored["status"] == "icp_scored" and "legacy_lead_id" not in stored
    assert stored["extra"]["application"]["legacy_lead_id"] == lead["legacy_lead_id"]
    (run,) = db.research_runs.find({"lead_id": lead["_id"]})
    assert run["company_id"] == other["_id"] and run["research_meta"]["model"] == "sdr-research-2"
    signals = sorted(
        (s["type"], s["signal"], s["strength"]) for s in db.detected_signals.find({"lead_id": lead["_id"]})
    )
    assert signals == [("funding", "Series B", "Low"), ("hiring", "3 data roles open", "High")]
    (citation,) = db.citations.find({"research_run_id": run["_id"]})
    assert (citation["source_name"], citation["url"]) == ("Careers page", "https://example.com/jobs")
    (score,) = db.icp_scores.find({"lead_id": lead["_id"]})
    assert (score["icp_score"], score["fit_tier"], score["score_breakdown"]) == (82, "A", {"firmographics": 40})
    (breakdown,) = db.icp_factor_breakdowns.find({"icp_score_id": score["_id"]})
    assert breakdown["factors"] == [{"name": "Series B"}, {"name": "size"}] and breakdown["max_score"] == 50
    company = db.companies.find_one({"_id": other["_id"]})
    assert company["industry"] == "Robotics" and company["domain"] == other["domain"], "the research's values win"
    techs = {t["name"]: t for t in db.technographics.find({"company_id": other["_id"]})}
    assert {"Snowflake", "dbt"} <= set(techs) and techs["dbt"]["confidence"] == "High"
    assert db[RELEASED_COLLECTION].find_one({"_id": lead["legacy_lead_id"]})["lead_id"] == lead["_id"]

    again = data_state(db)
    assert not write_research(db, lead["_id"], research, icp).changed, "the same call again writes nothing"
    assert data_state(db) == again


def test_a_refresh_keeps_it_verify_counts_it_and_a_rollback_puts_it_back(migrated, tmp_path):
    db, lead = migrated
    research, icp, _ = posted_for(db, lead)
    write_research(db, lead["_id"], research, icp)
    theirs = {name: list(db[name].find({"lead_id": lead["_id"]})) for name in ("research_runs", "icp_scores")}
    theirs["leads"] = [db.leads.find_one({"_id": lead["_id"]})]
    source = lead["legacy_lead_id"]
    db.leads.update_one({"_id": source}, {"$set": {"lead_input.title": "changed by the legacy app"}})
    other = db.leads.find_one({**NESTED_LEAD, "_id": {"$ne": source}})
    db.leads.update_one({"_id": other["_id"]}, {"$set": {"lead_input.title": "Head of Refreshes"}})

    changes, _, report = pipeline.refresh(
        db, backup_dir=tmp_path / "b", skip_validation=True, run=RunFolder(tmp_path / "refresh")
    )
    assert report.ok and changes.changed == {legacy_key(other["_id"])}, "a released source lead is no change"
    assert theirs == _as_now(db, lead["_id"]), "the refresh left the application's lead and its documents alone"
    full = pipeline.verify_database(db, run=RunFolder(tmp_path / "verify"))
    assert full.ok and full.released == 1, full.render()
    assert full.collections["research_runs"].kept >= 1

    rollback(db, latest_backup(tmp_path / "b", db.name))
    assert theirs == _as_now(db, lead["_id"]), "a rollback puts it back"
    rollback(db, sorted((tmp_path / "b").iterdir())[0])  # the migration's own backup: the pipeline's data goes
    assert theirs == _as_now(db, lead["_id"])


def _as_now(db, lead_id: ObjectId) -> dict:
    found = {name: list(db[name].find({"lead_id": lead_id})) for name in ("research_runs", "icp_scores")}
    found["leads"] = [db.leads.find_one({"_id": lead_id})]
    return found


def test_keys_that_tie_two_personas_together_merge_them(migrated):
    db, lead = migrated
    mine = db.personas.find_one({"_id": lead["persona_id"]})
    others = db.personas.find_one({"_id": {"$ne": mine["_id"]}, "linkedin_url": {"$exists": True}})
    research = {"PersonaProfile": {"email": mine["email"], "linkedin_url": "https://" + others["linkedin_url"]}}
    held = {p: db.leads.count_documents({"persona_id": p}) for p in (mine["_id"], others["_id"])}
    written = write_research(db, lead["_id"], research)
    survivor = min((mine["_id"], others["_id"]), key=lambda p: (-held[p], p))
    gone = ({mine["_id"], others["_id"]} - {survivor}).pop()
    assert written.persona_id == survivor and written.merged == {"personas": [gone]}
    assert db.personas.find_one({"_id": gone}) is None
    assert (
        db.leads.count_documents({"persona_id": gone}) == 0
        and db.research_runs.count_documents({"persona_id": gone}) == 0
    )
    merged = db.personas.find_one({"_id": survivor})
    assert merged["email"] == mine["email"] and merged["linkedin_url"] == others["linkedin_url"]


def test_no_such_lead(migrated):
    db, _ = migrated
    nested = db.leads.find_one(NESTED_LEAD)
    for missing in (ObjectId(), nested["_id"]):
        with pytest.raises(LeadNotFound):
            write_research(db, missing, {"DetectedSignals": []})
