"""Hidden tests of chapter 1's exercises, with the plausible mistakes each must catch.

Each checker compares the reader's function with the worked solution in
:mod:`dlpt.practice` on chosen inputs; when the answer matches a known mistake on every
case, the failure message names it. The exercises that involve randomness are checked
statistically (range, spread, independence, order) and for their use of the generator.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dlpt import practice
from dlpt.check import Exercise, Mismatch, call, check_cases, compare, describe, is_number, register

# --------------------------------------------------------------------- standardize


def _standardize_cases() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x_train = torch.randn(10, 3, generator=g) * torch.tensor([1.0, 50.0, 0.01]) + torch.tensor([5.0, -3.0, 100.0])
    x_test = torch.randn(4, 3, generator=g) * 3 + 7  # another distribution: its own statistics differ
    constant = torch.cat([x_train[:, :2], torch.full((10, 1), 4.0)], dim=1)
    constant_test = torch.cat([x_test[:, :2], torch.full((4, 1), 4.5)], dim=1)
    wide_train = torch.randn(7, 5, generator=g) * torch.tensor([2.0, 0.5, 1.0, 8.0, 3.0]) - 1
    wide_test = torch.randn(9, 5, generator=g) * 2 + 1
    wide_test[:, 1] = 0.25  # constant in the test set only: nothing special for the training statistics
    small = torch.cat([x_train[:, :2], 4.0 + 0.002 * torch.randn(10, 1, generator=g)], dim=1)
    return [
        ("x_train (10, 3) with features on very different scales, x_test (4, 3)", x_train, x_test),
        ("x_train (10, 3) whose last feature is constant (4.0), x_test (4, 3)", constant, constant_test),
        ("x_train (7, 5), x_test (9, 5) whose feature 1 is constant in the test set only", wide_train, wide_test),
        ("x_train (10, 3) whose last feature varies very little (standard deviation about 0.002), x_test (4, 3)",
         small, constant_test),
    ]


def _standardize_with_test_statistics(x_train, x_test):
    return practice.standardize(x_train, x_train)[0], practice.standardize(x_test, x_test)[0]


def _standardize_unbiased(x_train, x_test):
    mean, std = x_train.mean(0), x_train.std(0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return (x_train - mean) / std, (x_test - mean) / std


def _standardize_pooled(x_train, x_test):
    both = torch.cat([x_train, x_test])
    out = practice.standardize(both, both)[0]
    return out[: len(x_train)], out[len(x_train):]


def _standardize_by_variance(x_train, x_test):
    mean, var = x_train.mean(0), x_train.var(0, correction=0)
    var = torch.where(var > 0, var, torch.ones_like(var))
    return (x_train - mean) / var, (x_test - mean) / var


def _standardize_zero_division(x_train, x_test):
    mean, std = x_train.mean(0), x_train.std(0, correction=0)
    return (x_train - mean) / std, (x_test - mean) / std


def _standardize_epsilon(x_train, x_test):
    mean, std = x_train.mean(0), x_train.std(0, correction=0)
    return (x_train - mean) / (std + 1e-8), (x_test - mean) / (std + 1e-8)


def _standardize_raw_moments(x_train, x_test):
    mean = x_train.mean(0)
    var = (x_train**2).mean(0) - mean**2  # E[x^2] - E[x]^2: cancels catastrophically
    std = var.clamp_min(0).sqrt()
    std = torch.where(std > 0, std, torch.ones_like(std))
    return (x_train - mean) / std, (x_test - mean) / std


_STANDARDIZE_MISTAKES = [
    (_standardize_with_test_statistics, "the test set was scaled with its own mean and standard "
     "deviation; use the training statistics for both (otherwise the test set leaks into preprocessing)"),
    (_standardize_pooled, "the statistics came from training and test data together; compute them "
     "on x_train alone"),
    (_standardize_unbiased, "you divided by the unbiased (N-1) standard deviation; use the population "
     "one, x_train.std(0, correction=0), as scikit-learn does"),
    (_standardize_by_variance, "you divided by the variance; divide by the standard deviation"),
    (_standardize_zero_division, "a constant feature has standard deviation 0: divide by 1 there "
     "instead, so it is only centred"),
    (_standardize_epsilon, "a constant feature must only be centred: where the standard deviation is 0 "
     "divide by 1, not by a tiny epsilon (that turns a small test-set offset into a huge value)"),
    (_standardize_raw_moments, "E[x²] - E[x]² loses every digit of a small variance around a large mean "
     "(the feature near 100 with spread 0.01); average the squared deviations ((x - mean)**2) instead"),
]


def _check_standardize(fn) -> int:
    cases = [(inputs, (x_train, x_test)) for inputs, x_train, x_test in _standardize_cases()]
    # A feature of standard deviation 0.01 around 100 loses three digits to float32 rounding.
    return check_cases(fn, practice.standardize, cases, _STANDARDIZE_MISTAKES, what="(train, test)", atol=5e-3)


register(Exercise("practice.standardize", _check_standardize, practice.standardize, _STANDARDIZE_MISTAKES))

# ------------------------------------------------------------------- cross_entropy


def _ce_no_max(logits, targets):
    log_normalizer = logits.exp().sum(1).log()
    return (log_normalizer - logits.gather(1, targets[:, None]).squeeze(1)).mean()


def _ce_sum(logits, targets):
    return practice.cross_entropy(logits, targets) * len(targets)


def _ce_wrong_axis(logits, targets):
    log_normalizer = torch.logsumexp(logits, dim=0)  # over the batch, not the classes
    return (log_normalizer[targets] - logits.gather(1, targets[:, None]).squeeze(1)).mean()


def _ce_no_minus(logits, targets):
    return -practice.cross_entropy(logits, targets)


def _ce_log_of_softmax(logits, targets):
    probabilities = torch.softmax(logits, dim=1)  # stable, but a tiny probability rounds to 0
    return -probabilities.log().gather(1, targets[:, None]).mean()


def _ce_mean_over_entries(logits, targets):
    one_hot = F.one_hot(targets, logits.shape[1]).to(logits.dtype)
    return -(one_hot * torch.log_softmax(logits, dim=1)).mean()


def _ce_max_not_added_back(logits, targets):
    m = logits.max(dim=1, keepdim=True).values
    log_normalizer = (logits - m).exp().sum(1).log()  # log sum exp(z - m): m is missing
    return (log_normalizer - logits.gather(1, targets[:, None]).squeeze(1)).mean()


def _ce_global_max(logits, targets):
    shifted = logits - logits.max()  # one maximum for the whole batch
    picked = shifted.gather(1, targets[:, None]).squeeze(1)
    return (shifted.exp().sum(dim=1).log() - picked).mean()


_CE_MISTAKES = [
    (_ce_sum, "you summed over the batch; take the mean"),
    (_ce_wrong_axis, "the softmax was normalised over the batch (dim 0); normalise over the classes (dim 1)"),
    (_ce_no_minus, "the sign is flipped: the loss is the *negative* log-likelihood"),
    (_ce_no_max, "exp overflows for large logits; subtract each row's maximum before exp "
     "(the log-sum-exp trick)"),
    (_ce_log_of_softmax, "the log of a probability that rounds to 0 is -inf: compute log-sum-exp minus "
     "the target's logit (or log_softmax) instead of log(softmax)"),
    (_ce_mean_over_entries, "you averaged over all B×K entries; average the B per-example losses"),
    (_ce_max_not_added_back, "after subtracting the maximum m, add it back (log Σ exp z = m + log Σ exp(z - m)), "
     "or subtract it from the target's logit too"),
    (_ce_global_max, "subtract each row's own maximum (logits.max(dim=1, keepdim=True)), not the largest logit "
     "of the whole batch: a row far below it underflows to exp(...) = 0"),
]


def _cross_entropy_cases() -> list[tuple[str, tuple[torch.Tensor, torch.Tensor]]]:
    g = torch.Generator().manual_seed(1)
    return [
        ("logits (4, 3), targets (4,)", (torch.randn(4, 3, generator=g), torch.tensor([0, 2, 1, 2]))),
        ("logits (8, 10) of size about 5, targets (8,)",
         (5 * torch.randn(8, 10, generator=g), torch.randint(0, 10, (8,), generator=g))),
        ("logits (5, 5), targets (5,)", (2 * torch.randn(5, 5, generator=g), torch.tensor([4, 0, 0, 3, 1]))),
        ("logits (3, 4) as large as 1000, targets (3,)", (torch.tensor(
            [[1000.0, 990.0, 0.0, -5.0], [-20.0, 980.0, 985.0, 1.0], [3.0, 2.0, 940.0, 950.0]]),
         torch.tensor([1, 2, 3]))),
        ("logits (2, 3) as large as 1000 whose targets' logits are 1000 below the row's largest, targets (2,)",
         (torch.tensor([[1000.0, 0.0, 990.0], [960.0, -40.0, 955.0]]), torch.tensor([1, 1]))),
        # Rows whose largest logits lie 1000 apart: shifting every row by the overall maximum
        # sends the second row's exponentials to 0 and its loss to inf.
        ("logits (2, 2): one row near 1000, one near 0, targets (2,)",
         (torch.tensor([[1000.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1]))),
    ]


def _check_cross_entropy(fn) -> int:
    return check_cases(fn, practice.cross_entropy, _cross_entropy_cases(), _CE_MISTAKES, what="the loss",
                       atol=1e-4)


register(Exercise("practice.cross_entropy", _check_cross_entropy, practice.cross_entropy, _CE_MISTAKES))

# ------------------------------------------------------------------ early_stopping


def _stop_one_early(val_losses, patience):
    # e.g. `epoch - best >= patience - 1`: with patience 1 that happens to be right
    return practice.early_stopping(val_losses, max(1, patience - 1))


def _stop_one_late(val_losses, patience):
    # e.g. `epoch - best > patience`
    return practice.early_stopping(val_losses, patience + 1)


def _best_from_the_future(val_losses, patience):
    stop, _ = practice.early_stopping(val_losses, patience)
    return stop, min(range(len(val_losses)), key=lambda e: (val_losses[e], e))


def _ties_improve(val_losses, patience):
    # Lowering each loss by a hair more than the one before makes every tie an improvement.
    return practice.early_stopping([v - 1e-9 * e for e, v in enumerate(val_losses)], patience)


def _improves_on_previous(val_losses, patience):
    best, waited = 0, 0
    for epoch in range(1, len(val_losses)):
        if val_losses[epoch] < val_losses[epoch - 1]:  # better than the epoch before, not the best
            waited = 0
            if val_losses[epoch] < val_losses[best]:
                best = epoch
        else:
            waited += 1
            if waited == patience:
                return epoch, best
    return len(val_losses) - 1, best


def _count_not_reset(val_losses, patience):
    best, waited = 0, 0
    for epoch in range(1, len(val_losses)):
        if val_losses[epoch] < val_losses[best]:
            best = epoch  # the count of epochs without improvement is not reset
        else:
            waited += 1
            if waited == patience:
                return epoch, best
    return len(val_losses) - 1, best


def _counts_from_one(val_losses, patience):
    stop, best = practice.early_stopping(val_losses, patience)
    return stop + 1, best + 1


def _returns_best_loss(val_losses, patience):
    stop, best = practice.early_stopping(val_losses, patience)
    return stop, val_losses[best]


def _runs_past_the_end(val_losses, patience):
    best, waited = 0, 0
    for epoch in range(1, len(val_losses)):
        if val_losses[epoch] < val_losses[best]:
            best, waited = epoch, 0
        else:
            waited += 1
            if waited == patience:
                return epoch, best
    return len(val_losses), best  # one past the last epoch


_STOP_MISTAKES = [
    (_stop_one_early, "you stop one epoch too early: stop when `patience` epochs in a row have "
     "not improved, counting the epoch you stop at"),
    (_stop_one_late, "you stop one epoch too late: the epoch that completes `patience` epochs "
     "without improvement is the one to stop at"),
    (_best_from_the_future, "the best epoch was chosen among all epochs, including ones after "
     "training stopped; only epochs up to the stop are known"),
    (_ties_improve, "a loss equal to the best so far is not an improvement; improvement must be "
     "strictly lower"),
    (_improves_on_previous, "an epoch improves when its loss is below the best so far, not merely "
     "below the epoch before it"),
    (_count_not_reset, "reset the count of epochs without improvement to 0 whenever an epoch improves"),
    (_counts_from_one, "epochs count from 0: val_losses[0] is epoch 0"),
    (_returns_best_loss, "return the best epoch's number, not its loss"),
    (_runs_past_the_end, "when patience never runs out, training ends at the last epoch, "
     "len(val_losses) - 1"),
]

_STOP_CASES = [
    ([1.0, 0.8, 0.6, 0.7, 0.65, 0.9, 0.5, 0.4], 3),   # stops at 5, before the later 0.5 and 0.4
    ([1.0, 0.9, 0.8, 0.7, 0.6], 2),                    # never stops early
    ([0.5, 0.5, 0.5, 0.5, 0.4], 2),                    # ties are not improvements
    ([2.0, 1.0, 1.5, 1.2, 0.9, 1.1, 1.3, 1.4, 1.0], 2),
    ([1.0, 1.1, 0.9, 1.0, 0.95, 0.8, 0.85], 2),        # the count restarts after the improvement at 2
    ([0.9, 0.7, 0.8, 0.6, 0.75, 0.72, 0.71, 0.74], 1),
    ([1.0, 1.2, 1.1], 5),                              # patience longer than the run
    ([0.3], 1),                                        # a single epoch
    ([1.0, 0.99, 0.98, 0.97, 0.96], 2),               # tiny improvements are improvements
]


def _check_early_stopping(fn) -> int:
    cases = [(f"val_losses={losses}, patience={patience}", (list(losses), patience))
             for losses, patience in _STOP_CASES]
    return check_cases(fn, practice.early_stopping, cases, _STOP_MISTAKES, what="(stopped_at, best)",
                       atol=1e-9, rtol=0.0)


register(Exercise("practice.early_stopping", _check_early_stopping, practice.early_stopping, _STOP_MISTAKES))

# ---------------------------------------------------------- randomness, shared checks

_REPEAT_HINT = ("draw every random number from `generator` (torch.rand(n, generator=generator)), "
                "so that a search can be repeated exactly")
_ADVANCE_HINT = ("take the random numbers from the generator's current state: do not re-seed it, "
                 "create a new generator or fix a seed inside the function")


def _ks_distance(u: torch.Tensor) -> float:
    """Kolmogorov-Smirnov distance of samples ``u: (n,)`` from the uniform distribution on [0, 1)."""
    u = u.sort().values
    n = len(u)
    above = torch.arange(1, n + 1, dtype=torch.float64) / n - u
    below = u - torch.arange(0, n, dtype=torch.float64) / n
    return max(above.max().item(), below.max().item())


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    scale = (a.norm() * b.norm()).item()
    return (a @ b).item() / scale if scale > 0 else 1.0


def _check_log_uniform_samples(samples: torch.Tensor, low: float, high: float, inputs: str, what: str,
                               hint: str) -> None:
    """Raise Mismatch unless ``samples: (n,)`` look like independent log-uniform draws on [low, high)."""
    n = len(samples)
    if samples.min() < low * (1 - 1e-6) or samples.max() > high * (1 + 1e-6):
        raise Mismatch(f"on {inputs}, {what} range over [{samples.min():.3g}, {samples.max():.3g}], "
                       f"outside [{low:g}, {high:g}){hint}")
    if n < 100:
        return
    if samples.unique().numel() < n // 2:
        raise Mismatch(f"on {inputs}, only {samples.unique().numel()} distinct values of {n} came out "
                       f"for {what}{hint}")
    u = (samples.log() - math.log(low)) / (math.log(high) - math.log(low))  # uniform on [0, 1) if right
    # The threshold is the 1-in-100,000 quantile of the distance for a right answer, plus slack.
    if _ks_distance(u) > 2.5 / math.sqrt(n) + 0.005:
        bottom, top = (u < 0.1).double().mean().item(), (u >= 0.9).double().mean().item()
        raise Mismatch(
            f"on {inputs}, log({what}) is not uniform on [log low, log high): {100 * bottom:.1f}% of them lie "
            f"in the lowest tenth of that range and {100 * top:.1f}% in the highest, where log-uniform "
            f"samples put 10% in each (their median is {samples.median().item():.3g}, log-uniform gives "
            f"about {math.sqrt(low * high):.3g}){hint}"
        )
    order = _correlation(torch.arange(n, dtype=torch.float64), u)
    if abs(order) > 5 / math.sqrt(n):
        raise Mismatch(f"on {inputs}, {what} are ordered (their correlation with their position is "
                       f"{order:.2f}): draw them independently and do not sort them{hint}")


# --------------------------------------------------------------------- log_uniform


def _uniform(low, high, n, generator):
    return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)


def _decades_only(low, high, n, generator):
    exponents = torch.randint(round(math.log10(low)), round(math.log10(high)) + 1, (n,), generator=generator)
    return (10.0 ** exponents).double()


def _ignores_generator(low, high, n, generator):
    return practice.log_uniform(low, high, n, torch.Generator().manual_seed(int(torch.randint(0, 2**31, ()))))


def _base_mixup(low, high, n, generator):
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    return 10 ** (math.log(low) + u * (math.log(high) - math.log(low)))


def _numpy_fixed_seed(low, high, n, generator):
    rng = np.random.default_rng(0)  # repeatable, but blind to the generator
    return torch.from_numpy(np.exp(rng.uniform(math.log(low), math.log(high), n)))


def _sorted_samples(low, high, n, generator):
    return practice.log_uniform(low, high, n, generator).sort().values


def _as_list(low, high, n, generator):
    return practice.log_uniform(low, high, n, generator).tolist()


_LOG_UNIFORM_MISTAKES = [
    (_uniform, "the samples are uniform, not log-uniform: almost all fall in the top decade; "
     "draw the exponent uniformly instead"),
    (_decades_only, "only whole powers of ten come out; draw the exponent from a continuous range"),
    (_ignores_generator, _REPEAT_HINT),
    (_base_mixup, "samples fall outside [low, high): natural log and base 10 are mixed"),
    (_numpy_fixed_seed, _ADVANCE_HINT),
    (_sorted_samples, "do not sort them"),
    (_as_list, "return a torch tensor of shape"),
]
_LOG_UNIFORM_CASES = [(1e-5, 1.0, 4000), (0.01, 100.0, 4000), (2.0, 3.0, 2000), (1e-3, 0.1, 1)]


def _log_uniform_sample(fn, low, high, n, generator, inputs) -> torch.Tensor:
    got = call(fn, low, high, n, generator, inputs=inputs)
    if not isinstance(got, torch.Tensor) or got.shape != (n,):
        raise Mismatch(f"on {inputs}, return a torch tensor of shape ({n},), got {describe(got)}")
    if not got.is_floating_point():
        raise Mismatch(f"on {inputs}, return a floating-point tensor, got dtype {got.dtype}")
    return got


def _check_log_uniform(fn) -> int:
    outputs = []
    for low, high, n in _LOG_UNIFORM_CASES:
        inputs = f"low={low:g}, high={high:g}, n={n}, a generator seeded with 0"
        got = _log_uniform_sample(fn, low, high, n, torch.Generator().manual_seed(0), inputs)
        again = _log_uniform_sample(fn, low, high, n, torch.Generator().manual_seed(0), inputs)
        if not torch.equal(got, again):
            raise Mismatch(f"on {inputs}, two calls with generators seeded alike gave different samples: "
                           + _REPEAT_HINT)
        outputs.append(got.double())
    # A hint only for an answer that gives a known mistake's samples on every case.
    hint = ""
    for wrong, message in _LOG_UNIFORM_MISTAKES[:4]:
        if wrong is _ignores_generator:
            continue
        expected = [wrong(low, high, n, torch.Generator().manual_seed(0)) for low, high, n in _LOG_UNIFORM_CASES]
        if all(e.shape == o.shape and torch.allclose(o, e.double(), rtol=1e-6) for e, o in zip(expected, outputs)):
            hint = f". Hint: {message}"
            break
    for (low, high, n), got in zip(_LOG_UNIFORM_CASES, outputs):
        inputs = f"low={low:g}, high={high:g}, n={n}, a generator seeded with 0"
        _check_log_uniform_samples(got, low, high, inputs, "the samples", hint)
    for (low, high, n), got in zip(_LOG_UNIFORM_CASES, outputs):
        inputs = f"low={low:g}, high={high:g}, n={n}"
        other = _log_uniform_sample(fn, low, high, n, torch.Generator().manual_seed(1),
                                    inputs + ", a generator seeded with 1")
        generator = torch.Generator().manual_seed(0)
        first = _log_uniform_sample(fn, low, high, n, generator, inputs)
        second = _log_uniform_sample(fn, low, high, n, generator, inputs + ", called twice")
        if torch.equal(got, other.double()) or torch.equal(first, second):
            raise Mismatch(f"on {inputs}, the samples do not change when the generator does (another seed, "
                           f"or a second call with the same generator): {_ADVANCE_HINT}")
    return len(_LOG_UNIFORM_CASES)


register(Exercise("practice.log_uniform", _check_log_uniform, practice.log_uniform, _LOG_UNIFORM_MISTAKES))

# ------------------------------------------------------------------- tune_and_test

# Each case: a description, the candidates, their validation and their test scores.
_TUNE_CASES: list[tuple[str, list, list[float], list[float]]] = [
    ("four learning rates", [0.001, 0.01, 0.1, 1.0], [0.80, 0.91, 0.88, 0.35], [0.83, 0.89, 0.92, 0.30]),
    ("four sizes, two of them tied on validation", ["small", "medium", "large", "huge"],
     [0.70, 0.90, 0.90, 0.60], [0.93, 0.85, 0.87, 0.61]),
    ("three dicts of hyperparameters", [{"lr": 0.1, "wd": 0.0}, {"lr": 0.01, "wd": 0.0}, {"lr": 0.01, "wd": 1e-4}],
     [0.50, 0.80, 0.75], [0.55, 0.70, 0.79]),
    ("one candidate", [3], [0.40], [0.42]),
    ("five widths scored by minus the validation loss (all scores below -1, a tie)", [8, 16, 32, 64, 128],
     [-2.5, -1.7, -1.3, -1.3, -2.2], [-2.4, -1.5, -1.35, -1.1, -2.0]),
]


def _same_candidate(a: Any, b: Any) -> bool:
    """Equal candidates: equal numbers, equal strings, or equal values of the same type (dicts...)."""
    if is_number(a) and is_number(b):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    return type(a) is type(b) and a == b


class _Scores:
    """``validate`` or ``test`` for one case: looks the candidate up and counts the calls."""

    def __init__(self, name: str, candidates: list, scores: list[float]):
        self.name, self.candidates, self.scores = name, copy.deepcopy(candidates), scores
        self.calls: list[Any] = []

    def __call__(self, candidate):
        self.calls.append(candidate)
        for c, score in zip(self.candidates, self.scores):
            if _same_candidate(c, candidate):
                return score
        raise ValueError(f"{self.name} was given {candidate!r}, which is not one of the candidates "
                         f"{self.candidates!r}; pass it a candidate itself, not its index or its score")


def _tune_by_test(candidates, validate, test):
    scores = [test(c) for c in candidates]
    best = candidates[scores.index(max(scores))]
    return best, test(best)


def _tune_tests_every_candidate(candidates, validate, test):
    tested = [test(c) for c in candidates]  # looked at, even though the choice is right
    scores = [validate(c) for c in candidates]
    i = scores.index(max(scores))
    return candidates[i], tested[i]


def _tune_last_on_ties(candidates, validate, test):
    scores = [validate(c) for c in candidates]
    i = max(i for i, s in enumerate(scores) if s == max(scores))
    return candidates[i], test(candidates[i])


def _tune_min(candidates, validate, test):
    scores = [validate(c) for c in candidates]
    best = candidates[scores.index(min(scores))]
    return best, test(best)


def _tune_returns_validation_score(candidates, validate, test):
    scores = [validate(c) for c in candidates]
    i = scores.index(max(scores))
    test(candidates[i])
    return candidates[i], scores[i]


def _tune_returns_index(candidates, validate, test):
    scores = [validate(c) for c in candidates]
    i = scores.index(max(scores))
    return i, test(candidates[i])


_TEST_ONCE = "call it exactly once, on the candidate chosen by validation"
_TUNE_MISTAKES = [
    (_tune_by_test, _TEST_ONCE),
    (_tune_tests_every_candidate, _TEST_ONCE),
    (_tune_last_on_ties, "on a tie, keep the first candidate with the highest validation score"),
    (_tune_min, "higher scores are better: take the candidate with the highest validation score, not the lowest"),
    (_tune_returns_validation_score, "return the chosen candidate's test score, not its validation score"),
    (_tune_returns_index, "return the chosen candidate itself, not its position in the list"),
]


def _tune_run(fn: Callable, candidates: list, val: list[float], tst: list[float], inputs: str):
    """Call ``fn`` on one case; return its answer, or raise Mismatch on a misuse of validate or test."""
    validate, test = _Scores("validate", candidates, val), _Scores("test", candidates, tst)
    given = copy.deepcopy(candidates)
    got = call(fn, given, validate, test, inputs=inputs)
    try:
        changed = given != candidates
    except RuntimeError:  # elements replaced by tensors
        changed = True
    if changed:
        raise Mismatch(f"on {inputs}, your function changed the list `candidates` in place (it became "
                       f"{given!r}); leave it as it is")
    if not test.calls:
        raise Mismatch(f"on {inputs}, test was never called; return the chosen candidate's test score, test(best)")
    if len(test.calls) != 1:
        raise Mismatch(
            f"on {inputs}, test was called {len(test.calls)} times; {_TEST_ONCE}: a test score that takes "
            "part in the choice, or is looked at for other candidates, leaks the test set into model selection"
        )
    if len(validate.calls) > len(candidates):
        raise Mismatch(f"on {inputs}, validate was called {len(validate.calls)} times for {len(candidates)} "
                       "candidates; each call trains a model, so call it once per candidate and keep the scores")
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        raise Mismatch(f"on {inputs}, return a pair (best, test_score), got {describe(got)}")
    return tuple(got)


def _same_answer(a: tuple, b: tuple) -> bool:
    return (_same_candidate(a[0], b[0]) and is_number(a[1]) and is_number(b[1])
            and math.isclose(a[1], b[1], rel_tol=1e-9, abs_tol=1e-12))


def _check_tune_and_test(fn) -> int:
    answers = []
    for description, candidates, val, tst in _TUNE_CASES:
        inputs = f"{description}: candidates {candidates!r}, validation scores {val}, test scores {tst}"
        answers.append((inputs, _tune_run(fn, candidates, val, tst, inputs)))
    hint = ""
    for wrong, message in _TUNE_MISTAKES:
        try:
            theirs = [wrong(c, _Scores("validate", c, v), _Scores("test", c, t)) for _, c, v, t in _TUNE_CASES]
        except Exception:
            continue
        if all(_same_answer(got, w) for (_, got), w in zip(answers, theirs)):
            hint = f". Hint: {message}"
            break
    for (inputs, (best, score)), (_, candidates, val, tst) in zip(answers, _TUNE_CASES):
        expected = practice.tune_and_test(candidates, _Scores("validate", candidates, val),
                                          _Scores("test", candidates, tst))
        if not _same_candidate(best, expected[0]):
            raise Mismatch(f"on {inputs}, the chosen candidate should be {expected[0]!r}, got {describe(best)}{hint}")
        if not is_number(score) and not (isinstance(score, torch.Tensor) and score.numel() == 1):
            raise Mismatch(f"on {inputs}, the test score should be a number, got {describe(score)}")
        if not math.isclose(float(score), expected[1], rel_tol=1e-9, abs_tol=1e-12):
            raise Mismatch(f"on {inputs}, the test score should be {expected[1]:g}, got {float(score):g}{hint}")
    return len(_TUNE_CASES)


register(Exercise("practice.tune_and_test", _check_tune_and_test, practice.tune_and_test, _TUNE_MISTAKES))

# ---------------------------------------------------------------------- train_step


def _check_loss_arguments(model, batch) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"loss_fn takes (model, batch), as the loss of dlpt.train.fit does; its first "
                        f"argument was {describe(model)}, not the model")
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        raise TypeError(f"loss_fn takes (model, batch) with batch = (x, y); its second argument was {describe(batch)}")


def _squared_error(model, batch):
    _check_loss_arguments(model, batch)
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def _classification(model, batch):
    _check_loss_arguments(model, batch)
    x, y = batch
    return F.cross_entropy(model(x), y)


def _step_scenario(which: int):
    """A fresh (description, model, optimizer, batches, loss_fn), with gradients left from before."""
    g = torch.Generator().manual_seed(10 + which)
    if which == 0:
        model = nn.Linear(3, 2).double()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        batches = [(torch.randn(5, 3, generator=g, dtype=torch.float64),
                    torch.randn(5, 2, generator=g, dtype=torch.float64)) for _ in range(4)]
        loss_fn = _squared_error
        description = "nn.Linear(3, 2), squared error, SGD(lr=0.05, momentum=0.9)"
    else:
        model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).double()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.5, weight_decay=0.01)
        batches = [(torch.randn(6, 4, generator=g, dtype=torch.float64),
                    torch.randint(0, 3, (6,), generator=g)) for _ in range(4)]
        loss_fn = _classification
        description = "a 4-6-3 MLP, cross-entropy, SGD(lr=0.1, momentum=0.5, weight_decay=0.01)"
    with torch.no_grad():  # the same initial weights every time
        for p in model.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=g, dtype=torch.float64))
    loss_fn(model, batches[0]).backward()  # gradients left over from an earlier computation
    return description + ", three batches; the model arrives holding gradients from an earlier backward", \
        model, optimizer, batches[1:], loss_fn


def _step_trajectory(fn: Callable, which: int, checked: bool) -> list[tuple[Any, dict[str, torch.Tensor]]]:
    """The loss ``fn`` returns and the parameters after each of three calls (checked: through call())."""
    description, model, optimizer, batches, loss_fn = _step_scenario(which)
    out = []
    for k, batch in enumerate(batches, start=1):
        inputs = f"{description}, call {k}"
        if checked:
            given = tuple(t.clone() for t in batch)
            got = call(fn, model, given, loss_fn, optimizer, inputs=inputs)
            if any(not torch.equal(a, b) for a, b in zip(batch, given)):
                raise Mismatch(f"on {inputs}, your function changed the batch in place; leave it as it is")
            if not model.training:
                raise Mismatch(f"on {inputs}, the model came back in eval mode; a training step leaves the "
                               "model in training mode (no model.eval() inside it)")
            if isinstance(got, torch.Tensor):
                raise Mismatch(f"on {inputs}, train_step returned {describe(got)}; return the loss as a Python "
                               "float, loss.item(): a list of loss tensors keeps every step's graph in memory")
            if not is_number(got):
                raise Mismatch(f"on {inputs}, train_step should return the loss as a Python float "
                               f"(loss.item()), got {describe(got)}")
        else:
            got = fn(model, batch, loss_fn, optimizer)
        out.append((got, {name: p.detach().clone() for name, p in model.named_parameters()}))
    return out


def _step_no_zero_grad(model, batch, loss_fn, optimizer):
    loss = loss_fn(model, batch)
    loss.backward()
    optimizer.step()
    return loss.item()


def _step_zero_grad_at_end(model, batch, loss_fn, optimizer):
    loss = loss_fn(model, batch)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return loss.item()


def _step_zero_grad_after_backward(model, batch, loss_fn, optimizer):
    loss = loss_fn(model, batch)
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
    return loss.item()


def _step_before_backward(model, batch, loss_fn, optimizer):
    optimizer.zero_grad()
    loss = loss_fn(model, batch)
    optimizer.step()
    loss.backward()
    return loss.item()


def _step_forgotten(model, batch, loss_fn, optimizer):
    optimizer.zero_grad()
    loss = loss_fn(model, batch)
    loss.backward()
    return loss.item()


def _step_returns_tensor(model, batch, loss_fn, optimizer):
    optimizer.zero_grad()
    loss = loss_fn(model, batch)
    loss.backward()
    optimizer.step()
    return loss


def _step_loss_after_the_step(model, batch, loss_fn, optimizer):
    practice.train_step(model, batch, loss_fn, optimizer)
    with torch.no_grad():
        return loss_fn(model, batch).item()


_NEVER_MOVED = ("the parameters never changed: call optimizer.step() right after loss.backward(), with no "
                "zero_grad() in between (a step before backward, or after zeroing, finds no gradients)")
_STEP_MISTAKES = [
    (_step_no_zero_grad, "gradients accumulate: backward adds to .grad, so call optimizer.zero_grad() "
     "before loss.backward() in every step"),
    (_step_zero_grad_at_end, "the model came in holding gradients from an earlier backward pass: zero them "
     "at the start of the step, before loss.backward(), not only at its end"),
    (_step_zero_grad_after_backward, _NEVER_MOVED),
    (_step_before_backward, _NEVER_MOVED),
    (_step_forgotten, _NEVER_MOVED),
    (_step_returns_tensor, "loss.item()"),
    (_step_loss_after_the_step, "return the loss you back-propagated, computed before the step"),
]


def _same_trajectory(a, b) -> bool:
    for (loss_a, params_a), (loss_b, params_b) in zip(a, b):
        if not (is_number(loss_a) and is_number(loss_b) and math.isclose(loss_a, loss_b, rel_tol=1e-6)):
            return False
        if any(not torch.allclose(params_a[k], params_b[k], rtol=1e-6, atol=1e-9) for k in params_b):
            return False
    return True


def _check_train_step(fn) -> int:
    scenarios = (0, 1)
    got = [_step_trajectory(fn, which, checked=True) for which in scenarios]
    known = []
    for wrong, message in _STEP_MISTAKES:
        try:
            theirs = [_step_trajectory(wrong, which, checked=False) for which in scenarios]
        except Exception:
            continue
        if all(_same_trajectory(g, w) for g, w in zip(got, theirs)):
            known.append((theirs, message))
    count = 0
    for s, which in enumerate(scenarios):
        expected = _step_trajectory(practice.train_step, which, checked=False)
        description = _step_scenario(which)[0]
        for k, ((loss, params), (loss_ref, params_ref)) in enumerate(zip(got[s], expected), start=1):
            inputs = f"{description}, call {k}"
            hints = [(w[s][k - 1][0], message) for w, message in known]
            compare(loss, torch.tensor(loss_ref, dtype=torch.float64), inputs=inputs, what="the loss returned",
                    atol=1e-9, rtol=1e-6, mistakes=hints)
            for name, value in params_ref.items():
                hints = [(w[s][k - 1][1][name], message) for w, message in known]
                compare(params[name], value, inputs=inputs, what=f"the parameter {name!r} after the step",
                        atol=1e-9, rtol=1e-6, mistakes=hints)
            count += 1
    return count


register(Exercise("practice.train_step", _check_train_step, practice.train_step, _STEP_MISTAKES))

# ------------------------------------------------------------------- random_points

_RANDOM_POINTS_CASES: list[tuple[dict[str, tuple[float, float]], int]] = [
    ({"lr": (1e-5, 1.0), "weight_decay": (1e-4, 1e-1), "dropout": (0.05, 0.5)}, 2000),
    ({"a": (0.01, 100.0), "b": (0.01, 100.0)}, 1500),
    ({"lr": (1e-3, 1e-1)}, 3),
]
_OWN_DRAWS = "draw each hyperparameter with its own random numbers"
_ONE_DICT_PER_TRIAL = "return a list of n dicts, one dict per trial"


def _points_shared_draw(space, n, generator):
    u = torch.rand(n, generator=generator, dtype=torch.float64)  # one draw for every hyperparameter
    return [{name: math.exp(math.log(lo) + u[i].item() * (math.log(hi) - math.log(lo)))
             for name, (lo, hi) in space.items()} for i in range(n)]


def _points_uniform(space, n, generator):
    columns = {name: (lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)).tolist()
               for name, (lo, hi) in space.items()}
    return [{name: columns[name][i] for name in space} for i in range(n)]


def _points_ignore_generator(space, n, generator):
    return practice.random_points(space, n, torch.Generator().manual_seed(int(torch.randint(0, 2**31, ()))))


def _points_dict_of_lists(space, n, generator):
    return {name: practice.log_uniform(lo, hi, n, generator).tolist() for name, (lo, hi) in space.items()}


def _points_tensors(space, n, generator):
    columns = {name: practice.log_uniform(lo, hi, n, generator) for name, (lo, hi) in space.items()}
    return [{name: columns[name][i] for name in space} for i in range(n)]


_RANDOM_POINTS_MISTAKES = [
    (_points_shared_draw, _OWN_DRAWS),
    (_points_uniform, "the values are uniform, not log-uniform: draw each exponent uniformly"),
    (_points_ignore_generator, _REPEAT_HINT),
    (_points_dict_of_lists, _ONE_DICT_PER_TRIAL),
    (_points_tensors, "a Python float"),
]


def _points(fn, space, n, seed, inputs, generator=None) -> list[dict[str, float]]:
    given = copy.deepcopy(space)
    generator = generator if generator is not None else torch.Generator().manual_seed(seed)
    got = call(fn, given, n, generator, inputs=inputs)
    if given != space:
        raise Mismatch(f"on {inputs}, your function changed `space` in place; leave it as it is")
    if isinstance(got, dict):
        raise Mismatch(f"on {inputs}, {_ONE_DICT_PER_TRIAL} ({{name: value}}), got a dict of "
                       f"{', '.join(repr(k) for k in list(got)[:3])}")
    if not isinstance(got, (list, tuple)) or len(got) != n:
        raise Mismatch(f"on {inputs}, {_ONE_DICT_PER_TRIAL}, got {describe(got)}")
    for i, point in enumerate(got):
        if not isinstance(point, dict) or set(point) != set(space):
            raise Mismatch(f"on {inputs}, trial {i} should be a dict with the keys {sorted(space)}, "
                           f"got {describe(point)}")
        for name, value in point.items():
            if not is_number(value):
                raise Mismatch(f"on {inputs}, the value of {name!r} in trial {i} should be a Python float "
                               f"(use .item() or .tolist()), got {describe(value)}")
    return list(got)


def _columns(points: list[dict[str, float]], space) -> dict[str, torch.Tensor]:
    return {name: torch.tensor([float(p[name]) for p in points], dtype=torch.float64) for name in space}


def _check_random_points(fn) -> int:
    answers = []
    for space, n in _RANDOM_POINTS_CASES:
        inputs = f"space={space}, n={n}, a generator seeded with 0"
        got = _columns(_points(fn, space, n, 0, inputs), space)
        again = _columns(_points(fn, space, n, 0, inputs), space)
        if any(not torch.equal(got[k], again[k]) for k in space):
            raise Mismatch(f"on {inputs}, two calls with generators seeded alike gave different points: "
                           + _REPEAT_HINT)
        answers.append(got)
    hint = ""
    wrong, message = _RANDOM_POINTS_MISTAKES[1]  # the one mistake whose points are deterministic and pass above
    theirs = [_columns(wrong(space, n, torch.Generator().manual_seed(0)), space) for space, n in _RANDOM_POINTS_CASES]
    if all(torch.allclose(a[k], t[k], rtol=1e-6) for a, t in zip(answers, theirs) for k in a):
        hint = f". Hint: {message}"
    for (space, n), got in zip(_RANDOM_POINTS_CASES, answers):
        inputs = f"space={space}, n={n}, a generator seeded with 0"
        for name, (low, high) in space.items():
            _check_log_uniform_samples(got[name], low, high, inputs, f"the values of {name!r}", hint)
        names = list(space)
        if n >= 100:
            for i, a in enumerate(names):
                for b in names[i + 1:]:
                    r = _correlation(got[a].log(), got[b].log())
                    if abs(r) > 5 / math.sqrt(n):
                        raise Mismatch(f"on {inputs}, {a!r} and {b!r} are correlated across trials (correlation "
                                       f"{r:.2f}), not independent: {_OWN_DRAWS}")
    for (space, n), got in zip(_RANDOM_POINTS_CASES, answers):
        inputs = f"space={space}, n={n}"
        other = _columns(_points(fn, space, n, 1, inputs + ", a generator seeded with 1"), space)
        generator = torch.Generator().manual_seed(0)
        first = _columns(_points(fn, space, n, 0, inputs, generator), space)
        second = _columns(_points(fn, space, n, 0, inputs + ", called twice", generator), space)
        if all(torch.equal(got[k], other[k]) for k in space) or all(torch.equal(first[k], second[k]) for k in space):
            raise Mismatch(f"on {inputs}, the points do not change when the generator does (another seed, or "
                           f"a second call with the same generator): {_ADVANCE_HINT}")
    return len(_RANDOM_POINTS_CASES)


register(Exercise("practice.random_points", _check_random_points, practice.random_points, _RANDOM_POINTS_MISTAKES))
