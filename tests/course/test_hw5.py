"""Homework 5 (Chapter 5, patch MMD and voting): its release and its grading with perceptlab.course.grading.

Graded five times, each a full run of the notebook (about 6 s with the kernel start): the
reference, the untouched student version, other correct answers, one broken answer alone (it must
lose exactly its question's points), and one submission of naive answers to the two other
questions (questions are scored independently, so each is told apart by the checks it fails).
"""
from __future__ import annotations

from pathlib import Path


from perceptlab.course import grading

from homework import (assert_checks_print_cleanly, assert_formats_shown,  # noqa: F401
                      assert_release_matches_committed, assert_source_layout, cell_by_id,
                      check_cells, expected_scores, failed_checks, kernels_find_perceptlab, read,
                      with_answers)

ROOT = Path(__file__).resolve().parents[2]
HOMEWORK = ROOT / "chapters" / "05_random_filters" / "homework"
HW5_SOURCE = HOMEWORK / "hw5_source.ipynb"
HW5 = HOMEWORK / "hw5.ipynb"
HW5_MAX = {"q1": 4, "q2": 3, "q3": 3}
HW5_CHECKS = {"check-q1-closed": "q1", "check-q1-library": "q1", "check-q2-library": "q2",
              "check-q2-unbiased": "q2", "check-q3-hand": "q3", "check-q3-library": "q3"}
SOLUTIONS = {"q1-solution": ("my_window_mmd",), "q2-solution": ("my_fourier_features", "my_rff_mmd"),
             "q3-solution": ("my_majority_vote",)}

# ------------------------------------------------------------------ answers (the bodies of the solution regions)

# Q1 with the follow-up code's kernel exp(-d^2 / sigma^2): right for equal sets and far-apart points only.
NO_FACTOR_TWO_Q1 = """\
p, q = p.detach().double(), q.detach().double()
k = lambda a, b: torch.exp(-torch.cdist(a, b).square() / sigma ** 2).mean()
return float(k(p, p) - 2 * k(p, q) + k(q, q))"""

# Q1 unbiased: the sums over i != j only (the diagonal of the within-set blocks left out).
UNBIASED_Q1 = """\
p, q = p.detach().double(), q.detach().double()
kpp = torch.exp(-torch.cdist(p, p).square() / (2 * sigma ** 2))
kqq = torch.exp(-torch.cdist(q, q).square() / (2 * sigma ** 2))
kpq = torch.exp(-torch.cdist(p, q).square() / (2 * sigma ** 2))
n, m = len(p), len(q)
off = lambda k, n: (k.sum() - k.diagonal().sum()) / max(n * (n - 1), 1)
return float(off(kpp, n) - 2 * kpq.mean() + off(kqq, m))"""

# Q2 without the sqrt(2 / r) scale (a function of the reference cell, which holds two solution regions).
def UNSCALED_Q2(source: str) -> str:  # noqa: N802
    scaled = "return math.sqrt(2.0 / w.shape[0]) * torch.cos(patches @ w.T + b)"
    assert scaled in source
    return source.replace(scaled, "return torch.cos(patches @ w.T + b)")


# Q3 rounding the mean of the votes: torch.round(0.5) = 0, so every even split goes to p0.
ROUNDED_Q3 = "return torch.as_tensor(choices, dtype=torch.float64).mean(0).round()"

# Other correct answers: explicit loops over the kernel blocks, features through a matrix of phases,
# a vote counted from the votes for each side.
OTHER_CORRECT = {
    "q1-solution": """\
def mean_kernel(a, b):
    a, b = a.detach().to(torch.float64), b.detach().to(torch.float64)
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return torch.exp(-sq.clamp_min(0) / (2 * sigma * sigma)).mean().item()
return mean_kernel(p, p) - 2 * mean_kernel(p, q) + mean_kernel(q, q)""",
    "q3-solution": """\
c = torch.as_tensor(choices, dtype=torch.float64)
k = c.shape[0]
for_p1 = c.sum(0)              # a tie is half a vote for each side
for_p0 = k - for_p1
out = torch.full((c.shape[1],), 0.5, dtype=torch.float64)
out[for_p1 > for_p0] = 1.0
out[for_p0 > for_p1] = 0.0
return out""",
}


