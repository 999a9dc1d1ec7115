"""Chapter 4: autoregressive models — causal convolutions, WaveNet, masks, PixelCNN, grouped sampling.

An autoregressive model factorizes p(x) = prod_t p(x_t | x_<t) and makes every output see
only the past: by padding on the left (:class:`CausalConv1d`), by masking a kernel
(:class:`MaskedConv2d`, the gated PixelCNN's two stacks) or by masking attention
(:func:`causal_mask`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dlpt import convnets
from dlpt.runtime import device_of
from dlpt.sequences import attention

__all__ = [
    "causal_mask",
    "CausalConv1d",
    "causal_conv1d",
    "receptive_field",
    "mu_law_encode",
    "mu_law_decode",
    "logistic_bin_probability",
    "discretized_logistic_mixture_log_prob",
    "WaveNet",
    "generate",
    "pixelcnn_mask",
    "MaskedConv2d",
    "PixelCNN",
    "vertical_stack_mask",
    "horizontal_stack_mask",
    "GatedPixelLayer",
    "GatedPixelCNN",
    "sample_pixels",
    "MultiscalePixelModel",
    "multiscale_evaluations",
    "CausalSelfAttention",
    "causal_self_attention",
    "TransformerBlock",
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
        self.in_channels = in_channels
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.in_channels, "B, C, T")
        return causal_conv1d(x, self.conv.weight, self.conv.bias, self.conv.dilation[0])


def causal_conv1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                  dilation: int = 1) -> torch.Tensor:
    """A causal 1-D convolution: x (B, C_in, T), weight (C_out, C_in, k), bias (C_out,) -> (B, C_out, T).

    Pads (k - 1) * dilation zeros on the left of x only, so the output at step t is computed
    from x at steps t - (k - 1) * dilation, ..., t - dilation, t: nothing later.
    """
    if x.dim() != 3 or weight.dim() != 3 or x.shape[1] != weight.shape[1]:
        raise ValueError(f"expected x: (B, C_in, T) and weight: (C_out, C_in, k) with the same C_in; got x "
                         f"{tuple(x.shape)} and weight {tuple(weight.shape)}")
    left = (weight.shape[-1] - 1) * dilation  # how far back the kernel reaches
    return F.conv1d(F.pad(x, (left, 0)), weight, bias, dilation=dilation)


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
    x = x[:, None]  # (B, 1, ...): one value, scored under each of the K components
    half = 1 / (num_bins - 1)  # half a bin: bin centres are 2 / (num_bins - 1) apart
    inv_scale = torch.exp(-log_scales)  # (B, K, ...)
    upper_in = inv_scale * (x - means + half)  # the bin's upper edge, standardized per component
    lower_in = inv_scale * (x - means - half)
    log_first_bin = F.logsigmoid(upper_in)  # log P(X <= upper edge): the first bin takes the left tail
    log_last_bin = F.logsigmoid(-lower_in)  # log P(X > lower edge): the last bin takes the right tail
    log_middle_bin = torch.log((torch.sigmoid(upper_in) - torch.sigmoid(lower_in)).clamp(min=1e-12))
    index = torch.round((x + 1) / 2 * (num_bins - 1)).expand_as(means)  # the bin's number, 0..num_bins-1
    log_bin = torch.where(index >= num_bins - 1, log_last_bin, log_middle_bin)
    log_bin = torch.where(index <= 0, log_first_bin, log_bin)  # (B, K, ...)
    log_weights = F.log_softmax(logit_probs, dim=1)  # (B, K, ...): log pi_k
    return torch.logsumexp(log_weights + log_bin, dim=1)  # (B, ...): log sum_k pi_k P_k(bin)


class _GatedBlock(nn.Module):
    """WaveNet's residual block: z = tanh(W_f * x) * sigmoid(W_g * x) with a dilated causal
    convolution, then 1x1 convolutions to the residual path and to the skip path."""

    def __init__(self, channels: int, skip_channels: int, dilation: int):
        super().__init__()
        self.dilated = CausalConv1d(channels, 2 * channels, 2, dilation)
        self.residual = nn.Conv1d(channels, channels, 1)
        self.skip = nn.Conv1d(channels, skip_channels, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        filter_, gate = self.dilated(x).chunk(2, dim=1)  # (B, C, T) each
        z = torch.tanh(filter_) * torch.sigmoid(gate)  # (B, C, T)
        return x + self.residual(z), self.skip(z)  # (B, C, T), (B, skip_channels, T)


class WaveNet(nn.Module):
    """A small WaveNet (van den Oord et al., 2016) over mu-law levels.

    x: (B, T) int64 levels 0..levels-1 -> logits (B, levels, T); the logits at step t are
    the distribution of x_{t+1} given x_0..x_t. Dilations 1, 2, 4, ..., 2^(num_layers-1),
    repeated ``num_stacks`` times, each layer a gated residual block with a skip output.
    """

    def __init__(self, levels: int = 256, channels: int = 16, skip_channels: int = 32, num_layers: int = 6,
                 num_stacks: int = 1):
        super().__init__()
        self.levels = levels
        self.dilations = [2**i for i in range(num_layers)] * num_stacks
        self.embed = nn.Embedding(levels, channels)  # = a one-hot input and a 1x1 convolution
        self.blocks = nn.ModuleList(_GatedBlock(channels, skip_channels, d) for d in self.dilations)
        self.head = nn.Sequential(nn.ReLU(), nn.Conv1d(skip_channels, skip_channels, 1), nn.ReLU(),
                                  nn.Conv1d(skip_channels, levels, 1))

    @property
    def receptive_field(self) -> int:
        return receptive_field(2, self.dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.dtype != torch.int64:
            raise ValueError(f"expected int64 levels of shape (B, T), got {x.dtype} {tuple(x.shape)}")
        if x.numel() and (x.min() < 0 or x.max() >= self.levels):
            raise ValueError(f"levels must lie in 0..{self.levels - 1} (mu_law_encode gives them), "
                             f"got values from {x.min().item()} to {x.max().item()}")
        h = self.embed(x).transpose(1, 2)  # (B, T, C) -> (B, C, T), the layout of Conv1d
        skips = 0
        for block in self.blocks:
            h, skip = block(h)
            skips = skips + skip  # (B, skip_channels, T)
        return self.head(skips)  # (B, levels, T)

    @torch.no_grad()
    def generate(self, prompt: torch.Tensor, n: int, temperature: float = 1.0, window: bool = True,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample n more levels after prompt (B, T0) -> (B, T0 + n), one network call per sample.

        With ``window`` each call sees only the last receptive-field steps, all it can use;
        without it each call recomputes the whole history, as a naive loop would.
        """
        reach = self.receptive_field if window else prompt.shape[1] + n  # the whole history
        return generate(lambda x: self(x)[:, :, -1] / temperature, prompt, n, reach, generator)


