"""Homework 4 (Chapter 4, DeePSiM): its release and its grading with perceptlab.course.grading.

The grading machinery itself is tested in test_grading.py.  Here Homework 4 is graded eight
times, each a full run of the notebook (about 10 s with the kernel start): the reference, the
untouched student version, other correct answers (a different but sound route for each
function), one broken answer per question alone (it must lose exactly that question's points),
and two submissions that combine further naive answers to different questions (questions are
scored independently, so each naive answer is told apart by the checks it fails).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from perceptlab.course import grading

from homework import (assert_formats_shown, assert_source_layout, cell_by_id, check_cells,  # noqa: F401
                      expected_scores, failed_checks, kernels_find_perceptlab, read, release_and_check,
                      with_answers)

ROOT = Path(__file__).resolve().parents[2]
HOMEWORK = ROOT / "chapters" / "04_deepsim" / "homework"
HW4_SOURCE = HOMEWORK / "hw4_source.ipynb"
HW4 = HOMEWORK / "hw4.ipynb"
HW4_MAX = {"q1": 4, "q2": 3, "q3": 3}
HW4_CHECKS = {"check-q1-closed": "q1", "check-q1-library": "q1",
              "check-q2-nails": "q2", "check-q2-closed": "q2", "check-q2-library": "q2",
              "check-q3-update": "q3", "check-q3-pause": "q3", "check-q3-rule": "q3"}
SOLUTIONS = {"q1-solution": "my_normalized_euclidean_error", "q2-solution-nails": "my_bed_of_nails",
             "q2-solution-upconv": "my_up_convolution", "q3-solution": "deepsim_train_step"}

# ------------------------------------------------------------------ answers (the bodies of the solution regions)

# Q1 averaging over all n^2 ordered pairs, i == j included: N is (n - 1) / n too small.
ALL_PAIRS_Q1 = """\
o, t = outputs.detach().flatten(1).double(), targets.detach().flatten(1).double()
return float((o - t).norm(dim=1).mean() / torch.cdist(t, t).mean())"""

# Q1 with a norm over the channel axis only, not over the flattened sample: right for vectors only.
PER_PIXEL_Q1 = """\
o, t = outputs.detach().double(), targets.detach().double()
n = t.shape[0]
pairs = sum(float((t[i] - t[j]).norm(dim=0).mean()) for i in range(n) for j in range(n) if i != j)
return float((o - t).norm(dim=1).mean()) / (pairs / (n * (n - 1)))"""

# Q2: nearest-neighbour and bilinear upsampling in place of the bed of nails.
NEAREST_Q2 = 'return F.interpolate(x, scale_factor=2, mode="nearest")'
BILINEAR_Q2 = 'return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)'

# Q3: the reference's step with the rule replaced.
_Q3_STEP = """\
lambda_feat, lambda_adv, lambda_img = lambdas
output = generator(inputs)
real_logits, fake_logits = discriminator(targets), discriminator(output.detach())
loss_discr = losses.discriminator_loss(real_logits, fake_logits)
loss_adv = losses.generator_loss(fake_logits.detach())
update = {rule}
if update:
    opt_d.zero_grad()
    loss_discr.backward()
    opt_d.step()
with torch.no_grad():
    target_features = comparator(targets)
loss = (lambda_feat * (comparator(output) - target_features).square().mean()
        + lambda_adv * losses.generator_loss(discriminator(output))
        + lambda_img * (output - targets).square().mean())
opt_g.zero_grad()
loss.backward()
opt_g.step()
return update"""
NEVER_PAUSES_Q3 = _Q3_STEP.format(rule="True")
ALWAYS_PAUSES_Q3 = _Q3_STEP.format(rule="False")

# Other correct answers: loops over pairs in float64, interleaving by stacking with the bias added
# afterwards, and a step with plain softplus, a division, F.mse_loss and D frozen during G's step
# (float() of a tensor that requires grad warns: the checks must not count the warning).
OTHER_CORRECT = {
    "q1-solution": """\
