"""Homework 3 (Chapter 3, the optimal discriminator, FID and KID): its release and its grading.

Graded six times, each a full run of the notebook (a few seconds): the reference, the untouched
student version, other correct answers (a different but sound route for each function), one
submission of naive answers to every question, each of which must lose exactly its question's
points (a D* and a JSD that produce nan on zeros, the Frechet distance with scipy's sqrtm, the biased
V-statistic for MMD^2), the Frechet distance computed in the inputs' float32, and the bias fit made
on the mean FID at each N.

Why the naive Frechet distance fails (measured with scipy 1.15 and 1.17, several seeds): on 32
samples of 256-D features (rank-31 covariances) ``np.trace(scipy.linalg.sqrtm(s1 @ s2)).real``, in
float64, is 5e-8 to 7e-8 relative off the library, because the ~225 round-off eigenvalues of the
null space contribute their square roots (~1e-8 each); the check asks for 1e-9, the reference is
within 1e-15.  On the same samples shifted by c, where FID = |c|^2 = 0.01 exactly, sqrtm gives
0.00997 and the reference 0.0100000000.
"""
from __future__ import annotations

import re
from pathlib import Path

from perceptlab.course import grading

from homework import (assert_checks_print_cleanly, assert_formats_shown, assert_release_matches_committed,  # noqa: F401
                      assert_source_layout, cell_by_id, check_cells, expected_scores, failed_checks,
                      kernels_find_perceptlab, read, two_regions, with_answers)

ROOT = Path(__file__).resolve().parents[2]
HOMEWORK = ROOT / "chapters" / "03_gans_fid" / "homework"
HW3_SOURCE = HOMEWORK / "hw3_source.ipynb"
HW3 = HOMEWORK / "hw3.ipynb"
TITLE = "# Homework 3: the optimal discriminator, FID and KID"
HW3_MAX = {"q1": 3, "q2": 4, "q3": 3}
HW3_CHECKS = {"check-q1-closed": "q1", "check-q1-library": "q1", "check-q1-game": "q1",
              "check-q2-closed": "q2", "check-q2-singular": "q2", "check-q2-float32": "q2", "check-q2-bias": "q2",
              "check-q3-closed": "q3", "check-q3-library": "q3", "check-q3-unbiased": "q3"}
SOLUTIONS = {"q1-solution": ("my_optimal_discriminator", "my_jsd"),
             "q2-solution": ("my_frechet_distance", "my_fid_infinity"),
             "q3-solution": ("my_mmd2_unbiased",)}

# ------------------------------------------------------------------ answers (the bodies of the solution regions)

# Q1 as written on paper: D* = 0/0 = nan where both densities are 0, and p log(p / m) = nan where p = 0.
NAIVE_Q1 = two_regions(
    "return p_data.double() / (p_data.double() + p_g.double())",
    """\
p, q = p.double(), q.double()
m = (p + q) / 2
return float(0.5 * ((p * torch.log(p / m)).sum() + (q * torch.log(q / m)).sum()) * dx)""")

# The general matrix square root of S1 S2 (in float64, clamped at 0): the square roots of the null
# space's round-off eigenvalues add up on singular covariances.
SQRTM_FRECHET = """\
import scipy.linalg
mu1, mu2, s1, s2 = (np.asarray(a, dtype=np.float64) for a in (mu1, mu2, sigma1, sigma2))
diff = mu1 - mu2
trace_sqrt = np.trace(scipy.linalg.sqrtm(s1 @ s2)).real
return max(float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt), 0.0)"""
# The stable route, but in the inputs' dtype: float32 for float32 statistics (5e-2 relative off there).
FLOAT32_FRECHET = """\
mu1, mu2, s1, s2 = (np.asarray(a) for a in (mu1, mu2, sigma1, sigma2))
ell, u = np.linalg.eigh((s1 + s1.T) / 2)
root = (u * np.sqrt(np.clip(ell, 0, None))) @ u.T
lam = np.linalg.eigvalsh(root @ ((s2 + s2.T) / 2) @ root)
lam[lam <= len(lam) * np.finfo(lam.dtype).eps * lam.max()] = 0
diff = mu1 - mu2
return max(float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(lam).sum()), 0.0)"""
# Another sound route: the trace of the square root is the nuclear norm of S1^{1/2} S2^{1/2}.
NUCLEAR_FRECHET = """\
def psd_sqrt(s):
    ell, u = np.linalg.eigh((s + s.T) / 2)
    ell = np.where(ell > len(ell) * np.finfo(np.float64).eps * ell.max(), ell, 0.0)
    return (u * np.sqrt(ell)) @ u.T
mu1, mu2, s1, s2 = (np.asarray(a, dtype=np.float64) for a in (mu1, mu2, sigma1, sigma2))
trace_sqrt = np.linalg.svd(psd_sqrt(s1) @ psd_sqrt(s2), compute_uv=False).sum()
diff = mu1 - mu2
return max(float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt), 0.0)"""
POLYFIT = """\
k, fid_inf = np.polyfit(1.0 / np.asarray(ns, dtype=np.float64), np.asarray(fids, dtype=np.float64), 1)
return float(fid_inf), float(k)"""
# 03c's fit: one point per N, the mean FID there (wrong when N are measured unequally often).
MEANS_FIT = """\
ns, fids = np.asarray(ns), np.asarray(fids, dtype=np.float64)
sizes = np.unique(ns)
k, fid_inf = np.polyfit(1.0 / sizes, [fids[ns == n].mean() for n in sizes], 1)
return float(fid_inf), float(k)"""

