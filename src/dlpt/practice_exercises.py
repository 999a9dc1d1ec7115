"""Hidden tests of chapter 1's exercises, with the plausible mistakes each must catch.

Each checker compares the reader's function with the worked solution in
:mod:`dlpt.practice` on chosen inputs; when the answer matches a known mistake, the
failure message names it.
"""

from __future__ import annotations

import math

import torch

from dlpt import practice
from dlpt.check import Exercise, Mismatch, call, check_cases, compare, register

# --------------------------------------------------------------------- standardize


def _standardize_cases() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x_train = torch.randn(10, 3, generator=g) * torch.tensor([1.0, 50.0, 0.01]) + torch.tensor([5.0, -3.0, 100.0])
    x_test = torch.randn(4, 3, generator=g) * 3 + 7  # another distribution: its own statistics differ
    constant = torch.cat([x_train[:, :2], torch.full((10, 1), 4.0)], dim=1)
    constant_test = torch.cat([x_test[:, :2], torch.full((4, 1), 4.5)], dim=1)
    return [
        ("x_train (10, 3) with features on very different scales, x_test (4, 3)", x_train, x_test),
        ("x_train (10, 3) whose last feature is constant (4.0), x_test (4, 3)", constant, constant_test),
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


_CE_MISTAKES = [
    (_ce_sum, "you summed over the batch; take the mean"),
    (_ce_wrong_axis, "the softmax was normalised over the batch (dim 0); normalise over the classes (dim 1)"),
    (_ce_no_minus, "the sign is flipped: the loss is the *negative* log-likelihood"),
    (_ce_no_max, "exp overflows for large logits; subtract each row's maximum before exp "
     "(the log-sum-exp trick)"),
]


def _check_cross_entropy(fn) -> int:
    g = torch.Generator().manual_seed(1)
    cases = [
        ("logits (4, 3), targets (4,)", (torch.randn(4, 3, generator=g), torch.tensor([0, 2, 1, 2]))),
        ("logits (8, 10) of size about 5, targets (8,)",
         (5 * torch.randn(8, 10, generator=g), torch.randint(0, 10, (8,), generator=g))),
        ("logits (3, 4) as large as 1000, targets (3,)", (torch.tensor(
            [[1000.0, 990.0, 0.0, -5.0], [-20.0, 800.0, 805.0, 1.0], [3.0, 2.0, 1.0, 900.0]]),
         torch.tensor([1, 2, 3]))),
    ]
    return check_cases(fn, practice.cross_entropy, cases, _CE_MISTAKES, what="the loss", atol=1e-4)


register(Exercise("practice.cross_entropy", _check_cross_entropy, practice.cross_entropy, _CE_MISTAKES))

# ------------------------------------------------------------------ early_stopping


def _stop_one_early(val_losses, patience):
    return practice.early_stopping(val_losses, max(1, patience - 1)) if patience > 1 else (0, 0)


def _stop_one_late(val_losses, patience):
    stop, _ = practice.early_stopping(val_losses, patience + 1)
    return stop, practice.early_stopping(val_losses, patience)[1]


def _best_from_the_future(val_losses, patience):
    stop, _ = practice.early_stopping(val_losses, patience)
    return stop, min(range(len(val_losses)), key=lambda e: (val_losses[e], e))


def _ties_improve(val_losses, patience):
    # Lowering each loss by a hair more than the one before makes every tie an improvement.
    return practice.early_stopping([v - 1e-9 * e for e, v in enumerate(val_losses)], patience)


_STOP_MISTAKES = [
    (_stop_one_early, "you stop one epoch too early: stop when `patience` epochs in a row have "
     "not improved, counting the epoch you stop at"),
    (_stop_one_late, "you stop one epoch too late: the epoch that completes `patience` epochs "
     "without improvement is the one to stop at"),
    (_best_from_the_future, "the best epoch was chosen among all epochs, including ones after "
     "training stopped; only epochs up to the stop are known"),
    (_ties_improve, "a loss equal to the best so far is not an improvement; improvement must be "
     "strictly lower"),
]


def _check_early_stopping(fn) -> int:
    cases = [
        ([1.0, 0.8, 0.6, 0.7, 0.65, 0.9, 0.5, 0.4], 3),   # stops at 5, before the later 0.5 and 0.4
        ([1.0, 0.9, 0.8, 0.7, 0.6], 2),                    # never stops early
        ([0.5, 0.5, 0.5, 0.5, 0.4], 2),                    # ties are not improvements
        ([2.0, 1.0, 1.5, 1.2, 0.9, 1.1, 1.3, 1.4, 1.0], 2),
    ]
    for losses, patience in cases:
        inputs = f"val_losses={losses}, patience={patience}"
        got = call(fn, list(losses), patience, inputs=inputs)
        expected = practice.early_stopping(losses, patience)
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise Mismatch(f"on {inputs}, return a pair (stopped_at, best), got {got!r}")
        mistakes = [(wrong(losses, patience), hint) for wrong, hint in _STOP_MISTAKES]
        compare(tuple(int(v) for v in got), expected, inputs=inputs, what="(stopped_at, best)",
                mistakes=mistakes)
    return len(cases)


register(Exercise("practice.early_stopping", _check_early_stopping, practice.early_stopping, _STOP_MISTAKES))

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


_LOG_UNIFORM_MISTAKES = [
    (_uniform, "the samples are uniform, not log-uniform: almost all fall in the top decade; "
     "draw the exponent uniformly instead"),
    (_decades_only, "only whole powers of ten come out; draw the exponent from a continuous range"),
    (_ignores_generator, "the same generator state gave different samples: draw with "
     "torch.rand(..., generator=generator) so a search can be repeated"),
    (_base_mixup, "samples fall outside [low, high): natural log and base 10 are mixed"),
]


def _check_log_uniform(fn) -> int:
    cases = [(1e-5, 1.0, 4000), (0.01, 100.0, 4000), (2.0, 3.0, 2000)]
    for low, high, n in cases:
        inputs = f"low={low:g}, high={high:g}, n={n}, a generator seeded with 0"
        got = call(fn, low, high, n, torch.Generator().manual_seed(0), inputs=inputs)
        again = call(fn, low, high, n, torch.Generator().manual_seed(0), inputs=inputs)
        hint = ""
        for wrong, message in _LOG_UNIFORM_MISTAKES:
            if wrong is not _ignores_generator:
                candidate = wrong(low, high, n, torch.Generator().manual_seed(0))
                if isinstance(got, torch.Tensor) and got.shape == candidate.shape and torch.allclose(
                        got.double(), candidate, rtol=1e-6):
                    hint = f". Hint: {message}"
        if not isinstance(got, torch.Tensor) or got.shape != (n,):
            raise Mismatch(f"on {inputs}, return a tensor of shape ({n},), got "
                           f"{tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__}")
        if not torch.equal(got, again):
            raise Mismatch(f"on {inputs}, two calls with equally seeded generators differ. Hint: "
                           + _LOG_UNIFORM_MISTAKES[2][1])
        got = got.double()
        if got.min() < low * (1 - 1e-9) or got.max() >= high * (1 + 1e-9):
            raise Mismatch(f"on {inputs}, samples range over [{got.min():.3g}, {got.max():.3g}], "
                           f"outside [{low:g}, {high:g}){hint}")
        if got.unique().numel() < n // 2:
            raise Mismatch(f"on {inputs}, only {got.unique().numel()} distinct values came out of {n}{hint}")
        # Kolmogorov-Smirnov distance of the log-samples from the uniform distribution.
        u = ((got.log() - math.log(low)) / (math.log(high) - math.log(low))).sort().values
        ecdf = torch.arange(1, n + 1, dtype=torch.float64) / n
        distance = (ecdf - u).abs().max().item()
        if distance > 1.63 / math.sqrt(n) + 0.005:  # 1% significance, with some slack
            median = got.median().item()
            raise Mismatch(
                f"on {inputs}, log(sample) is not uniform on [log low, log high): the median sample "
                f"is {median:.3g}, log-uniform gives about {math.sqrt(low * high):.3g}{hint}"
            )
    return len(cases)


register(Exercise("practice.log_uniform", _check_log_uniform, practice.log_uniform, _LOG_UNIFORM_MISTAKES))