o = outputs.detach().reshape(len(outputs), -1).to(torch.float64)
t = targets.detach().reshape(len(targets), -1).to(torch.float64)
n = len(t)
errors = [torch.sqrt(((o[i] - t[i]) ** 2).sum()) for i in range(n)]
pairs = [torch.sqrt(((t[i] - t[j]) ** 2).sum()) for i in range(n) for j in range(n) if j != i]
return (sum(errors).item() / n) / (sum(pairs).item() / len(pairs))""",
    "q2-solution-nails": """\
rows = torch.stack([x, torch.zeros_like(x)], dim=-1).flatten(-2)                # (N, C, H, 2W)
return torch.stack([rows, torch.zeros_like(rows)], dim=-2).flatten(-3, -2)      # (N, C, 2H, 2W)""",
    "q2-solution-upconv": """\
k = weight.shape[-1]
y = F.conv2d(F.pad(my_bed_of_nails(x), (k // 2, (k - 1) // 2, k // 2, (k - 1) // 2)), weight)
return y if bias is None else y + bias.view(1, -1, 1, 1)""",
    "q3-solution": """\
w_feat, w_adv, w_img = lambdas
fake = generator(inputs)
d_real, d_fake = discriminator(targets), discriminator(fake.detach())
l_discr = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
l_adv = F.softplus(-d_fake).mean()
updated = not (float(l_discr) / float(l_adv) < threshold)
if updated:
    opt_d.zero_grad(set_to_none=False)
    l_discr.backward()
    opt_d.step()
discriminator.requires_grad_(False)
try:
    loss = (w_feat * F.mse_loss(comparator(fake), comparator(targets).detach())
            + w_adv * F.softplus(-discriminator(fake)).mean() + w_img * F.mse_loss(fake, targets))
    opt_g.zero_grad()
    loss.backward()
    opt_g.step()
finally:
    discriminator.requires_grad_(True)
return updated""",
}


def scores(points: dict[str, float]) -> dict:
    return expected_scores(points, HW4_MAX)


def printed(cell_id: str) -> str:
    cell = check_cells(read(HW4_SOURCE))[cell_id]
    return "".join(o.text for o in cell.outputs)


# --------------------------------------------------------------------------- the notebooks, statically


def test_hw4_source_has_the_title_then_the_colab_cell_and_ten_points() -> None:
    assert_source_layout(HW4_SOURCE, "# Homework 4: DeePSiM's building blocks", HW4_CHECKS, HW4_MAX)


def test_hw4_questions_show_the_format_of_their_checks_not_the_values() -> None:
    assert_formats_shown(HW4_SOURCE)


def test_hw4_check_cells_print_no_errors_or_warnings() -> None:
    for cell_id, cell in check_cells(read(HW4_SOURCE)).items():
        assert cell.outputs, cell_id
        assert all(o.output_type == "stream" and o.name == "stdout" for o in cell.outputs), cell_id
        text = "".join(o.text for o in cell.outputs)
        assert not re.search(r"\b(nan|inf|-inf)\b", text), cell_id
        # Q3 prints which steps updated D, and whether D changed: False is an answer there, never elsewhere
        text = re.sub(r"D updated \[[^]]*\] \(library \[[^]]*\]\)|D changed: (True|False)", "", text)
        assert not re.search(r"\bFalse\b", text), cell_id


def test_hw4_q3_checks_exercise_both_branches_of_the_rule() -> None:
    assert printed("check-q3-update").count("D updated [True] (library [True])") == 2
    assert "D updated [True, True, True] (library [True, True, True])" in printed("check-q3-update")
    assert "D updated [False] (library [False])" in printed("check-q3-pause")
    rule = printed("check-q3-rule")
    assert "D updated [True] (library [True])" in rule and "D updated [False] (library [False])" in rule
    assert "D updated [False, False, False, True, True] (library [False, False, False, True, True])" in rule


def test_hw4_zebra_grey_has_half_the_error_of_the_shift() -> None:
    assert "grey: 0.5 | shifted by one stripe: 1.0 | ratio: 0.5" in printed("check-q1-closed")


