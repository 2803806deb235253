"""Homework 7 (Chapter 7, gratings, tuning scores and channel subsets): its release and its grading.

Graded four times, each a full run of the notebook: the reference, the untouched student version,
other correct answers, and one submission of naive answers to every question, each of which must
lose exactly its question's points (an off-centre grating, evenly spaced finite differences, a
missing square in mu2 with an unnormalised PE, and a rank cut instead of the percentile).
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
HOMEWORK = ROOT / "chapters" / "07_probing" / "homework"
HW7_SOURCE = HOMEWORK / "hw7_source.ipynb"
HW7 = HOMEWORK / "hw7.ipynb"
HW7_MAX = {"q1": 3, "q2": 3, "q3": 2, "q4": 2}
HW7_CHECKS = {"check-q1-closed": "q1", "check-q1-library": "q1", "check-q2-closed": "q2", "check-q2-library": "q2",
              "check-q3-closed": "q3", "check-q3-library": "q3", "check-q4-closed": "q4", "check-q4-library": "q4"}
SOLUTIONS = {"q1-solution": ("my_concentric_grating",), "q2-solution": ("my_mu1",),
             "q3-solution": ("my_mu2", "my_pe"), "q4-solution": ("my_subset",)}

# ------------------------------------------------------------------ answers (the bodies of the solution regions)

# Q1 centred on pixel size // 2 (right for odd sizes only), and without the Nyquist check.
OFF_CENTRE_Q1 = """\
t = torch.arange(size, dtype=torch.float64) - size // 2
y, x = torch.meshgrid(t, t, indexing="ij")
grey = 0.5 * (1 + contrast * torch.cos(2 * math.pi * cpd / ppd * torch.sqrt(x ** 2 + y ** 2) + phase))
return grey.expand(3, size, size).float()"""
# Q2 with one constant step (the mean spacing): wrong on an uneven grid.
EVEN_STEP_Q2 = """\
step = float(freqs[1:].sub(freqs[:-1]).mean())
slope = torch.gradient(responses.double(), spacing=step, dim=1)[0]
return (csf_values.double() * slope.abs()).sum(1)"""


# Q3 with absolute differences instead of squares in mu2, and PE without the normalisation (two regions).
NAIVE_Q3 = two_regions("a = responses.double()\nreturn (a.max(1, keepdim=True).values - a).sum(1)",
                       "return mu1.double() * mu2.double()")
# Q4 as a rank cut: the top round(x % of C) channels, ties broken arbitrarily.
RANK_Q4 = """\
k = max(1, round(len(pe) * percent / 100))
order = torch.argsort(pe, descending=(which == "H"))
return torch.sort(order[:k]).values"""

# Other correct answers: torch.gradient for Q2, a loop for mu2, torch.quantile for Q4.
OTHER_CORRECT = {
    "q1-solution": """\
if cpd > ppd / 2:
    raise ValueError("cpd above the Nyquist frequency")
c = (size - 1) / 2
idx = torch.arange(size, dtype=torch.float64)
r = ((idx[:, None] - c) ** 2 + (idx[None, :] - c) ** 2).sqrt()
return torch.stack([0.5 + 0.5 * contrast * torch.cos(2 * math.pi * r * cpd / ppd + phase)] * 3).float()""",
    "q2-solution": """\
slope = torch.gradient(responses.double(), spacing=(freqs.double(),), dim=1)[0]
return (slope.abs() * csf_values.double()).sum(1)""",
    "q4-solution": """\
q = torch.tensor((100 - percent) / 100 if which == "H" else percent / 100, dtype=torch.float64)
cut = torch.quantile(pe.double(), q)
keep = pe.double() >= cut if which == "H" else pe.double() <= cut
return torch.nonzero(keep).flatten()""",
}
OTHER_CORRECT_Q3 = two_regions("""\
rows = []
for curve in responses.double():
    rows.append(sum((v - curve.max()) ** 2 for v in curve))