# Q3 as the V-statistic: means over all m^2 pairs, the diagonal included (biased upwards).
BIASED_Q3 = """\
kernel = lambda a, b: (a.double() @ b.double().T / x.shape[1] + 1) ** 3
return kernel(x, x).mean() + kernel(y, y).mean() - 2 * kernel(x, y).mean()"""

# Other correct answers: nan_to_num and scipy's rel_entr, the nuclear norm and np.polyfit, a mask.
OTHER_CORRECT = {
    "q1-solution": two_regions(
        "return torch.nan_to_num(p_data.double() / (p_data.double() + p_g.double()), nan=0.5)",
        """\
from scipy.special import rel_entr
p, q = p.double().numpy(), q.double().numpy()
m = (p + q) / 2
return float(0.5 * (rel_entr(p, m).sum() + rel_entr(q, m).sum()) * dx)"""),
    "q2-solution": two_regions(NUCLEAR_FRECHET, POLYFIT),
    "q3-solution": """\
x, y = x.double(), y.double()
m, d = x.shape
off = ~torch.eye(m, dtype=torch.bool)
kernel = lambda a, b: (a @ b.T / d + 1) ** 3
return kernel(x, x)[off].mean() + kernel(y, y)[off].mean() - 2 * kernel(x, y).mean()""",
}


def scores(points: dict[str, float]) -> dict:
    return expected_scores(points, HW3_MAX)


def printed(cell_id: str) -> str:
    return "".join(o.text for o in check_cells(read(HW3_SOURCE))[cell_id].outputs)


# --------------------------------------------------------------------------- the notebooks, statically


def test_hw3_source_has_the_title_then_the_colab_cell_and_ten_points() -> None:
    assert_source_layout(HW3_SOURCE, TITLE, HW3_CHECKS, HW3_MAX)


def test_hw3_questions_show_the_format_of_each_printout_but_not_its_values() -> None:
    assert_formats_shown(HW3_SOURCE)


def test_hw3_check_cells_print_no_errors_false_or_nan() -> None:
    assert_checks_print_cleanly(HW3_SOURCE)


def test_hw3_closed_forms_are_printed_next_to_their_values() -> None:
    text = printed("check-q1-closed")
    assert "[1.0, 0.5, 0.0, 0.5] torch.float64" in text
    assert "JSD of the same pair: 0.346574 expected log(2) / 2 = 0.346574" in text
    assert "JSD of (1, 0) and (1/2, 1/2): 0.215762 expected 3/4 log(4/3) = 0.215762" in text
    assert "disjoint: 0.693147 expected log 2 = 0.693147" in text
    text = printed("check-q1-game")
    assert re.search(r"p_data itself +C\(G\) = -1\.3863 ", text) and re.search(r"disjoint +C\(G\) = +0\.0000 ", text)
    assert text.count("= -log 4 + 2 JSD: True  no other D does better: True") == 6
    text = printed("check-q2-singular")
    assert "ranks of the covariances: 31 31" in text
    assert "the same samples shifted by c: FID = 0.01 expected |c|^2 = 0.01" in text
    text = printed("check-q2-bias")
    assert "(2.5, 120.0) expected (2.5, 120.0)" in text and "FID_inf = 2.25:" in text
    text = printed("check-q3-closed")
    assert "-3.5 expected 1 + 1 - 2 (1 + 1 + 1 + 8) / 4 = -3.5" in text
    assert "4 + 4: 0.0 expected 0.0 | some estimates negative: True" in text


