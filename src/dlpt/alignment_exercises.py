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
from dlpt.check import Exercise, Mismatch, call, check_cases, describe, register

# ------------------------------------------------------------------- retrieval_precision


def _retrieval_euclidean(queries, query_labels, gallery, gallery_labels, k=5):
    neighbours = torch.cdist(queries, gallery).topk(k, dim=1, largest=False).indices
    return (gallery_labels[neighbours] == query_labels[:, None]).to(queries.dtype).mean()


def _retrieval_dot_product(queries, query_labels, gallery, gallery_labels, k=5):
    neighbours = (queries @ gallery.T).topk(k, dim=1).indices
    return (gallery_labels[neighbours] == query_labels[:, None]).to(queries.dtype).mean()


def _retrieval_least_similar(queries, query_labels, gallery, gallery_labels, k=5):
    similarity = F.normalize(queries, dim=1) @ F.normalize(gallery, dim=1).T
    neighbours = similarity.topk(k, dim=1, largest=False).indices
    return (gallery_labels[neighbours] == query_labels[:, None]).to(queries.dtype).mean()


def _retrieval_normalized_over_batch(queries, query_labels, gallery, gallery_labels, k=5):
    similarity = F.normalize(queries, dim=0) @ F.normalize(gallery, dim=0).T
    neighbours = similarity.topk(k, dim=1).indices
    return (gallery_labels[neighbours] == query_labels[:, None]).to(queries.dtype).mean()


def _retrieval_top1(queries, query_labels, gallery, gallery_labels, k=5):
    return alignment.retrieval_precision(queries, query_labels, gallery, gallery_labels, 1)


def _retrieval_hit_rate(queries, query_labels, gallery, gallery_labels, k=5):
    similarity = F.normalize(queries, dim=1) @ F.normalize(gallery, dim=1).T
    neighbours = similarity.topk(k, dim=1).indices
    return (gallery_labels[neighbours] == query_labels[:, None]).any(1).to(queries.dtype).mean()


_RETRIEVAL_MISTAKES = [
    (_retrieval_euclidean, "those are the nearest neighbours by Euclidean distance; the similarity asked for is "
     "the cosine, which ignores each vector's length: normalize every row first"),
    (_retrieval_dot_product, "a plain dot product favours long vectors; cosine similarity divides by both "
     "lengths (F.normalize(x, dim=1) on the queries and on the gallery)"),
    (_retrieval_least_similar, "those are the k *least* similar gallery items: topk takes the largest by default"),
    (_retrieval_normalized_over_batch, "each row (one vector) must have length 1: normalize along dim=1, not "
     "dim=0, which rescales each feature over the batch"),
    (_retrieval_top1, "only the single nearest neighbour counts here; precision at k looks at the k nearest"),
    (_retrieval_hit_rate, "that is the share of queries with *at least one* match among the k (the hit rate); "
     "precision at k is the share of the k neighbours that match, averaged"),
]


def _check_retrieval_precision(fn) -> int:
    g = torch.Generator().manual_seed(0)

    def scattered(q: int, n: int, d: int, classes: int, k: int, dtype=torch.float32):
        # class directions plus noise, and lengths spread over two orders of magnitude, so that the
        # cosine, the Euclidean distance and the dot product pick different neighbours
        centres = torch.randn(classes, d, generator=g, dtype=dtype)
        query_labels = torch.randint(classes, (q,), generator=g)
        gallery_labels = torch.randint(classes, (n,), generator=g)

        def points(labels):
            directions = centres[labels] + 0.9 * torch.randn(len(labels), d, generator=g, dtype=dtype)
            return directions * torch.exp(2 * torch.rand(len(labels), 1, generator=g, dtype=dtype))

        return points(query_labels), query_labels, points(gallery_labels), gallery_labels, k

    cases = [
        ("12 queries and 30 gallery items in 6 dimensions, 3 classes, k=5", scattered(12, 30, 6, 3, 5)),
        ("40 queries, 25 gallery items, 4 dimensions, 5 classes, k=3, float64",
         scattered(40, 25, 4, 5, 3, torch.float64)),
        ("7 queries, 50 gallery items, 16 dimensions, 4 classes, k=10", scattered(7, 50, 16, 4, 10)),
        ("30 queries, 20 gallery items, 3 dimensions, 2 classes, k=1", scattered(30, 20, 3, 2, 1)),
    ]
    return check_cases(fn, alignment.retrieval_precision, cases, _RETRIEVAL_MISTAKES)


