"""Chapter 5 building blocks: aligning two domains that share structure but not pairs.

- :func:`gradient_reversal`: the identity on the way forward; on the way back the gradient
  is multiplied by ``-weight``. Put between a feature extractor and a domain classifier,
  it trains the classifier to tell the domains apart and the features to make that
  impossible (Ganin & Lempitsky 2015, "Unsupervised domain adaptation by
  backpropagation").
- :func:`dann_weight`: that paper's schedule for the reversal's weight, from 0 at the
  start of training to 1 at its end.
- :func:`domain_loss`: the domain classifier's loss, source labelled 0 and target 1.
- :func:`cycle_loss` and :func:`identity_loss`: CycleGAN's two reconstruction terms.
- :func:`procrustes`: the rotation that best maps one embedding space onto another.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["gradient_reversal", "GradientReversal", "dann_weight", "domain_loss", "cycle_loss", "identity_loss",
           "procrustes"]


class _ReverseGradient(torch.autograd.Function):
    """forward: y = x; backward: dL/dx = -weight * dL/dy."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: float) -> torch.Tensor:
        ctx.weight = weight
        # A view, not x itself: autograd records this node even though nothing changed.
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.weight * grad_output, None  # no gradient for weight


def gradient_reversal(x: torch.Tensor, weight: float = 1.0) -> torch.Tensor:
    """``x`` unchanged (any shape); the gradient that reaches ``x`` is multiplied by ``-weight``.

    ``weight`` is a Python number ≥ 0 (the λ of domain-adversarial training); 0 blocks the
    gradient, 1 reverses it.
    """
    if isinstance(weight, torch.Tensor):
        if weight.numel() != 1:
            raise ValueError(f"weight must be one number, got a tensor of shape {tuple(weight.shape)}")
        weight = weight.item()
    if not isinstance(weight, (int, float)) or isinstance(weight, bool):
        raise TypeError(f"weight must be a number, got {type(weight).__name__}")
    if not math.isfinite(weight) or weight < 0:
        raise ValueError(f"weight must be a finite number >= 0, got {weight}")
    return _ReverseGradient.apply(x, float(weight))


class GradientReversal(torch.nn.Module):
    """:func:`gradient_reversal` as a layer, for ``nn.Sequential``; set ``.weight`` as training goes."""

    def __init__(self, weight: float = 1.0):
        super().__init__()
        self.weight = weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gradient_reversal(x, self.weight)

    def extra_repr(self) -> str:
        return f"weight={self.weight:g}"


def dann_weight(progress: float, gamma: float = 10.0) -> float:
    """λ(p) = 2 / (1 + exp(-gamma p)) - 1 for training progress p in [0, 1] (Ganin et al. 2016).

    It starts at 0, so that the domain classifier's early, noisy gradients do not disturb
    features that are still being formed, and rises smoothly towards 1 (0.9866 at p = 1
    with gamma = 10).
    """
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress must lie in [0, 1], got {progress}")
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0


def domain_loss(source_logits: torch.Tensor, target_logits: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of a domain classifier: source examples are class 0, target class 1.

    source_logits: (Ns,), target_logits: (Nt,) — one logit each, log p(target) / p(source).
    Returns the mean over all Ns + Nt examples, a 0-d tensor. Computed from the logits
    (``binary_cross_entropy_with_logits``), so logits of ±100 give a finite loss.
    """
    for name, logits in (("source_logits", source_logits), ("target_logits", target_logits)):
        if logits.dim() != 1:
            raise ValueError(f"{name} must have shape (N,), one logit per example; got {tuple(logits.shape)}")
    logits = torch.cat([source_logits, target_logits])  # (Ns + Nt,)
    labels = torch.cat([torch.zeros_like(source_logits), torch.ones_like(target_logits)])
    return F.binary_cross_entropy_with_logits(logits, labels)


def cycle_loss(x: torch.Tensor, forward: Callable, backward: Callable) -> torch.Tensor:
    """Mean absolute error between ``x`` and its round trip ``backward(forward(x))`` (Zhu et al. 2017).

    x: a batch of domain A (any shape); forward: A -> B, backward: B -> A. The round trip
    ends in A, so it is compared with x itself. Returns a 0-d tensor.
    """
    return (backward(forward(x)) - x).abs().mean()


def identity_loss(y: torch.Tensor, forward: Callable) -> torch.Tensor:
    """Mean absolute error between ``y`` and ``forward(y)``: a generator into domain B should leave
    an image already in B unchanged (CycleGAN's identity term). y: a batch of domain B."""
    return (forward(y) - y).abs().mean()


def procrustes(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The orthogonal W (D, D) minimising ||source @ W - target|| (the Frobenius norm).

    source, target: (N, D), row i of one paired with row i of the other. With
    U S V^T = svd(source^T target), W = U V^T (Schönemann 1966): a rotation, possibly with
    a reflection, so distances and angles inside the source space are kept.
    """
    if source.dim() != 2 or source.shape != target.shape:
        raise ValueError(f"source and target must both be (N, D), got {tuple(source.shape)} and "
                         f"{tuple(target.shape)}")
    u, _, vh = torch.linalg.svd(source.T @ target)  # (D, D), (D,), (D, D)
    return u @ vh
