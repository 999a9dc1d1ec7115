"""Hidden tests of chapter 4's exercises, with the plausible mistakes each must catch."""

from __future__ import annotations

import math

import torch

from dlpt import autoregressive as ar
from dlpt.check import Exercise, check_cases, register

# --------------------------------------------------------------------- causal_mask


def _mask_strict(T):
    return torch.ones(T, T, dtype=torch.bool).tril(-1)


def _mask_transposed(T):
    return torch.ones(T, T, dtype=torch.bool).triu()


_CAUSAL_MISTAKES = [
    (_mask_strict, "a position may attend to itself: True where s <= t, the diagonal included"),
    (_mask_transposed, "rows are the attending position t and columns the attended s: "
     "True on and below the diagonal (tril), not above"),
]


def _check_causal_mask(fn) -> int:
    cases = [(f"T = {T}", (T,)) for T in (1, 4, 7)]
    return check_cases(fn, ar.causal_mask, cases, _CAUSAL_MISTAKES, what="the mask")


register(Exercise("autoregressive.causal_mask", _check_causal_mask, ar.causal_mask, _CAUSAL_MISTAKES))

# ------------------------------------------------------------------- pixelcnn_mask


def _pixel_mask_swapped(kernel_size, mask_type):
    return ar.pixelcnn_mask(kernel_size, "B" if mask_type == "A" else "A")


