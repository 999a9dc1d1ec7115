"""Chapter 1, Practice: the blocks of the practitioner's loop.

A multilayer perceptron, the preprocessing and loss every classifier needs, early
stopping, and the two ways to place hyperparameter trials (grid and random search).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

__all__ = [
    "MLP",
    "standardize",
    "cross_entropy",
    "early_stopping",
    "log_uniform",
    "grid_points",
    "random_points",
    "tune_and_test",
    "train_step",
]


class MLP(nn.Sequential):
    """A multilayer perceptron: Linear, ReLU, ..., Linear.

    ``sizes`` lists the widths from input to output, e.g. ``[30, 64, 2]`` maps
    ``x: (B, 30)`` to logits ``(B, 2)``. Inputs with more dimensions are flattened first,
    so ``(B, 1, 8, 8)`` images work with ``sizes[0] == 64``.
    """

    def __init__(self, sizes: Sequence[int]):
        if len(sizes) < 2:
            raise ValueError(f"sizes needs an input and an output width, got {list(sizes)}")
        layers: list[nn.Module] = [nn.Flatten()]
        for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        super().__init__(*layers)
        self.in_features = sizes[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = math.prod(x.shape[1:]) if x.dim() > 1 else -1
        if features != self.in_features:
            raise ValueError(f"this MLP takes inputs of shape (B, {self.in_features}) (or (B, ...) with "
                             f"{self.in_features} values per example); got {tuple(x.shape)}")
        return super().forward(x)


def standardize(x_train: torch.Tensor, x_test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale every feature to mean 0 and standard deviation 1 using training statistics only.

    x_train: (N, D), x_test: (M, D) -> the same shapes. The mean and the population
    standard deviation (divide by N, as scikit-learn does) come from ``x_train`` alone;
    using the test set's own statistics would leak information from it. A constant
    feature (standard deviation 0) is only centred.
    """
    mean = x_train.mean(dim=0)
    std = x_train.std(dim=0, correction=0)
    std = torch.where(std > 0, std, torch.ones_like(std))  # a constant feature: avoid 0/0
    return (x_train - mean) / std, (x_test - mean) / std


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of the targets under softmax(logits).

    logits: (B, K) float, targets: (B,) int64 in 0..K-1 -> a scalar.
    ``-log softmax(z)_y = log sum_k exp(z_k) - z_y``; shifting every row by its maximum
    first changes nothing mathematically and keeps ``exp`` from overflowing.
    """
    shifted = logits - logits.max(dim=1, keepdim=True).values  # (B, K), largest entry 0
    log_normalizer = shifted.exp().sum(dim=1).log()  # (B,)
    picked = shifted.gather(1, targets[:, None]).squeeze(1)  # (B,)
    return (log_normalizer - picked).mean()


def early_stopping(val_losses: Sequence[float], patience: int) -> tuple[int, int]:
    """Where training with early stopping stops, and which epoch's weights it keeps.

    ``val_losses[e]`` is the validation loss after epoch ``e`` (0-based). An epoch improves
    when its loss is strictly below every earlier one. Training stops at the first epoch
    that ends ``patience`` epochs in a row without improvement, or at the last epoch.
    Returns ``(stopped_at, best)``: that epoch, and the best epoch up to it. Only losses
    seen so far are used: the future is unknown when the decision is made.
    """
    if patience < 1:
        raise ValueError(f"patience must be at least 1, got {patience}")
    best, waited = 0, 0
    for epoch in range(1, len(val_losses)):
        if val_losses[epoch] < val_losses[best]:
            best, waited = epoch, 0
        else:
            waited += 1
            if waited == patience:
                return epoch, best
    return len(val_losses) - 1, best


def log_uniform(low: float, high: float, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` samples whose logarithm is uniform on [log low, log high): shape (n,), float64.

    The right way to sample a scale parameter such as a learning rate: every decade
    between ``low`` and ``high`` gets the same share of samples.
    """
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    return torch.exp(math.log(low) + u * (math.log(high) - math.log(low)))


def grid_points(space: dict[str, tuple[float, float]], per_axis: int) -> list[dict[str, float]]:
    """Every combination of ``per_axis`` log-spaced values of each hyperparameter.

    space: ``{name: (low, high)}``, both ends included. Returns ``per_axis ** len(space)``
    trials, each a ``{name: value}`` dict.
    """
    axes = {
        name: torch.logspace(math.log10(lo), math.log10(hi), per_axis, dtype=torch.float64).tolist()
        for name, (lo, hi) in space.items()
    }
    return [dict(zip(axes, values)) for values in itertools.product(*axes.values())]


def random_points(
    space: dict[str, tuple[float, float]], n: int, generator: torch.Generator
) -> list[dict[str, float]]:
    """``n`` trials, each hyperparameter drawn log-uniformly and independently from its range."""
    columns = {name: log_uniform(lo, hi, n, generator).tolist() for name, (lo, hi) in space.items()}
    return [{name: columns[name][i] for name in space} for i in range(n)]


def tune_and_test(
    candidates: Sequence[Any],
    validate: Callable[[Any], float],
    test: Callable[[Any], float],
) -> tuple[Any, float]:
    """The honest protocol: choose on validation, then measure the choice once on the test set.

    candidates: a non-empty sequence of C hyperparameter values (numbers, strings, dicts...).
    ``validate(c)`` trains with ``c`` and returns its validation score (higher is better);
    ``test(c)`` returns its test score. Returns ``(best, test(best))``: the first candidate
    with the highest validation score, and its test score. ``validate`` is called once per
    candidate and ``test`` exactly once: a test score that takes part in the choice is
    no longer an unbiased estimate of how the chosen model does on new data.
    """
    if len(candidates) == 0:
        raise ValueError("candidates must be a non-empty list of C >= 1 values, got an empty one")
    scores = [float(validate(c)) for c in candidates]  # (C,)
    best = candidates[scores.index(max(scores))]  # index() finds the first of equal scores
    return best, float(test(best))


def train_step(
    model: nn.Module,
    batch: Any,
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    optimizer: torch.optim.Optimizer,
) -> float:
    """One step of gradient descent, the body of every training loop; returns the loss.

    batch: what ``loss_fn(model, batch)`` takes, e.g. ``(x: (B, ...), y: (B,))``; loss_fn
    returns a scalar (0-d) tensor, as the ``loss`` of :func:`dlpt.train.fit` does. The order
    matters: ``backward`` *adds* to every ``.grad``, so the gradients left from before are
    zeroed first; then the loss, its gradient ``dL/dθ``, and the optimizer's update of θ.
    Returns ``loss.item()``, a Python float: a list of loss tensors would keep every
    step's graph alive.
    """
    optimizer.zero_grad()
    loss = loss_fn(model, batch)
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        got = f"shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"loss_fn must return a scalar tensor of shape (), got {got}; average over the batch")
    loss.backward()
    optimizer.step()
    return loss.item()