def scores(points: dict[str, float]) -> dict:
    return expected_scores(points, HW5_MAX)


def printed(cell_id: str) -> str:
    return "".join(o.text for o in check_cells(read(HW5_SOURCE))[cell_id].outputs)


# --------------------------------------------------------------------------- the notebooks, statically


def test_hw5_source_has_the_title_then_the_colab_cell_and_ten_points() -> None:
    assert_source_layout(HW5_SOURCE, "# Homework 5: patch MMD and the vote of random networks", HW5_CHECKS, HW5_MAX)


def test_hw5_questions_show_the_format_of_their_checks_not_the_values() -> None:
    assert_formats_shown(HW5_SOURCE)


def test_hw5_check_cells_print_no_errors_false_or_nan() -> None:
    assert_checks_print_cleanly(HW5_SOURCE)


def test_hw5_closed_forms_are_printed_next_to_their_values() -> None:
    text = printed("check-q1-closed")
    assert "one point each: 0.786939 expected 2 - 2 exp(-1/2) = 0.786939" in text
    assert "all points far apart: 0.583333 expected 1/3 + 1/4 = 0.583333" in text
    assert "three networks: [1.0, 0.0, 0.5, 0.5, 0.5, 1.0]" in printed("check-q3-hand")


def test_hw5_reference_answers_do_not_call_the_library() -> None:
    source = read(HW5_SOURCE)
    forbidden = ("losses.", "metrics.", "imaging.", "mmd2", "majority_vote(")
    for cell_id in SOLUTIONS:
        body = cell_by_id(source, cell_id).source.replace("my_majority_vote(", "")
        assert not any(name in body for name in forbidden), cell_id


def test_release_hw5(tmp_path: Path) -> None:
    assert_release_matches_committed(HW5_SOURCE, HW5, tmp_path, 4, SOLUTIONS)


# --------------------------------------------------------------------------- grading HW5


def test_hw5_reference_scores_full_marks() -> None:
    assert grading.grade(HW5_SOURCE, HW5_SOURCE) == scores(HW5_MAX)


def test_hw5_untouched_student_version_scores_zero() -> None:
    assert grading.grade(HW5, HW5_SOURCE) == scores(dict.fromkeys(HW5_MAX, 0))


def test_hw5_other_correct_answers_score_full_marks(tmp_path: Path) -> None:
    report = grading.grade_report(with_answers(HW5_SOURCE, tmp_path, OTHER_CORRECT), HW5_SOURCE)
    assert report.to_dict() == scores(HW5_MAX), report.format()


def test_hw5_a_kernel_without_the_factor_two_loses_exactly_q1(tmp_path: Path) -> None:
    report = grading.grade_report(with_answers(HW5_SOURCE, tmp_path, {"q1-solution": NO_FACTOR_TWO_Q1}), HW5_SOURCE)
    assert report.to_dict() == scores({**HW5_MAX, "q1": 0}), report.format()
    assert failed_checks(report) == {"check-q1-closed", "check-q1-library"}


def test_hw5_naive_answers_are_told_apart(tmp_path: Path) -> None:
    """The unbiased MMD (Q1), features without their scale (Q2), a rounded mean as the vote (Q3)."""
    answers = {"q1-solution": UNBIASED_Q1, "q2-solution": UNSCALED_Q2, "q3-solution": ROUNDED_Q3}
    report = grading.grade_report(with_answers(HW5_SOURCE, tmp_path, answers), HW5_SOURCE)
    assert report.to_dict() == scores(dict.fromkeys(HW5_MAX, 0)), report.format()
    assert failed_checks(report) == set(HW5_CHECKS)
