"""Reading messy source values: one small pure function per kind of value.

Each reader returns the clean value, or None when the source has no usable value;
an unusable value that was present is reported to a `Warnings` counter under its
target field, as the contract asks. NaN, Infinity and dates outside Python's range
are such values: present, but unreadable (never a silent 0, never a crash).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from datetime import UTC, datetime
from functools import lru_cache

import idna
from bson.decimal128 import Decimal128

from leadnorm.contract import FIT_TIERS, LEVELS


class Warnings(Counter):
    """Count of unreadable values per target field, e.g. {"icp_scores.icp_score": 3}."""

    def unreadable(self, target_field: str) -> None:
        self[target_field] += 1


def is_blank(value) -> bool:
    """No value: None or a string of white space. NaN is a value, an unreadable one."""
    return value is None or (isinstance(value, str) and not value.strip())


def read_text(value, target: str, warnings: Warnings) -> str | None:
    """Trimmed text; finite numbers become their text, NaN, Infinity and objects are unreadable."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return str(value)
    warnings.unreadable(target)
    return None


# Zero-width and bidirectional control characters (and the soft hyphen): invisible, they make two
# keys that read the same differ.
_INVISIBLE = re.compile("[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]")


def visible(text: str) -> str:
    """`text` in Unicode NFC, without zero-width and bidi control characters: the form every key
    is compared in (a name typed on a Mac arrives decomposed, NFD; the same name pasted from a web
    page may carry a zero-width space)."""
    return unicodedata.normalize("NFC", _INVISIBLE.sub("", text))


def name_key(value) -> str | None:
    """How names compare: without case and surrounding white space, in NFKC (compatibility forms such
    as the ligature `ﬁ` or full-width letters read as their plain letters), invisible characters removed."""
    return _name_key(value) if isinstance(value, str) else None


@lru_cache(maxsize=1 << 16)  # names repeat across a company's and a persona's leads; the cache stays small
def _name_key(value: str) -> str | None:
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", _INVISIBLE.sub("", value)).casefold())
    return folded.strip() or None


# The normalized forms, exactly as the expectation suites check them (tests hold the two
# together): a value the gate would refuse is unreadable here, so it never blocks a load.
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")
_DOMAIN = re.compile(r"^[a-z0-9\u00c0-\uffff-]+(?:\.[a-z0-9\u00c0-\uffff-]+)+$")
_EMAIL = re.compile(r"^[^@\sA-Z]+@[^@\sA-Z]+\.[^@\sA-Z.]+$")
_LINKEDIN = re.compile(r"^[^\sA-Z/?#:]+(?:/[^\sA-Z/?#]+)*$")


def _normalized(value, target: str, warnings: Warnings, form, pattern: re.Pattern) -> str | None:
    """`form` of the lower-cased visible text, or unreadable unless it matches the suite's `pattern`."""
    text = read_text(value, target, warnings)
    if text is None:
        return None
    normalized = _normal_form(text, form, pattern)
    if normalized is None:
        warnings.unreadable(target)
    return normalized


@lru_cache(maxsize=1 << 16)  # a company's domain and website come back with each of its leads
def _normal_form(text: str, form, pattern: re.Pattern) -> str | None:
    normalized = form(visible(text).lower())
    return normalized if pattern.match(normalized) else None


def _without_scheme(url: str) -> str:
    return _SCHEME.sub("", url).lstrip("/")


def _without_www(host: str) -> str:
    while host.startswith("www."):
        host = host[4:]
    return host


def _host(url: str) -> str:
    host = re.split(r"[/?#]", _without_scheme(url), maxsplit=1)[0]
    return _without_www(idna_host(host.rsplit("@", 1)[-1].split(":", 1)[0].strip()).rstrip("."))


def idna_host(host: str) -> str:
    """A host name in one IDNA form, as browsers map it (UTS 46, non-transitional), with Unicode
    labels: `BÜCHER.example`, `xn--bcher-kva.example` and `bücher.example` are all `bücher.example`,
    full-width dots are dots. "" when it cannot be a host name."""
    try:
        labels = idna.uts46_remap(host, std3_rules=False, transitional=False).split(".")
        return ".".join(idna.ulabel(label) if label.startswith("xn--") else label for label in labels)
    except (idna.IDNAError, UnicodeError):
        return ""


