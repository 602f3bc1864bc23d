"""The documentation is true to the tree: every path `docs/layout.md` names exists, every module
of the package is named there, every page the README points to exists, and the README stays
one screen (about 12 KB at most)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "plugins" / "leadnorm"


def layout_paths() -> list[Path]:
    """The paths of the layout block: a name in column one opens a folder when it ends in `/`;
    indented lines are inside the folder above them; several names may share a line."""
    block = re.search(r"```text\n(.*?)```", (ROOT / "docs" / "layout.md").read_text(), re.DOTALL)[1]
    paths, parents = [], []  # parents: (indent, folder)
    for line in block.splitlines():
        indent = len(line) - len(line.lstrip())
        names = re.split(r"\s{2,}", line.strip())[0].split()
        while parents and parents[-1][0] >= indent:
            parents.pop()
        base = parents[-1][1] if parents else ROOT
        for name in names:
            path = base / name.rstrip("/")
            paths.append(path)
            if name.endswith("/") and len(names) == 1:
                parents.append((indent, path))
    return paths


def test_every_path_in_the_layout_exists():
    paths = layout_paths()
    assert len(paths) > 60
    missing = [str(p.relative_to(ROOT)) for p in paths if not p.exists()]
    assert missing == []


def test_every_module_of_the_package_is_in_the_layout():
    named = set(layout_paths())
    modules = [p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" and "datadocs_assets" not in p.parts]
    assert [str(p.relative_to(ROOT)) for p in modules if p not in named] == []


def test_the_readme_is_one_screen_and_its_links_exist():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 12 * 1024
    links = re.findall(r"\]\((?!https?:)([^)#]+)", readme)
    assert links and [link for link in links if not (ROOT / link).exists()] == []
    for page in (ROOT / "docs").glob("*.md"):
        assert f"docs/{page.name}" in readme, f"the README does not point to {page.name}"
