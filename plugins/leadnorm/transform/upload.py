"""CSV upload rows (the seed's POST /api/leads/upload), pure: the header checked, each row read
into what it says of a company, a persona and a lead, or rejected with its line number.

Columns `name`, `title`, `company`, `email`, optional `linkedin_url`, `phone`, `domain`, in any
order, header names without case. A row with neither a name nor an email, or with an email
that is no email, is rejected. Values are normalized as the migration normalizes them
(`leadnorm.transform.clean`), and the keys are the ones it dedupes by, so an uploaded
person or company is the migrated one when the contract says they are the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from leadnorm.errors import UploadError
from leadnorm.transform.clean import Warnings, name_key, normalize_domain, normalize_email, normalize_linkedin
from leadnorm.transform.ids import derived_id

REQUIRED = ("name", "title", "company", "email")
OPTIONAL = ("linkedin_url", "phone", "domain")


def header_columns(header: list[str]) -> dict[str, str]:
    """The file's column for each contract column; UploadError naming what is missing."""
    found = {}
    for column in header:
        canonical = str(column).strip().casefold()
        if canonical in REQUIRED + OPTIONAL and canonical not in found:
            found[canonical] = column
    missing = [column for column in REQUIRED if column not in found]
    if missing:
        raise UploadError(f"missing required column(s): {', '.join(missing)} (the header is line 1)")
    return found


@dataclass(frozen=True)
class UploadRow:
    line: int
    name: str
    title: str
    company: str
    email: str | None  # normalized
    linkedin_url: str | None  # normalized
    phone: str
    domain: str | None  # normalized

    @property
    def company_key(self) -> str | None:
        """How the migration names this company: by domain, else by name (None: no company)."""
        if self.domain:
            return f"domain:{self.domain}"
        return f"name:{name_key(self.company)}" if name_key(self.company) else None

    @property
    def persona_key(self) -> str:
        """How the migration names a persona of its own: its smallest identifier, else its name."""
        if self.email:
            return f"email:{self.email}"
        if self.linkedin_url:
            return f"linkedin:{self.linkedin_url}"
        return f"name:{name_key(self.name) or ''}"

    @property
    def lead_id(self):
        """The same person, title and company uploaded again is the same lead."""
        parts = (name_key(self.name), name_key(self.title), self.company_key, self.email, self.linkedin_url)
        return derived_id("uploaded-lead", *parts, self.phone.strip())


@dataclass(frozen=True)
class RejectedRow:
    line: int
    reason: str


def read_rows(
    chunk: pd.DataFrame, columns: dict[str, str], first_line: int
) -> tuple[list[UploadRow], list[RejectedRow]]:
    """The rows of one chunk of the file (all values text, "" when empty); `first_line` is the
    file line of its first row (the header is line 1)."""
    rows, rejected = [], []
    ignored = Warnings()
    values = {column: chunk[source] if source in chunk else None for column, source in columns.items()}

    def text(column: str, index: int) -> str:
        series = values.get(column)
        return "" if series is None else str(series.iat[index]).strip()

    for index in range(len(chunk)):
        line = first_line + index
        name, email_text = text("name", index), text("email", index)
        email = normalize_email(email_text, "upload.email", ignored) if email_text else None
        if email_text and email is None:
            rejected.append(RejectedRow(line, "malformed email"))
            continue
        if not name and not email:
            rejected.append(RejectedRow(line, "neither name nor email"))
            continue
        linkedin, domain = text("linkedin_url", index), text("domain", index)
        rows.append(
            UploadRow(
                line=line,
                name=name,
                title=text("title", index),
                company=text("company", index),
                email=email,
                linkedin_url=normalize_linkedin(linkedin, "upload.linkedin_url", ignored) if linkedin else None,
                phone=text("phone", index),
                domain=normalize_domain(domain, "upload.domain", ignored) if domain else None,
            )
        )
    return rows, rejected
