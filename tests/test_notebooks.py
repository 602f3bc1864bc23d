"""The notebooks run top to bottom against a migrated database through papermill: each draws a chart
and shows no email address, 02 fails on a broken reference, and none is committed with outputs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from pathlib import Path

import nbformat
import papermill
import pytest

from leadnorm.devtools.seed import seed_leads
from leadnorm.mongo import connect
from leadnorm.steps.pipeline import migrate
from leadnorm.steps.runstore import RunFolder

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EMAIL = re.compile(r"[^\s@\"']+@[^\s@\"']+\.[a-z]{2,}", re.IGNORECASE)
# The clean filter `.gitattributes` names, as `make jupyter` defines it.
NBSTRIPOUT = re.search(r"^NBSTRIPOUT := (.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)[1]


def seeded_and_migrated(db, leads: int, tmp: Path) -> None:
    seed_leads(db, leads, seed=4)
    migrate(db, backup_dir=tmp / "b", skip_validation=True, run=RunFolder(tmp / "run"))


def execute(name: str, mongo_uri: str, db_name: str, tmp: Path) -> nbformat.NotebookNode:
    """papermill as the README runs it: the notebook's own kernel `leadnorm`, which `make setup` installs."""
    out = tmp / name
    papermill.execute_notebook(
        str(ROOT / "notebooks" / name),
        str(out),
        parameters={"uri": mongo_uri, "db": db_name},
        progress_bar=False,
        cwd=str(tmp),
    )
    return nbformat.read(out, as_version=4)


@pytest.fixture(scope="module")
def migrated_db(mongo_uri, tmp_path_factory):
    """~300 seeded leads, migrated: one database the three notebooks share."""
    database = connect(mongo_uri, f"test_nb_{uuid.uuid4().hex[:12]}")
    seeded_and_migrated(database, 300, tmp_path_factory.mktemp("migration"))
    yield database
    database.client.drop_database(database.name)
    database.client.close()


def test_there_are_three_notebooks():
    assert [p.name for p in NOTEBOOKS] == [
        "01_explore_nested_leads.ipynb",
        "02_verify_migration.ipynb",
        "03_analyze_leads.ipynb",
    ]


@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS])
def test_notebook_runs_draws_and_masks(name, migrated_db, mongo_uri, tmp_path):
    nb = execute(name, mongo_uri, migrated_db.name, tmp_path)
    outputs = [output for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs]
    assert any("image/png" in output.get("data", {}) for output in outputs), f"{name} draws no chart"
    for output in outputs:
        texts = [output.get("text", "")] + [v for k, v in output.get("data", {}).items() if k.startswith("text/")]
        found = [m[0] for text in texts for m in EMAIL.finditer(text)]
        assert not found, f"{name} shows an email address ({len(found)} found)"


def test_verify_notebook_fails_on_a_broken_reference(db, mongo_uri, tmp_path):
    seeded_and_migrated(db, 120, tmp_path)
    db.companies.delete_one({})
    with pytest.raises(papermill.PapermillExecutionError) as failed:
        execute("02_verify_migration.ipynb", mongo_uri, db.name, tmp_path)
    assert failed.value.ename == "AssertionError"


def committed(path: Path) -> bytes:
    """The notebook as git stores it: through the clean filter where this checkout defines it."""
    data = path.read_bytes()
    config = subprocess.run(
        ["git", "config", "--get", "filter.nbstripout.clean"], cwd=ROOT, capture_output=True, text=True
    )
    if config.returncode != 0:
        return data
    return subprocess.run(config.stdout, shell=True, cwd=ROOT, input=data, capture_output=True, check=True).stdout


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_carries_no_outputs(path):
    nb = json.loads(committed(path))
    assert set(nb["metadata"]) <= {"kernelspec"}, f"volatile notebook metadata: {sorted(nb['metadata'])}"
    for cell in nb["cells"]:
        assert set(cell["metadata"]) <= {"tags"}, f"volatile cell metadata: {sorted(cell['metadata'])}"
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, f"{path.name} carries outputs"
    parameters = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
    assert len(parameters) == 1 and all(
        p in "".join(parameters[0]["source"]) for p in ("uri =", "db =", "show_personal =")
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_saved_run_cleans_back_to_the_committed_notebook(path, tmp_path):
    """Opened, run and saved in JupyterLab: the clean filter gives back the committed bytes, so no diff."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.7"}
    for count, cell in enumerate((c for c in nb.cells if c.cell_type == "code"), start=1):
        cell.execution_count = count
        cell.metadata["execution"] = {"iopub.status.busy": "2024-01-01T00:00:00Z"}
        cell.outputs = [nbformat.v4.new_output("stream", text="someone@example.com\n")]
    saved = nbformat.writes(nb).encode() + b"\n"
    cleaned = subprocess.run(NBSTRIPOUT, shell=True, cwd=ROOT, input=saved, capture_output=True, check=True).stdout
    assert cleaned == path.read_bytes()


def test_make_notebooks_leaves_the_demo_database_alone_and_reports_without_code(tmp_path):
    """`make notebooks` seeds a database of its own: the demo's `jazon_ai_sdr` (and what was uploaded
    into it) is still there afterwards; the HTML reports show outputs, not code."""
    env = {**os.environ, "LEADNORM_STATE_DIR": str(tmp_path / "state"), "NOTEBOOK_REPORTS": str(tmp_path / "out")}
    env.pop("MONGO_URI", None)
    cli = [str(ROOT / ".venv/bin/python"), "-m", "leadnorm"]
    uri = subprocess.run([*cli, "mongo", "start"], env=env, capture_output=True, text=True, check=True).stdout.strip()
    try:
        demo = connect(uri, "jazon_ai_sdr")
        seed_leads(demo, 25, seed=9)
        made = subprocess.run(
            ["make", "-s", "notebooks", "NOTEBOOK_LEADS=80"], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
        assert demo.leads.count_documents({}) == 25
        assert connect(uri, "leadnorm_notebooks").companies.count_documents({}) > 0
        for notebook in NOTEBOOKS:
            html = (tmp_path / "out" / notebook.with_suffix(".html").name).read_text()
            assert "<img" in html and "from leadnorm" not in html, notebook.name
    finally:
        subprocess.run([*cli, "mongo", "stop"], env=env, capture_output=True)