def test_hw4_reference_answers_do_not_call_the_library() -> None:
    source = read(HW4_SOURCE)
    forbidden = ("metrics.", "mean_pairwise", "nets.", "UpConv", "conv_transpose", "losses.deepsim", "DeePSiMLoss",
                 "should_update")
    for cell_id in SOLUTIONS:
        text = cell_by_id(source, cell_id).source
        assert not any(name in text for name in forbidden), cell_id


def test_release_hw4(tmp_path: Path) -> None:
    source, student = release_and_check(HW4_SOURCE, tmp_path, regions=4)
    # the instructor's discussion is gone, the reflection prompt and the check cells are kept as they are
    assert [c.id for c in source.cells if "solution" in c.metadata.get("tags", [])] == ["reflection-discussion"]
    assert not any("solution" in cell.metadata.get("tags", []) for cell in student.cells)
    assert any(cell.get("id") == "reflection" for cell in student.cells)
    assert {k: (c.source, c.metadata) for k, c in check_cells(student).items()} == \
        {k: (c.source, c.metadata) for k, c in check_cells(source).items()}
    # the function signatures survive, their bodies are stubs
    for cell_id, name in SOLUTIONS.items():
        text = cell_by_id(student, cell_id).source
        assert f"def {name}(" in text and grading.STUB in text
    # the committed student version is exactly what release produces
    committed = read(HW4)
    assert [(c.cell_type, c.source) for c in committed.cells] == [(c.cell_type, c.source) for c in student.cells]
    assert [c.metadata for c in committed.cells] == [c.metadata for c in student.cells]
    assert all(c.outputs == [] and c.execution_count is None for c in committed.cells if c.cell_type == "code")


# --------------------------------------------------------------------------- grading HW4


def test_hw4_reference_scores_full_marks() -> None:
    assert grading.grade(HW4_SOURCE, HW4_SOURCE) == scores(HW4_MAX)


def test_hw4_untouched_student_version_scores_zero() -> None:
    assert grading.grade(HW4, HW4_SOURCE) == scores(dict.fromkeys(HW4_MAX, 0))


def test_hw4_other_correct_answers_score_full_marks(tmp_path: Path) -> None:
    report = grading.grade_report(with_answers(HW4_SOURCE, tmp_path, OTHER_CORRECT), HW4_SOURCE)
    assert report.to_dict() == scores(HW4_MAX), report.format()


@pytest.mark.parametrize("question, cell_id, answer, failing", [
    ("q1", "q1-solution", ALL_PAIRS_Q1, {"check-q1-closed", "check-q1-library"}),
    ("q2", "q2-solution-nails", NEAREST_Q2, {"check-q2-nails", "check-q2-closed", "check-q2-library"}),
    ("q3", "q3-solution", NEVER_PAUSES_Q3, {"check-q3-pause", "check-q3-rule"}),
], ids=["q1-all-pairs", "q2-nearest", "q3-never-pauses"])
def test_hw4_one_broken_answer_loses_exactly_its_points(tmp_path: Path, question: str, cell_id: str, answer: str,
                                                        failing: set[str]) -> None:
    report = grading.grade_report(with_answers(HW4_SOURCE, tmp_path, {cell_id: answer}), HW4_SOURCE)
    assert report.to_dict() == scores({**HW4_MAX, question: 0}), report.format()
    assert failed_checks(report) == failing


def test_hw4_naive_answers_are_told_apart(tmp_path: Path) -> None:
    """Further naive answers, one submission of three (one per question): each fails its own checks.

    (A second submission with the padding swapped and the ratio inverted was dropped: its grading
    run cost ~15 s of CI for little more.)"""
    first = {"q1-solution": PER_PIXEL_Q1, "q2-solution-nails": BILINEAR_Q2, "q3-solution": ALWAYS_PAUSES_Q3}
    report = grading.grade_report(with_answers(HW4_SOURCE, tmp_path, first), HW4_SOURCE)
    assert report.to_dict() == scores(dict.fromkeys(HW4_MAX, 0)), report.format()
    assert failed_checks(report) == {"check-q1-closed", "check-q1-library",
                                     "check-q2-nails", "check-q2-closed", "check-q2-library",
                                     "check-q3-update", "check-q3-rule"}
