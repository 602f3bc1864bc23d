"""A hypothesis state machine: random source changes, each followed by a refresh; after every
refresh the collections equal a migration from scratch of the source as it is then, and a
second look finds nothing changed."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule
from test_refresh import canonical

from leadnorm.contract import MARKERS, NESTED_LEAD
from leadnorm.devtools.seed import generate_leads
from leadnorm.mongo import connect
from leadnorm.steps.changes import detect_changes
from leadnorm.steps.pipeline import migrate, refresh
from leadnorm.steps.runstore import RunFolder

POOL = list(generate_leads(90, seed=23))


def make_machine(mongo_uri: str):
    class RefreshMachine(RuleBasedStateMachine):
        @initialize()
        def start(self):
            self.tmp = Path(tempfile.mkdtemp(prefix="leadnorm-stateful-"))
            self.db = connect(mongo_uri, f"stateful_{uuid.uuid4().hex[:10]}")
            self.db.leads.insert_many([dict(lead) for lead in POOL[:40]])
            self.next = 40
            self.runs = 0
            self.do_refresh()

        def do_refresh(self):
            self.runs += 1
            options = {"backup_dir": self.tmp / "b", "skip_validation": True}
            _, _, report = refresh(self.db, run=RunFolder(self.tmp / f"r{self.runs}"), **options)
            assert report is None or report.ok, report.problems()
            scratch = connect(mongo_uri, f"scratch_{uuid.uuid4().hex[:10]}")
            try:
                source = [{k: v for k, v in d.items() if k not in MARKERS} for d in self.db.leads.find(NESTED_LEAD)]
                if source:
                    scratch.leads.insert_many(source)
                    migrate(scratch, run=RunFolder(self.tmp / f"s{self.runs}"), **options)
                assert canonical(self.db) == canonical(scratch)
            finally:
                scratch.client.drop_database(scratch.name)
            assert not detect_changes(self.db).any

        def pick(self, index: int):
            ids = [d["_id"] for d in self.db.leads.find(NESTED_LEAD, {"_id": 1}, sort=[("_id", 1)])]
            return ids[index % len(ids)] if ids else None

        @rule(count=st.integers(1, 8))
        def add_leads(self, count):
            fresh = POOL[self.next : self.next + count]
            if fresh:
                self.db.leads.insert_many([dict(lead) for lead in fresh])
                self.next += len(fresh)
            self.do_refresh()

        @rule(index=st.integers(0, 500), email=st.sampled_from(["a@x.example", "b@x.example", "C@X.example "]))
        def change_email(self, index, email):
            self.db.leads.update_one({"_id": self.pick(index)}, {"$set": {"lead_input.email": email}})
            self.do_refresh()

        @rule(index=st.integers(0, 500), domain=st.sampled_from(["one.example", "https://www.Two.example/x", ""]))
        def change_domain(self, index, domain):
            self.db.leads.update_one({"_id": self.pick(index)}, {"$set": {"research.CompanyProfile.domain": domain}})
            self.do_refresh()

        @rule(index=st.integers(0, 500))
        def drop_signals(self, index):
            self.db.leads.update_one({"_id": self.pick(index)}, {"$unset": {"research.DetectedSignals": ""}})
            self.do_refresh()

        @rule(index=st.integers(0, 500), other=st.integers(0, 500))
        def link_personas(self, index, other):
            source = self.db.leads.find_one({"_id": self.pick(other)}) or {}
            linkedin = ((source.get("research") or {}).get("PersonaProfile") or {}).get("linkedin_url")
            if isinstance(linkedin, str):
                self.db.leads.update_one(
                    {"_id": self.pick(index)}, {"$set": {"research.PersonaProfile.linkedin_url": linkedin}}
                )
            self.do_refresh()

        @rule(index=st.integers(0, 500), valid=st.booleans())
        def break_or_fix(self, index, valid):
            lead_input = {"name": "Fixed", "email": "fixed@x.example"} if valid else ["not", "an", "object"]
            self.db.leads.update_one({"_id": self.pick(index)}, {"$set": {"lead_input": lead_input}})
            self.do_refresh()

        @rule(index=st.integers(0, 500))
        def delete_lead(self, index):
            self.db.leads.delete_one({"_id": self.pick(index)})
            self.do_refresh()

        def teardown(self):
            self.db.client.drop_database(self.db.name)

    return RefreshMachine


def test_refresh_always_equals_a_migration_from_scratch(mongo_uri):
    machine = make_machine(mongo_uri)
    machine.TestCase.settings = settings(
        max_examples=4,
        stateful_step_count=5,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    machine.TestCase().runTest()
