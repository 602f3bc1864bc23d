"""The contract's constants are the one truth: the schema, the GX suites and the synthetic
generator all agree with `leadnorm.contract`; the package has no import cycle; and an
installed wheel finds its suites as package data."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
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


def test_an_installed_wheel_finds_its_suites_and_assets(tmp_path):
    source = tmp_path / "source"  # built from a copy: a build leaves its folders in the tree it builds
    shutil.copytree(PACKAGE, source / "plugins" / "leadnorm", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", source)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path]
    built = subprocess.run(
        [*pip_wheel, source],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next(tmp_path.glob("leadnorm-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # The project's dependencies, from this venv's site-packages as a plain path: its .pth files
    # (the checkout's editable install among them) are not read, so only the wheel provides leadnorm.
    site = next(venv.glob("lib/python*/site-packages"))
    (site / "dependencies.pth").write_text(next(p for p in sys.path if p.endswith("site-packages")) + "\n")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    check = (
        "import leadnorm.quality.suites as s, leadnorm.quality.datadocs as d;"
        "assert 'site-packages' in s.__file__, s.__file__;"
        "print(len(s.suite_definitions()), (d.ASSETS / 'manifest.json').is_file())"
    )
    # Run from tmp_path so the checkout's editable install is not what gets imported.
    out = subprocess.run([python, "-c", check], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [str(len(contract.COLLECTION_NAMES) + 1), "True"]
