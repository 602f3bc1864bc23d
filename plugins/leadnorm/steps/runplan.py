"""The migration's steps in the order they run, written once.

`leadnorm.steps.pipeline.migrate` runs them one after the other in this process (the command
line, the notebooks, the bench); `leadnorm.flows` makes each one a task of the DAGs, a step over
partitions or collections a mapped task. A step's action takes the run's `Resources`, built once
per entry point, and the partition or collection it works on. This module imports nothing heavy:
a DAG file builds its graph from it, and the actions are imported only when a step runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from leadnorm.contract import COLLECTION_NAMES
from leadnorm.steps import layout

if TYPE_CHECKING:
    from pymongo.database import Database

    from leadnorm.steps.changes import Changes
    from leadnorm.steps.runstore import RunFolder

DEFAULT_BATCH_SIZE = 1000


@dataclass(frozen=True)
class Settings:
    """How a run goes: the command line's options, or a DAG run's params."""

    batch_size: int = DEFAULT_BATCH_SIZE
    partitions: int = 1  # 0: one per 25,000 nested leads, at most 8
    dry_run: bool = False
    skip_validation: bool = False
    refresh: bool = False  # a refresh's plan step finds the changes when it is not given them
    backup_dir: Path | None = None
    skip: frozenset[str] = frozenset()  # steps left out by name (`bench --client-only`: backup, verify)

    @classmethod
    def from_params(cls, params: Mapping[str, Any], *, refresh: bool) -> Settings:
        return cls(
            batch_size=int(params["batch_size"]),
            partitions=int(params["partitions"]),
            dry_run=bool(params["dry_run"]),
            refresh=refresh,
        )


@dataclass(frozen=True)
class Resources:
    """What every step works with: the database, the run folder, the settings, and a refresh's
    changes when the entry point found them already."""

    db: Database
    run: RunFolder
    settings: Settings
    changes: Changes | None = None


@dataclass(frozen=True)
class Step:
    name: str
    action: str  # "module:function", called as function(resources, item); imported when the step runs
    doc: str
    over: Literal["partitions", "collections"] | None = None
    retries: int = 2  # I/O steps are rerun after a transient error; a pure step's rerun fails alike
    when: Callable[[Settings], bool] = field(default=lambda settings: True)
    gives_partitions: bool = False  # its result is the partitions the next steps map over

    def runs(self, settings: Settings) -> bool:
        return self.name not in settings.skip and self.when(settings)

    def function(self) -> Callable[[Resources, Any], Any]:
        module, name = self.action.split(":")
        return getattr(importlib.import_module(module), name)

    def items(self, resources: Resources) -> list:
        """What the step works on one at a time: its partitions, its collections, or the run."""
        if self.over == "partitions":
            return list(range(resources.run.read_result(layout.Results.PLAN)["partitions"]))
        if self.over == "collections":
            return list(COLLECTION_NAMES)
        return [None]

    def run(self, resources: Resources, item=None):
        """The step's action, or None when the run's settings leave it out."""
        return self.function()(resources, item) if self.runs(resources.settings) else None


ACTIONS = "leadnorm.steps.pipeline"
STEPS = (
    Step(
        "plan",
        f"{ACTIONS}:plan_action",
        "How the run reads the source: its partitions (a refresh: of its scope alone).",
        gives_partitions=True,
    ),
    Step("extract", f"{ACTIONS}:extract_action", "A partition's nested leads, staged as raw BSON.", over="partitions"),
    Step(
        "split",
        f"{ACTIONS}:split_action",
        "Pure: one partition's nested leads into the mention tables dedupe takes.",
        over="partitions",
        retries=0,
    ),
    Step(
        "resolve",
        f"{ACTIONS}:resolve_action",
        "Every partition's mentions at once (dedupe exact across partitions), keeping the company and"
        " persona ids already stored; the nine collections staged in `_id` order.",
        retries=0,
    ),
    Step(
        "validate",
        f"{ACTIONS}:validate_action",
        "The gate: an expectation of severity error that fails stops the run before any write.",
        retries=0,
        when=lambda s: not s.skip_validation,
    ),
    Step(
        "backup",
        f"{ACTIONS}:backup_action",
        "Before the first write: the source and the nine collections whole, or of a refresh's scope only what it"
        " may change (an increment).",
        when=lambda s: not s.dry_run,
    ),
    Step("load", f"{ACTIONS}:load_action", "One collection's diff-load.", over="collections", retries=3),
    Step(
        "mark",
        f"{ACTIONS}:mark_action",
        "The run's last writes: the source leads marked, what is stale deleted, the leads' keys recorded.",
        retries=3,
    ),
    Step(
        "verify",
        f"{ACTIONS}:verify_action",
        "Every nested lead accounted for, every reference resolving.",
        when=lambda s: not s.dry_run,
    ),
)
STEP_NAMES = tuple(step.name for step in STEPS)
