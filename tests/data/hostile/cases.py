"""A hostile corpus: nested leads that each try to break the migration in one way.

One `Case` per class of trouble: `build()` returns its nested documents, `outcome` what
must happen to every one of them (`migrated`, or the reject reason) and `warns` the target
fields that must count an unreadable value. Whatever is in a document, it ends migrated
or rejected with a reason, and never blocks the others. Used by tests/test_hostile.py
(against the server, beside seeded leads) and tests/normalize/test_hostile.py (pure).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bson import Binary, DatetimeMS, Decimal128, ObjectId, Timestamp
from bson.int64 import Int64

from leadnorm.contract import MAX_DOCUMENT_BYTES, REJECT_NO_IDENTITY, REJECT_NOT_OBJECT, REJECT_TOO_LARGE

NAN = float("nan")
INF = float("inf")
MS_YEAR_300000 = (300_000 - 1970) * 31_556_952_000  # a BSON date far beyond Python's year 9999
MS_BEFORE_YEAR_ONE = -MS_YEAR_300000
BEFORE_YEAR_ONE_IN_UTC = "0001-01-01T00:00:00+05:00"


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], list[dict]]
    outcome: str = "migrated"
    warns: tuple[str, ...] = ()


CASES: dict[str, Case] = {}


def case(outcome: str = "migrated", warns: tuple[str, ...] = ()):
    def register(build: Callable[[], list[dict]]) -> Callable[[], list[dict]]:
        CASES[build.__name__] = Case(build.__name__, build, outcome, warns)
        return build

    return register


def lead(_id, key: str, **fields) -> dict:
    """A nested lead that would migrate: a name, an email of its own, a company; `fields` add or replace."""
    lead_input = {"name": f"Hostile {key}", "email": f"{key}@hostile.test", "company": "Hostile Co"}
    return {"_id": _id, "lead_input": lead_input, **fields}


def research(**parts) -> dict:
    """A small valid research object; `parts` add or replace its sections."""
    return {
        "CompanyProfile": {"name": "Hostile Co", "domain": "hostile.test"},
        "PersonaProfile": {"seniority": "VP"},
        "ResearchMeta": {"completed_at_utc": datetime(2024, 3, 1, tzinfo=UTC), "confidence": "High"},
        **parts,
    }


def icp(**parts) -> dict:
    return {"icp_score": 50, "fit_tier": "B", "score_breakdown": {"fit": {"score": 5, "max_score": 10}}, **parts}


# -- every kind of source _id ---------------------------------------------------------------


@case()
def id_object_id():
    return [lead(ObjectId("000000000000000000000042"), "id-oid")]


@case()
def id_null():
    """`_id: null` is allowed once per collection: a legacy id like any other."""
    return [lead(None, "id-null")]


@case()
def id_string_42_and_int_42():
    """`"42"` and `42` are two leads, never one."""
    return [lead("42", "id-str-42"), lead(42, "id-int-42")]


@case()
def id_int64():
    return [lead(Int64(2**40), "id-int64")]


@case()
def id_float():
    return [lead(2.5, "id-float")]


@case()
def id_uuid_and_binary():
    return [
        lead(Binary.from_uuid(uuid.UUID("12345678-1234-5678-1234-567812345678")), "id-uuid"),
        lead(Binary(b"\x00\x01raw", 0), "id-binary"),
    ]


@case()
def id_decimal128():
    return [lead(Decimal128("3.14"), "id-decimal")]


@case()
def id_embedded_document():
    """An unhashable id in Python; the same fields in another order are another id in MongoDB."""
    return [lead({"tenant": "acme", "n": 1}, "id-doc-a"), lead({"n": 1, "tenant": "acme"}, "id-doc-b")]


@case()
def id_bool_datetime_timestamp():
    return [
        lead(True, "id-bool"),
        lead(datetime(2020, 1, 1, tzinfo=UTC), "id-datetime"),
        lead(Timestamp(1_700_000_000, 1), "id-timestamp"),
    ]


# -- unreadable numbers and dates ------------------------------------------------------------


@case(
    warns=(
        "icp_scores.icp_score",
        "icp_factor_breakdowns.score",
        "icp_factor_breakdowns.max_score",
        "companies.employee_count",
        "companies.founded_year",
        "research_runs.research_meta.duration_ms",
        "leads.title",
    )
)
def nan_and_infinity_floats():
    """Never a silent 0: each is the default and a warning."""
    profile = {"name": "Hostile Co", "domain": "hostile.test", "employee_count": INF, "founded_year": NAN}
    return [
        lead(
            "nan-floats",
            "nan-floats",
            lead_input={"name": "Nan Floats", "email": "nan-floats@hostile.test", "title": NAN},
            research=research(CompanyProfile=profile, ResearchMeta={"duration_ms": -INF}),
            icp=icp(icp_score=NAN, score_breakdown={"fit": {"score": NAN, "max_score": INF}}),
        )
    ]


@case(
    warns=(
        "icp_scores.icp_score",
        "icp_factor_breakdowns.score",
        "icp_factor_breakdowns.max_score",
        "companies.employee_count",
        "research_runs.research_meta.duration_ms",
    )
)
def nan_and_infinity_decimal128():
    profile = {"name": "Hostile Co", "domain": "hostile.test", "employee_count": Decimal128("Infinity")}
    breakdown = {"fit": {"score": Decimal128("NaN"), "max_score": Decimal128("-Infinity")}}
    return [
        lead(
            "nan-decimals",
            "nan-decimals",
            research=research(CompanyProfile=profile, ResearchMeta={"duration_ms": Decimal128("1E+6000")}),
            icp=icp(icp_score=Decimal128("sNaN"), score_breakdown=breakdown),
        )
    ]


@case(warns=("icp_scores.icp_score", "companies.employee_count", "companies.founded_year"))
def numbers_as_odd_strings_and_bools():
    profile = {"name": "Hostile Co", "domain": "hostile.test", "employee_count": "Infinity", "founded_year": True}
    return [lead("odd-numbers", "odd-numbers", research=research(CompanyProfile=profile), icp=icp(icp_score="nan"))]


@case(
    warns=(
        "leads.created_at",
        "leads.updated_at",
        "research_runs.research_meta.completed_at_utc",
        "icp_scores.scored_at",
        "detected_signals.detected_at",
    )
)
def dates_outside_python_range():
    """BSON dates of year 300000 and before year 1 (read as bson.DatetimeMS); kept as they are under extra."""
    late, early = DatetimeMS(MS_YEAR_300000), DatetimeMS(MS_BEFORE_YEAR_ONE)
    signal = {"type": "hiring", "signal": "posted", "detected_at": early}
    return [
        lead(
            "dates-out-of-range",
            "dates-out-of-range",
            created_at=late,
            updated_at=early,
            legacy_seen_at=late,
            research=research(DetectedSignals=[signal], ResearchMeta={"completed_at_utc": late}),
            icp=icp(scored_at=early),
        )
    ]


@case(
    warns=(
        "leads.created_at",
        "research_runs.research_meta.completed_at_utc",
        "icp_scores.scored_at",
        "citations.accessed_at_utc",
    )
)
def date_strings_that_leave_the_range_in_utc():
    meta = {
        "completed_at_utc": BEFORE_YEAR_ONE_IN_UTC,
        "citations": [{"source_name": "web", "url": "https://x.test", "accessed_at_utc": "9999-12-31T23:59:59-05:00"}],
    }
    return [
        lead(
            "dates-before-year-one",
            "dates-before-year-one",
            created_at=BEFORE_YEAR_ONE_IN_UTC,
            research=research(ResearchMeta=meta),
            icp=icp(scored_at=BEFORE_YEAR_ONE_IN_UTC),
        )
    ]


# -- what must be kept under extra, as it is -------------------------------------------------


@case()
def nan_in_top_level_unknown_field():
    """Kept under the lead's extra: a NaN is a value, not a field the document lacks."""
    return [lead("nan-top-level", "nan-top-level", legacy_score=NAN)]