return torch.stack(rows)""", "return (mu1 / mu1.sum()) * (mu2 / mu2.sum())")


def scores(points: dict[str, float]) -> dict:
    return expected_scores(points, HW7_MAX)


def printed(cell_id: str) -> str:
    return "".join(o.text for o in check_cells(read(HW7_SOURCE))[cell_id].outputs)


# --------------------------------------------------------------------------- the notebooks, statically


def test_hw7_source_has_the_title_then_the_colab_cell_and_ten_points() -> None:
    assert_source_layout(HW7_SOURCE, "# Homework 7: gratings, tuning scores and channel subsets", HW7_CHECKS, HW7_MAX)


def test_hw7_questions_show_the_format_of_their_checks_not_the_values() -> None:
    assert_formats_shown(HW7_SOURCE)


def test_hw7_check_cells_print_no_errors_false_or_nan() -> None:
    assert_checks_print_cleanly(HW7_SOURCE)


def test_hw7_closed_forms_are_printed_next_to_their_values() -> None:
    text = printed("check-q1-closed")
    assert "odd size, centre pixel = 0.5 (1 + c): 0.75 expected 0.75" in text
    assert "two pixels: half a cycle: 0.25 expected 0.25" in text
    assert "[0.4841, 0.4841, 0.4841, 0.4841] expected 0.4841" in text
    text = printed("check-q2-closed")
    assert "a = 0.3 f: 1.585934 expected 0.3 sum CSF = 1.585934" in text
    assert "one-sided at the ends: 4.5511 expected 4.5511" in text
    assert "cos^2 on 12 orientations: 4.5 expected sum sin^4 = 3 * 12 / 8 = 4.5" in printed("check-q3-closed")
    text = printed("check-q4-closed")
    assert "H-10: [2] expected [2]" in text and "L-20: [1, 7] expected [1, 7]" in text
    assert "four channels tied at 0, L-10: [0, 1, 2, 3] expected [0, 1, 2, 3]" in text


def test_hw7_reference_answers_do_not_call_the_checked_library_functions() -> None:
    source = read(HW7_SOURCE)
    forbidden = ("probing.", "concentric_grating(", "mu1(", "mu2(", "perceptual_efficacy(", "channel_subset(")
    for cell_id in SOLUTIONS:
        body = re.sub(r"def my_\w+\(|my_\w+\(", "", cell_by_id(source, cell_id).source)
        assert not any(name in body for name in forbidden), cell_id


def test_hw7_putting_it_together_matches_the_librarys_probe() -> None:
    text = "".join(o.text for o in cell_by_id(read(HW7_SOURCE), "together").outputs)
    mine, library = re.findall(r"H-10 of relu2_2: (\[[\d, ]+\])|library's: +(\[[\d, ]+\])", text)
    assert mine[0] and mine[0] == library[1]


def test_release_hw7(tmp_path: Path) -> None:
    assert_release_matches_committed(HW7_SOURCE, HW7, tmp_path, 5, SOLUTIONS)


# --------------------------------------------------------------------------- grading HW7


def test_hw7_reference_scores_full_marks() -> None:
    assert grading.grade(HW7_SOURCE, HW7_SOURCE) == scores(HW7_MAX)


def test_hw7_untouched_student_version_scores_zero() -> None:
    assert grading.grade(HW7, HW7_SOURCE) == scores(dict.fromkeys(HW7_MAX, 0))


def test_hw7_other_correct_answers_score_full_marks(tmp_path: Path) -> None:
    answers = {**OTHER_CORRECT, "q3-solution": OTHER_CORRECT_Q3}
    report = grading.grade_report(with_answers(HW7_SOURCE, tmp_path, answers), HW7_SOURCE)
    assert report.to_dict() == scores(HW7_MAX), report.format()


def test_hw7_naive_answers_are_told_apart(tmp_path: Path) -> None:
    answers = {"q1-solution": OFF_CENTRE_Q1, "q2-solution": EVEN_STEP_Q2, "q3-solution": NAIVE_Q3,
               "q4-solution": RANK_Q4}
    report = grading.grade_report(with_answers(HW7_SOURCE, tmp_path, answers), HW7_SOURCE)
    assert report.to_dict() == scores(dict.fromkeys(HW7_MAX, 0)), report.format()
    assert failed_checks(report) == set(HW7_CHECKS)
