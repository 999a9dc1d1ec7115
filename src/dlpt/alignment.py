"""Chapter 5 building blocks: aligning two domains that share structure but not pairs.

The losses and the solution the chapter's exercises ask for come first:

- :func:`gradient_reversal`: the identity on the way forward; on the way back the gradient
  is multiplied by ``-weight`` (Ganin & Lempitsky 2015; :class:`GradientReversal` as a
  layer). :func:`dann_weight` is that paper's schedule for the weight, :func:`domain_loss`
  the domain classifier's loss.
- :func:`cycle_loss` and :func:`identity_loss`: CycleGAN's two reconstruction terms.
- :func:`procrustes`: the rotation that best maps one embedding space onto another.

Then one block per section of the chapter:

1. Shared layers (Aytar et al.): :class:`CrossDomainNet`, and the measures of alignment
   :func:`retrieval_precision`, :func:`class_profiles`, :func:`profile_correlation`.
2. Domain-adversarial training: :func:`standardize_images`, :class:`DANN`,
   :func:`train_dann`, and :func:`fresh_domain_accuracy`, a new adversary's verdict.
3. CycleGAN between digit domains: :class:`Generator`, :class:`Discriminator`,
   :class:`CycleGAN`, :func:`lsgan_loss`, :func:`cyclegan_losses`, :func:`train_cyclegan`,
   :func:`translate`.
4. Translation without parallel text: word vectors (:func:`cooccurrence`, :func:`ppmi`,
   :func:`svd_embeddings`), dictionaries (:func:`frequency_rank_dictionary`,
   :func:`nearest_neighbours`, :func:`sinkhorn`, :func:`gromov_wasserstein`,
   :func:`refine_procrustes`), and sentences (:func:`add_noise`, :func:`pad_sentences`,
   :func:`translate_sentences`, :func:`exact_match`).
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


# ----------------------------------------------------------------------------------------
# Sections 1 and 2: shared layers and domain-adversarial features
# ----------------------------------------------------------------------------------------


class CrossDomainNet(torch.nn.Module):
    """Two domain-specific encoders feeding shared top layers and one classifier (Aytar et al.).

    x: (B, in_features), flattened images of one domain; ``domain`` 0 or 1 picks the
    encoder. With ``share=False`` each domain gets its own top layers and classifier
    instead: the control, with the same sizes and the same labels, that shares nothing.
    """

    def __init__(self, in_features: int = 64, hidden: int = 128, shared: int = 64, num_classes: int = 10,
                 share: bool = True):
        super().__init__()
        self.share = share
        self.encoders = torch.nn.ModuleList(
            torch.nn.Sequential(torch.nn.Linear(in_features, hidden), torch.nn.ReLU()) for _ in range(2))
        self.tops = torch.nn.ModuleList(
            torch.nn.Sequential(torch.nn.Linear(hidden, shared), torch.nn.ReLU()) for _ in range(1 if share else 2))
        self.classifiers = torch.nn.ModuleList(
            torch.nn.Linear(shared, num_classes) for _ in range(1 if share else 2))

    def embed(self, x: torch.Tensor, domain: int) -> torch.Tensor:
        """(B, in_features) -> (B, shared): the top layers' activations."""
        if domain not in (0, 1):
            raise ValueError(f"domain must be 0 or 1, got {domain!r}")
        if x.dim() != 2 or x.shape[1] != self.encoders[domain][0].in_features:
            raise ValueError(f"x must be (B, {self.encoders[domain][0].in_features}), got {tuple(x.shape)}")
        top = 0 if self.share else domain
        return self.tops[top](self.encoders[domain](x))

    def forward(self, x: torch.Tensor, domain: int) -> torch.Tensor:
        """(B, in_features) -> (B, num_classes) logits."""
        return self.classifiers[0 if self.share else domain](self.embed(x, domain))


