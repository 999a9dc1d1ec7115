"""Chapter 4: autoregressive models — causal convolutions, WaveNet, masks, PixelCNN, grouped sampling.

An autoregressive model factorizes p(x) = prod_t p(x_t | x_<t) and makes every output see
only the past: by padding on the left (:class:`CausalConv1d`), by masking a kernel
(:class:`MaskedConv2d`) or by masking attention (:func:`causal_mask`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dlpt import convnets
from dlpt.sequences import attention

__all__ = [
    "causal_mask",
    "CausalConv1d",
    "receptive_field",
    "mu_law_encode",
    "mu_law_decode",
    "logistic_bin_probability",
    "discretized_logistic_mixture_log_prob",
    "WaveNet",
    "pixelcnn_mask",
    "MaskedConv2d",
    "PixelCNN",
    "MultiscalePixelModel",
    "multiscale_evaluations",
    "CausalSelfAttention",
    "TransformerLM",
    "CausalConvLM",
    "sinusoidal_positions",
]


def causal_mask(T: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(T, T) boolean, True where position t may attend to position s, i.e. s <= t."""
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def _check_input(x: torch.Tensor, channels: int, layout: str) -> None:
    dims = len(layout.split(","))
    if x.dim() != dims or x.shape[1] != channels:
        raise ValueError(f"expected input of shape ({layout}) with C = {channels}, got {tuple(x.shape)}")


class CausalConv1d(nn.Module):
    """A 1-D convolution whose output at step t sees only inputs at steps <= t.

    x: (B, C_in, T) -> (B, C_out, T). The input is padded with (kernel_size - 1) * dilation
    zeros on the left only, so nothing from the future enters any window.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1):
        super().__init__()
        self.in_channels, self.left = in_channels, (kernel_size - 1) * dilation
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.in_channels, "B, C, T")
        return self.conv(F.pad(x, (self.left, 0)))


def receptive_field(kernel_size: int, dilations: Sequence[int]) -> int:
    """How many input steps reach one output of a stack of causal convolutions of one kernel
    size: 1 + sum over layers of (kernel_size - 1) * dilation (chapter 2's formula, stride 1)."""
    return convnets.receptive_field([kernel_size] * len(dilations), dilations)


def mu_law_encode(x: torch.Tensor, mu: int = 255) -> torch.Tensor:
    """Audio x in [-1, 1] -> integers 0..mu (int64): compand with
    sign(x) ln(1 + mu |x|) / ln(1 + mu), then quantize [-1, 1] uniformly to mu + 1 levels."""
    x = x.clamp(-1, 1)
    companded = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)
    return torch.round((companded + 1) / 2 * mu).to(torch.int64)


def mu_law_decode(q: torch.Tensor, mu: int = 255) -> torch.Tensor:
    """Integers 0..mu -> audio in [-1, 1], the inverse of :func:`mu_law_encode` up to quantization."""
    companded = 2 * q.to(torch.float32) / mu - 1
    return torch.sign(companded) * ((1 + mu) ** companded.abs() - 1) / mu


def logistic_bin_probability(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor,
                             num_bins: int = 256) -> torch.Tensor:
    """P(bin of x) under one logistic: the CDF difference over the bin around x.

    x: bin centres in [-1, 1] (bin width 2 / (num_bins - 1)), any shape broadcasting with
    mean and log_scale. The first bin takes the whole left tail (CDF up to its upper edge),
    the last the whole right tail, so the probabilities of all bins sum to one.
    """
    half = 1 / (num_bins - 1)
    inv_scale = torch.exp(-log_scale)
    cdf_upper = torch.sigmoid(inv_scale * (x - mean + half))
    cdf_lower = torch.sigmoid(inv_scale * (x - mean - half))
    index = torch.round((x + 1) / 2 * (num_bins - 1))
    upper = torch.where(index >= num_bins - 1, torch.ones_like(cdf_upper), cdf_upper)
    lower = torch.where(index <= 0, torch.zeros_like(cdf_lower), cdf_lower)
    return upper - lower


