"""Chapter 6 building blocks: learning to learn from a few examples.

- :func:`episodes`: N-way K-shot tasks drawn from a set of classes, each with its own
  support set (to learn from) and query set (to be judged on), labels 0..N-1 given anew
  in every episode (Vinyals et al. 2016).
- :func:`prototypes`: the class means of a support set's embeddings, the heart of
  prototypical networks (Snell et al. 2017).
- :func:`maml_step`: one inner step of gradient descent on a task, differentiable with
  respect to the starting parameters (Finn et al. 2017), or first-order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch

from dlpt.alignment import class_profiles

__all__ = ["episodes", "prototypes", "maml_step"]

Episode = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def episodes(images: torch.Tensor, labels: torch.Tensor, classes: Sequence[int] | torch.Tensor, n_way: int,
             k_shot: int, n_query: int, generator: torch.Generator, *, count: int | None = None) -> Iterator[Episode]:
    """Yield N-way K-shot episodes ``(support_x, support_y, query_x, query_y)``.

    images: (N, C, H, W), labels: (N,) int64; only images whose label is in ``classes``
    are used. Each episode draws ``n_way`` of those classes at random and gives them the
    labels 0..n_way-1 in a random order, then ``k_shot + n_query`` distinct images of each
    class: support_x (n_way * k_shot, C, H, W) with support_y (n_way * k_shot,), query_x
    (n_way * n_query, C, H, W) with query_y (n_way * n_query,), both in a random order.
    Every random draw uses ``generator``. ``count`` episodes, or without end if None.
    """
    if labels.dim() != 1 or len(labels) != len(images):
        raise ValueError(f"labels must be (N,) with N = len(images) = {len(images)}; got {tuple(labels.shape)}")
    classes = torch.as_tensor(classes, dtype=torch.long).flatten().unique()
    if not 1 <= n_way <= len(classes):
        raise ValueError(f"n_way must be between 1 and the number of classes ({len(classes)}); got {n_way}")
    if k_shot < 1 or n_query < 0:
        raise ValueError(f"need k_shot >= 1 and n_query >= 0; got k_shot={k_shot}, n_query={n_query}")
    members = [torch.nonzero(labels == c)[:, 0] for c in classes]
    too_small = [int(c) for c, m in zip(classes, members) if len(m) < k_shot + n_query]
    if too_small:
        raise ValueError(f"classes {too_small[:5]} have fewer than k_shot + n_query = {k_shot + n_query} images")
    produced = 0
    while count is None or produced < count:
        chosen = torch.randperm(len(classes), generator=generator)[:n_way]  # episode label i -> classes[chosen[i]]
        support, query = [], []
        for i in chosen.tolist():
            picked = members[i][torch.randperm(len(members[i]), generator=generator)[: k_shot + n_query]]
            support.append(picked[:k_shot])
            query.append(picked[k_shot:])
        support_y = torch.arange(n_way).repeat_interleave(k_shot)
        query_y = torch.arange(n_way).repeat_interleave(n_query)
        support_order = torch.randperm(len(support_y), generator=generator)
        query_order = torch.randperm(len(query_y), generator=generator)
        support_index, query_index = torch.cat(support)[support_order], torch.cat(query)[query_order]
        yield images[support_index], support_y[support_order], images[query_index], query_y[query_order]
        produced += 1


def prototypes(embeddings: torch.Tensor, labels: torch.Tensor, n_way: int) -> torch.Tensor:
    """The mean embedding of each class: embeddings (N, D), labels (N,) in 0..n_way-1 -> (n_way, D)."""
    if embeddings.dim() != 2 or labels.shape != embeddings.shape[:1]:
        raise ValueError(f"embeddings must be (N, D) and labels (N,); got {tuple(embeddings.shape)} and "
                         f"{tuple(labels.shape)}")
    counts = torch.bincount(labels, minlength=n_way)
    if len(counts) > n_way or (counts == 0).any():
        raise ValueError(f"labels must cover every class 0..{n_way - 1} and nothing else; counts {counts.tolist()}")
    return class_profiles(embeddings, labels, n_way)  # chapter 5's per-class means


def maml_step(model: torch.nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
              params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, lr: float,
              first_order: bool = False) -> dict[str, torch.Tensor]:
    """One inner step of SGD on a task: params - lr * grad of loss_fn(model(x; params), y).

    params: {name: tensor}, as from ``dict(model.named_parameters())``; the model is run
    with them by ``torch.func.functional_call``. The gradient is taken with
    ``create_graph=True``, so the new parameters are differentiable with respect to
    ``params`` through the step itself (second-order MAML). With ``first_order`` the
    gradient is treated as a constant: the new parameters depend on ``params`` only
    through the identity, which drops the second derivatives (first-order MAML).
    Parameters the loss does not use are returned unchanged.
    """
    loss = loss_fn(torch.func.functional_call(model, params, (x,)), y)
    names = [name for name, p in params.items() if p.requires_grad]
    if not names:
        raise ValueError("no parameter in params requires grad: the inner step needs their gradient "
                         "(use p.detach().requires_grad_() for a fresh start)")
    grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=not first_order, allow_unused=True)
    updated = dict(params)
    for name, grad in zip(names, grads):
        if grad is not None:
            updated[name] = params[name] - lr * (grad.detach() if first_order else grad)
    return updated
