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
    "float64 weight as a tensor": lambda x, weight=1.0: with_backward(lambda ctx, g: (-ctx.weight * g, None))(
        x, torch.tensor(weight, dtype=torch.float64).item()),
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




CORRECT = {"alignment.gradient_reversal": REVERSAL_CORRECT, "alignment.dann_weight": WEIGHT_CORRECT,
           "alignment.domain_loss": DOMAIN_CORRECT}
WRONG = {"alignment.gradient_reversal": REVERSAL_WRONG, "alignment.dann_weight": WEIGHT_WRONG,
         "alignment.domain_loss": DOMAIN_WRONG}


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


def test_the_reversal_check_leaves_no_gradient_behind_and_the_global_random_state_alone():
    state = torch.get_rng_state()
    check.exercise("alignment.gradient_reversal", REVERSAL_CORRECT["a Function returning a view"])
    assert torch.equal(state, torch.get_rng_state())
