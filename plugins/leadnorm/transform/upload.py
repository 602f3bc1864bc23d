"""CSV upload rows (the seed's POST /api/leads/upload), pure: text in, rows out. The caller opens the
file (UTF-8, a BOM allowed, `newline=""`) and hands over the stream; nothing here touches a disk or a
database.

Reading rules (Python's csv module, RFC 4180 quotes: a field may hold commas, `""` and line ends):
- Lines are the file's lines (a line ends at \\n, \\r\\n or \\r) and a row's line is the one it starts
  on, so a row after a quoted field with line ends in it still has its line as an editor shows it.
- The header is the first row that is not blank (line 1 as a rule). Its names are compared without
  case and surrounding white space; `name`, `title`, `company`, `email` are required, `linkedin_url`,
  `phone`, `domain` optional, other columns ignored; a contract column named twice is refused (which
  one would be meant?). Empty names at its end (Excel exports) are dropped: what is left is its width.
- A blank row (no value in any field: an empty line, only commas or white space) is ignored: neither
  loaded nor rejected, and the rows after it keep their file lines.
- Empty fields past the header's width are dropped (rows that each end with a comma). A row with a
  value past it, or with fewer fields, is rejected (`5 fields, the header has 4`): columns never shift.
  A row short of fields is refused, not padded: a lost comma looks the same, and padding would put
  its values under the wrong columns.
- A row longer than MAX_ROW_CHARS characters is rejected `too large` without being held in memory;
  a shorter one too when its lead, company or persona would not fit MongoDB's document limit.
- A row with neither a name nor an email, or with an email that is no email, is rejected.

Values are normalized as the migration normalizes them (`leadnorm.transform.clean`), and the keys are
the ones it dedupes by, so an uploaded person or company is the migrated one when the contract says
they are the same.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import TextIO

from leadnorm.contract import MAX_DOCUMENT_BYTES, REJECT_TOO_LARGE
from leadnorm.errors import UploadError
from leadnorm.transform.clean import Warnings, name_key, normalize_domain, normalize_email, normalize_linkedin
from leadnorm.transform.ids import derived_id

REQUIRED = ("name", "title", "company", "email")
OPTIONAL = ("linkedin_url", "phone", "domain")

# A row of more characters than a document may hold bytes is rejected unread, never held in memory:
# no row a person wrote comes near, and one that does is an attack or a broken file.
MAX_ROW_CHARS = MAX_DOCUMENT_BYTES
# Room under the limit for what a document adds to its row's values: field names, ids, dates, the
# defaults, `extra.upload` (a file name is at most 255 bytes).
ROOM = 1024
SKIP_PIECE_CHARS = 1 << 20  # read at a time while skipping a row too long to hold

# csv fails the whole read on a field over 131,072 characters; the row limit decides instead, and
# no field is longer than its row.
csv.field_size_limit(max(csv.field_size_limit(), MAX_ROW_CHARS))


@dataclass(frozen=True)
class Record:
    """One row as csv reads it: the lines it spans, its fields (None: longer than the limit, unread)."""

    line: int
    last_line: int
    fields: list[str] | None

    @property
    def blank(self) -> bool:
        return self.fields is not None and not any(field.strip() for field in self.fields)


def read_records(stream: TextIO, max_row_chars: int = MAX_ROW_CHARS) -> Iterator[Record]:
    """Every row of the stream, blank ones too, as it is read. UploadError (one line) for text that
    is not UTF-8."""
    lines = _Lines(stream, max_row_chars)
    try:
        yield from _records(lines)
    except UnicodeDecodeError:
        after = f" after line {lines.count}" if lines.count else ""
        raise UploadError(f"not a readable CSV file (not UTF-8 text{after})") from None
    except csv.Error as exc:
        raise UploadError(f"not a readable CSV file (line {lines.row_line}: {exc})") from None


def _records(lines: _Lines) -> Iterator[Record]:
    reader = csv.reader(lines)
    while True:
        lines.start_row()
        try:
            fields = next(reader)
        except StopIteration:
            return
        except _RowTooLong:
            lines.skip_row()
            reader, fields = csv.reader(lines), None  # the old reader stopped inside the row
        yield Record(lines.row_line, lines.count, fields)


class _RowTooLong(Exception):
    """Raised through csv.reader when a line would take its row past the limit."""


# csv's states that matter to where a row ends: at a field's start, inside an unquoted field, inside
# a quoted one, just after a quote inside a quoted one.
_START, _UNQUOTED, _QUOTED, _CLOSING = range(4)


class _Lines:
    """The stream's lines for csv.reader, counted, each row held to `max_row_chars` characters: the
    line that would take a row past it is not handed over, `skip_row` reads past the row instead."""

    def __init__(self, stream: TextIO, max_row_chars: int):
        self._readline = stream.readline
        self._max = self._left = max_row_chars
        self._row_start = True  # the next line starts a row
        self._cut_cr = False
        self._long = ""
        self.count = 0  # lines read
        self.row_line = 1  # where the current row starts

    def start_row(self) -> None:
        self._left, self._row_start, self.row_line = self._max, True, self.count + 1

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self._read(self._left + 1)
        if not line:
            raise StopIteration
        if len(line) > self._left:
            self._long = line
            raise _RowTooLong
        self._left -= len(line)
        self._row_start = False
        self.count += 1
        return line

    def _read(self, size: int) -> str:
        """At most `size` characters, up to the end of their line. readline(size) may cut a \\r\\n
        after its \\r; the \\n that follows is dropped, the \\r alone ends the line."""
        piece = self._readline(size)
        if self._cut_cr and piece == "\n":
            piece = self._readline(size)
        self._cut_cr = len(piece) == size and piece.endswith("\r")
        return piece

    def skip_row(self) -> None:
        """Read on, a piece at a time, to where csv would end the row that went past the limit. csv's
        state at the start of the line that did is known: a row starts there, or a quoted field goes on."""
        state = _START if self._row_start else _QUOTED
        piece, in_line = self._long, False
        while piece:
            body = piece.rstrip("\r\n")  # a piece holds one line end at most, at its end
            state = _state_after(body, state)
            in_line = len(body) == len(piece)
            if not in_line:
                self.count += 1
                if state != _QUOTED:
                    return
            piece = self._read(SKIP_PIECE_CHARS)
        self.count += in_line  # the file ends inside its last line


def _state_after(text: str, state: int) -> int:
    """csv's state (excel dialect) after `text`, which holds no line end: a quote opens a quoted
    field only at a field's start; inside one, `""` is a quote and a lone `"` closes it."""
    at, end = 0, len(text)
    while at < end:
        if state == _QUOTED:
            at = text.find('"', at)
            if at < 0:
                return _QUOTED
            state, at = _CLOSING, at + 1
        elif state == _CLOSING:
            state = {'"': _QUOTED, ",": _START}.get(text[at], _UNQUOTED)
            at += 1
        elif state == _START and text[at] == '"':
            state, at = _QUOTED, at + 1
        else:  # quotes are text inside an unquoted field: the next quoted field opens after a comma
            at = text.find(',"', at)
            if at < 0:
                return _START if text.endswith(",") else _UNQUOTED
            state, at = _QUOTED, at + 2
    return state