def discretized_logistic_mixture_log_prob(x: torch.Tensor, logit_probs: torch.Tensor, means: torch.Tensor,
                                          log_scales: torch.Tensor, num_bins: int = 256) -> torch.Tensor:
    """log p(x) under a mixture of K discretized logistics (Salimans et al., 2017).

    x: (B, ...) on the bin centres in [-1, 1]; logit_probs, means, log_scales: (B, K, ...).
    Returns (B, ...). Computed in log space: the edge bins through log-sigmoids, interior
    bins through the CDF difference (floored at 1e-12 where it underflows).
    """
    if logit_probs.shape != means.shape or means.shape != log_scales.shape:
        raise ValueError(f"logit_probs, means, log_scales must share a shape (B, K, ...); got "
                         f"{tuple(logit_probs.shape)}, {tuple(means.shape)}, {tuple(log_scales.shape)}")
    if means.dim() != x.dim() + 1 or means.shape[0] != x.shape[0] or means.shape[2:] != x.shape[1:]:
        raise ValueError(f"x of shape {tuple(x.shape)} needs parameters of shape (B, K, ...) = "
                         f"({x.shape[0]}, K, {', '.join(map(str, x.shape[1:]))}); got {tuple(means.shape)}")
    x = x[:, None]  # (B, 1, ...)
    half = 1 / (num_bins - 1)
    inv_scale = torch.exp(-log_scales)
    upper_in, lower_in = inv_scale * (x - means + half), inv_scale * (x - means - half)
    log_cdf_upper = F.logsigmoid(upper_in)  # log P(X <= upper edge): the first bin
    log_survival_lower = F.logsigmoid(-lower_in)  # log P(X > lower edge): the last bin
    middle = torch.log((torch.sigmoid(upper_in) - torch.sigmoid(lower_in)).clamp(min=1e-12))
    index = torch.round((x + 1) / 2 * (num_bins - 1)).expand_as(means)
    log_bin = torch.where(index <= 0, log_cdf_upper, torch.where(index >= num_bins - 1, log_survival_lower, middle))
    return torch.logsumexp(F.log_softmax(logit_probs, dim=1) + log_bin, dim=1)