def generate(next_logits: Callable[[torch.Tensor], torch.Tensor], prompt: torch.Tensor, n: int,
             receptive_field: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """The sampling loop of any autoregressive sequence model: the chain rule run forwards.

    ``next_logits(x)`` maps a window x (B, L) int64 to logits (B, V) of the step after it.
    Starting from ``prompt`` (B, T0) int64, T0 >= 1, each of the n steps feeds the last
    ``receptive_field`` steps only (all a model with that receptive field can use), draws
    x_{t+1} ~ softmax(logits) with ``torch.multinomial(probs, 1, generator=generator)``, one
    independent draw per row, and appends it. Returns (B, T0 + n) int64, the prompt first.
    ``WaveNet.generate`` is this loop with ``next_logits = lambda x: model(x)[:, :, -1]``.
    """
    if prompt.dim() != 2 or prompt.shape[1] < 1 or prompt.dtype != torch.int64:
        raise ValueError(f"expected an int64 prompt of shape (B, T0) with T0 >= 1, got {prompt.dtype} "
                         f"{tuple(prompt.shape)}")
    if receptive_field < 1 or n < 0:
        raise ValueError(f"need receptive_field >= 1 and n >= 0, got {receptive_field} and {n}")
    x = prompt
    with torch.no_grad():
        for _ in range(n):
            logits = next_logits(x[:, -receptive_field:])  # (B, V): the next step's scores
            if logits.dim() != 2 or logits.shape[0] != x.shape[0]:
                raise ValueError(f"next_logits must return logits of shape (B, V) = ({x.shape[0]}, V), "
                                 f"got {tuple(logits.shape)}")
            probs = torch.softmax(logits, dim=-1)
            next_step = torch.multinomial(probs, 1, generator=generator)  # (B, 1), one draw per row
            x = torch.cat([x, next_step], dim=1)
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

    def __init__(self, channels: int = 16, num_layers: int = 3, first_kernel_size: int = 5, kernel_size: int = 3):
        super().__init__()
        convs = [MaskedConv2d(1, channels, first_kernel_size, "A")]
        convs += [MaskedConv2d(channels, channels, kernel_size, "B") for _ in range(num_layers - 1)]
        self.convs = nn.ModuleList(convs)
        self.out = MaskedConv2d(channels, 1, 1, "B")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for conv in self.convs:
            h = torch.relu(conv(h))  # (B, C, H, W)
        return self.out(h)

    @torch.no_grad()
    def sample(self, n: int, height: int, width: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images (n, 1, H, W), pixel by pixel: H * W network evaluations, on the model's device."""
        return sample_pixels(self, n, height, width, generator)


def sample_pixels(model: nn.Module, n: int, height: int, width: int,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Sample n binary images (n, 1, H, W) from an autoregressive pixel model, in raster order.

    ``model(x)`` maps (n, 1, H, W) to logits (n, 1, H, W) of p(x_ij = 1 | pixels before ij).
    One evaluation per pixel: pixel (i, j) is drawn from the logits at (i, j) computed on the
    canvas so far, whose later pixels are still 0 and cannot matter. ``generator`` must live
    on the model's device (torch.bernoulli draws there).
    """
    x = torch.zeros(n, 1, height, width, device=device_of(model))
    with torch.no_grad():
        for i in range(height):
            for j in range(width):
                p = torch.sigmoid(model(x)[:, 0, i, j])  # (n,): p(x_ij = 1 | the pixels before)
                x[:, 0, i, j] = torch.bernoulli(p, generator=generator)
    return x


# ---------------------------------------------------------------- the gated PixelCNN: no blind spot


def vertical_stack_mask(kernel_size: int, first: bool) -> torch.Tensor:
    """(k, k) mask of the gated PixelCNN's vertical stack: the rows above the centre, full width.

    The centre row is hidden in the first layer (``first``), which reads the image itself,
    and shown afterwards: by then the vertical features of a row depend only on the rows
    above it, so any of them may feed the horizontal stack of that row.
    """
    if kernel_size % 2 != 1:
        raise ValueError(f"kernel_size must be odd, got {kernel_size}")
    c = kernel_size // 2
    mask = torch.ones(kernel_size, kernel_size)
    mask[c + 1:, :] = 0  # rows below the centre
    if first:
        mask[c, :] = 0  # the centre row itself
    return mask


def horizontal_stack_mask(kernel_size: int, first: bool) -> torch.Tensor:
    """(1, k) mask of the gated PixelCNN's horizontal stack: the pixels left of the centre in its row,
    and the centre itself except in the first layer (a type A versus type B mask, in one row)."""
    if kernel_size % 2 != 1:
        raise ValueError(f"kernel_size must be odd, got {kernel_size}")
    c = kernel_size // 2
    mask = torch.ones(1, kernel_size)
    mask[0, c + 1:] = 0  # right of the centre
    if first:
        mask[0, c] = 0
    return mask


class _FixedMaskConv2d(nn.Conv2d):
    """A convolution with "same" padding whose kernel is multiplied by a fixed 0/1 mask (kH, kW)."""

    def __init__(self, in_channels: int, out_channels: int, mask: torch.Tensor):
        k_h, k_w = mask.shape
        super().__init__(in_channels, out_channels, (k_h, k_w), padding=(k_h // 2, k_w // 2))
        self.register_buffer("mask", mask[None, None].expand(out_channels, in_channels, k_h, k_w).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


def _gate(features: torch.Tensor) -> torch.Tensor:
    """tanh(a) * sigmoid(b) for features (B, 2C, H, W) split into a and b: WaveNet's gated unit."""
    a, b = features.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)  # (B, C, H, W)


class GatedPixelLayer(nn.Module):
    """One layer of the gated PixelCNN: v, h (B, C_in, H, W) -> v', h' (B, C, H, W).

    The vertical stack reads the rows above (a (k, k) masked convolution); the horizontal
    stack reads the pixels to the left in the row (a (1, k) masked one) plus, through a 1x1
    convolution, the vertical stack's features at the same place; both pass through
    WaveNet's gated unit tanh(a) * sigmoid(b). ``first``: the layer that reads the image,
    whose masks hide the centre row and the centre pixel.
    """

    def __init__(self, in_channels: int, channels: int, kernel_size: int, first: bool):
        super().__init__()
        self.first = first
        self.vertical = _FixedMaskConv2d(in_channels, 2 * channels, vertical_stack_mask(kernel_size, first))
        self.horizontal = _FixedMaskConv2d(in_channels, 2 * channels, horizontal_stack_mask(kernel_size, first))
        self.vertical_to_horizontal = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, v: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v_features = self.vertical(v)  # (B, 2C, H, W): rows above only
        h_features = self.horizontal(h) + self.vertical_to_horizontal(v_features)  # + this row, to the left
        h_next = self.out(_gate(h_features))  # (B, C, H, W)
        if not self.first:
            h_next = h + h_next  # a residual connection along the horizontal stack
        return _gate(v_features), h_next


class GatedPixelCNN(nn.Module):
    """The gated PixelCNN (van den Oord et al., 2016) for binary images: no blind spot.

    x: (B, 1, H, W) in {0, 1} -> logits (B, 1, H, W) of p(x_ij = 1 | pixels before ij). A
    *vertical* stack of (k, k) convolutions masked to the rows above sees a widening band
    of rows above the pixel, all columns included; a *horizontal* stack of (1, k)
    convolutions sees the pixels left of it in its row, and adds the vertical stack's
    features at every layer. Together they reach every earlier pixel within
    ``num_layers`` rows and columns. Units are WaveNet's gated tanh * sigmoid.
    """

    def __init__(self, channels: int = 16, num_layers: int = 3, kernel_size: int = 3):
        super().__init__()
        self.layers = nn.ModuleList(
            GatedPixelLayer(1 if i == 0 else channels, channels, kernel_size, first=i == 0)
            for i in range(num_layers)
        )
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, 1, "B, C, H, W")
        v = h = x
        for layer in self.layers:
            v, h = layer(v, h)  # (B, C, H, W) each
        return self.head(h)

    @torch.no_grad()
    def sample(self, n: int, height: int, width: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images (n, 1, H, W), pixel by pixel: H * W network evaluations, on the model's device."""
        return sample_pixels(self, n, height, width, generator)


class MultiscalePixelModel(nn.Module):
    """Grouped multiscale sampling for binary images (after Reed et al., 2017).

    A size x size image is built from a 1 x 1 one by doublings. At each doubling the pixels
    of the new resolution fall into four interleaved groups, the corners of each 2 x 2 block:
    group 0 (top left) is the coarser image itself; groups 1, 2, 3 (top right, bottom left,
    bottom right) are predicted in turn, every pixel of a group at once, each group given all
    the pixels known so far. ``predictors[g - 1]`` maps (B, 3, S, S) to logits (B, 1, S, S)
    and is shared by all resolutions; its three input planes are the known pixels (0
    elsewhere), the mask of known pixels, and a constant plane log2(S) / 8 that tells one
    network which resolution it is filling (1/8 at 2 x 2, 1 at 256 x 256).
    """

    GROUPS = ((0, 1), (1, 0), (1, 1))  # (row, column) offsets in each 2 x 2 block

    def __init__(self, channels: int = 32, num_layers: int = 3):
        super().__init__()

        def predictor() -> nn.Sequential:
            convs = [nn.Conv2d(3, channels, 3, padding=1), nn.ReLU()]
            for _ in range(num_layers - 1):
                convs += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU()]
            return nn.Sequential(*convs, nn.Conv2d(channels, 1, 1))

        self.base_logit = nn.Parameter(torch.zeros(()))  # the 1 x 1 image, p(x_00 = 1)
        self.predictors = nn.ModuleList(predictor() for _ in self.GROUPS)

    def _logits(self, group: int, canvas: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """Logits (B, 1, S, S) of group ``group`` for a canvas (B, 1, S, S) whose ``known`` pixels are set."""
        resolution = torch.full_like(canvas, math.log2(canvas.shape[-1]) / 8)  # (B, 1, S, S)
        planes = torch.cat([canvas * known, known, resolution], dim=1)  # (B, 3, S, S)
        return self.predictors[group](planes)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) in nats: x (B, 1, S, S) binary, S a power of two -> (B,)."""
        size = x.shape[-1]
        if x.dim() != 4 or x.shape[1] != 1 or x.shape[-2] != size or size & (size - 1):
            raise ValueError(f"expected (B, 1, S, S) with S a power of two, got {tuple(x.shape)}")
        coarse = x[:, :, ::size, ::size]  # (B, 1, 1, 1): the top-left pixel
        total = _bernoulli_log_prob(self.base_logit.expand_as(coarse), coarse)  # (B,)
        s = 1
        while s < size:
            s *= 2
            image = x[:, :, :: size // s, :: size // s]  # (B, 1, s, s): every (size / s)-th pixel
            known = torch.zeros_like(image)
            known[:, :, ::2, ::2] = 1  # group 0: the coarser image, known already
            for g, (di, dj) in enumerate(self.GROUPS):
                logits = self._logits(g, image, known)[:, :, di::2, dj::2]  # (B, 1, s/2, s/2)
                total = total + _bernoulli_log_prob(logits, image[:, :, di::2, dj::2])
                known[:, :, di::2, dj::2] = 1
        return total

    @torch.no_grad()
    def sample(self, n: int, size: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, int]:
        """n images (n, 1, size, size) and the number of network evaluations used."""
        device = self.base_logit.device
        p_first = torch.sigmoid(self.base_logit).expand(n, 1, 1, 1).contiguous()  # (n, 1, 1, 1)
        image = torch.bernoulli(p_first, generator=generator)
        evaluations = 1
        while image.shape[-1] < size:
            s = 2 * image.shape[-1]
            canvas = torch.zeros(n, 1, s, s, device=device)
            known = torch.zeros_like(canvas)
            canvas[:, :, ::2, ::2] = image  # group 0: the coarser image
            known[:, :, ::2, ::2] = 1
            for g, (di, dj) in enumerate(self.GROUPS):
                p = torch.sigmoid(self._logits(g, canvas, known)[:, :, di::2, dj::2])  # (n, 1, s/2, s/2)
                canvas[:, :, di::2, dj::2] = torch.bernoulli(p, generator=generator)
                known[:, :, di::2, dj::2] = 1
                evaluations += 1
            image = canvas
        return image, evaluations


def _bernoulli_log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x) in nats of binary pixels x (B, ...) under independent Bernoullis, summed per example: (B,)."""
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


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

    x: (B, T, D) -> (B, T, D) with D = ``embed_dim``. Queries, keys and values are linear
    maps of x, split into ``num_heads`` heads of d = D / num_heads each; the weights come
    from :func:`dlpt.sequences.attention` with :func:`causal_mask`. ``self.weights`` keeps
    the last (B, num_heads, T, T) maps.
    """

    def __init__(self, embed_dim: int, num_heads: int):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim)
        self.proj = nn.Linear(embed_dim, embed_dim)
        self.weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.embed_dim:
            raise ValueError(f"expected x of shape (B, T, {self.embed_dim}), got {tuple(x.shape)}")
        out, self.weights = _self_attention(x, self.qkv.weight, self.qkv.bias, self.proj.weight, self.proj.bias,
                                            self.num_heads)
        return out


def causal_self_attention(x: torch.Tensor, qkv_weight: torch.Tensor, qkv_bias: torch.Tensor | None,
                          proj_weight: torch.Tensor, proj_bias: torch.Tensor | None, num_heads: int) -> torch.Tensor:
    """Masked multi-head self-attention as a function: what :class:`CausalSelfAttention` computes.

    x: (B, T, D); qkv_weight (3D, D) and qkv_bias (3D,) map x to [q | k | v], each (B, T, D)
    split into ``num_heads`` heads of d = D / num_heads; each head attends with
    softmax(q k^T / sqrt(d)) masked by :func:`causal_mask`; the heads' outputs, side by
    side in head order, go through proj_weight (D, D) and proj_bias (D,). Returns (B, T, D).
    """
    if x.dim() != 3:
        raise ValueError(f"expected x of shape (B, T, D), got {tuple(x.shape)}")
    B, T, D = x.shape
    if D % num_heads:
        raise ValueError(f"D ({D}) must be divisible by num_heads ({num_heads})")
    if qkv_weight.shape != (3 * D, D) or proj_weight.shape != (D, D):
        raise ValueError(f"expected qkv_weight of shape (3D, D) = ({3 * D}, {D}) and proj_weight ({D}, {D}), got "
                         f"{tuple(qkv_weight.shape)} and {tuple(proj_weight.shape)}")
    return _self_attention(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads)[0]


def _self_attention(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    """:func:`causal_self_attention`, also returning the attention weights (B, heads, T, T)."""
    B, T, D = x.shape
    d = D // num_heads
    qkv = F.linear(x, qkv_weight, qkv_bias).view(B, T, 3, num_heads, d)  # [q | k | v], each cut into heads
    q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, T, d): a head is one more batch dimension
    context, weights = attention(q, k, v, causal_mask(T, x.device))  # (B, heads, T, d), (B, heads, T, T)
    context = context.transpose(1, 2).reshape(B, T, D)  # (B, T, heads * d): the heads side by side
    return F.linear(context, proj_weight, proj_bias), weights


def sinusoidal_positions(T: int, embed_dim: int) -> torch.Tensor:
    """(T, D) positional encodings of Vaswani et al. (2017), D = ``embed_dim`` (even):
    dimension 2i holds sin(t / 10000^(2i/D)), dimension 2i + 1 the cosine of the same angle."""
    if embed_dim % 2:
        raise ValueError(f"embed_dim must be even (sines and cosines in pairs), got {embed_dim}")
    position = torch.arange(T, dtype=torch.float32)[:, None]  # (T, 1)
    frequency = torch.exp(-math.log(10000.0) * torch.arange(0, embed_dim, 2, dtype=torch.float32) / embed_dim)
    angle = position * frequency  # (T, D / 2)
    encoding = torch.zeros(T, embed_dim)
    encoding[:, 0::2] = torch.sin(angle)
    encoding[:, 1::2] = torch.cos(angle)
    return encoding


class TransformerBlock(nn.Module):
    """The pre-norm residual block of a decoder-only Transformer: x (B, T, D) -> (B, T, D).

    x + attention(norm(x)), then x + MLP(norm(x)): masked multi-head self-attention and a
    two-layer MLP (width 4D, GELU), each added to the residual stream after a layer norm.
    """

    def __init__(self, embed_dim: int, num_heads: int):
        super().__init__()
        D = embed_dim
        self.norm1, self.norm2 = nn.LayerNorm(D), nn.LayerNorm(D)
        self.attention = CausalSelfAttention(D, num_heads)
        self.mlp = nn.Sequential(nn.Linear(D, 4 * D), nn.GELU(), nn.Linear(4 * D, D))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TransformerLM(nn.Module):
    """A small decoder-only Transformer language model (Vaswani et al., 2017).

    ids: (B, T) int64 -> logits (B, T, V); the logits at t predict token t + 1 from tokens
    0..t. Token embeddings plus sinusoidal positions, ``num_layers`` pre-norm blocks, a final
    norm. ``context``: how many tokens back each prediction is given when
    :func:`dlpt.sequences.next_char_losses` scores text in chunks; chunks of 64 with the
    default 64 feed at most 127 positions, within the 128 the notebooks train on.
    """

    def __init__(self, vocab_size: int, embed_dim: int = 64, num_heads: int = 4, num_layers: int = 2,
                 context: int = 64):
        super().__init__()
        self.embed_dim, self.context = embed_dim, context
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.blocks = nn.ModuleList(TransformerBlock(embed_dim, num_heads) for _ in range(num_layers))
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, vocab_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dim() != 2:
            raise ValueError(f"expected token ids of shape (B, T), got {tuple(ids.shape)}")
        positions = sinusoidal_positions(ids.shape[1], self.embed_dim).to(ids.device)  # (T, D)
        x = self.embed(ids) + positions  # (B, T, D)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))  # (B, T, V)


class CausalConvLM(nn.Module):
    """A language model of stacked dilated causal convolutions (as in ByteNet's decoder).

    ids: (B, T) -> logits (B, T, V); residual blocks of ReLU and a kernel-2 causal
    convolution with dilations 1, 2, 4, ..., so the receptive field is 2^num_layers steps.
    """

    def __init__(self, vocab_size: int, channels: int = 64, num_layers: int = 6, embedding_dim: int = 16):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embedding_dim)
        self.inp = nn.Conv1d(embedding_dim, channels, 1)
        dilations = [2**i for i in range(num_layers)]
        self.convs = nn.ModuleList(CausalConv1d(channels, channels, 2, d) for d in dilations)
        self.head = nn.Conv1d(channels, vocab_size, 1)
        self.receptive_field = self.context = receptive_field(2, dilations)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dim() != 2:
            raise ValueError(f"expected token ids of shape (B, T), got {tuple(ids.shape)}")
        e = self.embed(ids).transpose(1, 2)  # (B, T, E) -> (B, E, T), the layout of Conv1d
        h = self.inp(e)  # (B, C, T)
        for conv in self.convs:
            h = h + conv(torch.relu(h))
        logits = self.head(torch.relu(h))  # (B, V, T)
        return logits.transpose(1, 2)  # (B, T, V)