@dataclass(frozen=True)
class Header:
    columns: dict[str, int]  # contract column -> its position
    width: int  # fields up to the last one named


def read_header(records: Iterator[Record]) -> Header:
    """The first row that is not blank, as the contract's columns (the rows after it are left in
    `records`); UploadError saying what is wrong with it."""
    record = next((record for record in records if not record.blank), None)
    if record is None:
        raise UploadError("no header: the file holds no row")
    if record.fields is None:
        raise UploadError(f"the header (line {record.line}) is longer than {MAX_ROW_CHARS} characters")
    names = [field.strip().casefold() for field in record.fields]
    width = max(position for position, name in enumerate(names, 1) if name)
    columns: dict[str, int] = {}
    for position, name in enumerate(names[:width]):
        if name in columns:
            raise UploadError(f"column {name} appears twice in the header (line {record.line})")
        if name in REQUIRED + OPTIONAL:
            columns[name] = position
    missing = [column for column in REQUIRED if column not in columns]
    if missing:
        raise UploadError(f"missing required column(s): {', '.join(missing)} (the header is line {record.line})")
    return Header(columns, width)


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

    @cached_property
    def company_key(self) -> str | None:
        """How the migration names this company: by domain, else by name (None: no company)."""
        if self.domain:
            return f"domain:{self.domain}"
        key = name_key(self.company)
        return f"name:{key}" if key else None

    @cached_property
    def persona_key(self) -> str:
        """How the migration names a persona of its own: its smallest identifier, else its name."""
        if self.email:
            return f"email:{self.email}"
        if self.linkedin_url:
            return f"linkedin:{self.linkedin_url}"
        return f"name:{name_key(self.name) or ''}"

    @cached_property
    def lead_id(self):
        """The same person, title and company uploaded again is the same lead."""
        parts = (name_key(self.name), name_key(self.title), self.company_key, self.email, self.linkedin_url)
        return derived_id("uploaded-lead", *parts, self.phone.strip())


@dataclass(frozen=True)
class RejectedRow:
    line: int
    reason: str


def read_row(header: Header, record: Record) -> UploadRow | RejectedRow | None:
    """One row as what it says of a lead, its company and its persona; its reject; None when blank."""
    if record.fields is None:
        return RejectedRow(record.line, REJECT_TOO_LARGE)
    if record.blank:
        return None
    fields = record.fields
    count = len(fields)
    while count > header.width and not fields[count - 1].strip():
        count -= 1
    if count != header.width:
        span = f" (lines {record.line}-{record.last_line})" if record.last_line > record.line else ""
        fields_read = f"{count} field{'' if count == 1 else 's'}"
        return RejectedRow(record.line, f"{fields_read}, the header has {header.width}{span}")
    text = {column: fields[position].strip() for column, position in header.columns.items()}
    ignored = Warnings()
    name, email_text = text["name"], text["email"]
    email = normalize_email(email_text, "upload.email", ignored) if email_text else None
    if email_text and email is None:
        return RejectedRow(record.line, "malformed email")
    if not name and not email:
        return RejectedRow(record.line, "neither name nor email")
    linkedin, domain = text.get("linkedin_url", ""), text.get("domain", "")
    row = UploadRow(
        line=record.line,
        name=name,
        title=text["title"],
        company=text["company"],
        email=email,
        linkedin_url=normalize_linkedin(linkedin, "upload.linkedin_url", ignored) if linkedin else None,
        phone=text.get("phone", ""),
        domain=normalize_domain(domain, "upload.domain", ignored) if domain else None,
    )
    return row if _documents_fit(row) else RejectedRow(record.line, REJECT_TOO_LARGE)


def _documents_fit(row: UploadRow) -> bool:
    """Whether the lead, the persona and the company the row would create each fit MongoDB's limit."""
    lead = (row.name, row.title, row.email or "", row.phone)
    persona = (row.name, row.email or "", row.title, row.linkedin_url or "")
    company = (row.company, row.domain or "")
    return all(sum(map(_utf8_bytes, values)) <= MAX_DOCUMENT_BYTES - ROOM for values in (lead, persona, company))


def _utf8_bytes(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())
