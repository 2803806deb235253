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

from homework import (assert_checks_print_cleanly, assert_formats_shown,  # noqa: F401
                      assert_release_matches_committed, assert_source_layout, cell_by_id,
                      check_cells, expected_scores, failed_checks, kernels_find_perceptlab, read,
                      two_regions, with_answers)

ROOT = Path(__file__).resolve().parents[2]
HOMEWORK = ROOT / "chapters" / "06_watson" / "homework"
HW6_SOURCE = HOMEWORK / "hw6_source.ipynb"
HW6 = HOMEWORK / "hw6.ipynb"
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


# Q4 without wrapping the phase difference, and with the real-only bins left in (the cell holds two solution
# regions: the mask, then the phase term).
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
    assert_source_layout(HW6_SOURCE, "# Homework 6: the steps of Watson's perceptual model", HW6_CHECKS, HW6_MAX)


def test_hw6_questions_show_the_format_of_their_checks_not_the_values() -> None:
    assert_formats_shown(HW6_SOURCE)


def test_hw6_check_cells_print_no_errors_false_or_nan() -> None:
    assert_checks_print_cleanly(HW6_SOURCE)


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
    assert_release_matches_committed(HW6_SOURCE, HW6, tmp_path, 5, SOLUTIONS)


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
