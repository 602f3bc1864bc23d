"""The Great Expectations suites as written: reviewable JSON shipped as package data.

Light on purpose (no GX import), so the suites can be read, listed and tested
anywhere the package is installed, a wheel included.
"""

from __future__ import annotations

import json
from importlib.resources import files
from importlib.resources.abc import Traversable

from leadnorm.contract import COLLECTION_NAMES

SOURCE_SUITE = "nested_leads"  # the suite for the `source` frame: one row per nested lead
SUITES = files("leadnorm.quality") / "expectations"


def suite_definitions(directory: Traversable = SUITES) -> dict[str, dict]:
    """The suites of `expectations/*.json`, by name (file stem); one per collection and the source."""
    suites = {}
    for path in sorted(directory.iterdir(), key=lambda p: p.name):
        if not path.name.endswith(".json"):
            continue
        stem = path.name.removesuffix(".json")
        suite = json.loads(path.read_text(encoding="utf-8"))
        if suite.get("name") != stem:
            raise ValueError(f"{path}: suite name {suite.get('name')!r} differs from its file name")
        suites[stem] = suite
    missing = {*COLLECTION_NAMES, SOURCE_SUITE} - suites.keys()
    if missing:
        raise ValueError(f"{directory}: no suite for {', '.join(sorted(missing))}")
    return suites
