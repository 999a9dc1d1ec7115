"""One small training loop, with a progress bar and a history.

``fit`` trains any ``nn.Module`` on tensors or a DataLoader, for a number of steps or
epochs, and returns a :class:`History`: the loss of every step and the evaluation
metrics at chosen intervals. In a notebook the progress bar is tqdm's; in a log it
degrades to a plain line every tenth of the run.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from dlpt.runtime import device_of, in_notebook

__all__ = [
    "fit",
    "History",
    "TrainingDiverged",
    "classification_loss",
    "accuracy",
    "mean_loss",
    "evaluating",
]

Batch = tuple[torch.Tensor, ...]


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite; the message names the step."""


@dataclass
class History:
    """What ``fit`` measured.

    ``loss[i]`` is the training loss of step ``i`` (a float); ``metrics[name]`` is a list
    of ``(step, value)`` pairs, one per evaluation; ``diverged_at`` is the step whose loss
    was not finite when ``fit(on_nan="stop")`` stopped there, else None.
    """

    loss: list[float] = field(default_factory=list)
    metrics: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    seconds: float = 0.0
    diverged_at: int | None = None

    @property
    def steps(self) -> int:
        """How many optimisation steps ran."""
        return len(self.loss)

    def final_loss(self, last: int = 50) -> float:
        """Mean training loss over the last ``last`` steps (inf if training diverged)."""
        if self.diverged_at is not None:
            return math.inf
        if not self.loss:
            raise ValueError("no step has run yet")
        tail = self.loss[-last:]
        return sum(tail) / len(tail)

    def last(self, metric: str) -> float:
        """The most recent value of an evaluation metric."""
        return self._series(metric)[-1][1]

    def best(self, metric: str, mode: str = "max") -> float:
        """The best value a metric reached (``mode`` "max" or "min")."""
        values = [v for _, v in self._series(metric)]
        return max(values) if mode == "max" else min(values)

    def _series(self, metric: str) -> list[tuple[int, float]]:
        if not self.metrics.get(metric):
            known = ", ".join(self.metrics) or "none"
            raise KeyError(f"no evaluations of {metric!r} were recorded (recorded: {known})")
        return self.metrics[metric]


