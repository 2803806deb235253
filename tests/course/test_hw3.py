"""Homework 3 (Chapter 3): its release and its grading with perceptlab.course.grading.

The grading machinery itself is tested in test_grading.py.  Here Homework 3 is graded five
times, each a full run of the notebook (about 6 s with the kernel start): the reference, the
untouched student version, a wrong Q1, a wrong Q2, and other correct answers (a different but
sound route for each function), which must earn full marks too: the checks compare rounded
values and booleans, not the reference's last bits.
"""
from __future__ import annotations

import re
from pathlib import Path

from perceptlab.course import grading

from homework import (cell_by_id, check_cells, expected_scores, failed_checks, kernels_find_perceptlab,  # noqa: F401
                      read, release_and_check, with_answers)

ROOT = Path(__file__).resolve().parents[2]
HOMEWORK = ROOT / "chapters" / "03_gans_fid" / "homework"
HW3_SOURCE = HOMEWORK / "hw3_source.ipynb"
HW3 = HOMEWORK / "hw3.ipynb"
HW1_SOURCE = ROOT / "chapters" / "01_template_matching" / "homework" / "hw1_source.ipynb"
HW3_MAX = {"q1": 4, "q2": 3, "q3": 3}
HW3_CHECKS = {"check-q1-closed": "q1", "check-q1-library": "q1", "check-q1-singular": "q1",
              "check-q2-closed": "q2", "check-q2-library": "q2", "check-q2-gradient": "q2",
              "check-q3-values": "q3", "check-q3-saturation": "q3"}
SOLUTIONS = ("q1-solution", "q2-solution", "q3-solution")

# Q1 computed in the inputs' dtype: the stable route, but float32 for float32 statistics.  Right on
# every float64 check, wrong (by ~3e-4 relative) on near-identical float32 statistics.
FLOAT32_Q1 = """\
mu1, mu2, s1, s2 = (np.asarray(a) for a in (mu1, mu2, sigma1, sigma2))
ell, u = np.linalg.eigh((s1 + s1.T) / 2)
root = (u * np.sqrt(np.clip(ell, 0, None))) @ u.T
lam = np.linalg.eigvalsh(root @ ((s2 + s2.T) / 2) @ root)
diff = mu1 - mu2
return max(float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(lam, 0, None)).sum()), 0.0)"""

# Q2 as written on paper: right on moderate logits, log 0 = -inf once sigmoid rounds to 0 or 1.
NAIVE_Q2 = """\
return -(torch.log(torch.sigmoid(real_logits)).mean() + torch.log(1 - torch.sigmoid(fake_logits)).mean())"""

# Other correct answers: scipy's general square root of S1 S2 (float64, clamped), and logsigmoid.
OTHER_CORRECT = {
    "q1-solution": """\
mu1, mu2 = np.asarray(mu1, dtype=np.float64), np.asarray(mu2, dtype=np.float64)
s1, s2 = np.asarray(sigma1, dtype=np.float64), np.asarray(sigma2, dtype=np.float64)
trace_sqrt = np.trace(scipy.linalg.sqrtm(s1 @ s2)).real
return max(float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt), 0.0)""",
    "q2-solution": """\
return -(F.logsigmoid(real_logits).mean() + F.logsigmoid(-fake_logits).mean())""",
    "q3-solution": """\
if kind not in ("minimax", "non_saturating"):
    raise ValueError(kind)
return F.logsigmoid(-fake_logits).mean() if kind == "minimax" else -F.logsigmoid(fake_logits).mean()""",
}


def scores(points: dict[str, float]) -> dict:
    return expected_scores(points, HW3_MAX)


# --------------------------------------------------------------------------- the notebooks, statically


def test_hw3_source_is_executed_with_hw1s_colab_cell_first() -> None:
    source = read(HW3_SOURCE)
    assert source.metadata.kernelspec.name == "python3"
    assert source.cells[0].source == read(HW1_SOURCE).cells[0].source
    checks = grading.reference_checks(source)  # executed, valid metadata
    assert {c.id: c.question for c, _ in checks} == HW3_CHECKS
    assert {c.question: c.points for c, _ in checks} == HW3_MAX
    assert sum(HW3_MAX.values()) == 10


def test_hw3_check_cells_print_no_errors_or_warnings() -> None:
    for cell_id, cell in check_cells(read(HW3_SOURCE)).items():
        assert cell.outputs, cell_id
        assert all(o.output_type == "stream" and o.name == "stdout" for o in cell.outputs), cell_id
        text = "".join(o.text for o in cell.outputs)
        assert not re.search(r"\b(False|nan|inf|-inf)\b", text), cell_id


def test_hw3_reference_answers_do_not_call_the_library() -> None:
    source = read(HW3_SOURCE)
    for cell_id in SOLUTIONS:
        text = cell_by_id(source, cell_id).source
        assert "metrics." not in text and "gan." not in text, cell_id


def test_release_hw3(tmp_path: Path) -> None:
    source, student = release_and_check(HW3_SOURCE, tmp_path, regions=3)
    # the instructor's discussion is gone, the reflection prompt and the check cells are kept as they are
    assert [c.id for c in source.cells if "solution" in c.metadata.get("tags", [])] == ["reflection-discussion"]
    assert not any("solution" in cell.metadata.get("tags", []) for cell in student.cells)
    assert any(cell.get("id") == "reflection" for cell in student.cells)
    assert {k: (c.source, c.metadata) for k, c in check_cells(student).items()} == \
        {k: (c.source, c.metadata) for k, c in check_cells(source).items()}
    # the function signatures survive, their bodies are stubs
    for cell_id, name in zip(SOLUTIONS, ("my_frechet_distance", "my_discriminator_loss", "my_generator_loss")):
        text = cell_by_id(student, cell_id).source
        assert f"def {name}(" in text and grading.STUB in text
    # the committed student version is exactly what release produces
    committed = read(HW3)
    assert [(c.cell_type, c.source) for c in committed.cells] == [(c.cell_type, c.source) for c in student.cells]
    assert [c.metadata for c in committed.cells] == [c.metadata for c in student.cells]
    assert all(c.outputs == [] for c in committed.cells if c.cell_type == "code")


# --------------------------------------------------------------------------- grading HW3


def test_hw3_reference_scores_full_marks() -> None:
    assert grading.grade(HW3_SOURCE, HW3_SOURCE) == scores(HW3_MAX)


def test_hw3_untouched_student_version_scores_zero() -> None:
    assert grading.grade(HW3, HW3_SOURCE) == scores(dict.fromkeys(HW3_MAX, 0))


def test_hw3_other_correct_answers_score_full_marks(tmp_path: Path) -> None:
    assert grading.grade(with_answers(HW3_SOURCE, tmp_path, OTHER_CORRECT), HW3_SOURCE) == scores(HW3_MAX)


def test_hw3_float32_q1_loses_exactly_its_points(tmp_path: Path) -> None:
    report = grading.grade_report(with_answers(HW3_SOURCE, tmp_path, {"q1-solution": FLOAT32_Q1}), HW3_SOURCE)
    assert report.to_dict() == scores({**HW3_MAX, "q1": 0})
    assert failed_checks(report) == {"check-q1-library"}


def test_hw3_naive_q2_loses_exactly_its_points(tmp_path: Path) -> None:
    report = grading.grade_report(with_answers(HW3_SOURCE, tmp_path, {"q2-solution": NAIVE_Q2}), HW3_SOURCE)
    assert report.to_dict() == scores({**HW3_MAX, "q2": 0})
    assert failed_checks(report) == \
        {"check-q2-closed", "check-q2-library", "check-q2-gradient"}
