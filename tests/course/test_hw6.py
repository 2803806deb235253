"""Homework 6 (Chapter 6, the steps of Watson's model): its release and its grading with perceptlab.course.grading.

Graded five times, each a full run of the notebook (a few seconds with the kernel start): the
reference, the untouched student version, other correct answers, one submission of naive answers to
every question (each must lose exactly its question's points, told apart by the checks it fails), and
one submission with the batch mean in Q1 alone (the released code's departure from eq. 5).
"""
from __future__ import annotations

import re
from pathlib import Path

from perceptlab.course import grading

from homework import (cell_by_id, check_cells, expected_scores, failed_checks, kernels_find_perceptlab,  # noqa: F401
                      read, release_and_check, with_answers)

ROOT = Path(__file__).resolve().parents[2]
HOMEWORK = ROOT / "chapters" / "06_watson" / "homework"
HW6_SOURCE = HOMEWORK / "hw6_source.ipynb"
HW6 = HOMEWORK / "hw6.ipynb"
HW1_SOURCE = ROOT / "chapters" / "01_template_matching" / "homework" / "hw1_source.ipynb"
HW6_MAX = {"q1": 3, "q2": 2, "q3": 2, "q4": 3}
HW6_CHECKS = {"check-q1-closed": "q1", "check-q1-library": "q1", "check-q2-closed": "q2", "check-q2-library": "q2",
              "check-q3-closed": "q3", "check-q3-library": "q3", "check-q4-mask": "q4", "check-q4-closed": "q4",
              "check-q4-library": "q4"}
SOLUTIONS = {"q1-solution": ("my_luminance_masking",), "q2-solution": ("my_smooth_max",),
             "q3-solution": ("my_contrast_masking",), "q4-solution": ("my_real_only_mask", "my_phase_distance")}

# ------------------------------------------------------------------ answers (the bodies of the solution regions)

# Q1 with the released code's batch mean: right for one image, wrong as soon as a batch holds two.
BATCH_MEAN_Q1 = "return t * (((dc + EPS) / (dc.mean() + EPS)) ** alpha)[..., None, None]"
# Q1 without the epsilons: 0 / 0 for a black image, 0 ** alpha for a black block.
NO_EPS_Q1 = "return t * ((dc / dc.mean(1, keepdim=True)) ** alpha)[..., None, None]"
# Q2 as written in the paper: exp overflows for large inputs (inf / inf = nan).
NAIVE_Q2 = "return (a * torch.exp(a) + b * torch.exp(b)) / (torch.exp(a) + torch.exp(b))"
# Q3 without the absolute value: a negative DCT coefficient to a fractional power is nan.
NO_ABS_Q3 = "return my_smooth_max(t_l, (c + EPS) ** r * t_l ** (1 - r))"


# Q4 without wrapping the phase difference, and with the real-only bins left in (a function of the reference
# cell, which holds two solution regions).
def two_regions(mask: str, phase: str):
    """A q4-solution answer: the first solution region replaced by ``mask``, the second by ``phase``."""
    def answer(source: str) -> str:
        first, second, rest = grading.strip_solutions(source, "@@ANSWER@@").split("@@ANSWER@@")
        indent = lambda body: body.replace("\n", "\n    ")  # noqa: E731  (both regions are function bodies)
        return first + indent(mask) + second + indent(phase) + rest
    return answer


NAIVE_Q4 = two_regions("return torch.ones(block, block // 2 + 1, dtype=torch.float64)",
                       "return (w * (phase_target - phase_input).abs()).sum((1, 2, 3))")


# Other correct answers: a loop over images for Q1, the sigmoid of the difference for Q2, the phase
# difference wrapped with remainder and the mask built by comparison for Q4.
OTHER_CORRECT = {
    "q1-solution": """\
rows = []
for n in range(dc.shape[0]):
    ratio = (dc[n] + EPS) / (dc[n].mean() + EPS)
    rows.append(t[None] * ratio.pow(alpha)[:, None, None])
return torch.stack(rows)""",
    "q2-solution": """\
w = torch.sigmoid(a - b)
return w * a + (1 - w) * b""",
}


OTHER_CORRECT_Q4 = two_regions("""\
i = torch.arange(block)[:, None]
j = torch.arange(block // 2 + 1)[None, :]
real = ((i == 0) | (i == block // 2)) & ((j == 0) | (j == block // 2))
return (~real).to(torch.float64)""", """\
d = torch.remainder(phase_target - phase_input + math.pi, 2 * math.pi) - math.pi  # wrapped to [-pi, pi)
return (w * my_real_only_mask(w.shape[0]).to(w) * torch.acos((1 - SHRINK) * torch.cos(d))).sum((1, 2, 3))""")


def scores(points: dict[str, float]) -> dict:
    return expected_scores(points, HW6_MAX)


def printed(cell_id: str) -> str:
    return "".join(o.text for o in check_cells(read(HW6_SOURCE))[cell_id].outputs)


# --------------------------------------------------------------------------- the notebooks, statically