register(Exercise("alignment.retrieval_precision", _check_retrieval_precision, alignment.retrieval_precision,
                  _RETRIEVAL_MISTAKES))

# ------------------------------------------------------------------- profile_correlation


def _profiles(features, labels, num_classes, reduce="mean"):
    rows = [features[labels == c] for c in range(num_classes)]
    return torch.stack([r.sum(0) if reduce == "sum" else r.mean(0) for r in rows])  # (C, U)


def _column_cosine(a, b, guard=True):
    """Cosine of each column of a with the same column of b; with guard, 0 where a column is zero."""
    norms = a.norm(dim=0) * b.norm(dim=0)
    return (a * b).sum(0) / (norms.clamp_min(1e-12) if guard else norms)


def _profile_cosine(fa, la, fb, lb, num_classes=10):
    a, b = _profiles(fa, la, num_classes), _profiles(fb, lb, num_classes)
    return _column_cosine(a, b)


def _profile_centred_over_units(fa, la, fb, lb, num_classes=10):
    a, b = _profiles(fa, la, num_classes), _profiles(fb, lb, num_classes)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return _column_cosine(a, b)


def _profile_sums(fa, la, fb, lb, num_classes=10):
    a, b = _profiles(fa, la, num_classes, "sum"), _profiles(fb, lb, num_classes, "sum")
    a, b = a - a.mean(0), b - b.mean(0)
    return _column_cosine(a, b)


def _profile_per_class(fa, la, fb, lb, num_classes=10):
    a, b = _profiles(fa, la, num_classes).T, _profiles(fb, lb, num_classes).T  # (U, C): correlates classes
    a, b = a - a.mean(0), b - b.mean(0)
    return _column_cosine(a, b)


def _profile_nan_for_silent(fa, la, fb, lb, num_classes=10):
    a, b = _profiles(fa, la, num_classes), _profiles(fb, lb, num_classes)
    a, b = a - a.mean(0), b - b.mean(0)
    return _column_cosine(a, b, guard=False)


def _profile_examples_not_classes(fa, la, fb, lb, num_classes=10):
    a, b = fa - fa.mean(0), fb - fb.mean(0)  # no profiles: per-unit statistics of the raw activations
    return (a.std(0) * b.std(0)) / (a.std(0) * b.std(0)).clamp_min(1e-12)


_PROFILE_MISTAKES = [
    (_profile_cosine, "the profiles were not centred: a correlation subtracts each profile's mean over the "
     "classes first (without it you get their cosine)"),
    (_profile_centred_over_units, "centre each unit's profile over the classes (dim 0 of the (C, U) "
     "profiles), not each class over the units"),
    (_profile_sums, "a profile is the *mean* activation per class; sums weigh classes by how many examples "
     "they have"),
    (_profile_per_class, "that is one correlation per class (across units); the question is per unit: "
     "correlate each unit's ten class means in one domain with its ten in the other"),
    (_profile_nan_for_silent, "a silent unit (a constant profile) gives 0/0 = NaN: return 0 for it"),
    (_profile_examples_not_classes, "the profiles are the per-class means of each unit: group the examples "
     "by their labels first"),
]


