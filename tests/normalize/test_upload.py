"""The CSV reader without a server: the corpus (tests/data/csv) file by file, rows too long to hold
skipped exactly where csv would end them, and every row's file lines and fields as csv reads them."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from unittest import mock

import pytest
from data.csv.cases import CASES, Case
from hypothesis import example, given, settings
from hypothesis import strategies as st

from leadnorm.contract import MAX_DOCUMENT_BYTES, REJECT_TOO_LARGE
from leadnorm.errors import UploadError
from leadnorm.transform import upload
from leadnorm.transform.upload import MAX_ROW_CHARS, RejectedRow, UploadRow, read_header, read_records, read_row

HEADER = "name,title,company,email\n"
ANN = "Ann Lee,CTO,Acme,ann@acme.example\n"
BOB = "Bob Stone,VP Sales,Globex,bob@globex.example\n"


def read(stream, max_row_chars: int = MAX_ROW_CHARS) -> list[UploadRow | RejectedRow]:
    records = read_records(stream, max_row_chars)
    header = read_header(records)
    return [row for row in (read_row(header, record) for record in records) if row is not None]


def read_file(path: Path, max_row_chars: int = MAX_ROW_CHARS) -> list[UploadRow | RejectedRow]:
    with path.open(encoding="utf-8-sig", newline="") as stream:  # as steps/ingest.py opens it
        return read(stream, max_row_chars)


def outcome(rows) -> tuple[list, list]:
    loaded = [(r.line, r.name, r.title, r.company, r.email) for r in rows if isinstance(r, UploadRow)]
    return loaded, [(r.line, r.reason) for r in rows if isinstance(r, RejectedRow)]


@pytest.mark.parametrize("case", CASES.values(), ids=lambda c: c.file)
def test_every_corpus_file_reads_as_its_case_says(case: Case):
    if case.error:
        with pytest.raises(UploadError) as refused:
            read_file(case.path)
        assert str(refused.value) == case.error
    else:
        assert outcome(read_file(case.path)) == (list(case.loaded), list(case.rejected))


def test_a_17_mb_field_is_a_row_too_large_and_the_rows_around_it_load(tmp_path):
    path = tmp_path / "big-field.csv"
    path.write_text(HEADER + ANN + f"Eve Moss,{'x' * 17_000_000},Hooli,eve@hooli.example\n" + BOB)
    loaded, rejected = outcome(read_file(path))
    assert [line for line, *_ in loaded] == [2, 4] and rejected == [(3, REJECT_TOO_LARGE)]


def test_a_row_that_fits_as_text_but_not_as_a_document_is_too_large(tmp_path):
    title = "é" * (MAX_DOCUMENT_BYTES // 2)  # half the limit in characters, all of it in UTF-8 bytes
    path = tmp_path / "wide.csv"
    path.write_text(HEADER + f"Eve Moss,{title},Hooli,eve@hooli.example\n" + BOB, encoding="utf-8")
    assert outcome(read_file(path)) == ([(3, *BOB.strip().split(","))], [(2, REJECT_TOO_LARGE)])


def test_a_field_beyond_the_csv_modules_default_limit_loads():
    title = "t" * 200_000  # csv refuses more than 131,072 characters unless told otherwise
    (row,) = read(io.StringIO(HEADER + f"Eve Moss,{title},Hooli,eve@hooli.example\n", newline=""))
    assert isinstance(row, UploadRow) and row.title == title


def test_a_quoted_field_past_the_limit_is_skipped_to_its_closing_quote():
    text = HEADER + 'Eve Moss,"a long\n""quoted"", title\n,over lines",Hooli,eve@hooli.example\n' + BOB
    loaded, rejected = outcome(read(io.StringIO(text, newline=""), max_row_chars=len(BOB)))  # Eve's row is longer
    assert rejected == [(2, REJECT_TOO_LARGE)] and loaded == [(5, *BOB.strip().split(","))]


def test_a_header_past_the_limit_refuses_the_file():
    with pytest.raises(UploadError, match=r"^the header \(line 1\) is longer than"):
        read(io.StringIO(HEADER + ANN, newline=""), max_row_chars=10)


def csv_rows(data: bytes) -> list[tuple[int, int, list[str]]]:
    """Each row as the csv module reads the file: its first and last line, its fields."""
    reader = csv.reader(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline=""))
    rows, last = [], 0
    for fields in reader:
        rows.append((last + 1, reader.line_num, fields))
        last = reader.line_num
    return rows


TEXT = st.lists(st.sampled_from(["a", "é", " ", ",", '"', '""', '","', "\n", "\r", "\r\n"]), max_size=40).map("".join)


@settings(max_examples=1000, deadline=None)
@example(text='a,"b\nc"\nd\n', max_row_chars=1, piece=2)  # a piece ends after a comma, a quote opens the next
@example(text='"a","b\nc"\nd\n', max_row_chars=1, piece=64)  # a quoted field after a closed one
@example(text="ab\r\ncd\r\n", max_row_chars=2, piece=1)  # readline's size cuts a CRLF after its CR
@given(text=TEXT, max_row_chars=st.integers(0, 12) | st.just(MAX_ROW_CHARS), piece=st.sampled_from([1, 2, 3, 64]))
def test_rows_are_read_as_csv_reads_them_and_those_past_the_limit_end_where_csv_ends_them(text, max_row_chars, piece):
    data = text.encode()
    lines = io.StringIO(text, newline="").readlines()
    stream = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline="")
    with mock.patch.object(upload, "SKIP_PIECE_CHARS", piece):
        records = list(read_records(stream, max_row_chars))
    expected = csv_rows(data)
    assert [(r.line, r.last_line) for r in records] == [(first, last) for first, last, _ in expected]
    for record, (first, last, fields) in zip(records, expected):
        too_long = sum(map(len, lines[first - 1 : last])) > max_row_chars
        assert record.fields == (None if too_long else fields)