def test_hw6_source_has_the_title_then_the_colab_cell_and_ten_points() -> None:
    source = read(HW6_SOURCE)
    assert source.metadata.kernelspec.name == "python3"
    assert source.cells[0].source.startswith("# Homework 6: the steps of Watson's perceptual model\n")
    assert source.cells[1].source == read(HW1_SOURCE).cells[0].source  # the Colab cell, after the title
    checks = grading.reference_checks(source)  # executed, valid metadata
    assert {c.id: c.question for c, _ in checks} == HW6_CHECKS
    assert {c.question: c.points for c, _ in checks} == HW6_MAX
    assert sum(HW6_MAX.values()) == 10


def test_hw6_check_cells_print_no_errors_false_or_nan() -> None:
    for cell_id, cell in check_cells(read(HW6_SOURCE)).items():
        assert cell.outputs, cell_id
        assert all(o.output_type == "stream" and o.name == "stdout" for o in cell.outputs), cell_id
        text = "".join(o.text for o in cell.outputs)
        assert not re.search(r"\b(nan|inf|False)\b", text), cell_id


def test_hw6_closed_forms_are_printed_next_to_their_values() -> None:
    text = printed("check-q1-closed")
    assert "T_L / T of the 4 blocks: [0.7071, 0.7071, 1.4142, 1.0] expected sqrt(C00 / mean) = " \
           "[0.7071, 0.7071, 1.4142, 1.0]" in text
    assert "two uniform images of different brightness, T_L / T: [1.0, 1.0]" in text
    assert "smax(0, 1) = 0.7311 | smax(1, 0) = 0.7311 | expected e / (1 + e) = 0.7311" in printed("check-q2-closed")
    assert "S = 7.9281 expected smax(4, 16^(1/2) 4^(1/2)) = smax(4, 8) = 7.9281" in printed("check-q3-closed")
    text = printed("check-q4-closed")
    assert "pi/2 apart: 56.5487 expected 36 pi/2 = 56.5487" in text
    assert "across the branch cut: 7.2 expected 36 arccos((1 - 1e-7) cos 0.2) = 7.2" in text


def test_hw6_reference_answers_do_not_call_the_checked_library_functions() -> None:
    source = read(HW6_SOURCE)
    forbidden = ("losses.", "luminance_masking(", "smooth_max(", "contrast_masking(", "phase_distance(",
                 "real_only_mask(", "Watson")
    for cell_id in SOLUTIONS:
        body = re.sub(r"def my_\w+\(|my_\w+\(", "", cell_by_id(source, cell_id).source)
        assert not any(name in body for name in forbidden), cell_id


def test_release_hw6(tmp_path: Path) -> None:
    source, student = release_and_check(HW6_SOURCE, tmp_path, regions=5)
    assert [c.id for c in source.cells if "solution" in c.metadata.get("tags", [])] == ["reflection-discussion"]
    assert not any("solution" in cell.metadata.get("tags", []) for cell in student.cells)
    assert {k: (c.source, c.metadata) for k, c in check_cells(student).items()} == \
        {k: (c.source, c.metadata) for k, c in check_cells(source).items()}
    for cell_id, names in SOLUTIONS.items():
        text = cell_by_id(student, cell_id).source
        assert all(f"def {name}(" in text for name in names) and grading.STUB in text
    committed = read(HW6)
    assert [(c.cell_type, c.source) for c in committed.cells] == [(c.cell_type, c.source) for c in student.cells]
    assert [c.metadata for c in committed.cells] == [c.metadata for c in student.cells]
    assert all(c.outputs == [] and c.execution_count is None for c in committed.cells if c.cell_type == "code")


# --------------------------------------------------------------------------- grading HW6


def test_hw6_reference_scores_full_marks() -> None:
    assert grading.grade(HW6_SOURCE, HW6_SOURCE) == scores(HW6_MAX)


def test_hw6_untouched_student_version_scores_zero() -> None:
    assert grading.grade(HW6, HW6_SOURCE) == scores(dict.fromkeys(HW6_MAX, 0))


def test_hw6_other_correct_answers_score_full_marks(tmp_path: Path) -> None:
    answers = {**OTHER_CORRECT, "q4-solution": OTHER_CORRECT_Q4}
    report = grading.grade_report(with_answers(HW6_SOURCE, tmp_path, answers), HW6_SOURCE)
    assert report.to_dict() == scores(HW6_MAX), report.format()


def test_hw6_the_batch_mean_loses_exactly_q1(tmp_path: Path) -> None:
    report = grading.grade_report(with_answers(HW6_SOURCE, tmp_path, {"q1-solution": BATCH_MEAN_Q1}), HW6_SOURCE)
    assert report.to_dict() == scores({**HW6_MAX, "q1": 0}), report.format()
    assert failed_checks(report) == {"check-q1-closed", "check-q1-library"}


def test_hw6_naive_answers_are_told_apart(tmp_path: Path) -> None:
    """No epsilons (Q1), the paper's formula with overflowing exponentials (Q2), no absolute value (Q3),
    an unwrapped phase difference with the real-only bins left in (Q4)."""
    answers = {"q1-solution": NO_EPS_Q1, "q2-solution": NAIVE_Q2, "q3-solution": NO_ABS_Q3,
               "q4-solution": NAIVE_Q4}
    report = grading.grade_report(with_answers(HW6_SOURCE, tmp_path, answers), HW6_SOURCE)
    assert report.to_dict() == scores(dict.fromkeys(HW6_MAX, 0)), report.format()
    assert failed_checks(report) == set(HW6_CHECKS)