def _cosine_similarities(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Every query row (Q, D) against every key row (K, D): cosine similarities (Q, K)."""
    return F.normalize(queries, dim=1) @ F.normalize(keys, dim=1).T


def retrieval_precision(queries: torch.Tensor, query_labels: torch.Tensor, gallery: torch.Tensor,
                        gallery_labels: torch.Tensor, k: int = 5) -> torch.Tensor:
    """Precision at k of cross-domain retrieval by cosine similarity, a 0-d tensor.

    queries: (Q, D), gallery: (G, D), labels (Q,) and (G,). For each query, the share of
    its k most similar gallery items (cosine similarity) that have its label; averaged
    over the queries (a share of counts: float32 whatever the inputs' precision).
    """
    neighbours = _cosine_similarities(queries, gallery).topk(k, dim=1).indices  # (Q, k)
    return (gallery_labels[neighbours] == query_labels[:, None]).float().mean()


def class_profiles(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Each unit's mean activation over the examples of each class: (N, U), (N,) -> (C, U)."""
    one_hot = F.one_hot(labels, num_classes).to(features.dtype)  # (N, C)
    return (one_hot.T @ features) / one_hot.sum(0)[:, None]


def profile_correlation(features_a: torch.Tensor, labels_a: torch.Tensor, features_b: torch.Tensor,
                        labels_b: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """Per unit, the correlation of its class profiles in two domains: (U,), each in [-1, 1].

    features_a: (Na, U) with labels_a (Na,), features_b: (Nb, U) with labels_b (Nb,), every
    class present in both. A unit's profile in a domain is its mean activation per class
    (C,); the result is the Pearson correlation of the two profiles over the classes, 0 for
    a unit whose profile is constant in either domain (a silent unit).
    """
    a = class_profiles(features_a, labels_a, num_classes)
    b = class_profiles(features_b, labels_b, num_classes)
    a, b = a - a.mean(0), b - b.mean(0)  # centred over the classes
    norms = a.norm(dim=0) * b.norm(dim=0)  # (U,)
    return torch.where(norms > 0, (a * b).sum(0) / norms.clamp_min(torch.finfo(norms.dtype).tiny), 0.0)


__all__ += ["CrossDomainNet", "retrieval_precision", "class_profiles",
            "profile_correlation"]


def standardize_images(x: torch.Tensor) -> torch.Tensor:
    """Each image shifted and scaled to mean 0 and standard deviation 1: (B, C, H, W) -> same.

    Removes the cheapest differences between domains (how much ink, how dark) before any
    learning; a blank image stays blank.
    """
    if x.dim() != 4:
        raise ValueError(f"x must be (B, C, H, W), got {tuple(x.shape)}")
    centred = x - x.mean((1, 2, 3), keepdim=True)
    return centred / centred.std((1, 2, 3), keepdim=True).clamp_min(1e-3)


class DANN(torch.nn.Module):
    """A domain-adversarial network (Ganin & Lempitsky 2015) for 8x8 digits.

    One feature extractor, read by a label classifier and, behind a gradient reversal, by
    a domain classifier. x: (B, 1, 8, 8) -> features (B, features).
    """

    def __init__(self, features: int = 32, domain_hidden: int = 128, num_classes: int = 10):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),  # (B, 32, 4, 4)
            torch.nn.Flatten(), torch.nn.Linear(32 * 4 * 4, features), torch.nn.ReLU())
        self.label_classifier = torch.nn.Linear(features, num_classes)
        self.domain_classifier = torch.nn.Sequential(
            torch.nn.Linear(features, domain_hidden), torch.nn.ReLU(),
            torch.nn.Linear(domain_hidden, domain_hidden), torch.nn.ReLU(),
            torch.nn.Linear(domain_hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 8, 8) -> class logits (B, num_classes)."""
        return self.label_classifier(self.features(x))

    def domain_logits(self, features: torch.Tensor, weight: float) -> torch.Tensor:
        """Features (B, features) -> (B,) logits of "target"; the features get the gradient times -weight."""
        return self.domain_classifier(gradient_reversal(features, weight))[:, 0]


def train_dann(model: DANN, source_x: torch.Tensor, source_y: torch.Tensor, target_x: torch.Tensor, steps: int,
               schedule: Callable[[float], float] | None = dann_weight, batch_size: int = 64, lr: float = 1e-3,
               generator: torch.Generator | None = None, evaluate: Callable[[DANN], float] | None = None,
               eval_every: int = 250, progress: bool = True, desc: str = "DANN") -> dict[str, list]:
    """Train ``model`` on labelled source and unlabelled target images; return the losses per step.

    source_x: (Ns, 1, 8, 8), source_y: (Ns,), target_x: (Nt, 1, 8, 8). Each step draws
    ``batch_size`` images of each domain and minimises the label loss on the source batch
    plus the domain loss on both, the reversal's weight ``schedule(step / steps)``.
    ``schedule=None`` trains on the source alone (no target batch, no domain classifier).
    ``evaluate(model)``, if given, runs every ``eval_every`` steps and at the end, in eval
    mode without gradients; its values go to ``history["evaluation"]`` as (step, value).
    """
    from dlpt.train import _Progress

    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history: dict[str, list] = {"label loss": [], "domain loss": [], "evaluation": []}
    bar = _Progress(steps, desc, progress)
    for step in range(steps):
        i = torch.randint(len(source_x), (batch_size,), generator=generator)
        source_features = model.features(source_x[i].to(device))  # (batch_size, features)
        loss = F.cross_entropy(model.label_classifier(source_features), source_y[i].to(device))
        history["label loss"].append(loss.item())
        if schedule is not None:
            j = torch.randint(len(target_x), (batch_size,), generator=generator)
            weight = schedule(step / steps)
            adversarial = domain_loss(model.domain_logits(source_features, weight),
                                      model.domain_logits(model.features(target_x[j].to(device)), weight))
            history["domain loss"].append(adversarial.item())
            loss = loss + adversarial
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        bar.update(step + 1, loss.item())
        if evaluate is not None and ((step + 1) % eval_every == 0 or step + 1 == steps):
            model.eval()
            with torch.no_grad():
                history["evaluation"].append((step + 1, float(evaluate(model))))
            model.train()
    bar.close()
    return history


def fresh_domain_accuracy(source_features: torch.Tensor, target_features: torch.Tensor, steps: int = 500,
                          seed: int = 0) -> float:
    """How well a new domain classifier, trained on half of the frozen features, tells the other half apart.

    source_features: (Ns, D), target_features: (Nt, D). A two-layer classifier is trained
    with Adam on the first half of each (``domain_loss``), and its accuracy on the second
    halves (each domain weighted equally) is returned: 0.5 is chance, 1.0 a perfect
    separation.
    """
    source_features, target_features = source_features.detach(), target_features.detach()
    torch.manual_seed(seed)
    classifier = torch.nn.Sequential(torch.nn.Linear(source_features.shape[1], 64), torch.nn.ReLU(),
                                     torch.nn.Linear(64, 1)).to(source_features.device)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=1e-3)
    ns, nt = len(source_features) // 2, len(target_features) // 2
    for _ in range(steps):
        loss = domain_loss(classifier(source_features[:ns])[:, 0], classifier(target_features[:nt])[:, 0])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        source_right = (classifier(source_features[ns:])[:, 0] < 0).float().mean()
        target_right = (classifier(target_features[nt:])[:, 0] > 0).float().mean()
    return ((source_right + target_right) / 2).item()


__all__ += ["standardize_images", "DANN", "train_dann", "fresh_domain_accuracy"]


# ----------------------------------------------------------------------------------------
# Section 3: translation in pixel space without pairs (CycleGAN)
# ----------------------------------------------------------------------------------------

__all__ += ["Generator", "Discriminator", "CycleGAN", "lsgan_loss", "cyclegan_losses", "train_cyclegan",
            "translate"]


class Generator(torch.nn.Module):
    """A translator between two domains of small images: (B, 1, H, W) -> (B, 1, H, W) in [0, 1].

    An MLP on the flattened pixels; at 8x8 this is enough, and it lets a pixel anywhere
    move ink anywhere, which a translation between printed and handwritten digits needs.
    """

    def __init__(self, pixels: int = 64, hidden: int = 128):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(pixels, hidden), torch.nn.ReLU(),
            torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
            torch.nn.Linear(hidden, pixels), torch.nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1)).view_as(x)


class Discriminator(torch.nn.Module):
    """One domain's critic: images (B, 1, H, W) -> scores (B,), trained towards 1 on the
    domain's real images and 0 on translations into it (a least-squares GAN)."""

    def __init__(self, pixels: int = 64, hidden: int = 128):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(pixels, hidden), torch.nn.LeakyReLU(0.2),
            torch.nn.Linear(hidden, hidden), torch.nn.LeakyReLU(0.2),
            torch.nn.Linear(hidden, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1)).squeeze(1)


class CycleGAN(torch.nn.Module):
    """CycleGAN's four networks: G (source -> target), F (target -> source) and a discriminator
    for each domain (Zhu et al. 2017)."""

    def __init__(self, pixels: int = 64, hidden: int = 128):
        super().__init__()
        self.to_target, self.to_source = Generator(pixels, hidden), Generator(pixels, hidden)  # G, F
        self.d_target, self.d_source = Discriminator(pixels, hidden), Discriminator(pixels, hidden)


def lsgan_loss(scores: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss (Mao et al. 2017): mean (score - 1)^2 if ``real``, else mean score^2.

    scores: (B,). A discriminator minimises it with real=True on real images and real=False
    on translations; a generator minimises it with real=True on its own translations.
    """
    return (scores - 1).pow(2).mean() if real else scores.pow(2).mean()


def cyclegan_losses(model: CycleGAN, source: torch.Tensor, target: torch.Tensor, adversarial: float = 1.0,
                    cycle: float = 10.0, identity: float = 5.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The generators' loss and the discriminators' loss on one unpaired batch of each domain.

    source: (B, 1, H, W), target: (B', 1, H, W), unrelated images. The generators' loss is
    ``adversarial`` x (fool each discriminator) + ``cycle`` x (both round trips return their
    input) + ``identity`` x (each generator leaves an image of its own output domain alone).
    Returns two 0-d tensors; the discriminators see the translations detached.
    """
    g, f = model.to_target, model.to_source
    fake_target, fake_source = g(source), f(target)
    generators = (adversarial * (lsgan_loss(model.d_target(fake_target), True)
                                 + lsgan_loss(model.d_source(fake_source), True))
                  + cycle * (cycle_loss(source, g, f) + cycle_loss(target, f, g))
                  + identity * (identity_loss(target, g) + identity_loss(source, f)))
    discriminators = (lsgan_loss(model.d_target(target), True)
                      + lsgan_loss(model.d_target(fake_target.detach()), False)
                      + lsgan_loss(model.d_source(source), True)
                      + lsgan_loss(model.d_source(fake_source.detach()), False)) / 2
    return generators, discriminators


def train_cyclegan(source_x: torch.Tensor, target_x: torch.Tensor, *, adversarial: float = 1.0, cycle: float = 10.0,
                   identity: float = 5.0, steps: int = 1500, batch_size: int = 64, lr: float = 1e-3,
                   hidden: int = 128, progress: bool = True, desc: str = "CycleGAN") -> CycleGAN:
    """Train a :class:`CycleGAN` on unpaired images ``source_x: (Ns, 1, H, W)``, ``target_x: (Nt, 1, H, W)``.

    Each step draws a random batch from each domain (with torch's global generator, so
    ``dlpt.reseed()`` fixes them), takes one Adam step (betas 0.5, 0.999) on the generators
    and one on the discriminators; with ``adversarial=0`` the discriminators are not trained.
    Returns the model in eval mode, on the device of ``source_x``.
    """
    from dlpt.train import _Progress

    pixels = source_x[0].numel()
    model = CycleGAN(pixels, hidden).to(source_x.device)
    generators = [*model.to_target.parameters(), *model.to_source.parameters()]
    discriminators = [*model.d_target.parameters(), *model.d_source.parameters()]
    opt_g = torch.optim.Adam(generators, lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminators, lr=lr, betas=(0.5, 0.999))
    bar = _Progress(steps, desc, progress)
    for step in range(1, steps + 1):
        source = source_x[torch.randint(len(source_x), (batch_size,))]
        target = target_x[torch.randint(len(target_x), (batch_size,))]
        loss_g, loss_d = cyclegan_losses(model, source, target, adversarial, cycle, identity)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        if adversarial > 0:
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()  # the translations are detached: nothing reaches the generators
            opt_d.step()
        bar.update(step, loss_g.item())
    bar.close()
    return model.eval()


@torch.no_grad()
def translate(generator: torch.nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """``generator`` applied to ``x: (N, 1, H, W)`` in batches, without gradients: (N, 1, H, W)."""
    return torch.cat([generator(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


# ----------------------------------------------------------------------------------------
# Section 4: translation between languages without parallel text
# ----------------------------------------------------------------------------------------

__all__ += ["cooccurrence", "ppmi", "svd_embeddings", "frequency_rank_dictionary", "nearest_neighbours",
            "sinkhorn", "gromov_wasserstein", "refine_procrustes", "add_noise", "pad_sentences",
            "translate_sentences", "exact_match"]


def cooccurrence(sentences: list[torch.Tensor], vocab_size: int, window: int | None = None) -> torch.Tensor:
    """Counts (V, V) float64: entry (u, v) counts the times words u and v appear together.

    sentences: 1-D int64 tensors of word ids. Two positions i != j count when
    ``|i - j| <= window``, or anywhere in the same sentence when ``window`` is None.
    """
    if window is None:  # bags of words X (N, V): pairs of positions i != j are X^T X minus the diagonal X
        bags = torch.zeros(len(sentences), vocab_size, dtype=torch.float64)
        rows = torch.cat([torch.full((len(s),), n) for n, s in enumerate(sentences)])
        bags.index_put_((rows, torch.cat(sentences)), torch.ones(len(rows), dtype=torch.float64), accumulate=True)
        return bags.T @ bags - torch.diag(bags.sum(0))
    counts = torch.zeros(vocab_size, vocab_size, dtype=torch.float64)
    for s in sentences:
        offsets = (torch.arange(len(s))[:, None] - torch.arange(len(s))).abs()  # (T, T)
        near = (offsets > 0) & (offsets <= window)
        i, j = near.nonzero(as_tuple=True)
        counts.index_put_((s[i], s[j]), torch.ones(len(i), dtype=torch.float64), accumulate=True)
    return counts


def ppmi(counts: torch.Tensor) -> torch.Tensor:
    """Positive pointwise mutual information max(0, log p(u, v) / (p(u) p(v))) of counts (V, V)."""
    total = counts.sum()
    p_u, p_v = counts.sum(1, keepdim=True) / total, counts.sum(0, keepdim=True) / total
    pmi = torch.log(counts / total / (p_u * p_v))  # -inf where a pair never occurs, nan for unseen words
    return pmi.nan_to_num(0.0, posinf=0.0, neginf=0.0).clamp(min=0.0)


def svd_embeddings(matrix: torch.Tensor, dim: int) -> torch.Tensor:
    """Word vectors (V, dim) from a symmetric matrix (V, V) such as a PPMI matrix.

    The truncated SVD U_k S_k^(1/2) (Levy & Goldberg 2014), then centred and scaled to
    unit length, so that a dot product is a cosine similarity.
    """
    u, s, _ = torch.linalg.svd(matrix)
    vectors = u[:, :dim] * s[:dim].sqrt()
    vectors = vectors - vectors.mean(0)
    return torch.nn.functional.normalize(vectors, dim=1)


def frequency_rank_dictionary(counts_a: torch.Tensor, counts_b: torch.Tensor) -> torch.Tensor:
    """The baseline without embeddings: the k-th most frequent A word -> the k-th most frequent B word.

    counts_a, counts_b: word frequencies (V,). Returns (V,) int64, a B id for each A id.
    """
    dictionary = torch.empty(len(counts_a), dtype=torch.int64)
    # stable sorts, so that ties are broken the same way on every machine
    dictionary[counts_a.argsort(descending=True, stable=True)] = counts_b.argsort(descending=True, stable=True)
    return dictionary


def nearest_neighbours(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """For each row of queries (N, D), the index of the most cosine-similar row of keys (M, D): (N,)."""
    return _cosine_similarities(queries, keys).argmax(1)


def sinkhorn(cost: torch.Tensor, epsilon: float, iterations: int = 100) -> torch.Tensor:
    """Entropic optimal transport between uniform marginals: the plan (N, M) minimising
    <plan, cost> - epsilon H(plan), rows summing to 1/N and columns to 1/M (Cuturi 2013).

    Alternating normalisations of exp(-cost / epsilon), in the log domain so that a small
    epsilon does not underflow.
    """
    n, m = cost.shape
    log_k = -cost / epsilon
    f = torch.zeros(n, 1, dtype=cost.dtype)
    g = torch.zeros(1, m, dtype=cost.dtype)
    for _ in range(iterations):
        f = -math.log(n) - torch.logsumexp(log_k + g, dim=1, keepdim=True)
        g = -math.log(m) - torch.logsumexp(log_k + f, dim=0, keepdim=True)
    return torch.exp(log_k + f + g)


def gromov_wasserstein(similarity_a: torch.Tensor, similarity_b: torch.Tensor, epsilon: float = 0.01,
                       iterations: int = 50) -> torch.Tensor:
    """A soft matching (V, V) of two sets whose *internal* similarities agree (Mémoli 2011;
    Peyré et al. 2016; Alvarez-Melis & Jaakkola 2018 for word embeddings).

    similarity_a (N, N), similarity_b (M, M): e.g. cosine similarities of each language's
    word vectors. The plan T minimises sum over (i, j, k, l) of
    (similarity_a[i, k] - similarity_b[j, l])^2 T[i, j] T[k, l]: words i and j are matched
    when i's similarities to the other words agree with j's similarities to their matches.
    With uniform marginals the terms that depend on one side only are constant, leaving the
    cost -2 similarity_a T similarity_b^T, linearised at the current T and solved by
    :func:`sinkhorn`, repeatedly. No vector is ever compared across the two spaces.
    """
    plan = torch.full((len(similarity_a), len(similarity_b)), 1.0 / (len(similarity_a) * len(similarity_b)),
                      dtype=similarity_a.dtype)
    for _ in range(iterations):
        cost = -2 * similarity_a @ plan @ similarity_b.T
        plan = sinkhorn(cost / cost.abs().max(), epsilon)
    return plan


def refine_procrustes(source: torch.Tensor, target: torch.Tensor, dictionary: torch.Tensor,
                      iterations: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Self-learning (Artetxe et al. 2018; Conneau et al. 2018): fit :func:`procrustes` on the
    current dictionary, re-translate every word by its nearest neighbour, repeat.

    source (V, D), target (V, D), dictionary (V,) the target index of each source word.
    Returns the orthogonal map W (D, D) and the final dictionary (V,).
    """
    for _ in range(iterations):
        w = procrustes(source, target[dictionary])
        dictionary = nearest_neighbours(source @ w, target)
    return w, dictionary


def add_noise(tokens: torch.Tensor, generator: torch.Generator, drop: float = 0.1, k: int = 3) -> torch.Tensor:
    """The noise of denoising auto-encoding (Lample et al. 2018): drop words, then shuffle locally.

    tokens: (T,) int64 on the CPU, like ``generator``. Each word is dropped with probability
    ``drop`` (at least one word is kept, so a non-empty sentence never becomes empty; an empty
    one stays empty); the remaining words are permuted by
    argsort(i + u_i) with u_i ~ U(0, k + 1), which moves no word more than k positions.
    Random numbers come from ``generator`` only. Returns a new tensor (T',), T' <= T.
    """
    keep = torch.rand(len(tokens), generator=generator, device=tokens.device) >= drop
    if len(tokens) and not keep.any():
        keep[torch.randint(len(tokens), (1,), generator=generator, device=tokens.device)] = True
    kept = tokens[keep]
    keys = torch.arange(len(kept), device=tokens.device) + (k + 1) * torch.rand(
        len(kept), generator=generator, device=tokens.device)
    return kept[keys.argsort()]


def pad_sentences(sentences: list[torch.Tensor], prefix: list[int] = (), bos: int | None = None,
                  eos: int | None = None, pad: int = 0) -> torch.Tensor:
    """Sentences (1-D int64 tensors) -> a batch (N, T) padded with ``pad``; each row is
    ``prefix`` tokens, then ``bos`` if given, the sentence, then ``eos`` if given."""
    rows = [[*prefix, *([bos] if bos is not None else []), *s.tolist(), *([eos] if eos is not None else [])]
            for s in sentences]
    out = torch.full((len(rows), max(map(len, rows))), pad, dtype=torch.int64)
    for i, row in enumerate(rows):
        out[i, :len(row)] = torch.tensor(row, dtype=torch.int64)
    return out


@torch.no_grad()
def translate_sentences(model: torch.nn.Module, sentences: list[torch.Tensor], language_token: int,
                        max_len: int = 16, batch_size: int = 1000) -> list[torch.Tensor]:
    """Greedy translation with a shared encoder–decoder (a ``dlpt.sequences.Seq2Seq``).

    sentences: 1-D int64 tensors of shared-vocabulary ids (PAD, BOS, EOS = 0, 1, 2); the
    source is ``language_token`` followed by the sentence, the token naming the language
    to write in. Returns one 1-D tensor per sentence, cut at the first EOS, on the CPU.
    The model is put in eval mode and back.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(sentences), batch_size):
        src = pad_sentences(sentences[start:start + batch_size], prefix=[language_token]).to(device)
        ids, _ = model.greedy(src, max_len)  # (B, max_len)
        for row in ids.cpu():
            ends = (row == 2).nonzero()
            out.append(row[: ends[0, 0]] if len(ends) else row)
    model.train(was_training)
    return out


def exact_match(predictions: list[torch.Tensor], references: list[torch.Tensor]) -> float:
    """The share of predicted sentences equal to their reference, word for word and in order."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    return sum(torch.equal(p, r) for p, r in zip(predictions, references)) / len(references)