def _pixel_mask_row_hidden(kernel_size, mask_type):
    mask = ar.pixelcnn_mask(kernel_size, mask_type)
    mask[kernel_size // 2, : kernel_size // 2] = 0
    return mask


def _pixel_mask_next_pixel_shown(kernel_size, mask_type):
    mask = ar.pixelcnn_mask(kernel_size, mask_type)
    mask[kernel_size // 2, kernel_size // 2 + 1] = 1
    return mask


def _pixel_mask_column_major(kernel_size, mask_type):
    return ar.pixelcnn_mask(kernel_size, mask_type).T.contiguous()


_PIXEL_MASK_MISTAKES = [
    (_pixel_mask_swapped, "types A and B are swapped: type A (the first layer) hides the centre pixel, "
     "type B shows it"),
    (_pixel_mask_row_hidden, "the pixels left of the centre in its row come earlier in raster order: keep them"),
    (_pixel_mask_next_pixel_shown, "off by one: the pixel right of the centre comes later, hide it "
     "(mask[c, c + 1:] = 0)"),
    (_pixel_mask_column_major, "raster order runs along rows: hide the rows below the centre and the pixels "
     "to its right, not the columns"),
]


def _check_pixelcnn_mask(fn) -> int:
    cases = [(f"kernel_size = {k}, mask_type = {t!r}", (k, t)) for k in (3, 5) for t in ("A", "B")]
    return check_cases(fn, ar.pixelcnn_mask, cases, _PIXEL_MASK_MISTAKES, what="the mask")


register(Exercise("autoregressive.pixelcnn_mask", _check_pixelcnn_mask, ar.pixelcnn_mask, _PIXEL_MASK_MISTAKES))

# ----------------------------------------------------------------- receptive_field


def _field_without_self(kernel_size, dilations):
    return sum((kernel_size - 1) * d for d in dilations)


def _field_full_kernel(kernel_size, dilations):
    return 1 + sum(kernel_size * d for d in dilations)


def _field_largest_only(kernel_size, dilations):
    return 1 + (kernel_size - 1) * max(dilations)


_FIELD_MISTAKES = [
    (_field_without_self, "count the current step too: start from 1"),
    (_field_full_kernel, "a kernel of size k reaches k - 1 steps back: each layer adds (k - 1) * dilation"),
    (_field_largest_only, "every layer widens the field: sum over the layers, not the largest dilation"),
]


def _check_receptive_field(fn) -> int:
    cases = [
        ("kernel_size = 2, dilations [1, 2, 4, 8]", (2, [1, 2, 4, 8])),
        ("kernel_size = 3, dilations [1, 1, 1]", (3, [1, 1, 1])),
        ("kernel_size = 2, dilations [1, 2, 4, 1, 2, 4]", (2, [1, 2, 4, 1, 2, 4])),
    ]
    return check_cases(fn, ar.receptive_field, cases, _FIELD_MISTAKES, what="the receptive field")


register(Exercise("autoregressive.receptive_field", _check_receptive_field, ar.receptive_field, _FIELD_MISTAKES))

# ------------------------------------------------------------------- mu_law_encode


def _mu_law_uniform(x, mu=255):
    return torch.round((x.clamp(-1, 1) + 1) / 2 * mu).to(torch.int64)


def _mu_law_floor(x, mu=255):
    y = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)
    return torch.floor((y + 1) / 2 * mu).to(torch.int64)


def _mu_law_no_sign(x, mu=255):
    y = torch.log1p(mu * x.abs()) / math.log1p(mu)
    return torch.round((y + 1) / 2 * mu).to(torch.int64)


_MU_LAW_MISTAKES = [
    (_mu_law_uniform, "compand before quantizing: y = sign(x) ln(1 + mu |x|) / ln(1 + mu), so quiet "
     "sounds get finer levels"),
    (_mu_law_floor, "round to the nearest level, do not floor: round((y + 1) / 2 * mu)"),
    (_mu_law_no_sign, "the sign was lost: y = sign(x) * ln(1 + mu |x|) / ln(1 + mu)"),
]


def _check_mu_law(fn) -> int:
    g = torch.Generator().manual_seed(0)
    cases = [
        ("x = [-1, -0.5, 0, 0.01, 0.5, 1], mu = 255", (torch.tensor([-1.0, -0.5, 0.0, 0.01, 0.5, 1.0]), 255)),
        ("x (3, 50) uniform in [-1, 1], mu = 255", (torch.rand(3, 50, generator=g) * 2 - 1, 255)),
        ("x (20,) uniform in [-0.1, 0.1], mu = 15", (torch.rand(20, generator=g) * 0.2 - 0.1, 15)),
    ]
    return check_cases(fn, ar.mu_law_encode, cases, _MU_LAW_MISTAKES, what="the levels")


register(Exercise("autoregressive.mu_law_encode", _check_mu_law, ar.mu_law_encode, _MU_LAW_MISTAKES))

# -------------------------------------------------------- logistic_bin_probability


def _bin_no_edges(x, mean, log_scale, num_bins=256):
    half, s = 1 / (num_bins - 1), torch.exp(log_scale)
    return torch.sigmoid((x - mean + half) / s) - torch.sigmoid((x - mean - half) / s)


def _bin_scale_not_exponentiated(x, mean, log_scale, num_bins=256):
    return ar.logistic_bin_probability(x, mean, torch.log(log_scale.abs()), num_bins)  # scale = |log_scale|


def _bin_width_from_num_bins(x, mean, log_scale, num_bins=256):
    half, s = 1 / num_bins, torch.exp(log_scale)
    index = torch.round((x + 1) / 2 * (num_bins - 1))
    upper = torch.where(index >= num_bins - 1, torch.ones_like(x), torch.sigmoid((x - mean + half) / s))
    lower = torch.where(index <= 0, torch.zeros_like(x), torch.sigmoid((x - mean - half) / s))
    return upper - lower


_BIN_MISTAKES = [
    (_bin_no_edges, "the edge bins take the tails: the first bin's lower edge is -inf (use CDF 0), the last "
     "bin's upper edge +inf (use CDF 1), or the probabilities do not sum to one"),
    (_bin_scale_not_exponentiated, "log_scale is a logarithm: the scale is s = exp(log_scale)"),
    (_bin_width_from_num_bins, "num_bins centres span [-1, 1], so a bin is 2 / (num_bins - 1) wide: its edges "
     "are x -+ 1 / (num_bins - 1)"),
]


def _check_bin_probability(fn) -> int:
    centres = torch.linspace(-1, 1, 256)
    cases = [
        ("x = every bin centre of 256, mean = 0.3, log_scale = -3",
         (centres, torch.tensor(0.3), torch.tensor(-3.0), 256)),
        ("x = [-1, 0, 1] (the 3 bins of 3), mean = [-0.9, 0, 0.8], log_scale = [-1, -2, -0.5]",
         (torch.tensor([-1.0, 0.0, 1.0]), torch.tensor([-0.9, 0.0, 0.8]), torch.tensor([-1.0, -2.0, -0.5]), 3)),
    ]
    return check_cases(fn, ar.logistic_bin_probability, cases, _BIN_MISTAKES, what="the probabilities")


register(Exercise("autoregressive.logistic_bin_probability", _check_bin_probability, ar.logistic_bin_probability,
                  _BIN_MISTAKES))

# ---------------------------------------------------------- multiscale_evaluations


def _evaluations_four_groups(size, base=1):
    return base * base + 4 * int(math.log2(size // base))


def _evaluations_base_once(size, base=1):
    return 1 + 3 * int(math.log2(size // base))


def _evaluations_from_one(size, base=1):
    return base * base + 3 * int(math.log2(size))


_EVALUATION_MISTAKES = [
    (_evaluations_four_groups, "group 0 of each doubling is the coarser image itself: 3 evaluations per "
     "doubling, not 4"),
    (_evaluations_base_once, "the base x base image is sampled one pixel at a time: base * base evaluations"),
    (_evaluations_from_one, "count the doublings from base to size: log2(size / base)"),
]


def _check_evaluations(fn) -> int:
    cases = [(f"size = {s}, base = {b}", (s, b)) for s, b in ((8, 1), (64, 4), (256, 8), (2, 2))]
    return check_cases(fn, ar.multiscale_evaluations, cases, _EVALUATION_MISTAKES, what="the number of evaluations")


register(Exercise("autoregressive.multiscale_evaluations", _check_evaluations, ar.multiscale_evaluations,
                  _EVALUATION_MISTAKES))
