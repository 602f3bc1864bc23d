"""The value readers of leadnorm.transform.clean: a corpus of messy source values per reader.

Every case asserts the exact clean value and the exact warnings it counts: blank
values are silently absent, unreadable ones are absent *and* counted for their field.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from bson.datetime_ms import DatetimeMS
from bson.decimal128 import Decimal128
from bson.int64 import Int64

from leadnorm.transform.clean import (
    Warnings,
    is_blank,
    name_key,
    normalize_domain,
    normalize_email,
    normalize_linkedin,
    read_datetime,
    read_fit_tier,
    read_level,
    read_list,
    read_number,
    read_object,
    read_text,
    unknown_fields,
)

UTC = UTC
BLANKS = [None, "", "   ", "\t\n"]


def read(reader, value, target="t.field", **options):
    """(clean value, warnings as a plain dict)."""
    warnings = Warnings()
    return reader(value, target, warnings, **options), dict(warnings)


# --- blank values: absent, never a warning ------------------------------------------------------


@pytest.mark.parametrize(
    "reader",
    [
        read_text,
        normalize_domain,
        normalize_email,
        normalize_linkedin,
        read_number,
        read_datetime,
        read_level,
        read_fit_tier,
    ],
)
@pytest.mark.parametrize("value", BLANKS, ids=repr)
def test_blank_is_absent_without_warning(reader, value):
    assert read(reader, value) == (None, {})


@pytest.mark.parametrize("value", BLANKS, ids=repr)
def test_is_blank_true(value):
    assert is_blank(value) is True


@pytest.mark.parametrize("value", [0, 0.0, "x", " x ", [], {}, False], ids=repr)
def test_is_blank_false(value):
    assert is_blank(value) is False


def test_warnings_counts_per_target_field():
    warnings = Warnings()
    warnings.unreadable("icp_scores.icp_score")
    warnings.unreadable("icp_scores.icp_score")
    warnings.unreadable("companies.domain")
    assert dict(warnings) == {"icp_scores.icp_score": 2, "companies.domain": 1}


# --- text ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("Acme", "Acme"),
        ("  Acme Inc  ", "Acme Inc"),
        ("\tZoë Ünal\n", "Zoë Ünal"),
        ("株式会社 アクメ", "株式会社 アクメ"),
        (42, "42"),
        (1.5, "1.5"),
    ],
    ids=repr,
)
def test_read_text(value, expected):
    assert read(read_text, value) == (expected, {})


@pytest.mark.parametrize("value", [True, False, {"a": 1}, ["Acme"], object()], ids=repr)
def test_read_text_unreadable(value):
    assert read(read_text, value, "leads.title") == (None, {"leads.title": 1})


@pytest.mark.parametrize(
    "value, expected",
    [
        ("Acme", "acme"),
        ("  ACME Inc ", "acme inc"),
        ("Straße", "strasse"),
        ("ZOË", "zoë"),
    ],
    ids=repr,
)
def test_name_key(value, expected):
    assert name_key(value) == expected


@pytest.mark.parametrize("value", [None, "", "   ", 5, {"name": "x"}], ids=repr)
def test_name_key_none(value):
    assert name_key(value) is None


def test_name_key_keeps_inner_white_space():
    assert name_key("Acme  Inc") != name_key("Acme Inc")


# --- domains ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("acme.io", "acme.io"),
        ("https://www.Acme.io/about", "acme.io"),
        ("ACME.IO.", "acme.io"),
        ("www.acme.io:8080", "acme.io"),
        ("acme.io/path?q", "acme.io"),
        ("acme.io?ref=x", "acme.io"),
        ("acme.io#top", "acme.io"),
        ("  Acme.IO  ", "acme.io"),
        ("HTTPS://WWW.ACME.IO", "acme.io"),
        ("http://acme.io:443/x/y?z=1#w", "acme.io"),
        ("https://www.acme.io./", "acme.io"),
        ("//acme.io", "acme.io"),
        ("WWW.Acme.Io", "acme.io"),
        ("eu.acme.co.uk", "eu.acme.co.uk"),
        ("https://münchen.de/", "münchen.de"),
    ],
    ids=repr,
)
def test_normalize_domain(value, expected):
    assert read(normalize_domain, value, "companies.domain") == (expected, {})


@pytest.mark.parametrize(
    "value",
    [
        "acme",
        "not a domain",
        "https://",
        "n/a",
        "acme..io",
        ".io",
        "http://localhost:8080",
        42,
        {"domain": "acme.io"},
        True,
    ],
    ids=repr,
)
def test_normalize_domain_unreadable(value):
    assert read(normalize_domain, value, "companies.domain") == (None, {"companies.domain": 1})


# --- emails -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("ann@acme.io", "ann@acme.io"),
        (" ANN@Acme.io ", "ann@acme.io"),
        ("\tAnn.Lee+Sdr@Sub.ACME.IO\n", "ann.lee+sdr@sub.acme.io"),
        ("zoë@acme.io", "zoë@acme.io"),
    ],
    ids=repr,
)
def test_normalize_email(value, expected):
    assert read(normalize_email, value, "leads.email") == (expected, {})


@pytest.mark.parametrize(
    "value",
    [
        "ann",
        "ann@",
        "@acme.io",
        "ann@acme",
        "ann lee@acme.io",
        "a@b@acme.io",
        "n/a",
        7,
        ["ann@acme.io"],
    ],
    ids=repr,
)
def test_normalize_email_unreadable(value):
    assert read(normalize_email, value, "leads.email") == (None, {"leads.email": 1})


# --- LinkedIn URLs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("linkedin.com/in/jane", "linkedin.com/in/jane"),
        ("https://www.linkedin.com/in/Jane/", "linkedin.com/in/jane"),
        ("HTTPS://www.LinkedIn.com/in/Jane/?trk=x", "linkedin.com/in/jane"),
        ("http://linkedin.com/in/jane?x=1&y=2", "linkedin.com/in/jane"),
        ("www.linkedin.com/in/jane/", "linkedin.com/in/jane"),
        ("  linkedin.com/in/JANE  ", "linkedin.com/in/jane"),
        ("linkedin.com/in/jane#about", "linkedin.com/in/jane"),
        ("https://www.linkedin.com/company/Acme-Inc//", "linkedin.com/company/acme-inc"),
    ],
    ids=repr,
)
def test_normalize_linkedin(value, expected):
    assert read(normalize_linkedin, value, "personas.linkedin_url") == (expected, {})


@pytest.mark.parametrize("value", ["linkedin.com/in/jane doe", "https://", "?trk=1", "///", {"u": 1}], ids=repr)
def test_normalize_linkedin_unreadable(value):
    assert read(normalize_linkedin, value, "personas.linkedin_url") == (None, {"personas.linkedin_url": 1})


# --- numbers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        (82, 82.0),
        (82.5, 82.5),
        ("82", 82.0),
        (" 82.5 ", 82.5),
        ("0", 0.0),
        (0, 0.0),
        (100, 100.0),
        ("100", 100.0),
        ("1e1", 10.0),
        (Decimal128("82.5"), 82.5),
        (Int64(82), 82.0),
    ],
    ids=repr,
)
def test_read_number_score(value, expected):
    number, warnings = read(read_number, value, "icp_scores.icp_score", lo=0, hi=100)
    assert (number, warnings) == (expected, {})
    assert type(number) is float


@pytest.mark.parametrize(
    "value",
    [
        "n/a",
        140,
        "140",
        -1,
        "-0.5",
        100.01,
        True,
        False,
        "inf",
        "nan",
        "82%",
        [82],
        {"score": 82},
    ],
    ids=repr,
)
def test_read_number_score_unreadable(value):
    assert read(read_number, value, "icp_scores.icp_score", lo=0, hi=100) == (None, {"icp_scores.icp_score": 1})


@pytest.mark.parametrize(
    "value, expected", [(250, 250), ("250", 250), (250.0, 250), ("1,200", 1200), (" 12 ", 12)], ids=repr
)
def test_read_number_integer(value, expected):
    number, warnings = read(read_number, value, "companies.employee_count", lo=0, integer=True)
    assert (number, warnings) == (expected, {})
    assert type(number) is int


@pytest.mark.parametrize("value", [12.5, "12.5", "about 50", -3], ids=repr)
def test_read_number_integer_unreadable(value):
    assert read(read_number, value, "companies.employee_count", lo=0, integer=True) == (
        None,
        {"companies.employee_count": 1},
    )


def test_read_number_unbounded():
    assert read(read_number, "-12.5", "x") == (-12.5, {})
    assert read(read_number, 10**12, "x") == (1e12, {})


# --- dates --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        (datetime(2024, 5, 1, 12, 0), datetime(2024, 5, 1, 12, 0, tzinfo=UTC)),
        (datetime(2024, 5, 1, 12, 0, tzinfo=UTC), datetime(2024, 5, 1, 12, 0, tzinfo=UTC)),
        (datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))), datetime(2024, 5, 1, 12, 0, tzinfo=UTC)),
        (datetime(2024, 5, 1, 12, 0, 0, 123456), datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)),
        ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, 0, tzinfo=UTC)),
        ("2024-05-01T14:00:00+02:00", datetime(2024, 5, 1, 12, 0, tzinfo=UTC)),
        (" 2024-05-01T12:00:00 ", datetime(2024, 5, 1, 12, 0, tzinfo=UTC)),
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
        ("2024-05-01 12:00:00.987654", datetime(2024, 5, 1, 12, 0, 0, 987000, tzinfo=UTC)),
    ],
    ids=repr,
)
def test_read_datetime(value, expected):
    moment, warnings = read(read_datetime, value, "icp_scores.scored_at")
    assert (moment, warnings) == (expected, {})
    assert moment.utcoffset() == timedelta(0)


@pytest.mark.parametrize("value", ["not a date", "2024-13-01", "01/05/2024", 1714564800, {"$date": 1}, True], ids=repr)
def test_read_datetime_unreadable(value):
    assert read(read_datetime, value, "icp_scores.scored_at") == (None, {"icp_scores.scored_at": 1})


# --- fit tiers and levels -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("A", "A"),
        ("a", "A"),
        ("Tier A", "A"),
        ("tier b", "B"),
        (" b ", "B"),
        ("TIER  C", "C"),
        ("TierD", "D"),
        ("d", "D"),
    ],
    ids=repr,
)
def test_read_fit_tier(value, expected):
    assert read(read_fit_tier, value, "icp_scores.fit_tier") == (expected, {})


@pytest.mark.parametrize("value", ["E", "tier z", "AA", "Tier", "A+", "Tier A1", 1, ["A"]], ids=repr)
def test_read_fit_tier_unreadable(value):
    assert read(read_fit_tier, value, "icp_scores.fit_tier") == (None, {"icp_scores.fit_tier": 1})


@pytest.mark.parametrize(
    "value, expected",
    [
        ("High", "High"),
        ("high", "High"),
        ("HIGH", "High"),
        (" medium ", "Medium"),
        ("MEDIUM", "Medium"),
        ("low", "Low"),
        ("Low", "Low"),
    ],
    ids=repr,
)
def test_read_level(value, expected):
    assert read(read_level, value, "technographics.confidence") == (expected, {})


@pytest.mark.parametrize("value", ["very high", "H", "med", 3, 0.9, {"level": "High"}], ids=repr)
def test_read_level_unreadable(value):
    assert read(read_level, value, "technographics.confidence") == (None, {"technographics.confidence": 1})


# --- lists, objects, unknown fields -------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, []),
        ([], []),
        ([1, "x"], [1, "x"]),
        ({"type": "hiring"}, [{"type": "hiring"}]),
        ("Salesforce", ["Salesforce"]),
    ],
    ids=repr,
)
def test_read_list(value, expected):
    assert read(read_list, value, "detected_signals") == (expected, {})


@pytest.mark.parametrize("value", [5, 2.5, True], ids=repr)
def test_read_list_unreadable(value):
    assert read(read_list, value, "detected_signals") == ([], {"detected_signals": 1})


@pytest.mark.parametrize("value, expected", [(None, {}), ({}, {}), ({"a": 1}, {"a": 1})], ids=repr)
def test_read_object(value, expected):
    assert read(read_object, value, "companies") == (expected, {})


@pytest.mark.parametrize("value", ["oops", ["a"], 3], ids=repr)
def test_read_object_unreadable(value):
    assert read(read_object, value, "companies") == ({}, {"companies": 1})


def test_unknown_fields_keeps_values_as_they_are():
    doc = {"name": "Ann", "phone": "+1 555", "source": None, "tags": ["x"], "nested": {"a": 1}}
    assert unknown_fields(doc, frozenset({"name", "email"})) == {
        "phone": "+1 555",
        "source": None,
        "tags": ["x"],
        "nested": {"a": 1},
    }


@pytest.mark.parametrize("value", [float("inf"), float("-inf")], ids=repr)
def test_infinite_number_is_unreadable(value):
    assert read(read_number, value, "x") == (None, {"x": 1})


# --- NaN, Infinity and dates outside Python's range: unreadable, never a crash or a silent 0 ---------


@pytest.mark.parametrize(
    "value",
    [float("nan"), Decimal128("NaN"), Decimal128("sNaN"), Decimal128("-Infinity"), Decimal128("1E+6000")],
    ids=repr,
)
def test_nan_and_infinity_are_unreadable_numbers(value):
    assert read(read_number, value, "x") == (None, {"x": 1})


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=repr)
def test_nan_and_infinity_are_unreadable_text(value):
    assert read(read_text, value, "x") == (None, {"x": 1})


def test_nan_is_no_blank():
    assert is_blank(float("nan")) is False


@pytest.mark.parametrize(
    "value",
    [
        DatetimeMS(-(10**15)),
        DatetimeMS(10**16),
        "0001-01-01T00:00:00+05:00",
        "9999-12-31T23:59:59-05:00",
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))),
    ],
    ids=repr,
)
def test_dates_outside_pythons_range_in_utc_are_unreadable(value):
    assert read(read_datetime, value, "x") == (None, {"x": 1})
