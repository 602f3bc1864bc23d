"""What the normalizers accept is exactly what the gate's suites accept.

A value the normalizer lets through but a suite refuses would stop a whole migration on
one messy value; so for any text at all, a normalized domain, email or LinkedIn URL must
match the pattern its suite checks, and must not start with `www.`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadnorm.transform.clean import Warnings, normalize_domain, normalize_email, normalize_linkedin

SUITES = Path(__file__).resolve().parents[2] / "expectations"


def suite_patterns(suite: str, column: str) -> tuple[re.Pattern, list[re.Pattern]]:
    """The `match` regex and the `not match` regexes a suite applies to a column."""
    expectations = json.loads((SUITES / f"{suite}.json").read_text())["expectations"]
    on_column = [e for e in expectations if e["kwargs"].get("column") == column]
    (match,) = [e["kwargs"]["regex"] for e in on_column if e["type"] == "expect_column_values_to_match_regex"]
    refused = [e["kwargs"]["regex"] for e in on_column if e["type"] == "expect_column_values_to_not_match_regex"]
    return re.compile(match), [re.compile(r) for r in refused]


NORMALIZERS = [
    (normalize_domain, "companies", "domain"),
    (normalize_email, "personas", "email"),
    (normalize_email, "leads", "email"),
    (normalize_linkedin, "personas", "linkedin_url"),
]

# Text that looks like the real thing, with the dirt real data has, and any text at all.
dirt = st.sampled_from(
    [
        "",
        " ",
        "\t",
        "www.",
        "WWW.",
        "https://",
        "http://www.",
        "//",
        ":",
        ":8080",
        "/",
        "//x",
        "?q=1",
        "#f",
        ".",
        "..",
        "@",
        "_",
        "Ä",
        "é",
        "İ",
        "中",
        "😀",
        "\u00a0",
        "-",
        "%20",
        "in/",
    ]
)
plausible = st.lists(st.one_of(dirt, st.from_regex(r"[A-Za-z0-9]{1,6}", fullmatch=True)), max_size=8).map("".join)
any_text = st.one_of(plausible, st.text(max_size=30))


@pytest.mark.parametrize("normalize, suite, column", NORMALIZERS, ids=[f"{s}.{c}" for _, s, c in NORMALIZERS])
@settings(max_examples=400, deadline=None, database=None)
@given(value=any_text)
def test_normalized_values_pass_their_suite(normalize, suite, column, value):
    match, refused = suite_patterns(suite, column)
    normalized = normalize(value, column, Warnings())
    if normalized is not None:
        assert match.search(normalized), f"{value!r} -> {normalized!r}"
        assert not any(r.search(normalized) for r in refused), f"{value!r} -> {normalized!r}"
