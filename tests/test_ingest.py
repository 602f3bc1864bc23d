"""CSV upload against the real server: companies and personas found by the contract's keys,
new ones created, bad rows rejected by line number, nothing created twice, large files in
chunks, bad files refused whole, the CSV corpus (tests/data/csv) row by row, a row too large
for MongoDB rejected alone, name lookups whatever the chunk size, the contract's indexes; and
verify, refresh and the Leads view with uploaded leads."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bson import ObjectId
from data.csv.cases import CASES, Case

from leadnorm.contract import NESTED_LEAD, NORMALIZED_LEAD, REJECT_TOO_LARGE, UPLOAD_REJECTS_COLLECTION
from leadnorm.devtools.seed import seed_leads
from leadnorm.errors import UploadError
from leadnorm.schema import COLLECTIONS
from leadnorm.steps.ingest import ingest_csv
from leadnorm.steps.pipeline import migrate, refresh
from leadnorm.steps.runstore import RunFolder
from leadnorm.views import lead as joined_lead

UPLOADED = {"extra.upload": {"$exists": True}}  # nested source leads have a `status` of their own


@pytest.fixture
def migrated(db, tmp_path):
    seed_leads(db, 60, seed=8)
    migrate(db, backup_dir=tmp_path / "b", skip_validation=True, run=RunFolder(tmp_path / "run"))
    return db


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def snapshot(db) -> dict:
    return {name: sorted(db[name].find(), key=lambda d: str(d["_id"])) for name in COLLECTIONS}


def mixed_file(db, tmp_path) -> tuple[Path, dict]:
    """Header in another order and case; rows: a migrated persona's email (other case) at a
    migrated company's domain (as a URL), a new person at a new company, a new person at a
    migrated company named without a domain, then three bad rows."""
    persona = db.personas.find_one({"email": {"$exists": True}})
    company = db.companies.find_one({"domain": {"$exists": True}})
    named = db.companies.find_one({"domain": {"$exists": False}}) or company
    header = ["EMAIL", "Name", "company", " Title ", "Domain", "phone"]
    rows = [
        [
            persona["email"].upper(),
            "Someone Known",
            company["name"],
            "CTO",
            f"https://www.{company['domain']}/about",
            "",
        ],
        ["new.person@fresh-co.example", "New Person", "Fresh Co", "VP Sales", "fresh-co.example", "+1 555 0100"],
        ["", "Nameonly Person", f"  {named['name'].upper()} ", "Engineer", "", ""],
        ["", "", "Nobody Inc", "Ghost", "", ""],
        ["not-an-email", "Bad Email", "X", "Y", "", ""],
        ["also@bad", "Bad Too", "X", "Y", "", ""],
    ]
    return write_csv(tmp_path / "upload.csv", header, rows), {"persona": persona, "company": company, "named": named}


def test_ingest_reuses_creates_and_rejects_by_line(migrated, tmp_path):
    db = migrated
    path, known = mixed_file(db, tmp_path)
    companies, personas = db.companies.count_documents({}), db.personas.count_documents({})
    result = ingest_csv(db, path)

    assert result.rows == 6 and result.leads_created == 3
    assert result.personas_reused == 1 and result.personas_created == 2 and result.companies_created == 1
    assert result.companies_reused == len({known["company"]["_id"], known["named"]["_id"]})
    assert [(r.line, r.reason) for r in result.rejected] == [
        (5, "neither name nor email"),
        (6, "malformed email"),
        (7, "malformed email"),
    ]
    assert db.companies.count_documents({}) == companies + 1  # only Fresh Co is new
    assert db.personas.count_documents({}) == personas + 2  # the new person and the name-only one
    uploaded = {lead["name"]: lead for lead in db.leads.find(UPLOADED)}
    assert set(uploaded) == {"Someone Known", "New Person", "Nameonly Person"}
    assert uploaded["Someone Known"]["persona_id"] == known["persona"]["_id"]
    assert uploaded["Someone Known"]["company_id"] == known["company"]["_id"]
    assert uploaded["Nameonly Person"]["company_id"] == known["named"]["_id"]
    fresh = db.companies.find_one({"_id": uploaded["New Person"]["company_id"]})
    assert fresh["domain"] == "fresh-co.example" and fresh["name"] == "Fresh Co" and fresh["industry"] == ""
    new_persona = db.personas.find_one({"_id": uploaded["New Person"]["persona_id"]})
    assert new_persona["email"] == "new.person@fresh-co.example" and "linkedin_url" not in new_persona
    assert uploaded["New Person"]["extra"]["phone"] == "+1 555 0100"
    assert uploaded["New Person"]["extra"]["upload"]["line"] == 3
    rejects = sorted((r["line"], r["reason"]) for r in db[UPLOAD_REJECTS_COLLECTION].find())
    assert rejects == [(5, "neither name nor email"), (6, "malformed email"), (7, "malformed email")]

    before = snapshot(db)
    again = ingest_csv(db, path)
    assert again.leads_created == again.companies_created == again.personas_created == 0
    assert again.leads_existing == 3 and snapshot(db) == before
    assert db[UPLOAD_REJECTS_COLLECTION].count_documents({}) == 3


def test_a_large_file_is_read_in_chunks_and_dedupes_across_them(db, tmp_path):
    people = [i % 400 for i in range(1200)]  # each of 400 people three times, always at one company
    rows = [[f"Person {p}", f"p{p}@big.example", f"Company {p % 40}", "Analyst"] for p in people]
    path = write_csv(tmp_path / "big.csv", ["name", "email", "company", "title"], rows)
    result = ingest_csv(db, path, chunk_rows=250)  # five chunks; a person's rows fall in different ones
    assert result.rows == 1200 and not result.rejected
    assert result.leads_created == db.leads.count_documents(UPLOADED) == 400
    assert db.personas.count_documents({}) == 400 and db.companies.count_documents({}) == 40
    assert result.personas_created == 400 and result.personas_reused == result.companies_reused == 0
    assert ingest_csv(db, path, chunk_rows=250).leads_created == 0


def uploaded_rows(db) -> list[tuple]:
    """Each uploaded lead as (line, name, title, company name, email or None), by line."""
    companies = {c["_id"]: c["name"] for c in db.companies.find({}, {"name": 1})}
    leads = sorted(db.leads.find(UPLOADED), key=lambda lead: lead["extra"]["upload"]["line"])
    return [
        (
            lead["extra"]["upload"]["line"],
            lead["name"],
            lead["title"],
            companies.get(lead.get("company_id")),
            lead["email"] or None,
        )
        for lead in leads
    ]


@pytest.mark.parametrize("case", CASES.values(), ids=lambda c: c.file)
def test_the_corpus_loads_as_each_case_says(db, case: Case):
    if case.error:
        with pytest.raises(UploadError) as refused:
            ingest_csv(db, case.path)
        assert str(refused.value) == f"{case.file}: {case.error}"
        assert db.list_collection_names() == []  # nothing written, not even an index
        return
    result = ingest_csv(db, case.path)
    assert uploaded_rows(db) == list(case.loaded)
    assert [(r.line, r.reason) for r in result.rejected] == list(case.rejected)
    assert sorted((r["line"], r["reason"]) for r in db[UPLOAD_REJECTS_COLLECTION].find()) == list(case.rejected)
    assert result.rows == len(case.loaded) + len(case.rejected) and result.leads_created == len(case.loaded)


def test_a_17_mb_row_is_rejected_alone_and_nothing_of_it_is_written(db, tmp_path):
    path = tmp_path / "big-field.csv"
    with path.open("w") as out:
        out.write("name,title,company,email,domain\n")
        out.write("Ann Lee,CTO,Acme,ann@acme.example,acme.example\n")
        out.write(f"Eve Moss,{'x' * 17_000_000},Hooli,eve@hooli.example,hooli.example\n")
        out.write("Bob Stone,VP Sales,Globex,bob@globex.example,globex.example\n")
    result = ingest_csv(db, path)
    assert [(r.line, r.reason) for r in result.rejected] == [(3, REJECT_TOO_LARGE)]
    assert [row[:2] for row in uploaded_rows(db)] == [(2, "Ann Lee"), (4, "Bob Stone")]
    assert sorted(c["name"] for c in db.companies.find()) == ["Acme", "Globex"]  # no Hooli without a lead
    assert sorted(p["full_name"] for p in db.personas.find()) == ["Ann Lee", "Bob Stone"]


def seed_named(db) -> dict:
    """Companies bearing one name three ways (two domains, none) and two personas of one name."""
    companies = [
        {"_id": ObjectId("0" * 23 + "1"), "name": "Acme", "domain": "b-acme.example"},
        {"_id": ObjectId("0" * 23 + "2"), "name": " ACME ", "domain": "a-acme.example"},
        {"_id": ObjectId("0" * 23 + "3"), "name": "acme"},
    ]
    personas = [
        {"_id": ObjectId("f" * 24), "full_name": "Dana Cole"},
        {"_id": ObjectId("1" * 24), "full_name": "DANA cole"},
    ]
    db.companies.insert_many(companies)
    db.personas.insert_many(personas)
    return {"a-acme": companies[1]["_id"], "dana": personas[1]["_id"]}


def test_names_join_by_the_contracts_rules_in_file_order_whatever_the_chunk_size(db, tmp_path):
    rows = [
        ["Zed One", "CTO", "  acme ", "", "", ""],  # the smallest domain of those bearing the name
        ["dana COLE", "CFO", "Newco", "", "", ""],  # the smaller id of the two Danas; Newco created without a domain
        ["Eli Park", "CEO", "NEWCO", "eli@newco.example", "", "newco.example"],  # Newco with a domain
        ["Fay Lin", "COO", "newco", "", "", ""],  # joins the Newco with a domain, created by the row before
        ["zed one", "Founder", "Acme", "", "", ""],  # the Zed One created on line 2
        ["Gil Ray", "VP", "Initech", "gil@initech.example", "https://www.LinkedIn.com/in/Gil/", ""],
        ["Gil R.", "VP", "Initech", "", "linkedin.com/in/gil", ""],  # Gil by LinkedIn URL, in the same chunk
    ]
    path = write_csv(tmp_path / "names.csv", ["name", "title", "company", "email", "linkedin_url", "domain"], rows)
    resolved = {}
    for chunk_rows in (1, 5000):
        for name in db.list_collection_names():
            db.drop_collection(name)
        known = seed_named(db)
        ingest_csv(db, path, chunk_rows=chunk_rows)
        leads = {lead["extra"]["upload"]["line"]: lead for lead in db.leads.find(UPLOADED)}
        resolved[chunk_rows] = {line: (lead.get("company_id"), lead["persona_id"]) for line, lead in leads.items()}
    assert resolved[1] == resolved[5000]
    ids = resolved[1]
    newco = db.companies.find_one({"domain": "newco.example"})["_id"]
    assert ids[2][0] == known["a-acme"] and ids[3][1] == known["dana"]
    assert "domain" not in db.companies.find_one({"_id": ids[3][0]})
    assert ids[4][0] == ids[5][0] == newco and ids[6][1] == ids[2][1] and ids[8][1] == ids[7][1]
    assert db.personas.count_documents({}) == 2 + 4  # Zed, Eli, Fay, Gil


def test_the_contracts_indexes_are_there_after_an_upload(db, tmp_path):
    path = write_csv(
        tmp_path / "one.csv", ["name", "title", "company", "email"], [["Ann", "CTO", "Acme", "a@acme.example"]]
    )
    db.personas.insert_one({"full_name": "Someone"})  # not empty: its indexes are made before the load
    ingest_csv(db, path)
    for name in ("companies", "personas", "leads"):
        held = {index["name"] for index in db[name].list_indexes()}
        assert {model.document["name"] for model in COLLECTIONS[name].indexes} <= held, name


def cli(*args) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "MONGO_URI"}
    return subprocess.run(
        [sys.executable, "-m", "leadnorm", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_cli_reports_rejects_on_stderr_and_refuses_bad_files_whole(migrated, mongo_uri, tmp_path):
    db = migrated
    path, _ = mixed_file(db, tmp_path)
    done = cli("ingest-csv", str(path), "--uri", mongo_uri, "--db", db.name)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("upload.csv line 5: rejected, neither name nor email") == 1
    assert done.stderr.count("upload.csv line 7: rejected, malformed email") == 1
    assert "leads 3 created" in done.stdout

    before = snapshot(db)
    missing = write_csv(tmp_path / "missing.csv", ["name", "email", "company"], [["A", "a@b.example", "C"]])
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(b"name,title,company,email\nA,B,C,a@b.example\n\xff\xfe\x00bad\n")
    for bad, message in ((missing, "missing required column(s): title"), (garbage, "not a readable CSV file")):
        refused = cli("ingest-csv", str(bad), "--uri", mongo_uri, "--db", db.name)
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
    assert cli("ingest-csv", str(tmp_path / "nope.csv"), "--uri", mongo_uri, "--db", db.name).returncode == 2
    assert snapshot(db) == before


def test_verify_refresh_and_the_lead_view_account_for_uploaded_leads(migrated, mongo_uri, tmp_path):
    db = migrated
    path, _ = mixed_file(db, tmp_path)
    ingest_csv(db, path)
    uploaded = list(db.leads.find(UPLOADED))
    fresh_company = db.companies.find_one({"domain": "fresh-co.example"})

    db.leads.delete_one({**NESTED_LEAD, "_migrated": True})  # the application deletes a lead: a refresh runs
    changes, _, report = refresh(db, backup_dir=tmp_path / "b", skip_validation=True, run=RunFolder(tmp_path / "r"))
    assert changes.gone and report.ok
    assert list(db.leads.find(UPLOADED)) == uploaded  # untouched
    assert db.companies.find_one({"_id": fresh_company["_id"]}) == fresh_company  # kept: an uploaded lead holds it
    for lead in uploaded:
        assert db.companies.find_one({"_id": lead["company_id"]}) and db.personas.find_one({"_id": lead["persona_id"]})
        joined = joined_lead(db, lead["_id"])
        assert joined["status"] == "uploaded" and joined["company"]["_id"] == lead["company_id"]
    assert db.leads.count_documents(NORMALIZED_LEAD) == db.leads.count_documents({"_migrated": True})
    checked = cli("verify", "--uri", mongo_uri, "--db", db.name)  # the whole database, from scratch
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_rollback_keeps_uploaded_leads_with_their_companies_and_personas(db, tmp_path):
    from leadnorm.steps.rollback import latest_backup, rollback

    seed_leads(db, 40, seed=9)
    migrate(db, backup_dir=tmp_path / "b", skip_validation=True, run=RunFolder(tmp_path / "run"))  # backup: no uploads
    path, _ = mixed_file(db, tmp_path)
    ingest_csv(db, path)
    uploaded = list(db.leads.find(UPLOADED))
    result = rollback(db, latest_backup(tmp_path / "b", db.name))
    assert result.application_leads_kept == 3 and db.leads.count_documents(NORMALIZED_LEAD) == 0
    assert list(db.leads.find(UPLOADED)) == uploaded
    for lead in uploaded:  # every reference still resolves, also those to companies the migration had made
        assert db.companies.find_one({"_id": lead["company_id"]}) and db.personas.find_one({"_id": lead["persona_id"]})
    assert db.leads.count_documents(NESTED_LEAD) == 40 and not db.leads.find_one({"_migrated": True})
