"""Wrong solutions a learner would write for chapter 5's exercises, and correct variants.

Each wrong one must be rejected (with the hint, where the checker knows the mistake);
each correct variant (another formulation, float64, a tensor instead of a float) must pass.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlpt import check
from dlpt.check import ExerciseFailed


def rejects(name, fn) -> str:
    with pytest.raises(ExerciseFailed) as info:
        check.exercise(name, fn)
    return str(info.value)


def with_backward(backward, forward=lambda ctx, x, w: x.view_as(x)):
    """A gradient_reversal built from a torch.autograd.Function with the given forward and backward."""

    class Reverse(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, weight):
            ctx.weight = weight
            return forward(ctx, x, weight)

        @staticmethod
        def backward(ctx, grad_output):
            return backward(ctx, grad_output)

    return lambda x, weight=1.0: Reverse.apply(x, weight)


# ------------------------------------------------------------------- gradient_reversal


def hooked(x, weight=1.0):
    y = x.clone()
    y.register_hook(lambda grad: -weight * grad)
    return y


REVERSAL_CORRECT = {
    "a Function returning a view": with_backward(lambda ctx, g: (-ctx.weight * g, None)),
    "a Function returning a clone": with_backward(lambda ctx, g: (-ctx.weight * g, None),
                                                  forward=lambda ctx, x, w: x.clone()),
    "the detach trick": lambda x, weight=1.0: (1 + weight) * x.detach() - weight * x,
    "a hook on the output": hooked,
    "the gradient negated after scaling": with_backward(lambda ctx, g: (-(g * ctx.weight), None)),
    "a Function returning x itself": with_backward(lambda ctx, g: (-ctx.weight * g, None),
                                                   forward=lambda ctx, x, w: x),
    "the weight passed through a float64 tensor first": lambda x, weight=1.0: with_backward(
        lambda ctx, g: (-ctx.weight * g, None))(x, torch.tensor(weight, dtype=torch.float64).item()),
}

REVERSAL_WRONG = {
    "reversed in the forward pass": (lambda x, weight=1.0: -weight * x, "forward pass must return x unchanged"),
    "backward returns grad_output": (with_backward(lambda ctx, g: (g, None)), "passes through unchanged"),
    "the sign flipped twice": (with_backward(lambda ctx, g: (-(-ctx.weight * g), None)), "not reversed"),
    "the weight ignored": (with_backward(lambda ctx, g: (-g, None)), "not scaled"),
    "the weight squared": (with_backward(lambda ctx, g: (-ctx.weight**2 * g, None)), "wrong"),
    "no gradient for weight returned": (with_backward(lambda ctx, g: -ctx.weight * g), "raised"),
    "detached": (lambda x, weight=1.0: x.detach(), "no gradient reaches x"),
    "the identity": (lambda x, weight=1.0: x + 0, "passes through unchanged"),
    "a new tensor from the values": (lambda x, weight=1.0: torch.tensor(x.tolist()), "no gradient reaches x"),
    "the weight added instead of multiplied": (with_backward(lambda ctx, g: (-(g + ctx.weight), None)), "wrong"),
    "forward scaled by weight": (with_backward(lambda ctx, g: (-ctx.weight * g, None),
                                               forward=lambda ctx, x, w: w * x), "wrong"),
    "returns numpy": (lambda x, weight=1.0: x.detach().numpy(), "tensor"),
}




# ------------------------------------------------------------------- dann_weight

WEIGHT_CORRECT = {
    "the formula": lambda p, gamma=10.0: 2 / (1 + math.exp(-gamma * p)) - 1,
    "tanh of half": lambda p, gamma=10.0: math.tanh(gamma * p / 2),
    "one minus": lambda p, gamma=10.0: 1 - 2 / (1 + math.exp(gamma * p)),
    "a 0-d tensor": lambda p, gamma=10.0: 2 * torch.sigmoid(torch.tensor(gamma * p)) - 1,
    "numpy": lambda p, gamma=10.0: float(np.tanh(gamma * p / 2)),
}

WEIGHT_WRONG = {
    "the sigmoid only": (lambda p, gamma=10.0: 1 / (1 + math.exp(-gamma * p)), "starts at 0.5"),
    "the exponent's sign": (lambda p, gamma=10.0: 2 / (1 + math.exp(gamma * p)) - 1, "below zero"),
    "tanh of the whole": (lambda p, gamma=10.0: math.tanh(gamma * p), "tanh(z / 2)"),
    "gamma fixed": (lambda p, gamma=10.0: 2 / (1 + math.exp(-10 * p)) - 1, "gamma is an argument"),
    "linear": (lambda p, gamma=10.0: p, "not linearly"),
    "the -1 forgotten": (lambda p, gamma=10.0: 2 / (1 + math.exp(-gamma * p)), "expected"),
    "one minus exp": (lambda p, gamma=10.0: 1 - math.exp(-gamma * p), "expected"),
    "rounded to two decimals": (
        lambda p, gamma=10.0: round(2 / (1 + math.exp(-gamma * p)) - 1, 2), "expected"),
}




# ------------------------------------------------------------------- domain_loss


def labels_for(s, t):
    return torch.cat([torch.zeros_like(s), torch.ones_like(t)])


DOMAIN_CORRECT = {
    "with logits": lambda s, t: F.binary_cross_entropy_with_logits(torch.cat([s, t]), labels_for(s, t)),
    "logsigmoid": lambda s, t: -(F.logsigmoid(-s).sum() + F.logsigmoid(t).sum()) / (len(s) + len(t)),
    "softplus": lambda s, t: (F.softplus(s).sum() + F.softplus(-t).sum()) / (len(s) + len(t)),
    "the module": lambda s, t: torch.nn.BCEWithLogitsLoss()(torch.cat([s, t]), labels_for(s, t)),
    "a weighted mean of the two means": lambda s, t: (
        len(s) * F.softplus(s).mean() + len(t) * F.softplus(-t).mean()) / (len(s) + len(t)),
}

DOMAIN_WRONG = {
    "labels swapped": (lambda s, t: F.binary_cross_entropy_with_logits(torch.cat([s, t]), 1 - labels_for(s, t)),
                       "labels are swapped"),
    "mean of means": (lambda s, t: (F.softplus(s).mean() + F.softplus(-t).mean()) / 2, "mean of the two"),
    "sum": (lambda s, t: F.binary_cross_entropy_with_logits(torch.cat([s, t]), labels_for(s, t),
                                                            reduction="sum"), "sum over the examples"),
    "sigmoid first": (lambda s, t: F.binary_cross_entropy_with_logits(
        torch.sigmoid(torch.cat([s, t])), labels_for(s, t)), "logits already"),
    "naive log of sigmoid": (lambda s, t: -(torch.log(1 - torch.sigmoid(s)).sum() + torch.log(
        torch.sigmoid(t)).sum()) / (len(s) + len(t)), "non-finite"),
    "probabilities with clamped logs": (lambda s, t: F.binary_cross_entropy(
        torch.sigmoid(torch.cat([s, t])), labels_for(s, t)), "large logits"),
    "per example, not reduced": (lambda s, t: F.binary_cross_entropy_with_logits(
        torch.cat([s, t]), labels_for(s, t), reduction="none"), "shape"),
    "only the source": (lambda s, t: F.softplus(s).mean(), "expected"),
}




# ------------------------------------------------------------------- cycle_loss, identity_loss

CYCLE_CORRECT = {
    "L1 by hand": lambda x, f, g: (g(f(x)) - x).abs().mean(),
    "F.l1_loss": lambda x, f, g: F.l1_loss(g(f(x)), x),
    "the other order of subtraction": lambda x, f, g: torch.mean(torch.abs(x - g(f(x)))),
    "a Python float": lambda x, f, g: F.l1_loss(g(f(x)), x).item(),
}

CYCLE_WRONG = {
    "compared with forward(x)": (lambda x, f, g: F.l1_loss(g(f(x)), f(x)), "ends in domain A"),
    "backward first": (lambda x, f, g: F.l1_loss(f(g(x)), x), "go forward first"),
    "squared": (lambda x, f, g: F.mse_loss(g(f(x)), x), "not the squared error"),
    "summed": (lambda x, f, g: F.l1_loss(g(f(x)), x, reduction="sum"), "that is the sum"),
    "no abs": (lambda x, f, g: (g(f(x)) - x).mean(), "absolute value"),
    "the identity term instead": (lambda x, f, g: F.l1_loss(f(x), x), "expected"),
    "both round trips from x": (lambda x, f, g: F.l1_loss(g(f(x)), x) + F.l1_loss(f(g(x)), x), "expected"),
    "per pixel, not reduced": (lambda x, f, g: (g(f(x)) - x).abs(), "shape"),
}

IDENTITY_CORRECT = {
    "L1 by hand": lambda y, f: (f(y) - y).abs().mean(),
    "F.l1_loss": lambda y, f: F.l1_loss(f(y), y),
    "a Python float": lambda y, f: F.l1_loss(f(y), y).item(),
}

IDENTITY_WRONG = {
    "squared": (lambda y, f: F.mse_loss(f(y), y), "not the squared error"),
    "summed": (lambda y, f: (f(y) - y).abs().sum(), "that is the sum"),
    "applied twice": (lambda y, f: F.l1_loss(f(f(y)), y), "apply the generator once"),
    "no abs": (lambda y, f: (f(y) - y).mean(), "absolute value"),
    "y against itself": (lambda y, f: F.l1_loss(y, y), "expected"),
    "the generator's output size": (lambda y, f: f(y).abs().mean(), "expected"),
}

# ------------------------------------------------------------------- procrustes


def procrustes_polar(x, y):
    m = x.T @ y  # W is the orthogonal factor of m's polar decomposition
    eigenvalues, eigenvectors = torch.linalg.eigh(m.T @ m)
    return m @ eigenvectors @ torch.diag(eigenvalues.rsqrt()) @ eigenvectors.T


def procrustes_other_svd(x, y):
    u, _, vh = torch.linalg.svd(y.T @ x)
    return vh.T @ u.T


PROCRUSTES_CORRECT = {
    "U @ Vh": lambda x, y: (lambda u, s, vh: u @ vh)(*torch.linalg.svd(x.T @ y)),
    "numpy": lambda x, y: (lambda u, s, vh: torch.as_tensor(u @ vh))(*np.linalg.svd((x.T @ y).numpy())),
    "the SVD of target.T @ source, transposed back": procrustes_other_svd,
    "the polar factor": procrustes_polar,
    "reduced SVD": lambda x, y: (lambda u, s, vh: u @ vh)(*torch.linalg.svd(x.T @ y, full_matrices=False)),
}

PROCRUSTES_WRONG = {
    "transposed": (lambda x, y: procrustes_other_svd(x, y).T, "transpose of W"),
    "Vh taken for V": (lambda x, y: (lambda u, s, vh: u @ vh.T)(*torch.linalg.svd(x.T @ y)), "Vh) already"),
    "least squares": (lambda x, y: torch.linalg.lstsq(x, y).solution, "least-squares"),
    "pseudo-inverse": (lambda x, y: torch.linalg.pinv(x) @ y, "least-squares"),
    "singular values kept": (lambda x, y: (lambda u, s, vh: u @ torch.diag(s) @ vh)(*torch.linalg.svd(x.T @ y)),
                             "drop the singular values"),
    "reflection forbidden (Kabsch)": (lambda x, y: (lambda u, s, vh: u @ torch.diag(torch.cat([
        torch.ones(len(s) - 1), torch.sign(torch.linalg.det(u @ vh))[None]])) @ vh)(*torch.linalg.svd(x.T @ y)),
        "do not force det W = +1"),
    "the SVD of source.T @ source": (lambda x, y: (lambda u, s, vh: u @ vh)(*torch.linalg.svd(x.T @ x)), "expected"),
    "rows normalized first": (lambda x, y: (lambda u, s, vh: u @ vh)(*torch.linalg.svd(
        F.normalize(x, dim=1).T @ F.normalize(y, dim=1))), "expected"),
}


CORRECT = {"alignment.gradient_reversal": REVERSAL_CORRECT, "alignment.dann_weight": WEIGHT_CORRECT,
           "alignment.domain_loss": DOMAIN_CORRECT, "alignment.cycle_loss": CYCLE_CORRECT,
           "alignment.identity_loss": IDENTITY_CORRECT, "alignment.procrustes": PROCRUSTES_CORRECT}
WRONG = {"alignment.gradient_reversal": REVERSAL_WRONG, "alignment.dann_weight": WEIGHT_WRONG,
         "alignment.domain_loss": DOMAIN_WRONG, "alignment.cycle_loss": CYCLE_WRONG,
         "alignment.identity_loss": IDENTITY_WRONG, "alignment.procrustes": PROCRUSTES_WRONG}


@pytest.mark.parametrize(("name", "variant"), [(n, v) for n, variants in CORRECT.items() for v in sorted(variants)])
def test_correct_variant_is_accepted(name, variant):
    check.exercise(name, CORRECT[name][variant])


@pytest.mark.parametrize(("name", "variant"), [(n, v) for n, variants in WRONG.items() for v in sorted(variants)])
def test_wrong_solution_is_rejected(name, variant):
    fn, phrase = WRONG[name][variant]
    assert phrase in rejects(name, fn)


def test_every_exercise_has_five_attacks_and_three_correct_variants():
    from dlpt import alignment_exercises  # noqa: F401  (registers the exercises)

    names = {n for n in check.registry("alignment") if n.startswith("alignment.")}
    assert names == set(CORRECT) == set(WRONG)
    assert all(len(WRONG[n]) >= 5 and len(CORRECT[n]) >= 3 for n in names)


def test_the_reversal_check_leaves_the_global_random_state_alone():
    state = torch.get_rng_state()
    check.exercise("alignment.gradient_reversal", REVERSAL_CORRECT["a Function returning a view"])
    assert torch.equal(state, torch.get_rng_state())
