"""Hidden tests of chapter 5's exercises, with the plausible mistakes each must catch.

The gradient reversal is checked through autograd: the reader's function runs on a leaf
tensor, and both its output and the gradient that reaches the leaf are compared. The
attack tests in ``tests/test_alignment_attacks.py`` hold the wrong solutions each rejects.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from dlpt import alignment
from dlpt.check import Exercise, check_cases, register

# ------------------------------------------------------------------- gradient_reversal


def _forward_and_gradient(fn: Callable) -> Callable:
    """A probe: (x, weight, upstream) -> (fn's output, the gradient of sum(output * upstream) at x)."""

    def probe(x, weight, upstream):
        leaf = x.detach().clone().requires_grad_(True)
        y = fn(leaf, weight)
        if not isinstance(y, torch.Tensor):
            return y, None
        if not y.requires_grad:  # detached, or built from numbers: no gradient reaches x
            return y.detach(), torch.zeros_like(x)
        if y.shape != x.shape:
            return y.detach(), None
        (grad,) = torch.autograd.grad((y * upstream.to(y.dtype)).sum(), leaf, allow_unused=True)
        return y.detach(), torch.zeros_like(x) if grad is None else grad

    return probe


def _reversal_reference(x, weight, upstream):
    return x.clone(), -weight * upstream


class _ScaledBack(torch.autograd.Function):
    """forward x, backward factor * grad: the planted mistakes vary the factor."""

    @staticmethod
    def forward(ctx, x, factor):
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output):
        return ctx.factor * grad_output, None


def _not_reversed(x, weight):
    return _ScaledBack.apply(x, weight)


def _weight_ignored(x, weight):
    return _ScaledBack.apply(x, -1.0)


def _reversed_forward(x, weight):
    return -weight * x


def _identity(x, weight):
    return x * 1.0


def _detached(x, weight):
    return x.detach()


_REVERSAL_MISTAKES = [  # wrong answers (x, weight) -> y, with their hints
    (_reversed_forward, "the forward pass must return x unchanged; only the gradient "
     "is reversed, in backward (write a torch.autograd.Function)"),
    (_not_reversed, "the gradient is scaled by weight but not reversed (or its sign "
     "was flipped twice): backward returns -weight * grad_output"),
    (_weight_ignored, "the gradient is reversed but not scaled: multiply it by weight"),
    (_identity, "the gradient passes through unchanged: your function is the identity both ways; "
     "the reversal must change the gradient (a torch.autograd.Function whose backward returns "
     "-weight * grad_output)"),
    (_detached, "no gradient reaches x: the output is detached from it; return a "
     "tensor that autograd connects to x (x.view_as(x) in forward)"),
]


def _check_gradient_reversal(fn) -> int:
    g = torch.Generator().manual_seed(0)
    cases = []
    for shape, weight, dtype in [((5,), 1.0, torch.float32), ((2, 3), 0.5, torch.float32),
                                 ((2, 3, 4), 2.0, torch.float64), ((4, 1), 0.0, torch.float32)]:
        x = torch.randn(*shape, generator=g, dtype=dtype)
        upstream = torch.randn(*shape, generator=g, dtype=dtype)
        description = f"x of shape {shape} ({dtype}) with weight = {weight} and a random upstream gradient"
        cases.append((description, (x, weight, upstream)))
    mistakes = [(_forward_and_gradient(wrong), hint) for wrong, hint in _REVERSAL_MISTAKES]
    return check_cases(_forward_and_gradient(fn), _reversal_reference, cases, mistakes,
                       what="(the output, the gradient that reaches x)")


register(Exercise("alignment.gradient_reversal", _check_gradient_reversal, alignment.gradient_reversal,
                  _REVERSAL_MISTAKES))

# ------------------------------------------------------------------- dann_weight


def _weight_sigmoid_only(progress, gamma=10.0):
    return 1 / (1 + math.exp(-gamma * progress))


def _weight_sign_flipped(progress, gamma=10.0):
    return 2 / (1 + math.exp(gamma * progress)) - 1


def _weight_tanh_full(progress, gamma=10.0):
    return math.tanh(gamma * progress)


def _weight_gamma_fixed(progress, gamma=10.0):
    return 2 / (1 + math.exp(-10 * progress)) - 1


def _weight_linear(progress, gamma=10.0):
    return progress


_WEIGHT_MISTAKES = [
    (_weight_sigmoid_only, "that is the sigmoid itself, which starts at 0.5: the schedule is 2 * sigmoid - 1, "
     "so that it starts at 0"),
    (_weight_sign_flipped, "the schedule falls below zero: the exponent is -gamma * progress"),
    (_weight_tanh_full, "2 / (1 + exp(-z)) - 1 equals tanh(z / 2), not tanh(z)"),
    (_weight_gamma_fixed, "gamma is an argument: use it instead of 10"),
    (_weight_linear, "the weight should rise along 2 / (1 + exp(-gamma * progress)) - 1, not linearly"),
]


