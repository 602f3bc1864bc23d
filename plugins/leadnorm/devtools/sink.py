"""`bench --client-only`: the migration's own cost, with no server in the way.

The embedded server is written in Python and slow, and on a real MongoDB the client, not the
server, bounds a run; so this runs the pipeline's steps (the same functions `migrate` runs)
against a database that stores nothing. Its source is a stream of raw BSON documents on stdin
(the bench generates them in a process of its own, so generation is not measured here), and
every write is encoded to BSON as pymongo would encode it before sending, then dropped. What
is read back is nothing: every collection is empty, as before a first migration. Not a test
double: no test of the pipeline runs on it; it is the bench's null device.

    python -m leadnorm.devtools.sink generate --leads N | python -m leadnorm.devtools.sink run --leads N --report F
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import BinaryIO

import bson
from bson.raw_bson import RawBSONDocument
from pymongo.errors import OperationFailure

from leadnorm.contract import SOURCE_COLLECTION
from leadnorm.mongo import CODEC_OPTIONS


class NullDatabase:
    """A database that holds nothing but its source stream, and counts what it is sent."""

    def __init__(self, source: BinaryIO, documents: int):
        self.name = "client_only"
        self.source, self.documents = source, documents
        self.client = SimpleNamespace(options=SimpleNamespace(server_selection_timeout=120.0))
        self.encoded: Counter = Counter()  # collection -> documents encoded for it
        self.encoded_bytes: Counter = Counter()

    def __getitem__(self, name: str) -> NullCollection:
        return NullCollection(self, name)

    def with_options(self, **_options) -> NullDatabase:
        return self

    def watch(self, *_args, **_options):
        raise OperationFailure("no change streams: the null device is no replica set", code=40573)

    def list_collection_names(self, **_options) -> list[str]:
        return []

    def create_collection(self, name: str, **_options) -> NullCollection:
        return self[name]

    def command(self, *_args, **_options) -> dict:
        return {"ok": 1}


class NullCollection:
    def __init__(self, db: NullDatabase, name: str):
        self.db, self.name = db, name

    def with_options(self, **_options) -> NullCollection:
        return self

    # --- reads: the source stream, else nothing ------------------------------------------

    def find_raw_batches(self, _filter=None, batch_size: int = 1000, **_options):
        if self.name != SOURCE_COLLECTION:
            return
        while True:
            documents = []
            while len(documents) < batch_size and (header := self.db.source.read(4)):
                documents.append(header + self.db.source.read(int.from_bytes(header, "little") - 4))
            if not documents:
                return
            yield b"".join(documents)

    def find(self, *_args, **_options):
        return iter(())

    def find_one(self, *_args, **_options):
        return None

    def count_documents(self, _filter=None, **_options) -> int:
        return self.db.documents if self.name == SOURCE_COLLECTION else 0

    def estimated_document_count(self) -> int:
        return 0

    def list_indexes(self):
        return iter(())

    def aggregate(self, *_args, **_options):
        return iter(())

    # --- writes: encoded as pymongo encodes them, then dropped ----------------------------

    def _encode(self, document) -> None:
        raw = (
            document.raw
            if isinstance(document, RawBSONDocument)
            else bson.encode(document, codec_options=CODEC_OPTIONS)
        )
        self.db.encoded[self.name] += 1
        self.db.encoded_bytes[self.name] += len(raw)

    def insert_many(self, documents, **_options):
        documents = list(documents)
        for document in documents:
            self._encode(document)
        return SimpleNamespace(inserted_ids=[None] * len(documents))

    def insert_one(self, document, **_options):
        self._encode(document)

    def bulk_write(self, requests, **_options):
        for request in requests:
            self._encode(getattr(request, "_doc", None) or getattr(request, "_filter", {}))
        return SimpleNamespace(deleted_count=0, upserted_count=0, inserted_count=len(requests))

    def update_one(self, query, update, **_options):
        self._encode(update)

    def update_many(self, query, update, **_options):
        self._encode(update)

    def delete_many(self, query, **_options):
        return SimpleNamespace(deleted_count=0)

    def create_indexes(self, _models, **_options) -> None:
        return None

    def drop_index(self, _name) -> None:
        return None


def generate(leads: int, seed: int, out: BinaryIO) -> None:
    """The bench's source: `leads` generated nested leads as a stream of raw BSON documents."""
    from leadnorm.devtools.seed import generate_leads

    for document in generate_leads(leads, seed):
        out.write(bson.encode(document, codec_options=CODEC_OPTIONS))
    out.flush()


def run(leads: int, report: Path, batch_size: int) -> None:
    """The pipeline over the stream on stdin, into nothing; its figures into `report` (JSON)."""
    from leadnorm.steps import layout
    from leadnorm.steps.pipeline import migrate
    from leadnorm.steps.runstore import RunFolder

    db = NullDatabase(sys.stdin.buffer, leads)
    with tempfile.TemporaryDirectory(prefix="leadnorm-client-only-") as tmp:
        folder = RunFolder(Path(tmp) / "run")
        started = time.perf_counter()
        migrate(db, batch_size=batch_size, run=folder, skip=frozenset({"backup", "verify"}))
        seconds = time.perf_counter() - started
        timings = folder.read_result(layout.Results.TIMINGS) or {}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    figures = {
        "leads": leads,
        "seconds": seconds,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "steps": timings,
        "encoded": dict(db.encoded),
        "encoded_bytes": dict(db.encoded_bytes),
    }
    report.write_text(json.dumps(figures))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m leadnorm.devtools.sink")
    parser.add_argument("action", choices=["generate", "run"])
    parser.add_argument("--leads", type=int, required=True)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--report", type=Path, help="run: where the figures go (JSON)")
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args(argv)
    if args.action == "generate":
        generate(args.leads, args.seed, sys.stdout.buffer)
    else:
        run(args.leads, args.report, args.batch_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