def _email(text: str) -> str:
    local, at, domain = text.rpartition("@")
    return f"{local}@{idna_host(domain)}" if at else text


def _linkedin_path(url: str) -> str:
    return _without_www(re.split(r"[?#]", _without_scheme(url), maxsplit=1)[0].rstrip("/"))


def normalize_domain(value, target: str, warnings: Warnings) -> str | None:
    """`https://www.Acme.io:443/about` -> `acme.io`: lower case, no scheme, www., path, port or trailing dot."""
    return _normalized(value, target, warnings, _host, _DOMAIN)


def normalize_email(value, target: str, warnings: Warnings) -> str | None:
    """` Ann@Acme.IO ` -> `ann@acme.io`; its domain in the IDNA form of `normalize_domain`."""
    return _normalized(value, target, warnings, _email, _EMAIL)


def normalize_linkedin(value, target: str, warnings: Warnings) -> str | None:
    """`HTTPS://www.LinkedIn.com/in/Jane/?trk=x` -> `linkedin.com/in/jane`."""
    return _normalized(value, target, warnings, _linkedin_path, _LINKEDIN)


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # what a BSON integer holds


def read_number(
    value, target: str, warnings: Warnings, *, lo: float | None = None, hi: float | None = None, integer: bool = False
) -> float | int | None:
    """A number within [lo, hi]; numeric strings are read, anything else is unreadable, an integer
    beyond BSON's 64 bits (1e308, "1e20" milliseconds) too."""
    if is_blank(value):
        return None
    number = None
    if isinstance(value, Decimal128):
        decimal = value.to_decimal()  # sNaN would raise in float()
        value = float(decimal) if decimal.is_finite() else math.nan
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        try:
            number = float(value.strip().replace(",", ""))
        except ValueError:
            number = None
    ok = (
        number is not None
        and math.isfinite(number)
        and (lo is None or number >= lo)
        and (hi is None or number <= hi)
        and (not integer or (float(number).is_integer() and INT64_MIN <= number <= INT64_MAX))
    )
    if not ok:
        warnings.unreadable(target)
        return None
    return int(number) if integer else float(number)


def read_datetime(value, target: str, warnings: Warnings) -> datetime | None:
    """UTC datetime at BSON's millisecond precision; ISO strings are read. A date outside
    Python's range (a bson.DatetimeMS, or a string that leaves it once moved to UTC) is unreadable."""
    if is_blank(value):
        return None
    moment = _utc(value)
    if moment is None:
        warnings.unreadable(target)
        return None
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _utc(value) -> datetime | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if not isinstance(value, datetime):  # a bson.DatetimeMS is no datetime
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+05:00 is before year 1 in UTC
        return None


_LEVELS = {level.casefold(): level for level in LEVELS}


def read_level(value, target: str, warnings: Warnings) -> str | None:
    """High / Medium / Low, whatever the case."""
    text = read_text(value, target, warnings)
    if text is None:
        return None
    level = _LEVELS.get(text.casefold())
    if level is None:
        warnings.unreadable(target)
    return level


_TIER = re.compile(r"^(?:tier\s*)?([a-d])$", re.IGNORECASE)


def read_fit_tier(value, target: str, warnings: Warnings) -> str | None:
    """`A`, `a`, `Tier A` -> `A`."""
    text = read_text(value, target, warnings)
    if text is None:
        return None
    match = _TIER.match(text)
    if not match:
        warnings.unreadable(target)
        return None
    tier = match.group(1).upper()
    assert tier in FIT_TIERS
    return tier


def read_icp_score(value, target: str, warnings: Warnings) -> float | None:
    """An ICP score: a number, or a numeric string, within 0..100."""
    return read_number(value, target, warnings, lo=0, hi=100)


def read_list(value, target: str, warnings: Warnings) -> list:
    """A list; None is empty, a single object is a list of one."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, (dict, str)):
        return [value]
    warnings.unreadable(target)
    return []


def read_object(value, target: str, warnings: Warnings) -> dict:
    """A sub-document; None is empty, anything else is unreadable."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    warnings.unreadable(target)
    return {}


def unknown_fields(document: dict, known: frozenset[str] | set[str]) -> dict:
    """The fields this contract does not map: they are kept under `extra`."""
    if document.keys() <= known:  # the common case, decided in C
        return {}
    return {k: v for k, v in document.items() if k not in known}