def _check_dann_weight(fn) -> int:
    cases = [(f"progress = {p}, gamma = {gamma}", (p, gamma))
             for p, gamma in [(0.0, 10.0), (0.1, 10.0), (0.25, 10.0), (0.5, 5.0), (0.9, 10.0), (1.0, 3.0)]]
    return check_cases(fn, alignment.dann_weight, cases, _WEIGHT_MISTAKES, atol=1e-6, rtol=1e-5)


register(Exercise("alignment.dann_weight", _check_dann_weight, alignment.dann_weight, _WEIGHT_MISTAKES))

# ------------------------------------------------------------------- domain_loss


def _domain_labels_swapped(source_logits, target_logits):
    return alignment.domain_loss(target_logits, source_logits)


def _domain_mean_of_means(source_logits, target_logits):
    labels_s, labels_t = torch.zeros_like(source_logits), torch.ones_like(target_logits)
    return (F.binary_cross_entropy_with_logits(source_logits, labels_s)
            + F.binary_cross_entropy_with_logits(target_logits, labels_t)) / 2


def _domain_sum(source_logits, target_logits):
    n = len(source_logits) + len(target_logits)
    return n * alignment.domain_loss(source_logits, target_logits)


def _domain_sigmoid_twice(source_logits, target_logits):
    return alignment.domain_loss(torch.sigmoid(source_logits), torch.sigmoid(target_logits))


_DOMAIN_MISTAKES = [
    (_domain_labels_swapped, "the domains' labels are swapped: source examples are class 0, target class 1"),
    (_domain_mean_of_means, "that is the mean of the two domains' means: average over all Ns + Nt examples"),
    (_domain_sum, "that is the sum over the examples: return their mean"),
    (_domain_sigmoid_twice, "the inputs are logits already: do not pass them through a sigmoid first"),
]


def _check_domain_loss(fn) -> int:
    g = torch.Generator().manual_seed(0)
    cases = [
        ("source_logits (3,) and target_logits (5,)", (torch.randn(3, generator=g), torch.randn(5, generator=g))),
        ("source_logits (6,) and target_logits (2,) in float64",
         (2 * torch.randn(6, generator=g, dtype=torch.float64), 2 * torch.randn(2, generator=g, dtype=torch.float64))),
        ("large logits: source [120, -80, 3], target [-150, 60, 0.5, 90]",
         (torch.tensor([120.0, -80.0, 3.0]), torch.tensor([-150.0, 60.0, 0.5, 90.0]))),
        ("one example per domain: source [0.7], target [-1.3]", (torch.tensor([0.7]), torch.tensor([-1.3]))),
    ]
    return check_cases(fn, alignment.domain_loss, cases, _DOMAIN_MISTAKES)


register(Exercise("alignment.domain_loss", _check_domain_loss, alignment.domain_loss, _DOMAIN_MISTAKES))

# ------------------------------------------------------------------- cycle_loss and identity_loss


def _affine(scale: float, shift: float) -> Callable:
    """A stand-in generator t -> scale * t + shift; the pairs below are not inverses of each other."""
    return lambda t: scale * t + shift


def _cycle_in_the_wrong_domain(x, forward, backward):
    return (backward(forward(x)) - forward(x)).abs().mean()


def _cycle_reversed_trip(x, forward, backward):
    return (forward(backward(x)) - x).abs().mean()


def _cycle_squared(x, forward, backward):
    return (backward(forward(x)) - x).pow(2).mean()


def _cycle_summed(x, forward, backward):
    return (backward(forward(x)) - x).abs().sum()


def _cycle_without_abs(x, forward, backward):
    return (backward(forward(x)) - x).mean()


_CYCLE_MISTAKES = [
    (_cycle_in_the_wrong_domain, "the round trip ends in domain A: compare backward(forward(x)) with x, not "
     "with forward(x)"),
    (_cycle_reversed_trip, "x is in domain A: go forward first (A -> B), then backward (B -> A)"),
    (_cycle_squared, "CycleGAN's cycle loss is the mean absolute error (L1), not the squared error"),
    (_cycle_summed, "that is the sum: return the mean absolute error"),
    (_cycle_without_abs, "take the absolute value of the differences before the mean, or they cancel"),
]


def _check_cycle_loss(fn) -> int:
    g = torch.Generator().manual_seed(0)
    cases = [
        ("x (4, 1, 8, 8), forward t -> 2t + 1, backward t -> 0.3t - 0.2",
         (torch.rand(4, 1, 8, 8, generator=g), _affine(2.0, 1.0), _affine(0.3, -0.2))),
        ("x (3, 5) in float64, forward t -> -t + 0.5, backward t -> 1.5t",
         (torch.randn(3, 5, generator=g, dtype=torch.float64), _affine(-1.0, 0.5), _affine(1.5, 0.0))),
        ("x (2, 6), forward t -> 0.5t - 1, backward t -> 3t + 2",
         (torch.randn(2, 6, generator=g), _affine(0.5, -1.0), _affine(3.0, 2.0))),
    ]
    return check_cases(fn, alignment.cycle_loss, cases, _CYCLE_MISTAKES)


