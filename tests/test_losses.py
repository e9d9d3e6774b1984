"""Each loss against a hand computation on a fixed small example, and gradients reaching the student."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from edgekd.distill import losses
from edgekd.errors import ConfigError

STUDENT = torch.tensor([[2.0, 1.0, 0.1], [0.5, 0.2, 3.0]])
TEACHER = torch.tensor([[3.0, 0.5, -1.0], [0.0, 1.0, 2.0]])
LABELS = torch.tensor([0, 2])


def _softmax(row: list[float], t: float) -> list[float]:
    exps = [math.exp(v / t) for v in row]
    return [e / sum(exps) for e in exps]


def test_kd_loss_matches_hand_computation():
    t, alpha = 2.0, 0.3
    expected = 0.0
    for s_row, t_row, y in zip(STUDENT.tolist(), TEACHER.tolist(), LABELS.tolist()):
        p_s1 = _softmax(s_row, 1.0)
        ce = -math.log(p_s1[y])
        p_t, p_s = _softmax(t_row, t), _softmax(s_row, t)
        kl = sum(pt * math.log(pt / ps) for pt, ps in zip(p_t, p_s))
        expected += (alpha * ce + (1 - alpha) * t * t * kl) / 2
    targets = losses.soft_targets([TEACHER], t)
    got = losses.kd_loss(STUDENT, targets, LABELS, t, alpha)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_kd_loss_with_alpha_one_is_cross_entropy_and_zero_when_student_equals_teacher():
    targets = losses.soft_targets([TEACHER], 4.0)
    assert losses.kd_loss(STUDENT, targets, LABELS, 4.0, 1.0).item() == pytest.approx(
        F.cross_entropy(STUDENT, LABELS).item()
    )
    assert losses.kd_loss(TEACHER, targets, LABELS, 4.0, 0.0).item() == pytest.approx(0.0, abs=1e-6)


def test_class_weights_weigh_the_soft_term_per_label_when_asked_and_leave_ignored_rows_out():
    t, weight = 2.0, torch.tensor([1.0, 1.0, 3.0])
    targets = losses.soft_targets([TEACHER], t)
    per_row = F.kl_div(F.log_softmax(STUDENT / t, dim=1), targets, reduction="none").sum(1)
    expected = (per_row[0] * 1.0 + per_row[1] * 3.0) / 4.0  # row 1's label is class 2, weighed 3
    got = losses.kd_loss(STUDENT, targets, LABELS, t, 0.0, weight=weight, weigh_soft=True)
    unweighed = losses.kd_loss(STUDENT, targets, LABELS, t, 0.0, weight=weight)
    assert unweighed.item() == pytest.approx(t * t * per_row.mean().item(), rel=1e-5)
    assert got.item() == pytest.approx(t * t * expected.item(), rel=1e-5)
    ignored = losses.kd_loss(STUDENT, targets, torch.tensor([0, -100]), t, 0.0, weight=weight, weigh_soft=True)
    assert ignored.item() == pytest.approx(t * t * per_row[0].item(), rel=1e-5)


def test_ensemble_soft_targets_are_the_weighted_average():
    other = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    got = losses.soft_targets([TEACHER, other], 1.0, [3.0, 1.0])
    expected = 0.75 * F.softmax(TEACHER, 1) + 0.25 * torch.full((2, 3), 1 / 3)
    assert torch.allclose(got, expected)
    assert torch.allclose(got.sum(1), torch.ones(2))


def test_kd_gradient_reaches_student_logits():
    student = STUDENT.clone().requires_grad_(True)
    losses.kd_loss(student, losses.soft_targets([TEACHER], 4.0), LABELS, 4.0, 0.5).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0


def test_hint_losses_match_hand_computation():
    s = torch.tensor([[1.0, 2.0], [0.0, 1.0]])
    t = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert losses.get_feature_loss("mse")(s, t).item() == pytest.approx((0 + 4 + 0 + 1) / 4)
    cos0 = (1 * 1 + 2 * 0) / (math.sqrt(5) * 1)
    cos1 = 1.0
    assert losses.get_feature_loss("cosine")(s, t).item() == pytest.approx(((1 - cos0) + (1 - cos1)) / 2, rel=1e-6)


def test_attention_transfer_matches_hand_computation_and_resizes():
    s = torch.zeros(1, 2, 2, 2)
    s[0, 0, 0, 0] = 2.0  # all energy in one position
    t = torch.ones(1, 3, 2, 2)  # uniform attention
    a_s = torch.tensor([1.0, 0.0, 0.0, 0.0])
    a_t = torch.full((4,), 0.5)
    expected = ((a_s - a_t) ** 2).mean().item()
    assert losses.get_feature_loss("attention")(s, t).item() == pytest.approx(expected)
    bigger = F.interpolate(t, size=(4, 4))
    assert losses.get_feature_loss("attention")(bigger, t).item() == pytest.approx(0.0, abs=1e-7)


def test_rkd_is_zero_for_scaled_embeddings_and_positive_otherwise():
    e = torch.randn(6, 5)
    rkd = losses.get_feature_loss("rkd")
    assert rkd(3.0 * e, e).item() == pytest.approx(0.0, abs=1e-5)  # distances are normalized by their mean
    assert rkd(torch.randn(6, 5), e).item() > 0


def test_rkd_distance_term_matches_hand_computation():
    s = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    t = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])

    def normalized(points):
        d = torch.cdist(points, points)
        return d / d[d > 0].mean()

    expected = F.smooth_l1_loss(normalized(s), normalized(t)).item()
    got = losses.relational_kd(s, t, distance_weight=1.0, angle_weight=0.0).item()
    assert got == pytest.approx(expected, rel=1e-6)


def test_similarity_preserving_matches_hand_computation():
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    g_s = torch.eye(2)  # rows already unit-norm
    g_t = torch.full((2, 2), 2.0) / math.sqrt(8)
    expected = ((g_s - g_t) ** 2).sum().item() / 4
    assert losses.get_feature_loss("sp")(s, t).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("name", ["mse", "cosine", "attention", "rkd", "sp"])
def test_every_feature_loss_sends_gradient_to_the_student(name):
    s = torch.randn(4, 3, 4, 4, requires_grad=True)
    t = torch.randn(4, 3, 4, 4)
    losses.get_feature_loss(name)(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0


def test_unknown_feature_loss_suggests_the_nearest_name():
    with pytest.raises(ConfigError, match="did you mean 'cosine'"):
        losses.get_feature_loss("cosin")


def test_a_registered_feature_loss_is_nameable_in_a_distill_stage():
    from edgekd.distill import Distill

    @losses.register_feature_loss("l1-test")
    def l1(student, teacher):
        return (student - teacher).abs().mean()

    assert Distill(feature_loss="l1-test").feature_loss == "l1-test"
    assert losses.get_feature_loss("l1-test")(torch.ones(2, 2), torch.zeros(2, 2)).item() == 1.0
