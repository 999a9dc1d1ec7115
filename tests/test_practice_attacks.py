"""Attacks on chapter 1's checkers: plausible wrong answers each must reject, right variants each must accept.

Every wrong answer below is one a learner could write; the phrase beside it must appear in
the failure message (a hint when the answer makes a known mistake on every case, or the
checker's own description of what went wrong). The right variants (float64, a loop, numpy,
other correct formulations) must pass.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlpt import check, practice
from dlpt.check import ExerciseFailed


def accepts(name, fn):
    check.exercise(name, fn)


def rejects(name, fn, phrase=None, timeout=5.0):
    with pytest.raises(ExerciseFailed) as info:
        check.exercise(name, fn, timeout=timeout)
    message = str(info.value)
    if phrase is not None:
        assert phrase in message, message
    return message


EXERCISES = ["cross_entropy", "standardize", "early_stopping", "log_uniform", "tune_and_test", "train_step",
             "random_points"]


def params(table):
    return [pytest.param(*row[1:], id=row[0]) for row in table]


# ------------------------------------------------------------------- cross_entropy


def _pick(values, targets):
    return values.gather(1, targets[:, None]).squeeze(1)


def ce_clamped(logits, targets):
    z = logits.clamp(max=80.0)  # avoids the overflow, changes the loss
    return (z.exp().sum(1).log() - _pick(z, targets)).mean()


def ce_clamped_both_ways(logits, targets):
    z = logits.clamp(-50.0, 50.0)
    return (z.exp().sum(1).log() - _pick(z, targets)).mean()


def ce_in_place(logits, targets):
    logits -= logits.max(1, keepdim=True).values
    return (logits.exp().sum(1).log() - _pick(logits, targets)).mean()


def ce_gather_wrong_dim(logits, targets):
    return -F.log_softmax(logits, 1).gather(0, targets[:, None]).mean()


def ce_max_without_keepdim(logits, targets):
    z = logits - logits.max(1).values  # broadcasts along the wrong dimension
    return (z.exp().sum(1).log() - _pick(z, targets)).mean()


def ce_log_of_softmax(logits, targets):
    return -torch.softmax(logits, 1).log()[range(len(targets)), targets].mean()


def ce_log_of_clamped_softmax(logits, targets):
    return -torch.softmax(logits, 1).clamp_min(1e-12).log()[range(len(targets)), targets].mean()


def ce_global_max(logits, targets):
    z = logits - logits.max()  # one shift for the whole batch: also right on these inputs
    return (z.exp().sum(1).log() - _pick(z, targets)).mean()


def ce_naive_nan_to_num(logits, targets):
    return torch.nan_to_num(logits.exp().sum(1).log() - _pick(logits, targets)).mean()


def ce_sum(logits, targets):
    return F.cross_entropy(logits, targets, reduction="sum")


def ce_mean_over_entries(logits, targets):
    return -(F.one_hot(targets, logits.shape[1]) * F.log_softmax(logits, 1)).mean()


def ce_max_not_added_back(logits, targets):
    m = logits.max(1, keepdim=True).values
    return ((logits - m).exp().sum(1).log() - _pick(logits, targets)).mean()


def ce_per_example(logits, targets):
    return F.cross_entropy(logits, targets, reduction="none")


def ce_keepdim(logits, targets):
    return F.cross_entropy(logits, targets, reduction="none").mean(0, keepdim=True)


def ce_log10(logits, targets):
    m = logits.max(1, keepdim=True).values
    z = logits - m
    return (z.exp().sum(1).log10() - _pick(z, targets) / math.log(10)).mean()


def ce_targets_as_one_hot(logits, targets):
    return -(targets * F.log_softmax(logits, 1)).sum(1).mean()


def ce_one_hot_without_num_classes(logits, targets):
    return -(F.one_hot(targets) * F.log_softmax(logits, 1)).sum(1).mean()


def ce_index_columns(logits, targets):
    z = logits - logits.max(1, keepdim=True).values
    return (z.exp().sum(1).log() - z[:, targets]).mean()


def ce_min_shift(logits, targets):
    z = logits - logits.min(1, keepdim=True).values
    return (z.exp().sum(1).log() - _pick(z, targets)).mean()


def ce_wrong_axis(logits, targets):
    return -F.log_softmax(logits, 0).gather(1, targets[:, None]).mean()


def ce_no_minus(logits, targets):
    return F.log_softmax(logits, 1).gather(1, targets[:, None]).mean()


def ce_naive(logits, targets):
    return (logits.exp().sum(1).log() - _pick(logits, targets)).mean()


def ce_sum_on_one_case_only(logits, targets):
    loss = F.cross_entropy(logits, targets)
    return loss * len(targets) if logits.shape == (4, 3) else loss


CE_WRONG = [
    ("clamp instead of shift", ce_clamped, "is wrong"),
    ("clamp both ways", ce_clamped_both_ways, "is wrong"),
    ("shift in place", ce_in_place, "in place"),
    ("log_softmax gathered along dim 0", ce_gather_wrong_dim, None),
    ("max without keepdim", ce_max_without_keepdim, None),
    ("log of softmax", ce_log_of_softmax, "instead of log(softmax)"),
    ("log of clamped softmax", ce_log_of_clamped_softmax, "is wrong"),
    ("naive then nan_to_num", ce_naive_nan_to_num, "non-finite"),
    ("global max", ce_global_max, "each row's own maximum"),
    ("sum over the batch", ce_sum, "take the mean"),
    ("mean over B x K entries", ce_mean_over_entries, "all B×K entries"),
    ("max not added back", ce_max_not_added_back, "add it back"),
    ("per-example losses", ce_per_example, "shape ()"),
    ("shape (1,)", ce_keepdim, "shape ()"),
    ("log base 10", ce_log10, "is wrong"),
    ("targets used as one-hot", ce_targets_as_one_hot, None),
    ("targets index columns", ce_index_columns, "is wrong"),
    ("one_hot without num_classes", ce_one_hot_without_num_classes, "raised RuntimeError"),
    ("shift by the minimum", ce_min_shift, "non-finite"),
    ("normalised over the batch", ce_wrong_axis, "dim 0"),
    ("sign flipped", ce_no_minus, "sign is flipped"),
    ("naive", ce_naive, "log-sum-exp trick"),
]


@pytest.mark.parametrize(("fn", "phrase"), params(CE_WRONG))
def test_cross_entropy_rejects(fn, phrase):
    rejects("practice.cross_entropy", fn, phrase)


def test_cross_entropy_hint_needs_the_mistake_on_every_case():
    message = rejects("practice.cross_entropy", ce_sum_on_one_case_only, "is wrong")
    assert "Hint" not in message


def ce_loop(logits, targets):
    total = 0.0
    for row, y in zip(logits.tolist(), targets.tolist()):
        m = max(row)
        total += m + math.log(sum(math.exp(v - m) for v in row)) - row[y]
    return torch.tensor(total / len(logits))


def ce_float64(logits, targets):
    z = logits.double()
    z = z - z.max(1, keepdim=True).values
    return (z.exp().sum(1).log() - _pick(z, targets)).mean()


def ce_numpy(logits, targets):
    z = logits.numpy().astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    rows = np.arange(len(z))
    return torch.tensor(np.mean(np.log(np.exp(z).sum(axis=1)) - z[rows, targets.numpy()]))


def ce_logsumexp(logits, targets):
    return (torch.logsumexp(logits, 1) - _pick(logits, targets)).mean()


def ce_nll(logits, targets):
    return F.nll_loss(F.log_softmax(logits, dim=1), targets)


def ce_python_float(logits, targets):
    return F.cross_entropy(logits, targets).item()


def ce_targets_as_list(logits, targets):
    return -F.log_softmax(logits, 1)[list(range(len(targets))), targets.tolist()].mean()


CE_RIGHT = [
    ("reference", practice.cross_entropy),
    ("torch", F.cross_entropy),
    ("python loop", ce_loop),
    ("float64", ce_float64),
    ("numpy", ce_numpy),
    ("logsumexp", ce_logsumexp),
    ("nll of log_softmax", ce_nll),
    ("python float", ce_python_float),
    ("targets as a list", ce_targets_as_list),
]


@pytest.mark.parametrize("fn", params(CE_RIGHT))
def test_cross_entropy_accepts(fn):
    accepts("practice.cross_entropy", fn)


# --------------------------------------------------------------------- standardize


def st_in_place(x_train, x_test):
    mean, std = x_train.mean(0), x_train.std(0, correction=0)
    std[std == 0] = 1
    x_train -= mean
    return x_train / std, (x_test - mean) / std


def st_in_place_test(x_train, x_test):
    mean, std = x_train.mean(0), x_train.std(0, correction=0)
    std[std == 0] = 1
    return (x_train - mean) / std, x_test.sub_(mean).div_(std)


def st_rows(x_train, x_test):
    def scale(x):
        std = x.std(1, keepdim=True, correction=0)
        return (x - x.mean(1, keepdim=True)) / torch.where(std > 0, std, torch.ones_like(std))
    return scale(x_train), scale(x_test)


def st_dim1_train_stats(x_train, x_test):
    mean, std = x_train.mean(1, keepdim=True), x_train.std(1, keepdim=True, correction=0)
    return (x_train - mean) / std, (x_test - mean) / std


def st_unbiased(x_train, x_test):
    mean, std = x_train.mean(0), x_train.std(0)
    std[std == 0] = 1
    return (x_train - mean) / std, (x_test - mean) / std


def st_own_statistics(x_train, x_test):
    def scale(x):
        std = x.std(0, correction=0)
        return (x - x.mean(0)) / torch.where(std > 0, std, torch.ones_like(std))
    return scale(x_train), scale(x_test)


def st_pooled(x_train, x_test):
    both = torch.cat([x_train, x_test])
    mean, std = both.mean(0), both.std(0, correction=0)
    std[std == 0] = 1
    return (x_train - mean) / std, (x_test - mean) / std


def st_epsilon(x_train, x_test):
    mean, std = x_train.mean(0), x_train.std(0, correction=0)
    return (x_train - mean) / (std + 1e-8), (x_test - mean) / (std + 1e-8)


def st_clamp(x_train, x_test):
    mean, std = x_train.mean(0), x_train.std(0, correction=0).clamp_min(1e-8)
    return (x_train - mean) / std, (x_test - mean) / std


def st_zero_division(x_train, x_test):
    mean, std = x_train.mean(0), x_train.std(0, correction=0)
    return (x_train - mean) / std, (x_test - mean) / std


def st_raw_moments(x_train, x_test):
    mean = x_train.mean(0)
    std = ((x_train**2).mean(0) - mean**2).clamp_min(0).sqrt()
    std = torch.where(std > 0, std, torch.ones_like(std))
    return (x_train - mean) / std, (x_test - mean) / std


def st_global(x_train, x_test):
    mean, std = x_train.mean(), x_train.std(correction=0)
    return (x_train - mean) / std, (x_test - mean) / std


def st_variance(x_train, x_test):
    mean, var = x_train.mean(0), x_train.var(0, correction=0)
    var[var == 0] = 1
    return (x_train - mean) / var, (x_test - mean) / var


def st_swapped(x_train, x_test):
    a, b = practice.standardize(x_train, x_test)
    return b, a


def st_test_only(x_train, x_test):
    return practice.standardize(x_train, x_test)[1]


def st_sklearn_arrays(x_train, x_test):
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x_train.numpy())
    return scaler.transform(x_train.numpy()), scaler.transform(x_test.numpy())


def st_test_std(x_train, x_test):
    mean = x_train.mean(0)
    std_train, std_test = x_train.std(0, correction=0), x_test.std(0, correction=0)
    std_train[std_train == 0] = 1
    std_test[std_test == 0] = 1
    return (x_train - mean) / std_train, (x_test - mean) / std_test


def st_min_max(x_train, x_test):
    low, high = x_train.min(0).values, x_train.max(0).values
    span = torch.where(high > low, high - low, torch.ones_like(high))
    return (x_train - low) / span, (x_test - low) / span


ST_WRONG = [
    ("x_train -= mean", st_in_place, "in place"),
    ("x_test changed in place", st_in_place_test, "in place"),
    ("statistics of each row", st_rows, None),
    ("statistics along dim 1", st_dim1_train_stats, None),
    ("unbiased std", st_unbiased, "unbiased (N-1)"),
    ("test set's own statistics", st_own_statistics, "its own mean"),
    ("pooled statistics", st_pooled, "together"),
    ("epsilon", st_epsilon, "tiny epsilon"),
    ("clamped std", st_clamp, "is wrong"),
    ("division by zero", st_zero_division, "divide by 1 there"),
    ("E[x^2] - E[x]^2 in float32", st_raw_moments, "E[x²] - E[x]²"),
    ("one mean and std for all features", st_global, "is wrong"),
    ("divided by the variance", st_variance, "divided by the variance"),
    ("train and test swapped", st_swapped, "shape"),
    ("only the test set", st_test_only, "tuple of 2"),
    ("numpy arrays", st_sklearn_arrays, "torch tensor"),
    ("test set's own std", st_test_std, "is wrong"),
    ("min-max scaling", st_min_max, "is wrong"),
]


@pytest.mark.parametrize(("fn", "phrase"), params(ST_WRONG))
def test_standardize_rejects(fn, phrase):
    rejects("practice.standardize", fn, phrase)


def st_float64(x_train, x_test):
    return practice.standardize(x_train.double(), x_test.double())


def st_loop(x_train, x_test):
    train, test = x_train.clone(), x_test.clone()
    for j in range(x_train.shape[1]):
        column = x_train[:, j].tolist()
        mean = sum(column) / len(column)
        std = math.sqrt(sum((v - mean) ** 2 for v in column) / len(column))
        std = std if std > 0 else 1.0
        train[:, j] = (x_train[:, j] - mean) / std
        test[:, j] = (x_test[:, j] - mean) / std
    return train, test


def st_numpy(x_train, x_test):
    a, b = x_train.numpy().astype(np.float64), x_test.numpy().astype(np.float64)
    mean, std = a.mean(axis=0), a.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return torch.from_numpy((a - mean) / std), torch.from_numpy((b - mean) / std)


def st_sklearn(x_train, x_test):
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x_train.numpy())
    return torch.from_numpy(scaler.transform(x_train.numpy())), torch.from_numpy(scaler.transform(x_test.numpy()))


def st_std_mean(x_train, x_test):
    std, mean = torch.std_mean(x_train, dim=0, correction=0)
    std = std.masked_fill(std == 0, 1.0)
    return (x_train - mean) / std, (x_test - mean) / std


def st_unbiased_false(x_train, x_test):
    mean, std = x_train.mean(0), x_train.std(0, unbiased=False)
    std[std == 0] = 1
    return (x_train - mean) / std, (x_test - mean) / std


def st_list(x_train, x_test):
    return list(practice.standardize(x_train, x_test))


ST_RIGHT = [
    ("reference", practice.standardize),
    ("float64", st_float64),
    ("python loop", st_loop),
    ("numpy", st_numpy),
    ("scikit-learn", st_sklearn),
    ("std_mean", st_std_mean),
    ("unbiased=False", st_unbiased_false),
    ("a list", st_list),
]


@pytest.mark.parametrize("fn", params(ST_RIGHT))
def test_standardize_accepts(fn):
    accepts("practice.standardize", fn)


# ------------------------------------------------------------------ early_stopping


def es_no_fallback(val_losses, patience):
    best, waited = 0, 0
    for epoch in range(1, len(val_losses)):
        if val_losses[epoch] < val_losses[best]:
            best, waited = epoch, 0
        else:
            waited += 1
            if waited == patience:
                return epoch, best
    return None  # forgot the run that never stops


def es_loop_variable_after_loop(val_losses, patience):
    best, waited = 0, 0
    for epoch in range(1, len(val_losses)):
        if val_losses[epoch] < val_losses[best]:
            best, waited = epoch, 0
        else:
            waited += 1
            if waited == patience:
                break
    return epoch, best  # noqa: F821 -- undefined after an empty loop (a single epoch)


def es_less_or_equal(val_losses, patience):
    best, waited = 0, 0
    for epoch in range(1, len(val_losses)):
        if val_losses[epoch] <= val_losses[best]:
            best, waited = epoch, 0
        else:
            waited += 1
            if waited == patience:
                return epoch, best
    return len(val_losses) - 1, best


def es_late(val_losses, patience):
    best = 0
    for epoch in range(1, len(val_losses)):
        if val_losses[epoch] < val_losses[best]:
            best = epoch
        elif epoch - best > patience:
            return epoch, best
    return len(val_losses) - 1, best


def es_early(val_losses, patience):
    best = 0
    for epoch in range(1, len(val_losses)):
        if val_losses[epoch] < val_losses[best]:
            best = epoch
        elif epoch - best >= patience - 1:
            return epoch, best
    return len(val_losses) - 1, best


def es_global_best(val_losses, patience):
    stop, _ = practice.early_stopping(val_losses, patience)
    return stop, int(np.argmin(val_losses))


def es_previous_epoch(val_losses, patience):
    best, waited = 0, 0
    for epoch in range(1, len(val_losses)):
        if val_losses[epoch] < val_losses[epoch - 1]:
            waited = 0
            if val_losses[epoch] < val_losses[best]:
                best = epoch
        else:
            waited += 1
            if waited == patience:
                return epoch, best
    return len(val_losses) - 1, best


def es_no_reset(val_losses, patience):
    best, waited = 0, 0
    for epoch in range(1, len(val_losses)):
        if val_losses[epoch] < val_losses[best]:
            best = epoch
        else:
            waited += 1
            if waited == patience:
                return epoch, best
    return len(val_losses) - 1, best


def es_one_based(val_losses, patience):
    best, waited = 1, 0
    for epoch in range(2, len(val_losses) + 1):
        if val_losses[epoch - 1] < val_losses[best - 1]:
            best, waited = epoch, 0
        else:
            waited += 1
            if waited == patience:
                return epoch, best
    return len(val_losses), best


def es_best_loss(val_losses, patience):
    stop, best = practice.early_stopping(val_losses, patience)
    return stop, val_losses[best]


def es_past_the_end(val_losses, patience):
    best, waited = 0, 0
    for epoch in range(1, len(val_losses)):
        if val_losses[epoch] < val_losses[best]:
            best, waited = epoch, 0
        else:
            waited += 1
            if waited == patience:
                return epoch, best
    return len(val_losses), best


def es_pops(val_losses, patience):
    best_loss, best, waited, epoch = val_losses.pop(0), 0, 0, 0
    while val_losses:
        epoch += 1
        loss = val_losses.pop(0)
        if loss < best_loss:
            best_loss, best, waited = loss, epoch, 0
        else:
            waited += 1
            if waited == patience:
                return epoch, best
    return epoch, best


def es_best_before_stop(val_losses, patience):
    stop, _ = practice.early_stopping(val_losses, patience)
    return stop, int(np.argmin(val_losses[:stop])) if stop > 0 else 0


def es_predicted_stop(val_losses, patience):
    best = int(np.argmin(val_losses))
    return min(best + patience, len(val_losses) - 1), best


ES_WRONG = [
    ("no return when it never stops", es_no_fallback, "tuple of 2"),
    ("loop variable after an empty loop", es_loop_variable_after_loop, "raised UnboundLocalError"),
    ("<= counts as improvement", es_less_or_equal, "strictly lower"),
    ("one epoch late", es_late, "one epoch too late"),
    ("one epoch early", es_early, "one epoch too early"),
    ("best among all epochs", es_global_best, "including ones after"),
    ("improvement over the previous epoch", es_previous_epoch, "not merely below the epoch before"),
    ("count not reset", es_no_reset, "reset the count"),
    ("epochs from 1", es_one_based, "count from 0"),
    ("loss instead of epoch", es_best_loss, "not its loss"),
    ("len(val_losses) when it never stops", es_past_the_end, "len(val_losses) - 1"),
    ("pops the list", es_pops, "in place"),
    ("best before the stop epoch", es_best_before_stop, "is wrong"),
    ("stop predicted from the global best", es_predicted_stop, "is wrong"),
]


@pytest.mark.parametrize(("fn", "phrase"), params(ES_WRONG))
def test_early_stopping_rejects(fn, phrase):
    rejects("practice.early_stopping", fn, phrase)


def es_list(val_losses, patience):
    return list(practice.early_stopping(val_losses, patience))


def es_distance_from_best(val_losses, patience):
    best = 0
    for epoch in range(1, len(val_losses)):
        if val_losses[epoch] < val_losses[best]:
            best = epoch
        if epoch - best == patience:
            return epoch, best
    return len(val_losses) - 1, best


def es_numpy(val_losses, patience):
    losses = np.asarray(val_losses)
    for epoch in range(len(losses)):
        best = int(np.argmin(losses[: epoch + 1]))  # the first minimum: ties are not improvements
        if epoch - best == patience:
            return np.int64(epoch), np.int64(best)
    return np.int64(len(losses) - 1), np.int64(int(np.argmin(losses)))


def es_while_inf(val_losses, patience):
    best_loss, best, waited, epoch = math.inf, -1, 0, -1
    while epoch + 1 < len(val_losses) and waited < patience:
        epoch += 1
        if val_losses[epoch] < best_loss:
            best_loss, best, waited = val_losses[epoch], epoch, 0
        else:
            waited += 1
    return epoch, best


ES_RIGHT = [
    ("reference", practice.early_stopping),
    ("a list", es_list),
    ("distance from the best", es_distance_from_best),
    ("numpy ints", es_numpy),
    ("while loop from inf", es_while_inf),
]


@pytest.mark.parametrize("fn", params(ES_RIGHT))
def test_early_stopping_accepts(fn):
    accepts("practice.early_stopping", fn)


# --------------------------------------------------------------------- log_uniform


def lu_numpy_fixed(low, high, n, generator):
    rng = np.random.default_rng(0)
    return torch.from_numpy(np.exp(rng.uniform(math.log(low), math.log(high), n)))


def lu_numpy_initial_seed(low, high, n, generator):
    rng = np.random.default_rng(generator.initial_seed())
    return torch.from_numpy(np.exp(rng.uniform(math.log(low), math.log(high), n)))


def lu_no_generator(low, high, n, generator):
    return torch.exp(math.log(low) + torch.rand(n) * (math.log(high) - math.log(low)))


def lu_global_seed(low, high, n, generator):
    torch.manual_seed(0)
    return torch.exp(math.log(low) + torch.rand(n) * (math.log(high) - math.log(low)))


def lu_reseeds(low, high, n, generator):
    generator.manual_seed(0)
    return practice.log_uniform(low, high, n, generator)


def lu_new_generator(low, high, n, generator):
    return practice.log_uniform(low, high, n, torch.Generator().manual_seed(42))


def lu_exp_of_log10(low, high, n, generator):
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    return torch.exp(math.log10(low) + u * (math.log10(high) - math.log10(low)))


def lu_pow10_of_ln(low, high, n, generator):
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    return 10 ** (math.log(low) + u * (math.log(high) - math.log(low)))


def lu_list(low, high, n, generator):
    return practice.log_uniform(low, high, n, generator).tolist()


def lu_uniform(low, high, n, generator):
    return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)


def lu_uniform_float32(low, high, n, generator):
    return low + (high - low) * torch.rand(n, generator=generator)


def lu_decades(low, high, n, generator):
    exponents = torch.randint(round(math.log10(low)), round(math.log10(high)) + 1, (n,), generator=generator)
    return 10.0**exponents


def lu_sorted(low, high, n, generator):
    return practice.log_uniform(low, high, n, generator).sort().values


def lu_logspace(low, high, n, generator):
    return torch.logspace(math.log10(low), math.log10(high), n + 1)[:-1]


def lu_one_draw(low, high, n, generator):
    return practice.log_uniform(low, high, 1, generator).repeat(n)


def lu_normal_exponent(low, high, n, generator):
    mid, spread = (math.log(low) + math.log(high)) / 2, (math.log(high) - math.log(low)) / 6
    return torch.exp(mid + spread * torch.randn(n, generator=generator)).clamp(low, high * 0.999)


def lu_column(low, high, n, generator):
    return practice.log_uniform(low, high, n, generator)[:, None]


def lu_forgot_exp(low, high, n, generator):
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    return math.log(low) + u * (math.log(high) - math.log(low))


def lu_python_random(low, high, n, generator):
    return torch.tensor([math.exp(random.uniform(math.log(low), math.log(high))) for _ in range(n)])


LU_WRONG = [
    ("numpy generator with a fixed seed", lu_numpy_fixed, "do not re-seed"),
    ("numpy seeded with initial_seed", lu_numpy_initial_seed, "do not re-seed"),
    ("torch.rand without the generator", lu_no_generator, "generators seeded alike"),
    ("torch.manual_seed inside", lu_global_seed, "do not re-seed"),
    ("re-seeds the generator", lu_reseeds, "do not re-seed"),
    ("a new generator", lu_new_generator, "do not re-seed"),
    ("exp of base-10 exponents", lu_exp_of_log10, "not uniform"),
    ("10 to natural-log exponents", lu_pow10_of_ln, "natural log and base 10 are mixed"),
    ("a list", lu_list, "return a torch tensor of shape"),
    ("uniform", lu_uniform, "uniform, not log-uniform"),
    ("uniform in float32", lu_uniform_float32, "not uniform on [log low, log high)"),
    ("whole decades", lu_decades, "whole powers of ten"),
    ("sorted", lu_sorted, "do not sort them"),
    ("evenly spaced", lu_logspace, None),
    ("one draw repeated", lu_one_draw, "distinct values"),
    ("normal exponent", lu_normal_exponent, "not uniform"),
    ("shape (n, 1)", lu_column, "shape ("),
    ("exp forgotten", lu_forgot_exp, "outside"),
    ("python's random", lu_python_random, "generators seeded alike"),
]


@pytest.mark.parametrize(("fn", "phrase"), params(LU_WRONG))
def test_log_uniform_rejects(fn, phrase):
    rejects("practice.log_uniform", fn, phrase)


def lu_float32(low, high, n, generator):
    u = torch.rand(n, generator=generator)
    return torch.exp(math.log(low) + u * (math.log(high) - math.log(low)))


def lu_uniform_(low, high, n, generator):
    return torch.empty(n, dtype=torch.float64).uniform_(math.log(low), math.log(high), generator=generator).exp()


def lu_base10(low, high, n, generator):
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    return 10 ** (math.log10(low) + u * (math.log10(high) - math.log10(low)))


def lu_power(low, high, n, generator):
    return low * (high / low) ** torch.rand(n, generator=generator, dtype=torch.float64)


def lu_numpy_from_generator(low, high, n, generator):
    rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))
    return torch.from_numpy(np.exp(rng.uniform(math.log(low), math.log(high), n)))


def lu_loop(low, high, n, generator):
    samples = []
    for _ in range(n):
        u = torch.rand(1, generator=generator).item()
        samples.append(math.exp(math.log(low) + u * (math.log(high) - math.log(low))))
    return torch.tensor(samples)


def lu_reciprocal(low, high, n, generator):
    return 1 / practice.log_uniform(1 / high, 1 / low, n, generator)  # log(1/x) uniform <=> log x uniform


LU_RIGHT = [
    ("reference", practice.log_uniform),
    ("float32", lu_float32),
    ("uniform_ on the exponent", lu_uniform_),
    ("base 10 throughout", lu_base10),
    ("low * (high/low)**u", lu_power),
    ("numpy seeded from the generator", lu_numpy_from_generator),
    ("python loop", lu_loop),
    ("reciprocal of a log-uniform sample", lu_reciprocal),
]


@pytest.mark.parametrize("fn", params(LU_RIGHT))
def test_log_uniform_accepts(fn):
    accepts("practice.log_uniform", fn)


# ------------------------------------------------------------------- tune_and_test


def tt_by_test(candidates, validate, test):
    return max(((c, test(c)) for c in candidates), key=lambda pair: pair[1])


def tt_tests_all(candidates, validate, test):
    results = [(validate(c), test(c), c) for c in candidates]
    best = max(range(len(results)), key=lambda i: results[i][0])
    return results[best][2], results[best][1]


def tt_last_on_ties(candidates, validate, test):
    best, best_score = None, -math.inf
    for c in candidates:
        score = validate(c)
        if score >= best_score:
            best, best_score = c, score
    return best, test(best)


def tt_min(candidates, validate, test):
    best = min(candidates, key=validate)
    return best, test(best)


def tt_validation_score(candidates, validate, test):
    scores = [validate(c) for c in candidates]
    i = int(np.argmax(scores))
    test(candidates[i])
    return candidates[i], scores[i]


def tt_index(candidates, validate, test):
    scores = [validate(c) for c in candidates]
    i = int(np.argmax(scores))
    return i, test(candidates[i])


def tt_zero_start(candidates, validate, test):
    best, best_score = None, 0
    for c in candidates:
        score = validate(c)
        if score > best_score:
            best, best_score = c, score
    return best, test(best)


def tt_minus_one_start(candidates, validate, test):
    best, best_score = candidates[0], -1
    for c in candidates:
        score = validate(c)
        if score > best_score:
            best, best_score = c, score
    return best, test(best)


def tt_max_of_pairs(candidates, validate, test):
    score, best = max((validate(c), c) for c in candidates)
    return best, test(best)


def tt_dict(candidates, validate, test):
    scores = {c: validate(c) for c in candidates}
    best = max(scores, key=scores.get)
    return best, test(best)


def tt_sort_in_place(candidates, validate, test):
    candidates.sort(key=validate, reverse=True)
    return candidates[0], test(candidates[0])


def tt_validates_twice(candidates, validate, test):
    best = max(candidates, key=validate)
    print(f"best validation score {validate(best)}")
    return best, test(best)


def tt_swapped(candidates, validate, test):
    best = max(candidates, key=validate)
    return test(best), best


def tt_only_best(candidates, validate, test):
    best = max(candidates, key=validate)
    test(best)
    return best


def tt_indices(candidates, validate, test):
    scores = [validate(i) for i in range(len(candidates))]
    i = scores.index(max(scores))
    return candidates[i], test(candidates[i])


def tt_never_tests(candidates, validate, test):
    best = max(candidates, key=validate)
    return best, validate(best)


def tt_retries_forever(candidates, validate, test):
    while True:
        try:
            return candidates[len(candidates)], 0.0  # always an IndexError, swallowed below
        except Exception:
            continue


TT_WRONG = [
    ("chosen by test score", tt_by_test, "call it exactly once"),
    ("tests every candidate", tt_tests_all, "call it exactly once"),
    ("last on ties", tt_last_on_ties, "keep the first"),
    ("min", tt_min, "not the lowest"),
    ("returns the validation score", tt_validation_score, "not its validation score"),
    ("returns the index", tt_index, "not its position"),
    ("best score starts at 0", tt_zero_start, "test was given None"),
    ("best score starts at -1", tt_minus_one_start, "should be 32"),
    ("max of (score, candidate) pairs", tt_max_of_pairs, "should be 32"),
    ("a dict keyed by candidate", tt_dict, "unhashable"),
    ("sorts candidates in place", tt_sort_in_place, "in place"),
    ("validates the best twice", tt_validates_twice, "validate was called"),
    ("(score, best)", tt_swapped, "chosen candidate should be"),
    ("only the best", tt_only_best, "pair"),
    ("validate given indices", tt_indices, "not one of the candidates"),
    ("validation score, test never called", tt_never_tests, "test was never called"),
]


@pytest.mark.parametrize(("fn", "phrase"), params(TT_WRONG))
def test_tune_and_test_rejects(fn, phrase):
    rejects("practice.tune_and_test", fn, phrase)


def test_tune_and_test_a_loop_that_swallows_errors_does_not_hang():
    rejects("practice.tune_and_test", tt_retries_forever, "did not return within", timeout=0.5)


def tt_max_key(candidates, validate, test):
    best = max(candidates, key=validate)
    return best, test(best)


def tt_argmax(candidates, validate, test):
    i = int(np.argmax([validate(c) for c in candidates]))
    return candidates[i], test(candidates[i])


def tt_loop(candidates, validate, test):
    best, best_score = None, -math.inf
    for c in candidates:
        score = validate(c)
        if score > best_score:
            best, best_score = c, score
    return [best, test(best)]


def tt_sorted(candidates, validate, test):
    best = sorted(candidates, key=validate, reverse=True)[0]  # sorted is stable: the first of equals stays first
    return best, test(best)


TT_RIGHT = [
    ("reference", practice.tune_and_test),
    ("max with key", tt_max_key),
    ("numpy argmax", tt_argmax),
    ("loop from -inf, list returned", tt_loop),
    ("stable sort", tt_sorted),
]


@pytest.mark.parametrize("fn", params(TT_RIGHT))
def test_tune_and_test_accepts(fn):
    accepts("practice.tune_and_test", fn)


def test_tune_and_test_reference_calls_test_once_and_keeps_the_first_tie():
    tested = []
    best, score = practice.tune_and_test(["a", "b", "c"], {"a": 1.0, "b": 3.0, "c": 3.0}.get,
                                         lambda c: tested.append(c) or 0.5)
    assert (best, score, tested) == ("b", 0.5, ["b"])
    with pytest.raises(ValueError, match="non-empty"):
        practice.tune_and_test([], float, float)


# ---------------------------------------------------------------------- train_step


def ts_no_zero_grad(model, batch, loss_fn, optimizer):
    loss = loss_fn(model, batch)
    loss.backward()
    optimizer.step()
    return loss.item()


def ts_zero_grad_at_end(model, batch, loss_fn, optimizer):
    loss = loss_fn(model, batch)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return loss.item()


def ts_zero_grad_after_backward(model, batch, loss_fn, optimizer):
    loss = loss_fn(model, batch)
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
    return loss.item()


def ts_step_before_backward(model, batch, loss_fn, optimizer):
    optimizer.zero_grad()
    loss = loss_fn(model, batch)
    optimizer.step()
    loss.backward()
    return loss.item()


def ts_no_step(model, batch, loss_fn, optimizer):
    optimizer.zero_grad()
    loss = loss_fn(model, batch)
    loss.backward()
    return loss.item()


def ts_tensor(model, batch, loss_fn, optimizer):
    optimizer.zero_grad()
    loss = loss_fn(model, batch)
    loss.backward()
    optimizer.step()
    return loss


def ts_detached_tensor(model, batch, loss_fn, optimizer):
    return torch.tensor(practice.train_step(model, batch, loss_fn, optimizer))


def ts_numpy_array(model, batch, loss_fn, optimizer):
    optimizer.zero_grad()
    loss = loss_fn(model, batch)
    loss.backward()
    optimizer.step()
    return loss.detach().numpy()


def ts_loss_after(model, batch, loss_fn, optimizer):
    practice.train_step(model, batch, loss_fn, optimizer)
    return loss_fn(model, batch).item()


def ts_own_optimizer(model, batch, loss_fn, optimizer):
    sgd = torch.optim.SGD(model.parameters(), lr=optimizer.param_groups[0]["lr"])  # loses the momentum
    sgd.zero_grad()
    loss = loss_fn(model, batch)
    loss.backward()
    sgd.step()
    return loss.item()


def ts_two_steps(model, batch, loss_fn, optimizer):
    optimizer.zero_grad()
    loss = loss_fn(model, batch)
    loss.backward()
    optimizer.step()
    optimizer.step()
    return loss.item()


def ts_clips(model, batch, loss_fn, optimizer):
    optimizer.zero_grad()
    loss = loss_fn(model, batch)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 0.1)
    optimizer.step()
    return loss.item()


def ts_prediction_and_target(model, batch, loss_fn, optimizer):
    x, y = batch
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()


def ts_no_grad(model, batch, loss_fn, optimizer):
    optimizer.zero_grad()
    with torch.no_grad():
        loss = loss_fn(model, batch)
    loss.backward()
    optimizer.step()
    return loss.item()


def ts_scaled_loss(model, batch, loss_fn, optimizer):
    optimizer.zero_grad()
    loss = loss_fn(model, batch) * len(batch[0])  # a sum instead of a mean
    loss.backward()
    optimizer.step()
    return loss.item()


def ts_backward_twice(model, batch, loss_fn, optimizer):
    optimizer.zero_grad()
    loss = loss_fn(model, batch)
    loss.backward()
    loss.backward()
    optimizer.step()
    return loss.item()


def ts_normalises_batch(model, batch, loss_fn, optimizer):
    x, y = batch
    x -= x.mean(0)
    return practice.train_step(model, (x, y), loss_fn, optimizer)


TS_WRONG = [
    ("no zero_grad", ts_no_zero_grad, "gradients accumulate"),
    ("zero_grad only at the end", ts_zero_grad_at_end, "not only at its end"),
    ("zero_grad between backward and step", ts_zero_grad_after_backward, "never changed"),
    ("step before backward", ts_step_before_backward, "never changed"),
    ("no step", ts_no_step, "never changed"),
    ("returns the loss tensor", ts_tensor, "loss.item()"),
    ("returns a detached tensor", ts_detached_tensor, "loss.item()"),
    ("returns a numpy array", ts_numpy_array, "Python float"),
    ("loss after the step", ts_loss_after, "computed before the step"),
    ("a new optimizer each step", ts_own_optimizer, "after the step is wrong"),
    ("two steps", ts_two_steps, "after the step is wrong"),
    ("gradient clipping", ts_clips, "after the step is wrong"),
    ("loss_fn(prediction, target)", ts_prediction_and_target, "loss_fn takes (model, batch)"),
    ("loss under no_grad", ts_no_grad, "raised RuntimeError"),
    ("a summed loss", ts_scaled_loss, "the loss returned is wrong"),
    ("batch changed in place", ts_normalises_batch, "in place"),
    ("backward twice", ts_backward_twice, "raised RuntimeError"),
]


@pytest.mark.parametrize(("fn", "phrase"), params(TS_WRONG))
def test_train_step_rejects(fn, phrase):
    rejects("practice.train_step", fn, phrase)


def ts_model_zero_grad(model, batch, loss_fn, optimizer):
    model.zero_grad()
    loss = loss_fn(model, batch)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def ts_zeros_not_none(model, batch, loss_fn, optimizer):
    optimizer.zero_grad(set_to_none=False)
    loss = loss_fn(model, batch)
    loss.backward()
    optimizer.step()
    return loss.detach().item()


def ts_zero_at_both_ends(model, batch, loss_fn, optimizer):
    optimizer.zero_grad()
    loss = loss_fn(model, batch)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return loss.item()


def ts_manual_grad_reset(model, batch, loss_fn, optimizer):
    for p in model.parameters():
        p.grad = None
    value = loss_fn(model, batch)
    value.backward()
    optimizer.step()
    return value.item()


TS_RIGHT = [
    ("reference", practice.train_step),
    ("model.zero_grad, float()", ts_model_zero_grad),
    ("zero_grad(set_to_none=False)", ts_zeros_not_none),
    ("zeroed at both ends", ts_zero_at_both_ends),
    ("grads set to None by hand", ts_manual_grad_reset),
]


@pytest.mark.parametrize("fn", params(TS_RIGHT))
def test_train_step_accepts(fn):
    accepts("practice.train_step", fn)


def test_train_step_reference_is_one_sgd_step_and_refuses_a_non_scalar_loss():
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    x, y = torch.randn(4, 2), torch.randn(4, 1)
    w, b = model.weight.detach().clone(), model.bias.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = practice.train_step(model, (x, y), lambda m, batch: ((m(batch[0]) - batch[1]) ** 2).mean(), optimizer)
    error = x @ w.T + b - y  # (4, 1)
    assert isinstance(loss, float) and math.isclose(loss, (error**2).mean().item(), rel_tol=1e-6)
    torch.testing.assert_close(model.weight.detach(), w - 0.1 * (2 * error * x).mean(0, keepdim=True))
    with pytest.raises(ValueError, match="scalar"):
        practice.train_step(model, (x, y), lambda m, batch: (m(batch[0]) - batch[1]) ** 2, optimizer)


# ------------------------------------------------------------------- random_points


def rp_shared(space, n, generator):
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    return [{k: lo * (hi / lo) ** u[i].item() for k, (lo, hi) in space.items()} for i in range(n)]


def rp_uniform(space, n, generator):
    return [{k: lo + (hi - lo) * torch.rand((), generator=generator).item() for k, (lo, hi) in space.items()}
            for _ in range(n)]


def rp_no_generator(space, n, generator):
    return [{k: practice.log_uniform(lo, hi, 1, torch.Generator().manual_seed(random.randrange(2**31))).item()
             for k, (lo, hi) in space.items()} for _ in range(n)]


def rp_global_rand(space, n, generator):
    return [{k: lo * (hi / lo) ** torch.rand(()).item() for k, (lo, hi) in space.items()} for _ in range(n)]


def rp_dict_of_lists(space, n, generator):
    return {k: practice.log_uniform(lo, hi, n, generator).tolist() for k, (lo, hi) in space.items()}


def rp_tensors(space, n, generator):
    columns = {k: practice.log_uniform(lo, hi, n, generator) for k, (lo, hi) in space.items()}
    return [{k: columns[k][i] for k in space} for i in range(n)]


def rp_same_trial(space, n, generator):
    point = {k: practice.log_uniform(lo, hi, 1, generator).item() for k, (lo, hi) in space.items()}
    return [dict(point) for _ in range(n)]


def rp_seed_per_trial(space, n, generator):
    return [practice.random_points(space, 1, torch.Generator().manual_seed(i))[0] for i in range(n)]


def rp_sorted(space, n, generator):
    columns = {k: sorted(practice.log_uniform(lo, hi, n, generator).tolist()) for k, (lo, hi) in space.items()}
    return [{k: columns[k][i] for k in space} for i in range(n)]


def rp_python_random(space, n, generator):
    return [{k: math.exp(random.uniform(math.log(lo), math.log(hi))) for k, (lo, hi) in space.items()}
            for _ in range(n)]


def rp_tuples(space, n, generator):
    return [tuple(p.values()) for p in practice.random_points(space, n, generator)]


def rp_exp_of_log10(space, n, generator):
    return [{k: math.exp(math.log10(lo) + torch.rand((), generator=generator).item() * math.log10(hi / lo))
             for k, (lo, hi) in space.items()} for _ in range(n)]


def rp_pops_space(space, n, generator):
    points = practice.random_points(space, n, generator)
    space.clear()
    return points


def rp_wrong_names(space, n, generator):
    return [{f"{k}_value": v for k, v in p.items()} for p in practice.random_points(space, n, generator)]


def rp_reversed_pairs(space, n, generator):
    names = list(space)
    columns = {k: practice.log_uniform(*space[k], n, generator) for k in names}
    if len(names) > 1:  # the second hyperparameter reuses the first one's draws, reversed
        lo0, hi0 = space[names[0]]
        u = (columns[names[0]].log() - math.log(lo0)) / math.log(hi0 / lo0)
        lo1, hi1 = space[names[1]]
        columns[names[1]] = lo1 * (hi1 / lo1) ** (1 - u)
    return [{k: columns[k][i].item() for k in names} for i in range(n)]


RP_WRONG = [
    ("one draw shared by all hyperparameters", rp_shared, "its own random numbers"),
    ("uniform", rp_uniform, "not uniform on [log low, log high)"),
    ("a fresh generator per hyperparameter", rp_no_generator, "generators seeded alike"),
    ("torch.rand without the generator", rp_global_rand, "generators seeded alike"),
    ("a dict of lists", rp_dict_of_lists, "one dict per trial"),
    ("tensor values", rp_tensors, "Python float"),
    ("the same trial n times", rp_same_trial, "distinct values"),
    ("a seed per trial", rp_seed_per_trial, "do not re-seed"),
    ("sorted columns", rp_sorted, "do not sort them"),
    ("python's random", rp_python_random, "generators seeded alike"),
    ("tuples", rp_tuples, "should be a dict"),
    ("exp of base-10 exponents", rp_exp_of_log10, "not uniform"),
    ("space emptied in place", rp_pops_space, "in place"),
    ("renamed keys", rp_wrong_names, "should be a dict with the keys"),
    ("anti-correlated pair", rp_reversed_pairs, "its own random numbers"),
]


@pytest.mark.parametrize(("fn", "phrase"), params(RP_WRONG))
def test_random_points_rejects(fn, phrase):
    rejects("practice.random_points", fn, phrase)


def rp_loop(space, n, generator):
    return [{k: practice.log_uniform(lo, hi, 1, generator).item() for k, (lo, hi) in space.items()}
            for _ in range(n)]


def rp_rand_per_trial(space, n, generator):
    names = list(space)
    points = []
    for _ in range(n):
        u = torch.rand(len(names), generator=generator, dtype=torch.float64)
        points.append({k: math.exp(math.log(space[k][0]) + u[j].item() * math.log(space[k][1] / space[k][0]))
                       for j, k in enumerate(names)})
    return points


def rp_float32(space, n, generator):
    columns = {k: torch.exp(math.log(lo) + torch.rand(n, generator=generator) * math.log(hi / lo)).tolist()
               for k, (lo, hi) in space.items()}
    return [{k: columns[k][i] for k in space} for i in range(n)]


def rp_numpy(space, n, generator):
    rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))
    draws = {k: np.exp(rng.uniform(math.log(lo), math.log(hi), n)) for k, (lo, hi) in space.items()}
    return [{k: draws[k][i] for k in space} for i in range(n)]  # numpy float64 values


RP_RIGHT = [
    ("reference", practice.random_points),
    ("log_uniform per trial", rp_loop),
    ("one rand per trial", rp_rand_per_trial),
    ("float32", rp_float32),
    ("numpy seeded from the generator", rp_numpy),
]


@pytest.mark.parametrize("fn", params(RP_RIGHT))
def test_random_points_accepts(fn):
    accepts("practice.random_points", fn)


# ------------------------------------------------------------------------- common


@pytest.mark.parametrize("name", EXERCISES)
def test_a_stub_is_reported_as_not_attempted(name, capsys):
    def stub(*args):
        raise NotImplementedError  # your code here

    check.exercise(f"practice.{name}", stub)
    assert "not attempted yet" in capsys.readouterr().out


@pytest.mark.parametrize("name", EXERCISES)
def test_a_function_that_returns_nothing_is_rejected_clearly(name):
    message = rejects(f"practice.{name}", lambda *args: None)
    assert "None" in message or "test was never called" in message, message


def test_learner_habits_from_other_libraries_are_rejected():
    def with_min_delta(val_losses, patience, min_delta=0.02):  # Keras's EarlyStopping default habit
        best, waited = 0, 0
        for epoch in range(1, len(val_losses)):
            if val_losses[epoch] < val_losses[best] - min_delta:
                best, waited = epoch, 0
            else:
                waited += 1
                if waited == patience:
                    return epoch, best
        return len(val_losses) - 1, best

    with pytest.raises(ExerciseFailed):
        check.exercise("practice.early_stopping", with_min_delta)

    def small_spread_as_constant(x_train, x_test):
        mean, std = x_train.mean(0), x_train.std(0, correction=0)
        std = torch.where(std < 0.01, torch.ones_like(std), std)
        return (x_train - mean) / std, (x_test - mean) / std

    with pytest.raises(ExerciseFailed, match="varies very little"):
        check.exercise("practice.standardize", small_spread_as_constant)

    def leaves_eval_mode(model, batch, loss_fn, optimizer):
        optimizer.zero_grad()
        loss = loss_fn(model, batch)
        loss.backward()
        optimizer.step()
        model.eval()
        return loss.item()

    with pytest.raises(ExerciseFailed, match="eval mode"):
        check.exercise("practice.train_step", leaves_eval_mode)