def classification_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Mean cross-entropy of ``model(x)``: logits ``(B, K)`` against labels ``y: (B,)``."""
    x, y = batch
    return F.cross_entropy(model(x), y)


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """``with evaluating(model):`` runs the block in eval mode, then restores the model's mode.

    Eval mode switches batch norm to its running statistics and turns dropout off; a helper
    that measures a model must not leave it there, or the caller's next training step would
    silently train in eval mode.
    """
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@torch.no_grad()
def _predict(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    device = device_of(model)
    with evaluating(model):
        return torch.cat([model(x[i : i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> float:
    """Fraction of ``x: (N, ...)`` whose arg-max logit equals the label ``y: (N,)`` (eval mode)."""
    return (_predict(model, x, batch_size).argmax(dim=-1) == y.cpu()).float().mean().item()


def mean_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> float:
    """Mean cross-entropy of ``model`` on ``x: (N, ...)``, ``y: (N,)``, in eval mode."""
    return F.cross_entropy(_predict(model, x, batch_size), y.cpu()).item()


def _tensor_batches(tensors: Batch, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
    """Endless minibatches, reshuffled every epoch with ``generator``."""
    n = len(tensors[0])
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            index = order[start : start + batch_size]
            yield tuple(t[index] for t in tensors)


def _loader_batches(loader) -> Iterator[Batch]:
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield tuple(batch) if isinstance(batch, (list, tuple)) else (batch,)
        if empty:
            raise ValueError("the DataLoader yielded no batch")


def _check_tensors(data) -> Batch:
    tensors = tuple(data) if isinstance(data, (list, tuple)) else (data,)
    if not tensors or not all(isinstance(t, torch.Tensor) for t in tensors):
        raise TypeError(
            "data must be a DataLoader or a tuple of tensors such as (x, y) with x: (N, ...), "
            f"y: (N,); got {type(data).__name__}"
        )
    n = len(tensors[0])
    if any(len(t) != n for t in tensors):
        shapes = ", ".join(str(tuple(t.shape)) for t in tensors)
        raise ValueError(f"all tensors in data must have the same first dimension N; got shapes {shapes}")
    if n == 0:
        raise ValueError("data is empty (N = 0)")
    return tensors


class _Progress:
    """tqdm in a notebook or terminal; a plain line every tenth of the run in a log."""

    def __init__(self, total: int, desc: str, enabled: bool):
        self.total, self.desc, self.bar = total, desc, None
        self.enabled = enabled
        self.every = max(1, total // 10)
        if not enabled:
            return
        if in_notebook():
            from tqdm.auto import tqdm

            # At most one redraw a second. nbval reads a cell's messages only once the cell
            # has run, and past a few thousand queued messages the kernel's last one is
            # dropped and a healthy notebook fails ("Timeout of 5 seconds exceeded waiting
            # for output"): measured, a cell with 4,000 redraws failed and 2,000 passed.
            self.bar = tqdm(total=total, desc=desc, leave=False, mininterval=1.0)
        elif sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, leave=False)

    def update(self, step: int, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            if step % 10 == 0 or step == self.total:
                self.bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
        elif self.enabled and (step % self.every == 0 or step == self.total):
            print(f"{self.desc} step {step}/{self.total}: loss {loss:.4g}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def fit(
    model: nn.Module,
    data,
    *,
    loss: Callable[[nn.Module, Batch], torch.Tensor] = classification_loss,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float = 1e-3,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int = 64,
    evaluate: dict[str, Callable[[nn.Module], float]] | None = None,
    eval_every: int | None = None,
    clip_grad_norm: float | None = None,
    on_nan: str = "raise",
    device: torch.device | str | None = None,
    progress: bool = True,
    desc: str = "training",
) -> History:
    """Train ``model`` and return its :class:`History`.

    data: a tuple of tensors ``(x, y)`` with ``x: (N, ...)``, ``y: (N,)`` (reshuffled each
        epoch with torch's global generator, so ``dlpt.setup`` fixes the order), or a
        DataLoader yielding such tuples.
    loss: ``loss(model, batch) -> scalar tensor``; default cross-entropy of ``model(x)``
        against ``y``.
    optimizer: default Adam with learning rate ``lr``.
    steps / epochs: the length of training; give exactly one (epochs needs tensors).
    evaluate: ``{name: fn(model) -> float}``, run every ``eval_every`` steps (default: a
        tenth of the run) and after the last step, in eval mode without gradients.
    clip_grad_norm: rescale gradients whose global norm exceeds this.
    on_nan: "raise" (raise :class:`TrainingDiverged` naming the step) or "stop" (stop,
        record ``history.diverged_at`` and return).
    device: where to train; default the model's device. Batches are moved there.
    """
    if (steps is None) == (epochs is None):
        raise ValueError("give exactly one of steps= or epochs=")
    if on_nan not in ("raise", "stop"):
        raise ValueError(f"on_nan must be 'raise' or 'stop', got {on_nan!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    device = torch.device(device) if device is not None else device_of(model)
    model.to(device)

    if isinstance(data, torch.utils.data.DataLoader):
        if epochs is not None:
            steps = epochs * len(data)
        batches = _loader_batches(data)
    else:
        tensors = _check_tensors(data)
        if epochs is not None:
            steps = epochs * math.ceil(len(tensors[0]) / batch_size)
        generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, ()).item()))
        batches = _tensor_batches(tensors, batch_size, generator)
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")

    optimizer = optimizer if optimizer is not None else torch.optim.Adam(model.parameters(), lr=lr)
    evaluate = evaluate or {}
    eval_every = eval_every or max(1, steps // 10)
    history = History(metrics={name: [] for name in evaluate})
    progress_bar = _Progress(steps, desc, progress)
    start = time.perf_counter()
    model.train()
    try:
        for step in range(1, steps + 1):
            batch = tuple(t.to(device) for t in next(batches))
            value = loss(model, batch)
            if not isinstance(value, torch.Tensor) or value.dim() != 0:
                shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise ValueError(
                    f"loss must return a scalar tensor, got {shape}; did you forget to average "
                    "over the batch (.mean())?"
                )
            if not torch.isfinite(value):
                last = f" (last finite loss {history.loss[-1]:.4g})" if history.loss else ""
                message = (f"the loss became {value.item()} at step {step}{last}; "
                           "try a lower learning rate or gradient clipping")
                if on_nan == "raise":
                    raise TrainingDiverged(message)
                print(f"{desc}: stopped, {message}", file=sys.stderr)
                history.diverged_at = step
                break
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            if clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
            optimizer.step()
            history.loss.append(value.item())
            progress_bar.update(step, history.loss[-1])
            if evaluate and (step % eval_every == 0 or step == steps):
                with torch.no_grad(), evaluating(model):
                    for name, fn in evaluate.items():
                        history.metrics[name].append((step, float(fn(model))))
    finally:
        progress_bar.close()
        history.seconds = time.perf_counter() - start
    return history
