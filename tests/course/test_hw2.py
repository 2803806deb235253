"""Homework 2 (Chapter 2): its release and its grading with perceptlab.course.grading.

The grading machinery itself is tested in test_grading.py (on HW1 and on small synthetic
notebooks).  Here Homework 2 is graded three times, each a full run of the notebook (about
30 s on 2 CPU cores): the reference, the untouched student version, and a wrong Q2.
"""
from __future__ import annotations

from pathlib import Path

import nbformat

from perceptlab.course import grading

from homework import (assert_formats_shown, assert_source_layout, cell_by_id, check_cells,  # noqa: F401
                      expected_scores, kernels_find_perceptlab, read, release_and_check)

ROOT = Path(__file__).resolve().parents[2]
HOMEWORK = ROOT / "chapters" / "02_perceptual_losses" / "homework"
HW2_SOURCE = HOMEWORK / "hw2_source.ipynb"
HW2 = HOMEWORK / "hw2.ipynb"
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
    return expected_scores(points, HW2_MAX)


# --------------------------------------------------------------------------- the notebooks, statically


def test_hw2_source_has_the_title_then_the_colab_cell_and_ten_points() -> None:
    assert_source_layout(HW2_SOURCE, "# Homework 2: perceptual losses and the 2AFC test", HW2_CHECKS, HW2_MAX)


def test_hw2_questions_show_the_format_of_their_checks_not_the_values() -> None:
    assert_formats_shown(HW2_SOURCE)


def test_release_hw2(tmp_path: Path) -> None:
    source, student = release_and_check(HW2_SOURCE, tmp_path, regions=3)
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
