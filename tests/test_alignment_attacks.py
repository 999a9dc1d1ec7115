"""Wrong solutions a learner would write for chapter 5's exercises, and correct variants.

Each wrong one must be rejected (with the hint, where the checker knows the mistake);
each correct variant (another formulation, float64, a tensor instead of a float) must pass.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlpt import alignment, check
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


# ------------------------------------------------------------------- retrieval_precision


def cosine_loop(queries, query_labels, gallery, gallery_labels, k=5):
    hits = []
    for q, label in zip(queries, query_labels):
        similarity = F.cosine_similarity(q[None], gallery, dim=1)  # (G,)
        order = similarity.argsort(descending=True)[:k]
        hits.append((gallery_labels[order] == label).float().mean())
    return torch.stack(hits).mean()


RETRIEVAL_CORRECT = {
    "a loop over queries with cosine_similarity": cosine_loop,
    "a Python float": lambda q, ql, g, gl, k=5: float((gl[(F.normalize(q, dim=1) @ F.normalize(g, dim=1).T)
                                                        .topk(k).indices] == ql[:, None]).float().mean()),
    "norms divided by hand": lambda q, ql, g, gl, k=5: (gl[((q @ g.T) / q.norm(dim=1)[:, None] / g.norm(dim=1))
                                                         .topk(k, dim=1).indices] == ql[:, None]).double().mean(),
    "angles smallest first": lambda q, ql, g, gl, k=5: (gl[torch.arccos((F.normalize(q, dim=1) @ F.normalize(
        g, dim=1).T).clamp(-1, 1)).topk(k, largest=False).indices] == ql[:, None]).float().mean(),
}
RETRIEVAL_WRONG = {
    "Euclidean distance": (lambda q, ql, g, gl, k=5: (gl[torch.cdist(q, g).topk(k, largest=False).indices]
                                                      == ql[:, None]).float().mean(), "Euclidean"),
    "dot product": (lambda q, ql, g, gl, k=5: (gl[(q @ g.T).topk(k).indices] == ql[:, None]).float().mean(),
                    "plain dot product"),
    "least similar": (lambda q, ql, g, gl, k=5: (gl[(F.normalize(q, dim=1) @ F.normalize(g, dim=1).T)
                                                   .topk(k, largest=False).indices] == ql[:, None]).float().mean(),
                      "least* similar"),
    "normalized along the batch": (lambda q, ql, g, gl, k=5: (gl[(F.normalize(q, dim=0) @ F.normalize(g, dim=0).T)
                                                                .topk(k).indices] == ql[:, None]).float().mean(),
                                   "dim=1"),
    "hit rate": (lambda q, ql, g, gl, k=5: (gl[(F.normalize(q, dim=1) @ F.normalize(g, dim=1).T).topk(k).indices]
                                           == ql[:, None]).any(1).float().mean(), "at least one"),
    "k ignored": (lambda q, ql, g, gl, k=5: (gl[(F.normalize(q, dim=1) @ F.normalize(g, dim=1).T).argmax(1)]
                                            == ql).float().mean(), "k nearest"),
    "a count, not a share": (lambda q, ql, g, gl, k=5: (gl[(F.normalize(q, dim=1) @ F.normalize(g, dim=1).T)
                                                          .topk(k).indices] == ql[:, None]).float().sum(1).mean(),
                             "expected"),
}


# ------------------------------------------------------------------- profile_correlation


def corrcoef_loop(fa, la, fb, lb, num_classes=10):
    a = torch.stack([fa[la == c].mean(0) for c in range(num_classes)])
    b = torch.stack([fb[lb == c].mean(0) for c in range(num_classes)])
    out = []
    for u in range(a.shape[1]):
        r = torch.corrcoef(torch.stack([a[:, u], b[:, u]]))[0, 1]
        out.append(torch.nan_to_num(r, nan=0.0))
    return torch.stack(out)


def numpy_profiles(fa, la, fb, lb, num_classes=10):
    a = np.stack([fa.numpy()[la.numpy() == c].mean(0) for c in range(num_classes)])
    b = np.stack([fb.numpy()[lb.numpy() == c].mean(0) for c in range(num_classes)])
    a, b = a - a.mean(0), b - b.mean(0)
    den = np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0)
    return torch.from_numpy(np.divide((a * b).sum(0), den, out=np.zeros_like(den), where=den > 0))


def index_add_profiles(fa, la, fb, lb, num_classes=10):
    def profile(f, labels):
        sums = torch.zeros(num_classes, f.shape[1], dtype=f.dtype).index_add_(0, labels, f)
        return sums / torch.bincount(labels, minlength=num_classes)[:, None]
    a, b = profile(fa, la), profile(fb, lb)
    a, b = (a - a.mean(0)) / a.std(0), (b - b.mean(0)) / b.std(0)  # z-scores, then the mean product
    return torch.nan_to_num((a * b).sum(0) / (num_classes - 1), nan=0.0)


PROFILE_CORRECT = {"torch.corrcoef per unit": corrcoef_loop, "NumPy": numpy_profiles,
                   "index_add_ and z-scores": index_add_profiles}


def _profile_from(centre_dim=0, reduce="mean", transpose=False, guard=True):
    def wrong(fa, la, fb, lb, num_classes=10):
        def profile(f, labels):
            rows = [f[labels == c] for c in range(num_classes)]
            return torch.stack([r.sum(0) if reduce == "sum" else r.mean(0) for r in rows])
        a, b = profile(fa, la), profile(fb, lb)
        if transpose:
            a, b = a.T, b.T
        if centre_dim is not None:
            a, b = a - a.mean(centre_dim, keepdim=True), b - b.mean(centre_dim, keepdim=True)
        den = a.norm(dim=0) * b.norm(dim=0)
        return (a * b).sum(0) / (den.clamp_min(1e-12) if guard else den)
    return wrong


PROFILE_WRONG = {
    "cosine, not correlation": (_profile_from(centre_dim=None), "not centred"),
    "centred over the units": (_profile_from(centre_dim=1), "not each class over the units"),
    "class sums": (_profile_from(reduce="sum"), "*mean* activation per class"),
    "one correlation per class": (_profile_from(transpose=True), "one correlation per class"),
    "NaN for a silent unit": (_profile_from(guard=False), "return 0 for it"),
    "correlation of raw activations, example by example": (
        lambda fa, la, fb, lb, num_classes=10: torch.nan_to_num(torch.stack([torch.corrcoef(torch.stack(
            [fa[: min(len(fa), len(fb)), u], fb[: min(len(fa), len(fb)), u]]))[0, 1] for u in range(fa.shape[1])])),
        "expected"),
    "labels of domain a used for both": (
        lambda fa, la, fb, lb, num_classes=10: _profile_from()(fa, la, fb, la[: len(fb)] if len(la) >= len(fb)
                                                                else torch.cat([la, lb[len(la):]]), num_classes),
        "expected"),
}


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
    "a hook on the input": (lambda x, weight=1.0: (x.register_hook(lambda g: -weight * g), x)[1],
                            "a hook on x itself"),
    "a hook on the input, then a view": (lambda x, weight=1.0: (x.register_hook(lambda g: -weight * g),
                                                                 x.view_as(x))[1], "a hook on x itself"),
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
    "a default gamma of 1": (lambda p, gamma=1.0: 2 / (1 + math.exp(-gamma * p)) - 1, "expected"),
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
    "a Python float": (lambda s, t: F.binary_cross_entropy_with_logits(
        torch.cat([s, t]), torch.cat([torch.zeros_like(s), torch.ones_like(t)])).item(), "no gradient reaches"),
    "detached": (lambda s, t: F.binary_cross_entropy_with_logits(
        torch.cat([s, t]), torch.cat([torch.zeros_like(s), torch.ones_like(t)])).detach(), "no gradient reaches"),
    "NumPy": (lambda s, t: float(np.mean(np.concatenate([np.logaddexp(0, s.detach().numpy()),
                                                           np.logaddexp(0, -t.detach().numpy())]))),
              "no gradient reaches"),
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

# ------------------------------------------------------------------- Section 4: add_noise


def noise_shuffle_then_drop(tokens, generator, drop=0.1, k=3):
    keys = torch.arange(len(tokens)) + (k + 1) * torch.rand(len(tokens), generator=generator)
    shuffled = tokens[keys.argsort()]
    keep = torch.rand(len(tokens), generator=generator) >= drop
    if len(tokens) and not keep.any():
        keep[torch.randint(len(tokens), (1,), generator=generator)] = True
    return shuffled[keep]


def noise_loop(tokens, generator, drop=0.1, k=3):
    kept = [t for t in tokens.tolist() if torch.rand(1, generator=generator).item() >= drop]
    if not kept and len(tokens):
        kept = [tokens[torch.randint(len(tokens), (1,), generator=generator)].item()]
    keys = [i + torch.empty(1).uniform_(0, k + 1, generator=generator).item() for i in range(len(kept))]
    order = sorted(range(len(kept)), key=keys.__getitem__)
    return torch.tensor([kept[i] for i in order], dtype=tokens.dtype)


def noise_bernoulli(tokens, generator, drop=0.1, k=3):
    keep = torch.bernoulli(torch.full((len(tokens),), 1 - drop), generator=generator).bool()
    if len(tokens) and not keep.any():
        keep[torch.randint(len(tokens), (), generator=generator)] = True
    kept = tokens[keep]
    return kept[torch.sort(torch.arange(len(kept)) + torch.rand(len(kept), generator=generator) * (k + 1)).indices]


def noise_in_place(tokens, generator, drop=0.1, k=3):
    out = alignment.add_noise(tokens, generator, drop, k)
    tokens[: len(out)] = out
    return out


def noise_every_nth(tokens, generator, drop=0.1, k=3):
    period = max(1, round(1 / drop)) if drop > 0 else len(tokens) + 1
    kept = tokens[torch.arange(len(tokens)) % period != period - 1]
    return alignment.add_noise(kept if len(kept) else tokens[:1], generator, 0.0, k)


def noise_may_be_empty(tokens, generator, drop=0.1, k=3):
    kept = tokens[torch.rand(len(tokens), generator=generator) >= drop]
    return kept[(torch.arange(len(kept)) + (k + 1) * torch.rand(len(kept), generator=generator)).argsort()]


def noise_fixed_count(tokens, generator, drop=0.1, k=3):
    n_drop = min(round(drop * len(tokens)), len(tokens) - 1) if len(tokens) else 0
    kept = tokens[torch.randperm(len(tokens), generator=generator)[n_drop:].sort().values]
    return kept[(torch.arange(len(kept)) + (k + 1) * torch.rand(len(kept), generator=generator)).argsort()]


def noise_keep_one_with(pick):
    """The right noise, except that the word kept when all are dropped is chosen by ``pick(n)``."""

    def noise(tokens, generator, drop=0.1, k=3):
        keep = torch.rand(len(tokens), generator=generator) >= drop
        if len(tokens) and not keep.any():
            keep[pick(len(tokens))] = True
        kept = tokens[keep]
        return kept[(torch.arange(len(kept)) + (k + 1) * torch.rand(len(kept), generator=generator)).argsort()]

    return noise


def noise_shared_uniform(tokens, generator, drop=0.1, k=3):
    u = torch.rand(len(tokens), generator=generator)
    keep = u >= drop
    if len(tokens) and not keep.any():
        keep[torch.randint(len(tokens), (1,), generator=generator)] = True
    return tokens[keep][(torch.arange(int(keep.sum())) + (k + 1) * u[keep]).argsort()]


def noise_integer_keys(tokens, generator, drop=0.1, k=3):
    keep = torch.rand(len(tokens), generator=generator) >= drop
    if len(tokens) and not keep.any():
        keep[torch.randint(len(tokens), (1,), generator=generator)] = True
    kept = tokens[keep]
    keys = torch.arange(len(kept)) + torch.randint(0, k + 1, (len(kept),), generator=generator)
    return kept[torch.sort(keys, stable=True).indices]


def noise_fails_on_empty(tokens, generator, drop=0.1, k=3):
    keep = torch.rand(len(tokens), generator=generator) >= drop
    if not keep.any():  # no guard for an empty sentence: randint(0, ...) raises
        keep[torch.randint(len(tokens), (1,), generator=generator)] = True
    kept = tokens[keep]
    return kept[(torch.arange(len(kept)) + (k + 1) * torch.rand(len(kept), generator=generator)).argsort()]


NOISE_CORRECT = {
    "the reference": lambda t, g, drop=0.1, k=3: alignment.add_noise(t, g, drop, k),
    "shuffle first, then drop": noise_shuffle_then_drop,
    "a Python loop": noise_loop,
    "bernoulli and sort": noise_bernoulli,
}

NOISE_WRONG = {
    "a global shuffle": (lambda t, g, drop=0.1, k=3: alignment.add_noise(t, g, drop, len(t) + 5),
                         "moved further than k"),
    "a permutation ignoring k": (lambda t, g, drop=0.1, k=3: t[torch.randperm(len(t), generator=g)],
                                 "moved further than k"),
    "the drop rate fixed at 0.1": (lambda t, g, drop=0.1, k=3: alignment.add_noise(t, g, 0.1, k), "drop rate"),
    "the keep probability used as the drop probability": (
        lambda t, g, drop=0.1, k=3: alignment.add_noise(t, g, 1 - drop, k), "drop rate"),
    "torch.rand without the generator": (lambda t, g, drop=0.1, k=3: alignment.add_noise(
        t, torch.default_generator, drop, k), "global random generator"),
    "a generator of its own": (lambda t, g, drop=0.1, k=3: alignment.add_noise(
        t, torch.Generator().manual_seed(0), drop, k), "same output"),
    "every n-th word dropped": (noise_every_nth, "same positions"),
    "U(0, k) instead of U(0, k + 1)": (lambda t, g, drop=0.1, k=3: alignment.add_noise(t, g, drop, max(k - 1, 0)),
                                       "not U(0, k)"),
    "a fixed number of words dropped": (noise_fixed_count, "same number of words"),
    "the word kept at drop=1 from torch's global generator": (
        noise_keep_one_with(lambda n: torch.randint(n, (1,))), "torch's global random generator"),
    "the word kept at drop=1 from Python's random": (
        noise_keep_one_with(lambda n: __import__("random").randrange(n)), "Python's `random`"),
    "one uniform for the drops and the keys": (noise_shared_uniform, "reuse the random numbers"),
    "integer keys and a stable sort": (noise_integer_keys, "whole numbers"),
    "fails on an empty sentence": (noise_fails_on_empty, "an empty sentence"),
    "an empty sentence": (noise_may_be_empty, "empty"),
    "changed in place": (noise_in_place, "in place"),
    "a list returned": (lambda t, g, drop=0.1, k=3: alignment.add_noise(t, g, drop, k).tolist(), "torch tensor"),
    "cast to float": (lambda t, g, drop=0.1, k=3: alignment.add_noise(t, g, drop, k).float(), "dtype"),
}



CORRECT = {"alignment.retrieval_precision": RETRIEVAL_CORRECT, "alignment.profile_correlation": PROFILE_CORRECT,
           "alignment.gradient_reversal": REVERSAL_CORRECT, "alignment.dann_weight": WEIGHT_CORRECT,
           "alignment.domain_loss": DOMAIN_CORRECT, "alignment.cycle_loss": CYCLE_CORRECT,
           "alignment.identity_loss": IDENTITY_CORRECT, "alignment.procrustes": PROCRUSTES_CORRECT}
CORRECT["alignment.add_noise"] = NOISE_CORRECT  # section 4
WRONG = {"alignment.retrieval_precision": RETRIEVAL_WRONG, "alignment.profile_correlation": PROFILE_WRONG,
         "alignment.gradient_reversal": REVERSAL_WRONG, "alignment.dann_weight": WEIGHT_WRONG,
         "alignment.domain_loss": DOMAIN_WRONG, "alignment.cycle_loss": CYCLE_WRONG,
         "alignment.identity_loss": IDENTITY_WRONG, "alignment.procrustes": PROCRUSTES_WRONG}
WRONG["alignment.add_noise"] = NOISE_WRONG  # section 4


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