def _check_profile_correlation(fn) -> int:
    g = torch.Generator().manual_seed(0)

    def domains(n_a: int, n_b: int, units: int, classes: int, dtype=torch.float32, silent: bool = False):
        # unbalanced classes (class c about c + 1 times as common), every class present in both domains;
        # domain b's units respond partly like a's (a shared tuning plus noise)
        tuning = torch.rand(classes, units, generator=g, dtype=dtype)

        def draw(n):
            weights = torch.arange(1, classes + 1, dtype=torch.float)
            labels = torch.cat([torch.arange(classes), torch.multinomial(weights, n - classes, True, generator=g)])
            labels = labels[torch.randperm(n, generator=g)]
            return torch.relu(tuning[labels] + 0.5 * torch.randn(n, units, generator=g, dtype=dtype)), labels

        (fa, la), (fb, lb) = draw(n_a), draw(n_b)
        if silent:
            fb[:, 0] = 0.0
        return fa, la, fb, lb, classes

    cases = [
        ("features_a (60, 7) and features_b (45, 7), 4 classes of unequal size", domains(60, 45, 7, 4)),
        ("features_a (80, 5) and features_b (90, 5), 10 classes, float64", domains(80, 90, 5, 10, torch.float64)),
        ("features (50, 6) and (70, 6), 3 classes, unit 0 silent in domain b", domains(50, 70, 6, 3, silent=True)),
        ("features (30, 3) and (30, 3): as many units as classes", domains(30, 30, 3, 3)),
    ]
    return check_cases(fn, alignment.profile_correlation, cases, _PROFILE_MISTAKES)


register(Exercise("alignment.profile_correlation", _check_profile_correlation, alignment.profile_correlation,
                  _PROFILE_MISTAKES))

# ------------------------------------------------------------------- gradient_reversal


def _forward_and_gradient(fn: Callable) -> Callable:
    """A probe, as inside a network: h = 2 * leaf feeds fn and, directly, another branch.

    (x, weight, upstream, direct) -> (fn(h)'s output, the gradient at the leaf of
    sum(fn(h, weight) * upstream) + sum(h * direct)). Only the gradient that comes back
    through fn may be reversed; the other branch's (a label classifier's) must not be.
    """

    def probe(x, weight, upstream, direct):
        leaf = x.detach().clone().requires_grad_(True)
        h = 2 * leaf  # not a leaf: the output of a layer
        y = fn(h, weight)
        if not isinstance(y, torch.Tensor):
            return y, None
        if y.shape != x.shape:
            return y.detach(), None
        loss = (h * direct).sum()
        if y.requires_grad:  # detached, or built from numbers: no gradient comes back through y
            loss = loss + (y * upstream.to(y.dtype)).sum()
        (grad,) = torch.autograd.grad(loss, leaf)
        return y.detach() / 2, grad  # y / 2: the output compared with x itself

    return probe


def _reversal_reference(x, weight, upstream, direct):
    return x.clone(), 2 * (-weight * upstream + direct)


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


def _hook_on_input(x, weight):
    x.register_hook(lambda grad: -weight * grad)
    return x


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
    (_hook_on_input, "every gradient reaching x was reversed, also the one from x's other uses (in DANN, "
     "the label classifier's): a hook on x itself does that; reverse only the gradient that comes back "
     "through your function's output"),
]


