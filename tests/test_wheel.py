"""The project as a wheel: built from a copy of the package and pyproject.toml, installed into an
empty venv (the project's dependencies reach it as a plain path, so only the wheel provides
leadnorm), it finds its suites and Data Docs assets as package data, declares its dependencies,
and an Airflow API server in that venv, with an empty plugins folder, loads the UI plugin through
the wheel's entry point and serves the Leads page with its templates and stylesheet."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from airflow_harness import ROOT, api_server, scratch_env, scratch_home, token

from leadnorm import contract
from leadnorm.devtools.seed import seed_leads
from leadnorm.mongo import connect
from leadnorm.steps.pipeline import migrate
from leadnorm.steps.runstore import RunFolder


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory) -> Path:
    """An empty venv with the built wheel installed; its python."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"  # built from a copy: a build leaves its folders in the tree it builds
    shutil.copytree(
        ROOT / "plugins" / "leadnorm", source / "plugins" / "leadnorm", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", source)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp]
    built = subprocess.run([*pip_wheel, source], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next(tmp.glob("leadnorm-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # The dependencies, from this venv's site-packages as a plain path: its .pth files (the
    # checkout's editable install among them) are not read, so only the wheel provides leadnorm.
    site = next(venv.glob("lib/python*/site-packages"))
    (site / "dependencies.pth").write_text(next(p for p in sys.path if p.endswith("site-packages")) + "\n")
    python = venv / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    return python


def in_venv(python: Path, code: str, cwd: Path) -> str:
    """`code` run by the venv's python, from `cwd` (not the checkout, whose package would import)."""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, cwd=cwd, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_an_installed_wheel_finds_its_suites_assets_and_declares_its_dependencies(wheel_venv, tmp_path):
    found = in_venv(
        wheel_venv,
        "import leadnorm.quality.suites as s, leadnorm.quality.datadocs as d, leadnorm.ui.app as a;"
        "assert 'site-packages' in s.__file__, s.__file__;"
        "print(len(s.suite_definitions()), (d.ASSETS / 'manifest.json').is_file(),"
        " (a.HERE / 'templates' / 'leads.html').is_file(), (a.HERE / 'static' / 'leads.css').is_file())",
        tmp_path,
    )
    # the last line: importing Airflow (for the UI) may log to stdout first
    assert found.splitlines()[-1].split() == [str(len(contract.COLLECTION_NAMES) + 1), "True", "True", "True"]
    requires = in_venv(
        wheel_venv, "from importlib import metadata; print(*metadata.requires('leadnorm'), sep='\\n')", tmp_path
    )
    names = {re.match(r"[A-Za-z0-9_.-]+", line)[0].lower(): line for line in requires.splitlines()}
    assert {"apache-airflow", "pymongo", "pandas", "pyarrow", "duckdb", "great_expectations", "fastapi"} <= set(names)
    # each runtime dependency is one the lock pins for the project's own environment
    pinned = {
        re.match(r"[A-Za-z0-9_.-]+", line)[0].lower()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    runtime = {name for name, line in names.items() if "extra ==" not in line}
    assert runtime <= pinned, runtime - pinned


@pytest.mark.airflow
def test_an_api_server_with_the_wheel_alone_serves_the_leads_page(wheel_venv, mongo_uri, tmp_path):
    database = connect(mongo_uri, f"test_whl_{uuid.uuid4().hex[:8]}")
    seed_leads(database, 30, seed=5)
    migrate(database, backup_dir=tmp_path / "b", skip_validation=True, run=RunFolder(tmp_path / "run"))
    for folder in ("home", "no-plugins"):
        (tmp_path / folder).mkdir()
    home = scratch_home(tmp_path / "home", {"wendy": "wheel-pass"})
    env = scratch_env(home, mongo_uri, database.name, "wendy:admin")
    env["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(tmp_path / "no-plugins")
    env["PYTHONPATH"] = ""  # nothing of the checkout on the path
    try:
        with api_server(env, command=[str(wheel_venv), "-m", "airflow"], cwd=tmp_path) as base:
            headers = {"Authorization": f"Bearer {token(base, 'wendy', 'wheel-pass')}"}
            page = httpx.get(f"{base}/leadnorm/leads", headers=headers, timeout=60)
            assert page.status_code == 200 and "<table" in page.text, page.text[:500]
            assert "leads.css" in page.text
            css = httpx.get(f"{base}/leadnorm/static/leads.css", headers=headers, timeout=60)
            assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
            plugins = httpx.get(f"{base}/api/v2/plugins", headers=headers, timeout=60).json()["plugins"]
            assert [p["name"] for p in plugins].count("leadnorm") == 1, plugins
    finally:
        database.client.drop_database(database.name)
