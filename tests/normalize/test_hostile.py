"""The hostile corpus (tests/data/hostile), one class at a time, without a server: each document
ends migrated or rejected as its class says, unreadable values are warnings, and every row
is a BSON document that fits MongoDB's limit."""

from __future__ import annotations

import math

import bson
import pytest
from bson import DatetimeMS
from data.hostile.cases import CASES, Case

from leadnorm.contract import MAX_DOCUMENT_BYTES, REJECT_TOO_LARGE, legacy_key
from leadnorm.transform.documents import to_documents
from leadnorm.transform.ids import derived_id, lead_id

from .leads import run


def records(frame) -> list[dict]:
    """Rows with their values as stored: `to_dict("records")` would turn an Int64 into an int."""
    return [dict(zip(frame.columns, row)) for row in frame.itertuples(index=False, name=None)]


def normalized(name: str):
    docs = CASES[name].build()
    return docs, run(*docs)


def lead_by_source(result, source_id) -> dict:
    found = [r for r in records(result.frames["leads"]) if legacy_key(r["legacy_lead_id"]) == legacy_key(source_id)]
    assert len(found) == 1
    return found[0]


@pytest.mark.parametrize("hostile", CASES.values(), ids=lambda c: c.name)
def test_every_document_ends_as_its_class_says(hostile: Case):
    docs = hostile.build()
    result = run(*docs)
    outcomes = records(result.outcomes)
    assert sorted(legacy_key(o["_id"]) for o in outcomes) == sorted(legacy_key(d["_id"]) for d in docs)
    if hostile.outcome == "migrated":
        assert {o["outcome"] for o in outcomes} == {"migrated"}
        assert len(result.frames["leads"]) == len(docs)
    else:
        assert {(o["outcome"], o["reject_reason"]) for o in outcomes} == {("rejected", hostile.outcome)}
        assert all(frame.empty for frame in result.frames.values()), "a rejected lead left rows"
        assert not result.warnings, "a rejected lead counted warnings"
    assert set(hostile.warns) <= set(result.warnings), dict(result.warnings)


@pytest.mark.parametrize("hostile", CASES.values(), ids=lambda c: c.name)
def test_every_row_is_a_document_that_fits_with_no_nan_outside_extra(hostile: Case):
    result = run(*hostile.build())
    for name, frame in result.frames.items():
        for document in to_documents(frame):
            assert len(bson.encode(document)) < MAX_DOCUMENT_BYTES, name
            for field, value in document.items():
                assert not (isinstance(value, float) and math.isnan(value)), f"{name}.{field}"


def test_string_and_int_42_are_two_leads():
    _, result = normalized("id_string_42_and_int_42")
    assert lead_by_source(result, "42")["_id"] != lead_by_source(result, 42)["_id"]
    assert derived_id("lead", "42") != derived_id("lead", 42) == lead_id(42)


def test_embedded_document_ids_in_another_field_order_are_two_leads():
    _, result = normalized("id_embedded_document")
    assert len(set(result.frames["leads"]["_id"])) == 2


def test_nan_and_infinity_are_the_default_never_a_silent_zero_without_warning():
    for name in ("nan_and_infinity_floats", "nan_and_infinity_decimal128"):
        _, result = normalized(name)
        assert result.frames["icp_scores"]["icp_score"].tolist() == [0.0]
        assert result.warnings["icp_scores.icp_score"] == 1


def test_out_of_range_dates_are_unread_but_kept_as_they_are_under_extra():
    docs, result = normalized("dates_outside_python_range")
    lead = result.frames["leads"].iloc[0]
    assert lead["created_at"] is None and lead["updated_at"] is None
    assert isinstance(lead["extra"]["legacy_seen_at"], DatetimeMS)
    assert lead["extra"]["legacy_seen_at"] == docs[0]["legacy_seen_at"]


def test_a_nan_top_level_field_is_kept_under_the_leads_extra():
    _, result = normalized("nan_in_top_level_unknown_field")
    assert math.isnan(result.frames["leads"].iloc[0]["extra"]["legacy_score"])


def test_nan_inside_extra_survives_deduplication():
    _, result = normalized("nan_inside_extra")
    frames = result.frames
    assert math.isnan(frames["leads"].iloc[0]["extra"]["lead_input"]["phone"])
    assert math.isnan(frames["companies"].iloc[0]["extra"]["rank"])
    assert math.isnan(frames["detected_signals"].iloc[0]["extra"]["weight"])
    assert math.isinf(frames["research_runs"].iloc[0]["extra"]["notes"])
    assert math.isnan(frames["icp_scores"].iloc[0]["extra"]["calibration"])


def test_dollar_and_dotted_keys_are_kept_under_extra():
    docs, result = normalized("dollar_and_dotted_keys")
    extra = result.frames["leads"].iloc[0]["extra"]
    assert extra["$where"] == "1 == 1" and extra["dotted.field"] == docs[0]["dotted.field"]
    assert sorted(result.frames["icp_factor_breakdowns"]["category"]) == ["$fit", "a.b"]


def test_a_too_large_lead_between_two_others_leaves_them_intact():
    small = CASES["id_float"].build()[0]
    big = CASES["source_near_16_mb"].build()[0]
    expanding = CASES["target_larger_than_its_source"].build()[0]
    result = run(small, big, expanding, {**small, "_id": 3.5})
    assert len(result.frames["leads"]) == 2 and len(result.frames["icp_scores"]) == 0
    rejected = records(result.rejects)
    assert [(r["_id"], r["reject_reason"]) for r in rejected] == [
        ("near-16mb", REJECT_TOO_LARGE),
        ("expanding", REJECT_TOO_LARGE),
    ]