def _check_gradient_reversal(fn) -> int:
    g = torch.Generator().manual_seed(0)
    cases = []
    for shape, weight, dtype in [((5,), 1.0, torch.float32), ((2, 3), 0.5, torch.float32),
                                 ((2, 3, 4), 2.0, torch.float64), ((4, 1), 0.0, torch.float32)]:
        x = torch.randn(*shape, generator=g, dtype=dtype)
        upstream = torch.randn(*shape, generator=g, dtype=dtype)
        direct = torch.randn(*shape, generator=g, dtype=dtype)
        description = (f"x of shape {shape} ({dtype}), the output of a layer that also feeds another branch, "
                       f"with weight = {weight} and random upstream gradients")
        cases.append((description, (x, weight, upstream, direct)))
    mistakes = [(_forward_and_gradient(wrong), hint) for wrong, hint in _REVERSAL_MISTAKES]
    return check_cases(_forward_and_gradient(fn), _reversal_reference, cases, mistakes,
                       what="(the output, the gradient that reaches the network's input)")


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
    cases.append(("progress = 0.3, gamma left at its default", (0.3,)))
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
    passed = check_cases(fn, alignment.domain_loss, cases, _DOMAIN_MISTAKES)
    # the domain classifier learns from this loss: its gradient must reach the logits
    source, target = cases[0][1][0].clone().requires_grad_(), cases[0][1][1].clone().requires_grad_()
    loss = call(fn, source, target, inputs=cases[0][0])
    if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
        raise Mismatch(f"on {cases[0][0]}, the value is right but no gradient reaches the logits: return a "
                       "tensor computed with torch from them (no .item(), .detach() or NumPy), so that the "
                       "domain classifier can learn from it")
    got = torch.autograd.grad(loss, (source, target), allow_unused=True)
    expected = torch.autograd.grad(alignment.domain_loss(source, target), (source, target))
    if any(g is None or not torch.allclose(g, e, atol=1e-6, rtol=1e-4) for g, e in zip(got, expected)):
        raise Mismatch(f"on {cases[0][0]}, the value is right but its gradient with respect to the logits is "
                       "not that of the binary cross-entropy: compute the loss from the logits themselves")
    return passed + 1


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


# ----------------------------------------------------------------------------------------
# Section 4: translation between languages without parallel text
# ----------------------------------------------------------------------------------------
# add_noise: its output is random, so the checker tests properties over many draws instead
# of comparing with the reference draw by draw.



def _noise_global_shuffle(tokens, generator, drop=0.1, k=3):
    kept = tokens[torch.rand(len(tokens), generator=generator) >= drop]
    kept = kept if len(kept) else tokens[:1]
    return kept[torch.randperm(len(kept), generator=generator)]


def _noise_fixed_rate(tokens, generator, drop=0.1, k=3):
    return alignment.add_noise(tokens, generator, drop=0.1, k=k)


def _noise_global_rng(tokens, generator, drop=0.1, k=3):
    return alignment.add_noise(tokens, torch.default_generator, drop=drop, k=k)


def _noise_same_positions(tokens, generator, drop=0.1, k=3):
    fixed = torch.Generator().manual_seed(0)  # a new generator each call: the same drops every time
    keep = torch.rand(len(tokens), generator=fixed) >= drop
    kept = tokens[keep] if keep.any() else tokens[:1]
    return alignment.add_noise(kept, generator, drop=0.0, k=k)


def _noise_k_off_by_one(tokens, generator, drop=0.1, k=3):
    return alignment.add_noise(tokens, generator, drop=drop, k=max(k - 1, 0))


def _noise_fixed_count(tokens, generator, drop=0.1, k=3):
    # round(drop * T) words dropped at random positions: the right rate, but no spread
    n_drop = min(round(drop * len(tokens)), len(tokens) - 1) if len(tokens) else 0
    kept = tokens[torch.randperm(len(tokens), generator=generator)[n_drop:].sort().values]
    return alignment.add_noise(kept, generator, drop=0.0, k=k)


def _noise_integer_keys(tokens, generator, drop=0.1, k=3):
    kept = tokens[torch.rand(len(tokens), generator=generator) >= drop]
    kept = kept if len(kept) or not len(tokens) else tokens[torch.randint(len(tokens), (1,), generator=generator)]
    keys = torch.arange(len(kept)) + torch.randint(0, k + 1, (len(kept),), generator=generator)
    return kept[keys.argsort(stable=True)]


