"""The notebooks run top to bottom against the real server, through papermill, and print no personal data."""

from __future__ import annotations

import re
from pathlib import Path

import papermill

from leadnorm.devtools.seed import seed_leads
from leadnorm.steps.pipeline import migrate
from leadnorm.steps.runstore import RunFolder

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
EMAIL = re.compile(r"[^\s@\"']+@[^\s@\"']+\.[a-z]{2,}", re.IGNORECASE)


def test_committed_notebooks_have_no_outputs():
    for path in NOTEBOOKS.glob("*.ipynb"):
        assert '"output_type"' not in path.read_text(), f"{path.name} is committed with outputs"


def test_explore_and_verify_runs_and_verifies(db, mongo_uri, tmp_path):
    seed_leads(db, 300, seed=4)
    migrate(db, backup_dir=tmp_path / "b", skip_validation=True, run=RunFolder(tmp_path / "run"))
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOKS / "explore_and_verify.ipynb"),
        str(out),
        parameters={"uri": mongo_uri, "db_name": db.name, "sample_size": 200},
        kernel_name="python3",
        progress_bar=False,
        cwd=str(tmp_path),
    )
    text = out.read_text()
    assert "verify: OK" in text and "nested leads 300" in text
    assert not EMAIL.search(text), "the notebook printed an email address"