@case()
def nan_inside_extra():
    profile = {"name": "Hostile Co", "domain": "nan-extra.test", "rank": NAN, "ratio": Decimal128("NaN")}
    signal = {"type": "hiring", "signal": "posted", "weight": NAN}
    return [
        lead(
            "nan-extra",
            "nan-extra",
            lead_input={"name": "Nan Extra", "email": "nan-extra@hostile.test", "phone": NAN},
            research=research(CompanyProfile=profile, DetectedSignals=[signal], notes=INF),
            icp=icp(calibration=NAN),
        )
    ]


@case()
def dollar_and_dotted_keys():
    odd = {"$set": {"x": 1}, "a.b": 2, "$": "dollar", ".": "dot"}
    profile = {"name": "Hostile Co", "domain": "dollar.test", "$inc": 1, "x.y": odd}
    return [
        lead(
            "dollar-keys",
            "dollar-keys",
            **{"$where": "1 == 1", "dotted.field": odd},
            lead_input={"name": "Dollar Keys", "email": "dollar-keys@hostile.test", "$meta": odd},
            research=research(CompanyProfile=profile),
            icp=icp(score_breakdown={"$fit": {"score": 5}, "a.b": {"score": 1, "$x": odd}}),
        )
    ]


@case()
def nesting_100_deep():
    deep: object = "bottom"
    for level in range(100):
        deep = {f"level{level}": deep} if level % 2 else [deep]
    return [lead("deep", "deep", deep=deep, research=research(deep=deep))]