def _noise_shared_uniform(tokens, generator, drop=0.1, k=3):
    u = torch.rand(len(tokens), generator=generator)  # one draw for both the drops and the keys
    keep = u >= drop
    if len(tokens) and not keep.any():
        keep[torch.randint(len(tokens), (1,), generator=generator)] = True
    kept, u = tokens[keep], u[keep]
    return kept[(torch.arange(len(kept)) + (k + 1) * u).argsort()]


_HINT_U_OF_K = "the keys are i + u_i with u_i ~ U(0, k + 1), not U(0, k)"
_HINT_INTEGER_KEYS = ("the u_i look like whole numbers (torch.randint): with integer keys, ties keep the original "
                      "order, so no word ever moves k positions; draw u_i from the continuous U(0, k + 1), "
                      "e.g. (k + 1) * torch.rand(n, generator=generator)")
_HINT_SHARED_UNIFORM = ("the keys reuse the random numbers that decided the drops (a kept word's number is always "
                        ">= drop, so the keys are not U(0, k + 1)); draw new random numbers for the keys")

_NOISE_MISTAKES = [
    (_noise_global_shuffle, "moved further than k"),
    (_noise_fixed_rate, "drop rate"),
    (_noise_global_rng, "global random generator"),
    (_noise_same_positions, "same positions"),
    (_noise_k_off_by_one, _HINT_U_OF_K),
    (_noise_fixed_count, "same number of words"),
    (_noise_integer_keys, "whole numbers"),
    (_noise_shared_uniform, "reuse the random numbers"),
]