register(Exercise("alignment.cycle_loss", _check_cycle_loss, alignment.cycle_loss, _CYCLE_MISTAKES))


def _identity_squared(y, forward):
    return (forward(y) - y).pow(2).mean()


def _identity_summed(y, forward):
    return (forward(y) - y).abs().sum()


def _identity_twice(y, forward):
    return (forward(forward(y)) - y).abs().mean()


def _identity_without_abs(y, forward):
    return (forward(y) - y).mean()


_IDENTITY_MISTAKES = [
    (_identity_squared, "the identity loss is the mean absolute error (L1), not the squared error"),
    (_identity_summed, "that is the sum: return the mean absolute error"),
    (_identity_twice, "apply the generator once: forward(y) should equal y, for y already in its output domain"),
    (_identity_without_abs, "take the absolute value of the differences before the mean, or they cancel"),
]


def _check_identity_loss(fn) -> int:
    g = torch.Generator().manual_seed(1)
    cases = [
        ("y (4, 1, 8, 8), forward t -> 2t + 1", (torch.rand(4, 1, 8, 8, generator=g), _affine(2.0, 1.0))),
        ("y (3, 5) in float64, forward t -> -t + 0.5",
         (torch.randn(3, 5, generator=g, dtype=torch.float64), _affine(-1.0, 0.5))),
        ("y (2, 6), forward t -> 0.5t - 1", (torch.randn(2, 6, generator=g), _affine(0.5, -1.0))),
    ]
    return check_cases(fn, alignment.identity_loss, cases, _IDENTITY_MISTAKES)


register(Exercise("alignment.identity_loss", _check_identity_loss, alignment.identity_loss, _IDENTITY_MISTAKES))

# ------------------------------------------------------------------- procrustes


def _procrustes_transposed(source, target):
    return alignment.procrustes(source, target).T


def _procrustes_vh_as_v(source, target):
    u, _, vh = torch.linalg.svd(source.T @ target)
    return u @ vh.T


def _procrustes_least_squares(source, target):
    return torch.linalg.lstsq(source, target).solution


def _procrustes_with_singular_values(source, target):
    u, s, vh = torch.linalg.svd(source.T @ target)
    return u @ torch.diag(s) @ vh


def _procrustes_no_reflection(source, target):
    u, _, vh = torch.linalg.svd(source.T @ target)
    d = torch.ones(len(u), dtype=u.dtype)
    d[-1] = torch.sign(torch.linalg.det(u @ vh))
    return u @ torch.diag(d) @ vh


_PROCRUSTES_MISTAKES = [
    (_procrustes_transposed, "that is the transpose of W (the inverse rotation): with U S V^T = "
     "svd(source.T @ target), W = U V^T maps source onto target"),
    (_procrustes_vh_as_v, "torch.linalg.svd returns V^T (often called Vh) already: W = U @ Vh, no transpose"),
    (_procrustes_least_squares, "that is the least-squares fit, which is not orthogonal: Procrustes keeps W a "
     "rotation, W = U V^T from the SVD"),
    (_procrustes_with_singular_values, "drop the singular values: W = U V^T, so that W is orthogonal"),
    (_procrustes_no_reflection, "here the best orthogonal W includes a reflection (det W = -1); the problem asks "
     "for any orthogonal matrix, so do not force det W = +1"),
]


def _check_procrustes(fn) -> int:
    g = torch.Generator().manual_seed(0)

    def rotated(n: int, d: int, dtype=torch.float32, reflect: bool = False):
        source = torch.randn(n, d, generator=g, dtype=dtype)
        rotation, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=dtype))
        if reflect and torch.linalg.det(rotation) > 0:
            rotation[:, 0] = -rotation[:, 0]
        elif not reflect and torch.linalg.det(rotation) < 0:
            rotation[:, 0] = -rotation[:, 0]
        return source, source @ rotation + 0.05 * torch.randn(n, d, generator=g, dtype=dtype)

    cases = [
        ("source and target (10, 3), target = source rotated plus noise", rotated(10, 3)),
        ("source and target (40, 5) in float64", rotated(40, 5, torch.float64)),
        ("source and target (30, 4) where the best orthogonal map is a rotation with a reflection (det = -1)",
         rotated(30, 4, reflect=True)),
        ("unrelated source and target (12, 2)", (torch.randn(12, 2, generator=g), torch.randn(12, 2, generator=g))),
    ]
    return check_cases(fn, alignment.procrustes, cases, _PROCRUSTES_MISTAKES, atol=1e-4, rtol=1e-3)


register(Exercise("alignment.procrustes", _check_procrustes, alignment.procrustes, _PROCRUSTES_MISTAKES))
