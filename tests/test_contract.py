"""The contract's constants are the one truth: the schema, the GX suites and the synthetic
generator all agree with `leadnorm.contract`; the package has no import cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from leadnorm import contract
from leadnorm.devtools.seed import generate_leads
from leadnorm.quality.suites import SOURCE_SUITE, suite_definitions
from leadnorm.schema import COLLECTIONS
from leadnorm.transform.clean import Warnings, read_fit_tier

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "plugins" / "leadnorm"


def value_sets(suite: dict) -> dict[str, set]:
    """column -> value set of its critical `expect_column_values_to_be_in_set`."""
    return {
        e["kwargs"]["column"]: set(e["kwargs"]["value_set"])
        for e in suite["expectations"]
        if e["type"] == "expect_column_values_to_be_in_set" and e["severity"] == "critical"
    }


def test_schema_names_the_contract_collections_in_load_order():
    assert tuple(COLLECTIONS) == contract.COLLECTION_NAMES
    assert contract.SOURCE_COLLECTION in COLLECTIONS


def test_suites_use_the_contract_value_sets():
    suites = suite_definitions()
    assert set(suites) == {*contract.COLLECTION_NAMES, SOURCE_SUITE}
    assert value_sets(suites["leads"])["status"] == set(contract.STATUSES)
    assert value_sets(suites["icp_scores"])["fit_tier"] == {*contract.FIT_TIERS, ""}  # "" = unreadable
    for suite, column in (("technographics", "confidence"), ("detected_signals", "strength")):
        assert value_sets(suites[suite])[column] == set(contract.LEVELS), suite


def test_generator_writes_only_contract_values():
    statuses, tiers = set(), set()
    for lead in generate_leads(2000, 3):
        assert "lead_input" in lead  # every generated document is a nested lead (NESTED_LEAD)
        statuses.add(lead.get("status"))
        icp = lead.get("icp")
        if isinstance(icp, dict):
            tiers.add(read_fit_tier(icp.get("fit_tier"), "fit_tier", Warnings()))
    assert statuses <= set(contract.STATUSES) | {None}
    assert set(contract.STATUSES) <= statuses
    assert tiers - {None} == set(contract.FIT_TIERS)


def imports_of(path: Path) -> set[str]:
    """The leadnorm modules `path` imports, at any depth (function-level imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("leadnorm"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("leadnorm"))
    return found


def test_no_import_cycle():
    modules = {
        ".".join(("leadnorm", *p.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__"): p
        for p in PACKAGE.rglob("*.py")
    }
    graph = {name: imports_of(path) & modules.keys() - {name} for name, path in modules.items()}
    graph = {name: {m for m in deps if not name.startswith(m + ".")} for name, deps in graph.items()}

    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for dep in graph[name]:
            if state.get(dep) == 1:
                pytest.fail("import cycle: " + " -> ".join([*trail[trail.index(dep) :], dep]))
            if dep not in state:
                visit(dep, [*trail, dep])
        state[name] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])