def _displacements(tokens: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
    """Distinct tokens (T,), one noisy output (T',) -> each output word's displacement (T',),
    counted among the surviving words, so that drops before or after the shuffle both count 0."""
    position = {t: i for i, t in enumerate(tokens.tolist())}
    original = torch.tensor([position[t] for t in noisy.tolist()], dtype=torch.int64)
    rank = original.argsort().argsort()  # where each word would stand without the shuffle
    return torch.arange(len(noisy)) - rank


def _displacement_histogram(fn, tokens, seed, drop, k, draws, draw=None) -> tuple[torch.Tensor, int]:
    """The frequencies of the displacements -k..k over ``draws`` outputs of fn, and the largest |displacement|."""
    g = torch.Generator().manual_seed(seed)
    moves = torch.cat([_displacements(tokens, draw(tokens, g, drop, k) if draw else fn(tokens, g, drop, k))
                       for _ in range(draws)])
    return (moves[:, None] == torch.arange(-k, k + 1)).float().mean(0), moves.abs().max().item()


def _check_add_noise(fn) -> int:
    import random

    import numpy as np

    checks = 0

    def draw(tokens, seed_or_generator, drop, k, what):
        g = seed_or_generator
        if isinstance(g, int):
            g = torch.Generator().manual_seed(g)
        given = tokens.clone()
        inputs = f"{what} (tokens {describe(tokens)}, drop={drop}, k={k})"
        out = call(fn, given, g, drop, k, inputs=inputs)
        if not torch.equal(given, tokens):
            raise Mismatch(f"on {inputs}, your function changed its input `tokens` in place; work on a copy "
                           "(index with a mask or a permutation, which makes a new tensor)")
        if not isinstance(out, torch.Tensor):
            raise Mismatch(f"on {inputs}, the result should be a torch tensor, got {describe(out)}")
        if out.dim() != 1 or out.dtype != tokens.dtype or out.device != tokens.device:
            raise Mismatch(f"on {inputs}, the result should be a 1-D tensor of dtype {tokens.dtype} on "
                           f"{tokens.device}, like the input; got {describe(out)} on {out.device}")
        counts_in = torch.bincount(tokens.long(), minlength=1000)
        if (out < 0).any() or (out >= 1000).any() or (torch.bincount(out.long(), minlength=1000) > counts_in).any():
            raise Mismatch(f"on {inputs}, the result {out.tolist()} is not the input {tokens.tolist()} minus some "
                           "dropped words: keep only the input's words, each as often as it occurs at most")
        if len(tokens) and not len(out):
            raise Mismatch(f"on {inputs}, the result is empty: when every word is dropped, keep one of them")
        return out

    def draw_alone(tokens, seed, drop, k, what):
        """One draw that must use `generator` only: torch's, Python's and NumPy's global generators stay as they are."""
        states = torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()
        out = draw(tokens, seed, drop, k, what)
        if not torch.equal(states[0], torch.get_rng_state()):
            raise Mismatch(f"with drop={drop}, your function drew numbers from torch's global random generator "
                           "(torch.rand or torch.randint without generator=...): pass generator=generator to "
                           "every random function")
        if states[1] != random.getstate() or not np.array_equal(states[2], np.random.get_state()[1]):
            raise Mismatch(f"with drop={drop}, your function drew numbers from Python's `random` module or NumPy's "
                           "global generator: draw every random number from `generator`, e.g. "
                           "torch.randint(n, (1,), generator=generator)")
        if not torch.equal(out, draw(tokens, seed, drop, k, what + ", again with a generator of the same seed")):
            raise Mismatch(f"with drop={drop}, two generators with the same seed gave different outputs: draw "
                           "every random number from `generator` (e.g. torch.rand(n, generator=generator))")
        return out

    # 1. Random number sources: the generator is used, the global ones are not (also when every word is dropped).
    sentence = torch.arange(100, 130)
    first = draw_alone(sentence, 7, 0.2, 3, "a sentence of 30 distinct words")
    for seed in range(8):
        draw_alone(sentence[:5], seed, 1.0, 2, "drop=1 (every word dropped)")
    others = [draw(sentence, seed, 0.2, 3, f"the same sentence with seed {seed}") for seed in range(1, 6)]
    if all(torch.equal(first, o) for o in others):
        raise Mismatch("six generators with different seeds all gave the same output: the noise must depend on "
                       "the generator's random numbers")
    checks += 3

    # 2. drop=0 and k=0 give the sentence back; drop=0 keeps every word; an empty sentence stays empty.
    repeated = torch.tensor([5, 5, 7, 7, 7, 9, 5, 2, 11, 7])
    for tokens in (sentence, repeated, torch.tensor([4]), torch.tensor([3, 1], dtype=torch.int32)):
        for k in (0, 3):
            out = draw(tokens, k, 0.0, k, f"drop=0 and k={k}")
            if len(out) != len(tokens):
                raise Mismatch(f"with drop=0 no word may be dropped, but {tokens.tolist()} became {out.tolist()}: "
                               "the drop rate must follow the argument `drop`")
            if k == 0 and not torch.equal(out, tokens):
                raise Mismatch(f"with drop=0 and k=0 no word may move, but {tokens.tolist()} became "
                               f"{out.tolist()}: words moved further than k; shuffle locally, by sorting the "
                               "positions i by i + u_i with u_i ~ U(0, k + 1)")
    for drop in (0.0, 0.5, 1.0):
        draw(torch.tensor([], dtype=torch.int64), 0, drop, 3, "an empty sentence")  # must not fail
    checks += 3

    # 3. The drop rate, position by position, and the spread of the number dropped per draw (binomial).
    g = torch.Generator().manual_seed(11)
    for p in (0.1, 0.3, 0.6):
        dropped, per_draw = torch.zeros(20), []
        draws = 600
        for _ in range(draws):
            out = draw(sentence[:20], g, p, 0, f"drop={p} with k=0")
            lost = ~torch.isin(sentence[:20], out)
            dropped += lost
            per_draw.append(lost.sum().item())
        rate = dropped / draws
        if ((rate == 0) | (rate == 1)).all():
            raise Mismatch(f"with drop={p}, some positions are dropped every time and the others never "
                           f"(rates {rate.numpy().round(2).tolist()}): the same positions are dropped in every "
                           "draw; drop each word independently, with random numbers from `generator`")
        if abs(rate.mean().item() - p) > 0.025:
            raise Mismatch(f"with drop={p}, the words were dropped at a drop rate of {rate.mean().item():.3f} "
                           f"over {draws} draws; each word should be dropped with probability {p}")
        # independent drops: the number dropped is Binomial(20, p), variance 20 p (1 - p); the estimate over
        # 600 draws is within about 6% of it, so 0.7..1.4 leaves more than five standard deviations
        spread = torch.tensor(per_draw, dtype=torch.float64).var().item() / (20 * p * (1 - p))
        if not 0.7 < spread < 1.4:
            same = len(set(per_draw)) == 1
            raise Mismatch(f"with drop={p}, the number of words dropped from 20 varied with a variance of "
                           f"{spread * 20 * p * (1 - p):.2f} over {draws} draws, but independent drops give "
                           f"20 p (1 - p) = {20 * p * (1 - p):.2f}"
                           + (f": the same number of words, {per_draw[0]}, was dropped every time; decide for "
                              "each word on its own, with its own random number" if same else ""))
    checks += 2

    # 4. Never empty: one word survives, a random one.
    kept = [draw(sentence[:5], seed, 1.0, 2, "drop=1 (every word dropped)") for seed in range(40)]
    if any(len(o) != 1 for o in kept):
        raise Mismatch("with drop=1 every word is dropped; keep exactly one of them, chosen at random")
    if len({o.item() for o in kept}) == 1:
        raise Mismatch("with drop=1 the word kept is always the same one; choose it at random (with the generator)")
    checks += 1

    # 5. The shuffle: no word moves more than k, and the displacements -k..k are distributed as the
    # reference's. A known mistake's hint is given only when the displacements match its own.
    for k, drop in ((3, 0.0), (1, 0.0), (3, 0.3), (5, 0.1)):
        what = f"k={k}, drop={drop}"
        have, reach = _displacement_histogram(
            fn, sentence[:20], 200 + k, drop, k, 1500, draw=lambda t, g, d, k_, what=what: draw(t, g, d, k_, what))
        if reach > k:
            raise Mismatch(f"with k={k} a word moved further than k: by {reach} positions (counted among the "
                           "words kept); shuffle locally, by sorting the positions i by i + u_i with "
                           "u_i ~ U(0, k + 1)")
        want, _ = _displacement_histogram(alignment.add_noise, sentence[:20], 100 + k, drop, k, 1500)
        # with drop > 0 only the reach is required: shuffling before dropping is fine too, and it shrinks
        # the displacements counted among the words kept
        if reach == k and (drop > 0 or (have - want).abs().sum() / 2 <= 0.05):
            continue
        # the first two mistakes fail with drop=0 already, the third only once words are dropped
        suspects = ([(_noise_k_off_by_one, _HINT_U_OF_K), (_noise_integer_keys, _HINT_INTEGER_KEYS)] if drop == 0
                    else [(_noise_shared_uniform, _HINT_SHARED_UNIFORM)])
        matches = []
        for mistake, mistake_hint in suspects:
            theirs, _ = _displacement_histogram(mistake, sentence[:20], 300 + k, drop, k, 1500)
            if (have - theirs).abs().sum() / 2 <= 0.03 and (theirs - want).abs().sum() / 2 > 0.05:
                matches.append(mistake_hint)
        raise Mismatch(f"with {what}, the displacements -k..k of the kept words occur with frequencies "
                       f"{[round(x, 3) for x in have.tolist()]}, but sorting the positions i by i + u_i with "
                       f"u_i ~ U(0, k + 1) gives about {[round(x, 3) for x in want.tolist()]}"
                       + (f" (no word ever moved by k = {k} positions)" if reach < k else "")
                       + (f". Hint: {matches[0]}" if len(matches) == 1 else ""))
    return checks + 4


register(Exercise("alignment.add_noise", _check_add_noise, alignment.add_noise, _NOISE_MISTAKES))
