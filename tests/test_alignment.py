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


# ------------------------------------------------------------------- sections 1 and 2


def test_cross_domain_net_shares_only_the_upper_layers_when_asked():
    torch.manual_seed(0)
    shared, separate = alignment.CrossDomainNet(share=True), alignment.CrossDomainNet(share=False)
    x = torch.randn(5, 64)
    assert shared(x, 0).shape == (5, 10) and shared.embed(x, 1).shape == (5, 64)
    assert len(shared.tops) == 1 and len(separate.tops) == 2
    # a printed-domain loss reaches encoder 0 and the shared top, never encoder 1
    shared(x, 0).sum().backward()
    assert shared.encoders[1][0].weight.grad is None
    assert shared.tops[0][0].weight.grad.abs().sum() > 0 and shared.encoders[0][0].weight.grad.abs().sum() > 0
    separate(x, 1).sum().backward()
    assert separate.tops[0][0].weight.grad is None and separate.classifiers[0].weight.grad is None


def test_cross_domain_net_names_a_bad_domain_or_shape():
    net = alignment.CrossDomainNet()
    with pytest.raises(ValueError, match="domain must be 0 or 1"):
        net(torch.randn(2, 64), 2)
    with pytest.raises(ValueError, match=r"\(B, 64\)"):
        net(torch.randn(2, 1, 8, 8), 0)


def test_retrieval_precision_counts_the_k_most_similar_by_cosine():
    g = torch.Generator().manual_seed(1)
    q, gal = torch.randn(9, 5, generator=g), torch.randn(20, 5, generator=g) * torch.rand(20, 1, generator=g) * 10
    ql, gl = torch.randint(3, (9,), generator=g), torch.randint(3, (20,), generator=g)
    for k in (1, 4, 20):
        expected = []
        for i in range(9):
            cos = [float(q[i] @ gal[j] / (q[i].norm() * gal[j].norm())) for j in range(20)]
            best = sorted(range(20), key=lambda j: -cos[j])[:k]
            expected.append(sum(int(gl[j] == ql[i]) for j in best) / k)
        assert alignment.retrieval_precision(q, ql, gal, gl, k).item() == pytest.approx(sum(expected) / 9, abs=1e-6)
    # the whole gallery: the share of the gallery with each query's label
    assert alignment.retrieval_precision(q, ql, gal, gl, 20).item() == pytest.approx(
        (gl[None] == ql[:, None]).float().mean().item(), abs=1e-6)


def test_standardize_images_gives_each_image_mean_zero_and_unit_spread():
    x = torch.rand(6, 1, 8, 8) * torch.arange(1, 7).view(6, 1, 1, 1)
    z = alignment.standardize_images(x)
    torch.testing.assert_close(z.mean((1, 2, 3)), torch.zeros(6), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std((1, 2, 3)), torch.ones(6), atol=1e-4, rtol=0)
    assert torch.equal(alignment.standardize_images(torch.zeros(2, 1, 8, 8)), torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        alignment.standardize_images(torch.rand(8, 8))


def test_dann_reverses_only_the_domain_classifiers_gradient_into_the_features():
    torch.manual_seed(0)
    model = alignment.DANN()
    x = torch.randn(4, 1, 8, 8)
    assert model(x).shape == (4, 10)
    features = model.features(x).detach().requires_grad_()
    (plain,) = torch.autograd.grad(model.domain_classifier(features)[:, 0].sum(), features)
    (reversed_,) = torch.autograd.grad(model.domain_logits(features, 0.5).sum(), features)
    torch.testing.assert_close(reversed_, -0.5 * plain)


def test_train_dann_source_only_leaves_the_domain_classifier_untouched_and_evaluates_on_schedule():
    torch.manual_seed(0)
    model = alignment.DANN()
    before = [p.clone() for p in model.domain_classifier.parameters()]
    x, y = torch.randn(32, 1, 8, 8), torch.randint(10, (32,))
    history = alignment.train_dann(model, x, y, x, 6, schedule=None, batch_size=8, progress=False,
                                   evaluate=lambda m: 0.5, eval_every=4)
    assert all(torch.equal(a, b) for a, b in zip(before, model.domain_classifier.parameters()))
    assert history["domain loss"] == [] and len(history["label loss"]) == 6
    assert history["evaluation"] == [(4, 0.5), (6, 0.5)]
    history = alignment.train_dann(model, x, y, x, 3, batch_size=8, progress=False)
    assert len(history["domain loss"]) == 3
    assert not all(torch.equal(a, b) for a, b in zip(before, model.domain_classifier.parameters()))


def test_a_fresh_domain_classifier_separates_shifted_features_and_not_identical_ones():
    g = torch.Generator().manual_seed(0)
    same_source, same_target = torch.randn(400, 8, generator=g), torch.randn(400, 8, generator=g)
    assert abs(alignment.fresh_domain_accuracy(same_source, same_target) - 0.5) < 0.1
    assert alignment.fresh_domain_accuracy(same_source, same_target + 3.0) > 0.95


def test_class_profiles_and_their_correlation_across_domains():
    features = torch.tensor([[1.0, 0.0], [3.0, 0.0], [5.0, 2.0]])
    labels = torch.tensor([0, 0, 1])
    torch.testing.assert_close(alignment.class_profiles(features, labels, 2), torch.tensor([[2.0, 0.0], [5.0, 2.0]]))
    g = torch.Generator().manual_seed(0)
    fa, la = torch.rand(40, 3, generator=g), torch.arange(40) % 4
    # an affine change of each unit keeps its correlation at 1; a sign flip makes it -1; silence makes it 0
    fb = torch.stack([3 * fa[:, 0] + 1, -fa[:, 1], torch.zeros(40)], dim=1)
    torch.testing.assert_close(alignment.profile_correlation(fa, la, fb, la, 4), torch.tensor([1.0, -1.0, 0.0]))
