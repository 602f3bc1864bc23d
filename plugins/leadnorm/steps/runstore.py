"""Run storage: one owner-only folder per run holding staged batches, frames and step results.

Steps hand data to each other through this folder, so a DAG passes only its path through
XCom and a retried task finds its inputs where they were left. Everything in it is
personal data, so the folder is created 0700 and every file 0600, and frames are BSON
(reading them runs no code, unlike a pickle, and keeps ObjectIds, dates, nested values
and NaN exactly). A successful run removes its folder; a failed one keeps it for the
retry, and `staging list` / `staging prune` deal with what is left.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import bson
import bson.errors
import numpy as np
import pandas as pd

from leadnorm.config import staging_location
from leadnorm.errors import StagingError
from leadnorm.mongo import CODEC_OPTIONS, split_bson

RUN_FILE = "run.json"  # marks a run folder: who made it, when
FRAME_FORMAT = "leadnorm-frame/1"


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


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (a temp file renamed), mode 0600; an object in object
    storage, which appears whole or not at all. A failure is a StagingError naming the folder."""
    if not _local(path):
        path.write_bytes(data)
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
            out.write(data)
        tmp.replace(path)
    except OSError as exc:  # a full disk, say: say where, and leave no half file
        tmp.unlink(missing_ok=True)
        raise StagingError(f"{path.parent}: cannot write {path.name} ({exc.strerror or exc})") from None


@dataclass(frozen=True)
class RunFolder:
    """Where one run keeps its staged batches, frames and step results."""

    root: Path  # or an ObjectStoragePath: see `staging_path`
    # Frames this process wrote: a run whose steps share a process (the command line) reads
    # them back from memory; the file is still written, for a rerun or the next task.
    written: dict[str, pd.DataFrame] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def new(cls, name: str | None = None, command: str = "migrate") -> RunFolder:
        """A run folder under the staging directory, created owner-only."""
        name = name or "run-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        return cls(staging_path(staging_location()) / name.replace(":", "_").replace("+", "_")).create(command)

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

    def write_batches(self, batches: Iterator[bytes], partition: int = 0) -> Iterator[int]:
        """Stage each raw batch as `source/part-PPP/batch-NNNNN.bson`; yields its document count."""
        folder = private_dir(private_dir(self.batches) / f"part-{partition:03d}")
        for old in folder.glob("batch-*.bson"):
            old.unlink()
        for number, data in enumerate(batches):
            write_private(folder / f"batch-{number:05d}.bson", data)
            yield len(split_bson(data))

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

    # --- frames: BSON, one header then one document per row ------------------------

    def frame_path(self, name: str) -> Path:
        return self.root / "frames" / f"{name}.bson"

    def write_frame(self, name: str, frame: pd.DataFrame) -> None:
        write_private(private_dir(self.root / "frames") / f"{name}.bson", frame_to_bson(frame))
        self.written[name] = frame

    def take_frame(self, name: str) -> pd.DataFrame:
        """`read_frame`, dropping this process's copy: its reader holds it from now on."""
        frame = self.read_frame(name)
        self.written.pop(name, None)
        return frame

    def read_frame(self, name: str) -> pd.DataFrame:
        if name in self.written:
            return self.written[name].copy(deep=False)
        path = self.frame_path(name)
        if not path.exists():
            raise StagingError(f"{path}: not staged; rerun the run from its first step")
        return frame_from_bson(path.read_bytes())


def _bson_value(value):
    """numpy and pandas scalars as the Python values BSON knows."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if value is pd.NaT or value is pd.NA:
        return None
    return value


def frame_to_bson(frame: pd.DataFrame) -> bytes:
    """A header (columns and dtypes), then each row's values as one BSON array."""
    header = {
        "format": FRAME_FORMAT,
        "columns": [str(c) for c in frame.columns],
        "dtypes": [str(t) for t in frame.dtypes],
    }
    parts = [bson.encode(header, codec_options=CODEC_OPTIONS)]
    parts += [
        bson.encode({"v": [_bson_value(v) for v in row]}, codec_options=CODEC_OPTIONS)
        for row in frame.itertuples(index=False, name=None)
    ]
    return b"".join(parts)


def frame_from_bson(data: bytes) -> pd.DataFrame:
    try:
        documents = bson.decode_all(data, CODEC_OPTIONS)
    except bson.errors.BSONError:
        documents = []
    if not documents or documents[0].get("format") != FRAME_FORMAT:
        raise StagingError(f"not a staged frame of this version ({FRAME_FORMAT})")
    header, rows = documents[0], documents[1:]
    columns = header["columns"]
    frame = pd.DataFrame(
        {c: pd.Series([row["v"][i] for row in rows], dtype=object) for i, c in enumerate(columns)}, columns=columns
    )
    typed = {c: t for c, t in zip(columns, header["dtypes"]) if t != "object"}
    return frame.astype(typed) if typed else frame


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