@case()
def null_bytes_in_strings():
    return [
        lead(
            "null-bytes",
            "null-bytes",
            lead_input={"name": "Null\x00Byte", "email": "null\x00@hostile.test", "company": "Nul\x00 Co"},
            research=research(PersonaProfile={"bio": "\x00" * 10}),
            icp=icp(rationale="because\x00"),
        )
    ]


@case()
def strings_of_100_kb():
    big = "x" * 100_000
    return [
        lead(
            "big-strings",
            "big-strings",
            lead_input={"name": big, "email": "big-strings@hostile.test", "title": big, "company": big},
            research=research(CompanyProfile={"name": big, "description": big}, notes=big),
            icp=icp(rationale=big),
        )
    ]


# -- wrong types everywhere ------------------------------------------------------------------


@case(outcome=REJECT_NOT_OBJECT)
def lead_input_not_an_object():
    return [
        lead("li-list", "li-list", lead_input=[{"name": "Ann"}]),
        lead("li-str", "li-str", lead_input="Ann Lee <ann@x.test>"),
        lead("li-int", "li-int", lead_input=7),
        lead("li-nan", "li-nan", lead_input=NAN),
        lead("li-null", "li-null", lead_input=None),
    ]


@case(outcome=REJECT_NO_IDENTITY)
def lead_input_without_identity():
    return [
        lead("li-empty", "li-empty", lead_input={}),
        lead("li-blank", "li-blank", lead_input={"name": "  ", "email": "not an email"}),
        lead("li-nan-name", "li-nan-name", lead_input={"name": NAN, "email": INF}),
    ]


@case(warns=("research_runs", "icp_scores"))
def research_and_icp_as_lists():
    return [lead("research-list", "research-list", research=[research()], icp=[icp()])]


@case(
    warns=(
        "companies",
        "personas",
        "detected_signals",
        "research_runs.research_meta",
        "icp_scores.score_breakdown",
    )
)
def every_section_of_the_wrong_type():
    return [
        lead(
            "wrong-sections",
            "wrong-sections",
            research={"CompanyProfile": 42, "PersonaProfile": 3.5, "DetectedSignals": 12, "ResearchMeta": 1},
            icp={"icp_score": 70, "fit_tier": ["A"], "score_breakdown": [["fit", 5]], "scored_at": {"at": 1}},
        )
    ]


@case(
    warns=(
        "icp_factor_breakdowns.factors",
        "icp_factor_breakdowns.score",
        "citations",
        "companies.name",
        "companies.headquarters",
        "research_runs.research_meta.model",
    )
)
def wrong_types_inside_sections():
    profile = {
        "name": {"legal": "Hostile Co"},
        "domain": "wrong-inside.test",
        "headquarters": ["Paris"],
        "technographics": {"junk": [1, 2], "more": {"x": None}},  # no name: no technographic
    }
    breakdown = {"fit": {"score": "7", "factors": 12}, "timing": {"score": [1], "factors": [1, None, "ok"]}}
    meta = {"citations": 12, "model": {"name": "gpt"}, "confidence": ["High"]}
    return [
        lead(
            "wrong-inside",
            "wrong-inside",
            research=research(CompanyProfile=profile, ResearchMeta=meta),
            icp=icp(score_breakdown=breakdown),
        )
    ]


@case(warns=("companies", "detected_signals", "research_runs.research_meta.completed_at_utc"))
def lists_and_objects_swapped():
    """An object where a list belongs is a list of one; a list where an object belongs is unreadable."""
    meta = {"citations": {"source_name": "web", "url": "https://x.test"}, "completed_at_utc": [datetime(2024, 1, 1)]}
    return [
        lead(
            "swapped",
            "swapped",
            research=research(
                CompanyProfile=[{"name": "Listed Co"}],
                DetectedSignals=[{"type": "hiring"}, "just text", [1]],
                ResearchMeta=meta,
            ),
        )
    ]


# -- too large for MongoDB -------------------------------------------------------------------


@case(outcome=REJECT_TOO_LARGE)
def source_near_16_mb():
    """A 16 MB research note: the source lead has no room left for its `_migrated` mark."""
    return [lead("near-16mb", "near-16mb", research=research(notes="n" * (MAX_DOCUMENT_BYTES - 600)))]


