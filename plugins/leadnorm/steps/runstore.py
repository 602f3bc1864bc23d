"""Run storage: one owner-only folder per run holding staged batches, tables and step results.

Steps hand data to each other through this folder, so a DAG passes only its path through
XCom and a retried task finds its inputs where they were left. Everything in it is
personal data, so the folder is created 0700 and every file 0600. Tables are Parquet,
columnar and compressed, readable by the engine, pandas and Polars, and their reading runs
no code (unlike a pickle); their columns keep ObjectIds, dates, nested values, NaN and every
source `_id` type exactly (`leadnorm.transform.columns`). A successful run removes its
folder; a failed one keeps it for the retry, and `staging list` / `staging prune` deal with
what is left.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Generator, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.parquet as pq

from leadnorm.config import staging_location
from leadnorm.errors import StagingError

RUN_FILE = "run.json"  # marks a run folder: who made it, when


def staging_path(location: str | os.PathLike):
    """A run folder's location as a path. A local folder (a path, or a file:// URL) is a pathlib
    Path: owner-only modes, atomic renames. Any other URL (s3://conn_id@bucket/staging, gs://...)
    is Airflow's ObjectStoragePath, so the tasks of one run can work on several machines."""
    text = os.fspath(location)
    if "://" not in text:
        return Path(text)
    if text.startswith("file://"):
        return Path(urlsplit(text).path)
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(text)


def _local(path) -> bool:
    return isinstance(path, Path)


def private_dir(path: Path) -> Path:
    """`path`, each missing level created readable by this user only (existing ones keep their mode).
    In object storage, access is the bucket's policy, and folders are prefixes."""
    if not _local(path):
        path.mkdir(parents=True, exist_ok=True)
        return path
    for level in [*reversed(path.parents), path]:
        if not level.exists():
            try:
                level.mkdir(mode=0o700, exist_ok=True)
            except OSError as exc:
                raise StagingError(f"{level}: cannot create the folder ({exc.strerror or exc})") from None
    return path


@contextmanager
def private_file(path: Path) -> Generator[BinaryIO]:
    """A file to write `path` through, owner-only (0600), in place only once whole (a temp file
    renamed); an object in object storage appears whole or not at all. A failure to write is a
    StagingError naming the folder, and leaves no half file."""
    if not _local(path):
        with path.open("wb") as out:
            yield out
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
            yield out
        tmp.replace(path)
    except OSError as exc:  # a full disk, say: say where
        tmp.unlink(missing_ok=True)
        raise StagingError(f"{path.parent}: cannot write {path.name} ({exc.strerror or exc})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` through `private_file`."""
    with private_file(path) as out:
        out.write(data)


def run_name(run_id: str) -> str:
    """A run's name as its folders and files bear it (its run folder, its summary, GX's results and
    pages): the id with `:` and `+` replaced, which some file systems and URLs take badly."""
    return run_id.replace(":", "_").replace("+", "_")


@dataclass(frozen=True)
class RunFolder:
    """Where one run keeps its staged batches, frames and step results."""

    root: Path  # or an ObjectStoragePath: see `staging_path`

    @classmethod
    def new(cls, name: str | None = None, command: str = "migrate") -> RunFolder:
        """A run folder under the staging directory, created owner-only."""
        name = name or "run-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        return cls(staging_path(staging_location()) / run_name(name)).create(command)

    @classmethod
    def at(cls, location: str) -> RunFolder:
        """The run folder a DAG task was handed (`str(run.root)` through XCom)."""
        return cls(staging_path(location))

    def create(self, command: str = "migrate") -> RunFolder:
        """Make the folder (again): a rerun of the same run keeps what its steps saved."""
        private_dir(self.root)
        if _local(self.root):
            self.root.chmod(0o700)
        if not (self.root / RUN_FILE).exists():
            info = {
                "command": command,
                "created_at": datetime.now(UTC).isoformat(),
                "host": socket.gethostname(),
                "pid": os.getpid(),
            }
            write_private(self.root / RUN_FILE, json.dumps(info).encode())
        return self

    @property
    def batches(self) -> Path:
        return self.root / "source"

    def remove(self) -> None:
        if _local(self.root):
            shutil.rmtree(self.root, ignore_errors=True)
        elif self.root.exists():
            self.root.fs.rm(self.root.path, recursive=True)

    # --- source batches: raw BSON as the server sent it ---------------------------

    def clear_batches(self, partition: int) -> Path:
        """The folder of one partition's source batches, emptied for a (re)run of extract."""
        folder = private_dir(private_dir(self.batches) / f"part-{partition:03d}")
        for old in folder.glob("batch-*.bson"):
            old.unlink()
        return folder

    def write_batch(self, partition: int, number: int, data: bytes) -> None:
        """Stage a raw batch as `source/part-PPP/batch-NNNNN.bson`."""
        write_private(self.batches / f"part-{partition:03d}" / f"batch-{number:05d}.bson", data)

    def batch_paths(self, partition: int | None = None) -> list[Path]:
        """The staged batches of one partition, or of all."""
        part = "part-*" if partition is None else f"part-{partition:03d}"
        return sorted(self.batches.glob(f"{part}/batch-*.bson"), key=str)

    # --- step results: small JSON records ------------------------------------------

    def write_result(self, name: str, result: dict) -> dict:
        """Record what a step did: the summary and later tasks read it back."""
        write_private(
            private_dir(self.root / "results") / f"{name}.json", json.dumps(result, indent=2, default=str).encode()
        )
        return result

    def read_result(self, name: str) -> dict | None:
        path = self.root / "results" / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else None

    # --- tables: Parquet, columns of the kinds `leadnorm.transform.columns` defines --------

    def table_path(self, name: str) -> Path:
        return self.root / "tables" / f"{name}.parquet"

    def write_table(self, name: str, data: pa.Table | Iterable[pa.RecordBatch], schema: pa.Schema) -> int:
        """Stage a table (or record batches, written as they come: never all in memory) as
        compressed Parquet; returns its rows. A rerun of the step replaces it."""
        path = self.table_path(name)
        private_dir(path.parent)
        rows = 0
        with private_file(path) as out, pq.ParquetWriter(out, schema, compression="zstd") as writer:
            for batch in data.to_batches() if isinstance(data, pa.Table) else data:
                writer.write_batch(batch)
                rows += batch.num_rows
        return rows

    @contextmanager
    def table_writers(self, schemas: dict[str, pa.Schema]) -> Generator[dict[str, pq.ParquetWriter]]:
        """One writer per staged table, all written as a step goes and in place once it ends."""
        with ExitStack() as stack:
            writers = {}
            for name, schema in schemas.items():
                path = self.table_path(name)
                private_dir(path.parent)
                out = stack.enter_context(private_file(path))
                writers[name] = stack.enter_context(pq.ParquetWriter(out, schema, compression="zstd"))
            yield writers

    def table_rows(self, name: str) -> int:
        return self._parquet(name).metadata.num_rows

    def has_table(self, name: str) -> bool:
        return self.table_path(name).exists()

    def _parquet(self, name: str) -> pq.ParquetFile:
        path = self.table_path(name)
        if not path.exists():
            raise StagingError(f"{path}: not staged; rerun the run from its first step")
        try:
            return pq.ParquetFile(path if _local(path) else path.open("rb"))
        except (pa.ArrowException, OSError):
            raise StagingError(f"{path}: not a staged table (Parquet) of this version") from None

    def read_table(self, name: str, columns: list[str] | None = None) -> pa.Table:
        """A staged table whole: for the small ones (a plan, a scope, the ids of a partition)."""
        return self._parquet(name).read(columns=columns)

    def table_batches(
        self, name: str, columns: list[str] | None = None, rows: int = 10_000
    ) -> Iterator[pa.RecordBatch]:
        """A staged table `rows` at a time, in the order it was written."""
        yield from self._parquet(name).iter_batches(batch_size=rows, columns=columns)

    def table_files(self, pattern: str) -> list[str]:
        """The staged tables whose names match `pattern` (`split/part-*/leads`), for the engine."""
        return sorted(str(path) for path in (self.root / "tables").glob(f"{pattern}.parquet"))


# --- what is left behind --------------------------------------------------------------


@dataclass(frozen=True)
class StagedRun:
    path: Path
    command: str
    created_at: datetime
    size_bytes: int
    steps: tuple[str, ...]  # the step results it saved

    @property
    def age(self) -> timedelta:
        return datetime.now(UTC) - self.created_at


def list_runs(directory: Path | None = None) -> list[StagedRun]:
    """Run folders under the staging directory, oldest first (a successful run leaves none)."""
    directory = directory or staging_path(staging_location())
    runs = []
    for marker in directory.rglob(RUN_FILE) if directory.exists() else ():
        folder = marker.parent
        try:
            info = json.loads(marker.read_text())
            created = datetime.fromisoformat(info["created_at"])
        except (ValueError, KeyError, OSError):
            info, created = {}, datetime.fromtimestamp(marker.stat().st_mtime, UTC)
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        steps = tuple(sorted(p.stem for p in (folder / "results").glob("*.json")))
        runs.append(StagedRun(folder, info.get("command", "?"), created, size, steps))
    return sorted(runs, key=lambda run: run.created_at)


def prune(older_than: timedelta, directory: Path | None = None) -> list[StagedRun]:
    """Remove the run folders created more than `older_than` ago; returns them."""
    removed = [run for run in list_runs(directory) if run.age > older_than]
    for run in removed:
        RunFolder(run.path).remove()
    return removed


def parse_age(text: str) -> timedelta:
    """`7d`, `12h`, `30m` or `90s` as a timedelta."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    number, unit = text[:-1], text[-1:].lower()
    if unit not in units or not number.isdigit():
        raise ValueError(f"expected an age such as 7d, 12h or 30m, got {text!r}")
    return timedelta(seconds=int(number) * units[unit])