def test_hw3_text_shows_no_printed_value_and_renders_each_citation_once() -> None:
    source = read(HW3_SOURCE)
    markdown = "\n".join(cell.source for cell in source.cells  # what students see: the instructor's discussion aside
                         if cell.cell_type == "markdown" and "solution" not in cell.metadata.get("tags", []))
    for cell_id, cell in check_cells(source).items():
        output = "".join(o.text for o in cell.outputs)
        for number in set(re.findall(r"-?\d+\.\d+(?:e[-+]\d+)?", output)) - set(re.findall(r"\d+\.\d+", cell.source)):
            assert number not in markdown, (cell_id, number)
    assert not re.search(r"et al\.,? *(\{cite|\[)", markdown)  # {cite} renders the names: no "Goodfellow et al. [Goodfellow ...]"


def test_hw3_reference_answers_do_not_call_the_checked_library_functions() -> None:
    source = read(HW3_SOURCE)
    forbidden = ("metrics.", "gan1d.", "gan.", "optimal_discriminator(", "jsd(", "frechet_distance(",
                 "trace_sqrt_product(", "mmd2_unbiased(", "sqrtm(")
    for cell_id in SOLUTIONS:
        body = re.sub(r"def my_\w+\(|my_\w+\(", "", cell_by_id(source, cell_id).source)
        assert not any(name in body for name in forbidden), cell_id


def test_release_hw3(tmp_path: Path) -> None:
    assert_release_matches_committed(HW3_SOURCE, HW3, tmp_path, 5, SOLUTIONS)


# --------------------------------------------------------------------------- grading HW3


def test_hw3_reference_scores_full_marks() -> None:
    assert grading.grade(HW3_SOURCE, HW3_SOURCE) == scores(HW3_MAX)


def test_hw3_untouched_student_version_scores_zero() -> None:
    assert grading.grade(HW3, HW3_SOURCE) == scores(dict.fromkeys(HW3_MAX, 0))


def test_hw3_other_correct_answers_score_full_marks(tmp_path: Path) -> None:
    report = grading.grade_report(with_answers(HW3_SOURCE, tmp_path, OTHER_CORRECT), HW3_SOURCE)
    assert report.to_dict() == scores(HW3_MAX), report.format()


def test_hw3_naive_answers_are_told_apart(tmp_path: Path) -> None:
    answers = {"q1-solution": NAIVE_Q1, "q2-solution": two_regions(SQRTM_FRECHET, POLYFIT),
               "q3-solution": BIASED_Q3}
    report = grading.grade_report(with_answers(HW3_SOURCE, tmp_path, answers), HW3_SOURCE)
    assert report.to_dict() == scores(dict.fromkeys(HW3_MAX, 0)), report.format()
    assert failed_checks(report) == {"check-q1-closed", "check-q1-library", "check-q1-game", "check-q2-singular",
                                     "check-q3-closed", "check-q3-library", "check-q3-unbiased"}


def test_hw3_float32_frechet_distance_loses_exactly_q2(tmp_path: Path) -> None:
    answers = {"q2-solution": two_regions(FLOAT32_FRECHET, POLYFIT)}
    report = grading.grade_report(with_answers(HW3_SOURCE, tmp_path, answers), HW3_SOURCE)
    assert report.to_dict() == scores({**HW3_MAX, "q2": 0}), report.format()
    assert failed_checks(report) == {"check-q2-float32"}


def test_hw3_fit_on_the_means_at_each_n_loses_exactly_q2(tmp_path: Path) -> None:
    answers = {"q2-solution": two_regions(NUCLEAR_FRECHET, MEANS_FIT)}
    report = grading.grade_report(with_answers(HW3_SOURCE, tmp_path, answers), HW3_SOURCE)
    assert report.to_dict() == scores({**HW3_MAX, "q2": 0}), report.format()
    assert failed_checks(report) == {"check-q2-bias"}
