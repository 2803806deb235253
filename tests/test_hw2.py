"""Homework 2 (Chapter 2): its release and its grading with perceptlab.grading.

The grading machinery itself is tested in test_grading.py (on HW1 and on small synthetic
notebooks).  Here Homework 2 is graded three times, each a full run of the notebook (about
30 s on 2 CPU cores): the reference, the untouched student version, and a wrong Q2.
"""
from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager
from nbformat import NotebookNode

from perceptlab import grading

ROOT = Path(__file__).resolve().parents[1]
HOMEWORK = ROOT / "chapters" / "02_perceptual_losses" / "homework"
HW2_SOURCE = HOMEWORK / "hw2_source.ipynb"
HW2 = HOMEWORK / "hw2.ipynb"
HW1_SOURCE = ROOT / "chapters" / "01_template_matching" / "homework" / "hw1_source.ipynb"
HW2_MAX = {"q1": 4, "q2": 3, "q3": 3}
HW2_CHECKS = {"check-q1-toy": "q1", "check-q1-vgg": "q1", "check-q2-cases": "q2", "check-q2-random": "q2",
              "check-q3-table": "q3", "check-q3-kinds": "q3"}

# Q2 answered with a majority vote instead of the fraction p: right on 0/1 judgements (all that
# Q3's synthetic set has), wrong on fractional ones, so only Q2's checks can catch it.
MAJORITY_VOTE_Q2 = """\
d0, d1 = torch.as_tensor(d0, dtype=torch.float64), torch.as_tensor(d1, dtype=torch.float64)
tie = (d0 - d1).abs() <= tie_rtol * torch.maximum(d0.abs(), d1.abs())
p_hat = torch.where(tie, 0.5, (d1 < d0).double())
p = (torch.as_tensor(judge, dtype=torch.float64) > 0.5).double()
return (p * p_hat + (1 - p) * (1 - p_hat)).mean()"""


def scores(points: dict[str, float]) -> dict:
    """The expected result of :func:`grading.grade` for HW2, given the points earned per question."""
    questions = {q: {"points": points[q], "max": m} for q, m in HW2_MAX.items()}
    return {"questions": questions, "total": sum(points.values()), "max": sum(HW2_MAX.values())}


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


# --------------------------------------------------------------------------- the notebooks, statically


def test_hw2_source_is_executed_with_hw1s_colab_cell_first() -> None:
    source = read(HW2_SOURCE)
    assert source.metadata.kernelspec.name == "python3"
    assert source.cells[0].source == read(HW1_SOURCE).cells[0].source
    checks = grading.reference_checks(source)  # executed, valid metadata
    assert {c.id: c.question for c, _ in checks} == HW2_CHECKS
    assert {c.question: c.points for c, _ in checks} == HW2_MAX


def test_release_hw2(tmp_path: Path) -> None:
    source = read(HW2_SOURCE)
    out = grading.release(HW2_SOURCE, tmp_path)
    assert out == tmp_path / "hw2.ipynb"
    student = read(out)
    nbformat.validate(student)
    assert student.metadata.kernelspec.name == "python3"
    code = [cell for cell in student.cells if cell.cell_type == "code"]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)
    assert not any("BEGIN SOLUTION" in cell.source or "END SOLUTION" in cell.source for cell in student.cells)
    regions = sum(cell.source.count(grading.BEGIN_SOLUTION) for cell in source.cells)
    assert regions == 3
    assert sum(cell.source.count(grading.STUB) for cell in code) == regions
    for cell in code:  # valid (I)Python
        compile(TransformerManager().transform_cell(cell.source), cell.get("id", "cell"), "exec")
    # the instructor's discussion is gone, the reflection prompt and the check cells are kept as they are
    assert [c.id for c in source.cells if "solution" in c.metadata.get("tags", [])] == ["reflection-discussion"]
    assert not any("solution" in cell.metadata.get("tags", []) for cell in student.cells)
    assert any(cell.get("id") == "reflection" for cell in student.cells)
    assert {k: (c.source, c.metadata) for k, c in check_cells(student).items()} == \
        {k: (c.source, c.metadata) for k, c in check_cells(source).items()}
    # the committed student version is exactly what release produces
    committed = read(HW2)
    assert [(c.cell_type, c.source) for c in committed.cells] == [(c.cell_type, c.source) for c in student.cells]
    assert [c.metadata for c in committed.cells] == [c.metadata for c in student.cells]
    assert all(c.outputs == [] for c in committed.cells if c.cell_type == "code")


def test_hw2_never_calls_synthetic_scores_human_agreement() -> None:
    text = "\n".join(cell.source for cell in read(HW2_SOURCE).cells).lower()
    assert "ordering agreement" in text
    assert "human agreement" not in text


# --------------------------------------------------------------------------- grading HW2


def test_hw2_reference_scores_full_marks() -> None:
    assert grading.grade(HW2_SOURCE, HW2_SOURCE) == scores(HW2_MAX)


def test_hw2_untouched_student_version_scores_zero() -> None:
    assert grading.grade(HW2, HW2_SOURCE) == scores(dict.fromkeys(HW2_MAX, 0))


def test_hw2_wrong_q2_loses_exactly_its_points(tmp_path: Path) -> None:
    nb = read(HW2_SOURCE)
    cell = cell_by_id(nb, "q2-solution")
    cell.source = grading.strip_solutions(cell.source, MAJORITY_VOTE_Q2)
    path = tmp_path / "hw2.ipynb"
    nbformat.write(nb, path)
    report = grading.grade_report(path, HW2_SOURCE)
    assert report.to_dict() == scores({**HW2_MAX, "q2": 0})
    assert {r.check.id for r in report.results if not r.passed} == {"check-q2-cases", "check-q2-random"}