class _GatedBlock(nn.Module):
    """WaveNet's residual block: z = tanh(W_f * x) * sigmoid(W_g * x) with a dilated causal
    convolution, then 1x1 convolutions to the residual path and to the skip path."""

    def __init__(self, channels: int, skip_channels: int, dilation: int):
        super().__init__()
        self.dilated = CausalConv1d(channels, 2 * channels, 2, dilation)
        self.residual = nn.Conv1d(channels, channels, 1)
        self.skip = nn.Conv1d(channels, skip_channels, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        filter_, gate = self.dilated(x).chunk(2, dim=1)
        z = torch.tanh(filter_) * torch.sigmoid(gate)
        return x + self.residual(z), self.skip(z)


class WaveNet(nn.Module):
    """A small WaveNet (van den Oord et al., 2016) over mu-law levels.

    x: (B, T) int64 levels 0..levels-1 -> logits (B, levels, T); the logits at step t are
    the distribution of x_{t+1} given x_0..x_t. Dilations 1, 2, 4, ..., 2^(layers-1),
    repeated ``stacks`` times, each layer a gated residual block with a skip output.
    """

    def __init__(self, levels: int = 256, channels: int = 16, skip_channels: int = 32, layers: int = 6,
                 stacks: int = 1):
        super().__init__()
        self.levels = levels
        self.dilations = [2**i for i in range(layers)] * stacks
        self.embed = nn.Embedding(levels, channels)  # = a one-hot input and a 1x1 convolution
        self.blocks = nn.ModuleList(_GatedBlock(channels, skip_channels, d) for d in self.dilations)
        self.head = nn.Sequential(nn.ReLU(), nn.Conv1d(skip_channels, skip_channels, 1), nn.ReLU(),
                                  nn.Conv1d(skip_channels, levels, 1))

    @property
    def receptive_field(self) -> int:
        return receptive_field(2, self.dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2:
            raise ValueError(f"expected levels of shape (B, T), got {tuple(x.shape)}")
        h = self.embed(x).transpose(1, 2)  # (B, C, T)
        skips = 0
        for block in self.blocks:
            h, skip = block(h)
            skips = skips + skip
        return self.head(skips)

    @torch.no_grad()
    def generate(self, prompt: torch.Tensor, n: int, temperature: float = 1.0, window: bool = True,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample n more levels after prompt (B, T0) -> (B, T0 + n), one network call per sample.

        With ``window`` each call sees only the last receptive-field steps, all it can use;
        without it each call recomputes the whole history, as a naive loop would.
        """
        x = prompt
        for _ in range(n):
            context = x[:, -self.receptive_field:] if window else x
            logits = self(context)[:, :, -1] / temperature  # (B, levels)
            probs = torch.softmax(logits, dim=-1)
            x = torch.cat([x, torch.multinomial(probs, 1, generator=generator)], dim=1)
        return x


def pixelcnn_mask(kernel_size: int, mask_type: str) -> torch.Tensor:
    """(k, k) float mask of a PixelCNN kernel: 1 on the pixels before the centre in raster
    order (rows above; left of the centre in its row), 0 after; the centre 0 for type "A",
    1 for type "B"."""
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    if kernel_size % 2 != 1:
        raise ValueError(f"kernel_size must be odd, got {kernel_size}")
    c = kernel_size // 2
    mask = torch.ones(kernel_size, kernel_size)
    mask[c + 1:, :] = 0  # rows below the centre
    mask[c, c + 1:] = 0  # right of the centre in its row
    mask[c, c] = float(mask_type == "B")
    return mask


class MaskedConv2d(nn.Conv2d):
    """A convolution whose kernel sees only pixels before the centre in raster order.

    x: (B, C_in, H, W) -> (B, C_out, H, W) (odd kernel_size, "same" padding).
    mask_type "A" (first layer) also hides the centre pixel; "B" (later layers) shows it,
    since by then the centre's features depend only on earlier pixels. With
    ``color_groups=3`` the channels split into R, G, B thirds and at the centre an output
    third sees the input thirds before it ("A") or up to it ("B"): R before G before B.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, mask_type: str,
                 color_groups: int = 1):
        mask = pixelcnn_mask(kernel_size, mask_type).repeat(out_channels, in_channels, 1, 1)
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.mask_type = mask_type
        c = kernel_size // 2
        out_group = torch.arange(out_channels) * color_groups // out_channels
        in_group = torch.arange(in_channels) * color_groups // in_channels
        allowed = (in_group[None, :] < out_group[:, None]) if mask_type == "A" else \
            (in_group[None, :] <= out_group[:, None])
        mask[:, :, c, c] = allowed.float()  # the centre, by colour group (with one group: as the mask type says)
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.in_channels, "B, C, H, W")
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class PixelCNN(nn.Module):
    """A PixelCNN (van den Oord et al., 2016) for binary images.

    x: (B, 1, H, W) in {0, 1} -> logits (B, 1, H, W) of p(x_ij = 1 | pixels before ij in
    raster order): one type-A masked convolution, then type-B ones, ReLUs between.
    """

    def __init__(self, channels: int = 16, layers: int = 3, first_kernel: int = 5, kernel: int = 3):
        super().__init__()
        convs = [MaskedConv2d(1, channels, first_kernel, "A")]
        convs += [MaskedConv2d(channels, channels, kernel, "B") for _ in range(layers - 1)]
        self.convs = nn.ModuleList(convs)
        self.out = MaskedConv2d(channels, 1, 1, "B")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for conv in self.convs:
            h = torch.relu(conv(h))
        return self.out(h)

    @torch.no_grad()
    def sample(self, n: int, height: int, width: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images (n, 1, H, W), pixel by pixel: H * W network evaluations."""
        device = next(self.parameters()).device
        x = torch.zeros(n, 1, height, width, device=device)
        for i in range(height):
            for j in range(width):
                p = torch.sigmoid(self(x)[:, 0, i, j])
                x[:, 0, i, j] = torch.bernoulli(p, generator=generator)
        return x


class MultiscalePixelModel(nn.Module):
    """Grouped multiscale sampling for binary images (after Reed et al., 2017).

    A size x size image is built from a 1 x 1 one by doublings. At each doubling the pixels
    of the new resolution fall into four interleaved groups, the corners of each 2 x 2 block:
    group 0 (top left) is the coarser image itself; groups 1, 2, 3 (top right, bottom left,
    bottom right) are predicted in turn, every pixel of a group at once, each group given all
    the pixels known so far. ``predictors[g - 1]`` maps (B, 3, S, S) (known pixels, the mask
    of known pixels, log2 S / 8) to logits (B, 1, S, S), and is shared by all resolutions.
    """

    GROUPS = ((0, 1), (1, 0), (1, 1))  # (row, column) offsets in each 2 x 2 block

    def __init__(self, channels: int = 32, layers: int = 3):
        super().__init__()

        def predictor() -> nn.Sequential:
            convs = [nn.Conv2d(3, channels, 3, padding=1), nn.ReLU()]
            for _ in range(layers - 1):
                convs += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU()]
            return nn.Sequential(*convs, nn.Conv2d(channels, 1, 1))

        self.base_logit = nn.Parameter(torch.zeros(()))  # the 1 x 1 image, p(x_00 = 1)
        self.predictors = nn.ModuleList(predictor() for _ in self.GROUPS)

    def _logits(self, group: int, canvas: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        level = torch.full_like(canvas, math.log2(canvas.shape[-1]) / 8)
        return self.predictors[group](torch.cat([canvas * known, known, level], dim=1))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) in nats: x (B, 1, S, S) binary, S a power of two -> (B,)."""
        size = x.shape[-1]
        if x.dim() != 4 or x.shape[1] != 1 or x.shape[-2] != size or size & (size - 1):
            raise ValueError(f"expected (B, 1, S, S) with S a power of two, got {tuple(x.shape)}")
        coarse = x[:, :, ::size, ::size]  # (B, 1, 1, 1)
        total = -F.binary_cross_entropy_with_logits(self.base_logit.expand_as(coarse), coarse,
                                                    reduction="none").flatten(1).sum(1)
        s = 1
        while s < size:
            s *= 2
            image = x[:, :, :: size // s, :: size // s]  # (B, 1, s, s)
            known = torch.zeros_like(image)
            known[:, :, ::2, ::2] = 1
            for g, (di, dj) in enumerate(self.GROUPS):
                logits = self._logits(g, image, known)[:, :, di::2, dj::2]
                total = total - F.binary_cross_entropy_with_logits(
                    logits, image[:, :, di::2, dj::2], reduction="none").flatten(1).sum(1)
                known[:, :, di::2, dj::2] = 1
        return total

    @torch.no_grad()
    def sample(self, n: int, size: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, int]:
        """n images (n, 1, size, size) and the number of network evaluations used."""
        device = self.base_logit.device
        image = torch.bernoulli(torch.sigmoid(self.base_logit).expand(n, 1, 1, 1).contiguous(),
                                generator=generator)
        evaluations = 1
        while image.shape[-1] < size:
            s = 2 * image.shape[-1]
            canvas = torch.zeros(n, 1, s, s, device=device)
            known = torch.zeros_like(canvas)
            canvas[:, :, ::2, ::2], known[:, :, ::2, ::2] = image, 1
            for g, (di, dj) in enumerate(self.GROUPS):
                p = torch.sigmoid(self._logits(g, canvas, known)[:, :, di::2, dj::2])
                canvas[:, :, di::2, dj::2] = torch.bernoulli(p, generator=generator)
                known[:, :, di::2, dj::2] = 1
                evaluations += 1
            image = canvas
        return image, evaluations


def multiscale_evaluations(size: int, base: int = 1) -> int:
    """Network evaluations to sample a size x size image by grouped multiscale sampling:
    ``base`` x ``base`` pixels one at a time, then each doubling of the resolution fills
    three interleaved groups of pixels, one evaluation per group (Reed et al., 2017)."""
    if size < base or size & (size - 1) or base & (base - 1):
        raise ValueError(f"size and base must be powers of two with size >= base, got {size} and {base}")
    return base * base + 3 * int(math.log2(size // base))


# ---------------------------------------------------------------- section 2: text


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which step t attends to steps <= t only.

    x: (B, T, D) -> (B, T, D). Queries, keys and values are linear maps of x, split into
    ``heads`` heads of D / heads each; the weights come from :func:`dlpt.sequences.attention`
    with :func:`causal_mask`. ``self.weights`` keeps the last (B, heads, T, T) maps.
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # (B, h, T, d)
        context, self.weights = attention(q, k, v, causal_mask(T, x.device))
        return self.proj(context.transpose(1, 2).reshape(B, T, D))


def sinusoidal_positions(T: int, dim: int) -> torch.Tensor:
    """(T, dim) positional encodings of Vaswani et al. (2017): sin and cos of t / 10000^(2i/dim)."""
    position = torch.arange(T, dtype=torch.float32)[:, None]
    frequency = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    encoding = torch.zeros(T, dim)
    encoding[:, 0::2], encoding[:, 1::2] = torch.sin(position * frequency), torch.cos(position * frequency)
    return encoding


class _TransformerBlock(nn.Module):
    """x + attention(norm(x)), then x + MLP(norm(x)): the pre-norm residual block."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attention = CausalSelfAttention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TransformerLM(nn.Module):
    """A small decoder-only Transformer language model (Vaswani et al., 2017).

    ids: (B, T) int64 -> logits (B, T, V); the logits at t predict token t + 1 from tokens
    0..t. Token embeddings plus sinusoidal positions, ``layers`` pre-norm blocks, a final norm.
    ``context``: how many tokens back each prediction is given when
    :func:`dlpt.sequences.next_char_losses` scores text in chunks; chunks of 64 with the
    default 64 feed at most 127 positions, within the 128 the notebooks train on.
    """

    def __init__(self, vocab_size: int, dim: int = 64, heads: int = 4, layers: int = 2, context: int = 64):
        super().__init__()
        self.dim, self.context = dim, context
        self.embed = nn.Embedding(vocab_size, dim)
        self.blocks = nn.ModuleList(_TransformerBlock(dim, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dim() != 2:
            raise ValueError(f"expected token ids of shape (B, T), got {tuple(ids.shape)}")
        x = self.embed(ids) + sinusoidal_positions(ids.shape[1], self.dim).to(ids.device)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


class CausalConvLM(nn.Module):
    """A language model of stacked dilated causal convolutions (as in ByteNet's decoder).

    ids: (B, T) -> logits (B, T, V); residual blocks of ReLU and a kernel-2 causal
    convolution with dilations 1, 2, 4, ..., so the receptive field is 2^layers steps.
    """

    def __init__(self, vocab_size: int, channels: int = 64, layers: int = 6, embedding: int = 16):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embedding)
        self.inp = nn.Conv1d(embedding, channels, 1)
        self.convs = nn.ModuleList(CausalConv1d(channels, channels, 2, 2**i) for i in range(layers))
        self.head = nn.Conv1d(channels, vocab_size, 1)
        self.receptive_field = self.context = receptive_field(2, [2**i for i in range(layers)])

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dim() != 2:
            raise ValueError(f"expected token ids of shape (B, T), got {tuple(ids.shape)}")
        h = self.inp(self.embed(ids).transpose(1, 2))  # (B, C, T)
        for conv in self.convs:
            h = h + conv(torch.relu(h))
        return self.head(torch.relu(h)).transpose(1, 2)