@case(outcome=REJECT_TOO_LARGE)
def target_larger_than_its_source():
    """10 MB of one-letter factors: each becomes {name: letter}, and the breakdown passes 16 MB."""
    factors = ["f"] * 700_000
    return [lead("expanding", "expanding", icp=icp(score_breakdown={"fit": {"score": 5, "factors": factors}}))]


# -- the second corpus: fields that collide with the pipeline's own, numbers beyond 64 bits ------


@case()
def id_int64_that_fits_32_bits():
    """Stays an Int64 in every store: stored as an Int32 it was "gone" at the next refresh."""
    return [lead(Int64(7), "id-int64-small")]


@case()
def top_level_legacy_lead_id():
    """The application's own `legacy_lead_id`: its own `_id`, and another lead's. Data under
    `extra`; neither the normalized leads' index nor any lookup takes it for a normalized lead."""
    return [
        lead("legacy-own", "legacy-own", legacy_lead_id="legacy-own"),
        lead("legacy-other", "legacy-other", legacy_lead_id="42"),
        lead("legacy-int", "legacy-int", legacy_lead_id=42),
    ]


@case()
def top_level_marker_fields():
    """Fields named like the migration's marks, written by the application: no mark at all."""
    return [
        lead(
            "marks-app",
            "marks-app",
            _migrated=True,
            _migrated_lead_id="crm-9",
            _migrated_fingerprint="abc",
            _migrated_displaced={"x": 1},
        ),
        lead("marks-false", "marks-false", _migrated=False),
        lead("marks-oid", "marks-oid", _migrated=True, _migrated_lead_id=ObjectId("000000000000000000000099")),
    ]


@case()
def top_level_target_fields():
    """A lead's target fields at the top of the nested lead: `company_id` no reference, `upload` no
    upload, `extra` no extra of the pipeline's."""
    return [
        lead(
            "targets",
            "targets",
            company_id="not-an-id",
            persona_id=ObjectId("000000000000000000000098"),
            name="Top-level Name",
            email="top@hostile.test",
            title="CEO",
            upload={"file": "leads.csv", "line": 2},
            extra={"crm": 1},
        )
    ]


@case(warns=("companies.employee_count", "companies.founded_year", "research_runs.research_meta.duration_ms"))
def integers_beyond_64_bits():
    """1e308, 2**63 in every spelling, "1e20" milliseconds: BSON holds none of them as an integer."""
    return [
        lead(
            "huge-float",
            "huge-float",
            research=research(
                CompanyProfile={"name": "Huge", "employee_count": 1e308, "founded_year": "1e20"},
                ResearchMeta={"completed_at_utc": datetime(2024, 3, 1, tzinfo=UTC), "duration_ms": "1e20"},
            ),
        ),
        lead(
            "huge-text", "huge-text", research=research(CompanyProfile={"name": "Huge", "employee_count": str(2**63)})
        ),
        lead(
            "huge-decimal",
            "huge-decimal",
            research=research(CompanyProfile={"name": "Huge", "employee_count": Decimal128(str(2**63))}),
        ),
        lead("huge-neg", "huge-neg", research=research(ResearchMeta={"duration_ms": -(2.0**64)})),
    ]


# Spellings of one person and one company the dedupe must merge (tests/test_hostile.py counts them).
NFD_JOSE = "Jose\u0301"  # é as e + combining acute: what macOS file names and some forms send
UNICODE_PERSONA_EMAILS = ("josé@bücher.example", f"{NFD_JOSE}@BÜCHER.example", "jos\u200bé@xn--bcher-kva.example")
UNICODE_COMPANY_DOMAINS = ("bücher.example", "xn--bcher-kva.example", "BÜCHER.example", "bü\u200bcher.example")


@case()
def unicode_forms_of_one_person_and_one_company():
    return [
        lead(
            f"unicode-{number}",
            f"unicode-{number}",
            lead_input={"name": name, "email": email, "company": "Bücher GmbH"},
            research=research(CompanyProfile={"name": "Bücher GmbH", "domain": domain}),
        )
        for number, (name, email, domain) in enumerate(
            zip(
                ("José Bücher", f"{NFD_JOSE} Bücher", "Jos\u200bé Bü\u200ccher", "JOSÉ BÜCHER"),
                (*UNICODE_PERSONA_EMAILS, None),
                UNICODE_COMPANY_DOMAINS,
            )
        )
    ]


def documents() -> list[dict]:
    """Every case's documents, in one list."""
    return [doc for hostile in CASES.values() for doc in hostile.build()]
