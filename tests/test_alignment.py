import math

import pytest
import torch
from torch import nn

from dlpt import alignment


def test_gradient_reversal_is_the_identity_forward():
    x = torch.randn(4, 3, 5)
    y = alignment.gradient_reversal(x, 0.7)
    assert y.shape == x.shape and torch.equal(y, x)


@pytest.mark.parametrize("weight", [0.0, 0.3, 1.0, 2.5])
def test_gradient_reversal_multiplies_the_gradient_by_minus_weight(weight):
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(6, 4, dtype=torch.float64)
    (grad,) = torch.autograd.grad((alignment.gradient_reversal(x, weight) * upstream).sum(), x)
    torch.testing.assert_close(grad, -weight * upstream)


def test_inside_a_network_only_the_layers_below_the_reversal_see_the_reversed_gradient():
    torch.manual_seed(0)
    features, head = nn.Linear(5, 4), nn.Linear(4, 1)
    x = torch.randn(8, 5)

    def grads(reverse):
        features.zero_grad()
        head.zero_grad()
        h = features(x)
        out = head(alignment.gradient_reversal(h, 0.5) if reverse else h)
        out.pow(2).mean().backward()
        return features.weight.grad.clone(), head.weight.grad.clone()

    plain_features, plain_head = grads(reverse=False)
    reversed_features, reversed_head = grads(reverse=True)
    torch.testing.assert_close(reversed_head, plain_head)  # above the reversal: unchanged
    torch.testing.assert_close(reversed_features, -0.5 * plain_features)  # below: reversed, scaled


def test_the_layer_form_and_a_tensor_weight():
    layer = alignment.GradientReversal(2.0)
    x = torch.randn(3, requires_grad=True)
    layer(x).sum().backward()
    torch.testing.assert_close(x.grad, torch.full((3,), -2.0))
    assert "weight=2" in repr(layer)
    y = torch.randn(3, requires_grad=True)
    alignment.gradient_reversal(y, torch.tensor(0.5)).sum().backward()
    torch.testing.assert_close(y.grad, torch.full((3,), -0.5))


@pytest.mark.parametrize("weight", [-1.0, float("nan"), float("inf")])
def test_gradient_reversal_refuses_a_weight_that_is_not_a_finite_number_at_least_zero(weight):
    with pytest.raises(ValueError, match="finite number >= 0"):
        alignment.gradient_reversal(torch.zeros(2), weight)


def test_gradient_reversal_refuses_a_weight_that_is_not_one_number():
    with pytest.raises(ValueError, match="shape"):
        alignment.gradient_reversal(torch.zeros(2), torch.ones(2))
    with pytest.raises(TypeError, match="number"):
        alignment.gradient_reversal(torch.zeros(2), "1")


def test_dann_weight_rises_from_zero_towards_one():
    values = [alignment.dann_weight(p / 10) for p in range(11)]
    assert values[0] == 0.0
    assert all(a < b for a, b in zip(values, values[1:]))
    assert values[-1] == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    assert alignment.dann_weight(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        alignment.dann_weight(1.5)


def test_domain_loss_is_the_mean_cross_entropy_of_source_as_0_and_target_as_1():
    s, t = torch.randn(3, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    p_s, p_t = torch.sigmoid(s), torch.sigmoid(t)  # p(target)
    by_hand = -(torch.log(1 - p_s).sum() + torch.log(p_t).sum()) / 8
    torch.testing.assert_close(alignment.domain_loss(s, t), by_hand)
    # A classifier that is sure and right costs almost nothing; sure and wrong, a lot.
    assert alignment.domain_loss(torch.tensor([-50.0]), torch.tensor([50.0])) < 1e-6
    assert alignment.domain_loss(torch.tensor([150.0]), torch.tensor([-150.0])) == pytest.approx(150.0)


def test_domain_loss_wants_one_logit_per_example():
    with pytest.raises(ValueError, match=r"target_logits must have shape \(N,\)"):
        alignment.domain_loss(torch.zeros(4), torch.zeros(4, 1))


def test_procrustes_recovers_a_hidden_rotation_and_beats_every_other_one():
    g = torch.Generator().manual_seed(0)
    source = torch.randn(50, 6, generator=g, dtype=torch.float64)
    rotation, _ = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64))
    target = source @ rotation + 0.01 * torch.randn(50, 6, generator=g, dtype=torch.float64)
    w = alignment.procrustes(source, target)
    torch.testing.assert_close(w @ w.T, torch.eye(6, dtype=torch.float64))  # orthogonal
    torch.testing.assert_close(w, rotation, atol=0.01, rtol=0)
    best = (source @ w - target).norm()
    for _ in range(20):
        other, _ = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64))
        assert (source @ other - target).norm() >= best
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        alignment.procrustes(source, target[:, :5])


def test_cycle_and_identity_losses_compare_in_the_right_domain():
    x = torch.randn(4, 1, 8, 8)
    double, halve = (lambda t: 2 * t), (lambda t: t / 2)
    assert alignment.cycle_loss(x, double, halve) == 0  # a round trip back to x
    torch.testing.assert_close(alignment.cycle_loss(x, double, double), (3 * x).abs().mean())
    assert alignment.identity_loss(x, lambda t: t) == 0
    torch.testing.assert_close(alignment.identity_loss(x, double), x.abs().mean())
