"""The upload form's body, streamed into an owner-only file of the inbox, within bounds.

FastAPI's `UploadFile` has Starlette read (and spool) the whole body before the route runs,
so a body of any size would be taken in. Here the route reads it itself: a `Content-Length`
above `LEADNORM_UPLOAD_MAX_MB` (default 25, in MiB, read at every request) is refused with
413 before a byte is read, and a body without one (chunked) is counted as it arrives and
refused at the limit. python-multipart's streaming parser writes the one file part straight
into the inbox; a form with another file or more than `MAX_PARTS` parts is refused, and on any
refusal the partial file is removed.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from leadnorm.steps.runstore import private_dir

FILE_FIELD = "file"  # the form's one file input
MAX_PARTS = 8  # the file and a few fields more (tolerated, not kept)
DEFAULT_MAX_MB = 25
MIB = 1 << 20


class UploadRefused(Exception):
    """An upload this server does not take, with the HTTP status and a one-line reason."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass(frozen=True)
class Received:
    path: Path
    filename: str  # as the user named it
    size: int


def upload_limit() -> int:
    """LEADNORM_UPLOAD_MAX_MB in bytes. A value that is not a positive number refuses every
    upload (500, naming the setting): a typo must not lift the limit."""
    text = os.environ.get("LEADNORM_UPLOAD_MAX_MB", "").strip() or str(DEFAULT_MAX_MB)
    try:
        megabytes = float(text)
    except ValueError:
        megabytes = math.nan
    if not (math.isfinite(megabytes) and megabytes > 0):
        raise UploadRefused(500, "LEADNORM_UPLOAD_MAX_MB must be a positive number of MiB")
    return int(megabytes * MIB)


def inbox_file(inbox: Path, filename: str) -> Path:
    """Where an upload goes: named by time and a safe form of the user's file name."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(filename).name)[-80:] or "upload.csv"
    return inbox / f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{safe}"


async def receive_upload(request: Request, inbox: Path) -> Received:
    """The form's file, stored in `inbox` (created owner-only when the file's first bytes come);
    `UploadRefused` for a body too large or malformed."""
    limit = upload_limit()
    too_large = UploadRefused(413, f"the upload is larger than {limit / MIB:g} MiB (LEADNORM_UPLOAD_MAX_MB)")
    length = request.headers.get("content-length")
    if length is not None and not (length.isascii() and length.isdigit()):
        raise UploadRefused(400, "Content-Length is not a number")
    if length is not None and int(length) > limit:
        raise too_large
    content_type, options = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data" or not options.get(b"boundary"):
        raise UploadRefused(400, "the upload must be a multipart/form-data form")
    form = _Form(inbox)
    try:
        parser = MultipartParser(options[b"boundary"], form.callbacks())
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise too_large
            parser.write(chunk)
            if form.pending:
                await asyncio.to_thread(form.write_pending)
        parser.finalize()
        return await asyncio.to_thread(form.finish)
    except FormParserError:
        form.discard()
        raise UploadRefused(400, "the upload is not a readable multipart form") from None
    except ClientDisconnect:
        form.discard()
        raise UploadRefused(400, "the upload was cut off") from None
    except BaseException:
        form.discard()
        raise


class _Form:
    """python-multipart's callbacks: the file part's bytes go to `pending`, the caller writes
    them (off the event loop); every other part is counted and dropped."""

    def __init__(self, inbox: Path):
        self.inbox = inbox
        self.parts = 0
        self.header_name = self.header_value = b""
        self.disposition = b""
        self.in_file = False
        self.filename: str | None = None
        self.file_ended = False
        self.pending: list[bytes] = []
        self.path: Path | None = None
        self.out: BinaryIO | None = None
        self.size = 0

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise UploadRefused(400, f"the form has more than {MAX_PARTS} parts")
        self.disposition = b""

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]  # the parser bounds a header's size and count

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        if self.header_name.strip().lower() == b"content-disposition":
            self.disposition = self.header_value
        self.header_name = self.header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.disposition)
        self.in_file = b"filename" in options
        if not self.in_file:
            return
        if options.get(b"name") != FILE_FIELD.encode() or self.filename is not None:
            raise UploadRefused(400, f"an upload is one file, in the form field {FILE_FIELD!r}")
        self.filename = _text(options[b"filename"])

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.in_file:
            self.pending.append(data[start:end])

    def on_part_end(self) -> None:
        if self.in_file:
            self.file_ended, self.in_file = True, False

    def write_pending(self) -> None:
        if self.out is None:
            self.path = inbox_file(private_dir(self.inbox), self.filename or "upload.csv")
            self.out = os.fdopen(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")
        data, self.pending = b"".join(self.pending), []
        self.out.write(data)
        self.size += len(data)

    def finish(self) -> Received:
        if not self.file_ended:
            raise UploadRefused(400, f"the form has no complete file in the field {FILE_FIELD!r}")
        self.write_pending()  # an empty file is created too: the ingest says what is wrong with it
        self.out.close()
        return Received(self.path, self.filename, self.size)

    def discard(self) -> None:
        """Close and remove what was written: a refused upload leaves nothing in the inbox."""
        if self.out is not None:
            self.out.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def _text(value: bytes) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value.decode("latin-1")
