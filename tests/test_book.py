"""Static checks of the book: layout, toc, notebooks, citations, pins."""
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())


def _toc_files(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("file", "root"):
                yield value
            else:
                yield from _toc_files(value)
    elif isinstance(node, list):
        for item in node:
            yield from _toc_files(item)


TOC_FILES = list(_toc_files(TOC))
CHAPTER_NOTEBOOKS = sorted(p for p in (ROOT / "chapters").rglob("*.ipynb")
                           if "homework" not in p.parts and ".ipynb_checkpoints" not in p.parts)
ALL_NOTEBOOKS = sorted(p for p in (ROOT / "chapters").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def _resolve(entry: str) -> Path:
    for suffix in (".md", ".ipynb"):
        if (ROOT / (entry + suffix)).exists():
            return ROOT / (entry + suffix)
    return ROOT / entry


def test_every_toc_entry_exists():
    missing = [f for f in TOC_FILES if not _resolve(f).exists()]
    assert not missing


def test_every_chapter_notebook_is_in_the_toc():
    entries = {str(_resolve(f).relative_to(ROOT)) for f in TOC_FILES}
    assert CHAPTER_NOTEBOOKS
    assert [str(p.relative_to(ROOT)) for p in CHAPTER_NOTEBOOKS if str(p.relative_to(ROOT)) not in entries] == []


@pytest.mark.parametrize("path", CHAPTER_NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_notebooks_are_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert dirty == [], f"{path.name}: cells {dirty} have outputs; clear them before committing"


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_valid_nbformat_with_unique_cell_ids(path):
    import nbformat

    raw = json.loads(path.read_text())  # nbformat.reads would fill in missing ids (with a warning)
    ids = [c.get("id") for c in raw["cells"]]  # a missing id becomes an error in future nbformat versions
    nbformat.validate(nbformat.from_dict(raw))
    assert None not in ids and len(set(ids)) == len(ids), f"{path.name}: missing or repeated cell ids"


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_installs_from_the_configured_repository(path):
    nb = json.loads(path.read_text())
    first = next("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    url = CONFIG["repository"]["url"]
    assert "google.colab" in first and f"git+{url}" in first
    pip_lines = [line for line in first.splitlines() if "pip install" in line]
    assert len(pip_lines) == 1 and not re.search(r"\btorch(vision)?\b", pip_lines[0]), "must not reinstall torch"


def test_citations_exist_in_the_bibliography():
    bib = (ROOT / "book" / "references.bib").read_text()
    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    cited = set()
    for path in [*ROOT.glob("book/*.md"), *(ROOT / "chapters").rglob("*.md"), *ALL_NOTEBOOKS]:
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", path.read_text()):
            cited.update(k.strip() for k in group.split(","))
    assert cited and cited <= keys, f"unknown keys: {sorted(cited - keys)}"


def test_requirements_pin_torch_torchvision_and_jupyter_book():
    req = (ROOT / "requirements.txt").read_text().splitlines()
    assert "torch==2.13.0" in req and "torchvision==0.28.0" in req
    assert "jupyter-book>=1.0.4,<2" in req


def test_book_build_fails_on_warnings_and_notebook_errors():
    makefile = (ROOT / "Makefile").read_text()
    assert "jupyter-book build . -W --keep-going" in makefile
    assert CONFIG["execute"]["allow_errors"] is False
    assert "make test" in (ROOT / ".ci" / "run").read_text()
