"""Helpers shared by the homework tests (test_grading.py, test_hw2.py)."""
from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbformat import NotebookNode

ROOT = Path(__file__).resolve().parents[1]


def expected_scores(points: dict[str, float], maxima: dict[str, float]) -> dict:
    """The expected result of :func:`perceptlab.course.grading.grade`, given the points earned per question."""
    questions = {q: {"points": points[q], "max": m} for q, m in maxima.items()}
    return {"questions": questions, "total": sum(points.values()), "max": sum(maxima.values())}


@pytest.fixture(autouse=True)
def kernels_find_perceptlab(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kernels inherit the environment: let them import the library from this checkout."""
    paths = [str(ROOT / "lib"), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))


def read(path: Path) -> NotebookNode:
    return nbformat.read(path, as_version=4)


def cell_by_id(nb: NotebookNode, cell_id: str) -> NotebookNode:
    return next(cell for cell in nb.cells if cell.get("id") == cell_id)


def check_cells(nb: NotebookNode) -> dict[str, NotebookNode]:
    """Check cells by grading id."""
    return {cell.metadata["grading"]["id"]: cell for cell in nb.cells if "grading" in cell.metadata}


def release_and_check(source_path: Path, out_dir: Path, regions: int) -> tuple[NotebookNode, NotebookNode]:
    """Release ``source_path`` into ``out_dir`` and check what every student version must be:
    valid, no outputs, no solutions (each of the ``regions`` solution regions replaced by a stub),
    valid (I)Python.  Returns (source, student)."""
    from IPython.core.inputtransformer2 import TransformerManager

    from perceptlab.course import grading

    source = read(source_path)
    out = grading.release(source_path, out_dir)
    assert out == out_dir / source_path.name.replace("_source", "")
    student = read(out)
    nbformat.validate(student)
    assert student.metadata.kernelspec.name == "python3"
    code = [cell for cell in student.cells if cell.cell_type == "code"]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)
    assert not any("BEGIN SOLUTION" in cell.source or "END SOLUTION" in cell.source for cell in student.cells)
    assert sum(cell.source.count(grading.BEGIN_SOLUTION) for cell in source.cells) == regions
    assert sum(cell.source.count(grading.STUB) for cell in code) == regions
    for cell in code:  # valid (I)Python
        compile(TransformerManager().transform_cell(cell.source), cell.get("id", "cell"), "exec")
    return source, student


def with_answers(source_path: Path, tmp_path: Path, answers: dict) -> Path:
    """The reference ``source_path`` with some cells (by id) changed, written to ``tmp_path``: a string
    replaces the cell's solution regions, a function maps the cell's whole source to the new one."""
    from perceptlab.course import grading

    nb = read(source_path)
    for cell_id, answer in answers.items():
        cell = cell_by_id(nb, cell_id)
        cell.source = answer(cell.source) if callable(answer) else grading.strip_solutions(cell.source, answer)
    path = tmp_path / source_path.name.replace("_source", "")
    nbformat.write(nb, path)
    return path


def failed_checks(report) -> set[str]:
    """The ids of the check cells a :class:`perceptlab.course.grading.GradeReport` failed."""
    return {r.check.id for r in report.results if not r.passed}
