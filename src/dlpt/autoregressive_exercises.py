"""Hidden tests of chapter 4's exercises, with the plausible mistakes each must catch."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dlpt import autoregressive as ar
from dlpt.check import Exercise, Mismatch, call, check_cases, compare, register


def _require_dtype(got, inputs: str, wanted: str, accept, why: str) -> None:
    """Say exactly which dtype is wanted when a tensor of another kind comes back."""
    if isinstance(got, torch.Tensor) and not accept(got.dtype):
        raise Mismatch(f"on {inputs}, {wanted} is wanted, got dtype {got.dtype}: {why}")


# Counts are whole numbers: a float equal to the count (16.0, from math.log2) is accepted, a near miss is not.
_COUNT = {"atol": 1e-6, "rtol": 0.0}

# --------------------------------------------------------------------- causal_mask


def _mask_strict(T):
    return torch.ones(T, T, dtype=torch.bool).tril(-1)


def _mask_transposed(T):
    return torch.ones(T, T, dtype=torch.bool).triu()


def _mask_anti_diagonal(T):
    return torch.ones(T, T, dtype=torch.bool).tril().flip(1)


_CAUSAL_MISTAKES = [
    (_mask_strict, "a position may attend to itself: True where s <= t, the diagonal included"),
    (_mask_transposed, "rows are the attending position t and columns the attended s: "
     "True on and below the diagonal (tril), not above"),
    (_mask_anti_diagonal, "the mask is mirrored left to right: column s is position s, True where s <= t"),
]


def _check_causal_mask(fn) -> int:
    got = call(fn, 4, inputs="T = 4")
    _require_dtype(got, "T = 4", "a bool tensor (dtype torch.bool, True = may attend)", lambda d: d == torch.bool,
                   "attention takes a boolean mask and sets the scores where it is False to -inf; build it "
                   "with dtype=torch.bool or end with .bool()")
    cases = [(f"T = {T}", (T,)) for T in (1, 2, 4, 7)]
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
    mask[kernel_size // 2, kernel_size // 2 + 1:] = 1
    return mask


def _pixel_mask_column_major(kernel_size, mask_type):
    return ar.pixelcnn_mask(kernel_size, mask_type).T.contiguous()


def _pixel_mask_rows_below_shown(kernel_size, mask_type):
    mask = ar.pixelcnn_mask(kernel_size, mask_type)
    mask[kernel_size // 2 + 1:, :] = 1
    return mask


_PIXEL_MASK_MISTAKES = [
    (_pixel_mask_swapped, "types A and B are swapped: type A (the first layer) hides the centre pixel, "
     "type B shows it"),
    (_pixel_mask_row_hidden, "the pixels left of the centre in its row come earlier in raster order: keep them"),
    (_pixel_mask_next_pixel_shown, "the pixels right of the centre come later in raster order: hide them "
     "(mask[c, c + 1:] = 0)"),
    (_pixel_mask_column_major, "raster order runs along rows: hide the rows below the centre and the pixels "
     "to its right, not the columns"),
    (_pixel_mask_rows_below_shown, "the rows below the centre come later in raster order: hide them "
     "(mask[c + 1:, :] = 0)"),
]


def _float_mask_wanted(fn, args: tuple, inputs: str) -> None:
    got = call(fn, *args, inputs=inputs)
    _require_dtype(got, inputs, "a float tensor of ones and zeros", lambda d: d.is_floating_point,
                   "the mask multiplies the kernel's weights (weight * mask); build it from torch.ones(k, k) "
                   "or end with .float() (a bool mask is not accepted here)")


def _check_pixelcnn_mask(fn) -> int:
    _float_mask_wanted(fn, (3, "A"), "kernel_size = 3, mask_type = 'A'")
    cases = [(f"kernel_size = {k}, mask_type = {t!r}", (k, t)) for k in (1, 3, 5, 7) for t in ("A", "B")]
    return check_cases(fn, ar.pixelcnn_mask, cases, _PIXEL_MASK_MISTAKES, what="the mask")


register(Exercise("autoregressive.pixelcnn_mask", _check_pixelcnn_mask, ar.pixelcnn_mask, _PIXEL_MASK_MISTAKES))

# ------------------------------------------------------------- vertical_stack_mask


def _vertical_ignores_first(kernel_size, first):
    return ar.vertical_stack_mask(kernel_size, False)


def _vertical_first_swapped(kernel_size, first):
    return ar.vertical_stack_mask(kernel_size, not first)


def _vertical_centre_row_never(kernel_size, first):
    return ar.vertical_stack_mask(kernel_size, True)


def _vertical_half_row(kernel_size, first):
    return ar.pixelcnn_mask(kernel_size, "A" if first else "B")


def _vertical_columns(kernel_size, first):
    return ar.vertical_stack_mask(kernel_size, first).T.contiguous()


def _vertical_rows_below(kernel_size, first):
    mask = torch.ones(kernel_size, kernel_size)
    if first:
        mask[kernel_size // 2, :] = 0
    return mask


_VERTICAL_MISTAKES = [
    (_vertical_ignores_first, "the first layer reads the image itself: there the centre row (the pixel and "
     "the pixels right of it) must be hidden"),
    (_vertical_first_swapped, "first and later layers are swapped: hide the centre row in the first layer "
     "only"),
    (_vertical_centre_row_never, "after the first layer the vertical features of the centre row depend only "
     "on the rows above it: show the centre row there"),
    (_vertical_half_row, "this is the PixelCNN mask: the vertical stack takes the centre row whole (later "
     "layers) or not at all (first layer); the pixels left of the centre are the horizontal stack's job"),
    (_vertical_columns, "rows, not columns: the vertical stack sees the rows above the centre, full width"),
    (_vertical_rows_below, "the rows below the centre come later in raster order: hide them"),
]


def _check_vertical_stack_mask(fn) -> int:
    _float_mask_wanted(fn, (3, True), "kernel_size = 3, first = True")
    cases = [(f"kernel_size = {k}, first = {f}", (k, f)) for k in (1, 3, 5, 7) for f in (True, False)]
    return check_cases(fn, ar.vertical_stack_mask, cases, _VERTICAL_MISTAKES, what="the mask")


register(Exercise("autoregressive.vertical_stack_mask", _check_vertical_stack_mask, ar.vertical_stack_mask,
                  _VERTICAL_MISTAKES))

# ------------------------------------------------------------------- causal_conv1d


def _causal_same_padding(x, weight, bias=None, dilation=1):
    return F.conv1d(x, weight, bias, padding="same", dilation=dilation)


def _causal_pad_right(x, weight, bias=None, dilation=1):
    return F.conv1d(F.pad(x, (0, (weight.shape[-1] - 1) * dilation)), weight, bias, dilation=dilation)


def _causal_no_dilation_in_padding(x, weight, bias=None, dilation=1):
    return F.conv1d(F.pad(x, (weight.shape[-1] - 1, 0)), weight, bias, dilation=dilation)


def _causal_no_bias(x, weight, bias=None, dilation=1):
    return ar.causal_conv1d(x, weight, None, dilation)


_CAUSAL_CONV_MISTAKES = [
    (_causal_same_padding, "padding on both sides (padding='same') lets step t see later steps: pad "
     "(k - 1) * dilation zeros on the left only"),
    (_causal_pad_right, "each output reads the steps after it (zeros on the right, or the last T outputs of a "
     "convolution padded on both sides): pad on the left, or keep the first T outputs"),
    (_causal_no_dilation_in_padding, "a dilated kernel reaches (k - 1) * dilation steps back: pad that many "
     "zeros, not k - 1"),
    (_causal_no_bias, "the bias is missing: add bias[c] at every step of output channel c"),
]


def _check_causal_conv1d(fn) -> int:
    g = torch.Generator().manual_seed(0)
    shapes = [  # (description, x shape, weight shape, with bias, dilation)
        ("x (2, 3, 10), weight (4, 3, 2), bias (4,), dilation 1", (2, 3, 10), (4, 3, 2), True, 1),
        ("x (1, 2, 9), weight (3, 2, 3), bias (3,), dilation 2", (1, 2, 9), (3, 2, 3), True, 2),
        ("x (3, 1, 6), weight (2, 1, 4), no bias, dilation 1", (3, 1, 6), (2, 1, 4), False, 1),
        ("x (2, 2, 16) in float64, weight (2, 2, 2) float64, bias (2,), dilation 4", (2, 2, 16), (2, 2, 2), True, 4),
    ]
    cases = []
    for inputs, x_shape, w_shape, with_bias, dilation in shapes:
        dtype = torch.float64 if "float64" in inputs else torch.float32
        x = torch.randn(x_shape, generator=g, dtype=dtype)
        weight = torch.randn(w_shape, generator=g, dtype=dtype)
        bias = torch.randn(w_shape[0], generator=g, dtype=dtype) if with_bias else None
        cases.append((inputs, (x, weight, bias, dilation)))
    return check_cases(fn, ar.causal_conv1d, cases, _CAUSAL_CONV_MISTAKES, what="the output", atol=1e-5)


register(Exercise("autoregressive.causal_conv1d", _check_causal_conv1d, ar.causal_conv1d, _CAUSAL_CONV_MISTAKES))

# ------------------------------------------------------------------- mu_law_encode


def _companded(x, mu):
    x = x.clamp(-1, 1)
    return torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)


def _mu_law_uniform(x, mu=255):
    return torch.round((x.clamp(-1, 1) + 1) / 2 * mu).to(torch.int64)


def _mu_law_floor(x, mu=255):
    return torch.floor((_companded(x, mu) + 1) / 2 * mu).to(torch.int64)


def _mu_law_no_sign(x, mu=255):
    y = torch.log1p(mu * x.clamp(-1, 1).abs()) / math.log1p(mu)
    return torch.round((y + 1) / 2 * mu).to(torch.int64)


def _mu_law_mu_plus_one(x, mu=255):
    return torch.round((_companded(x, mu) + 1) / 2 * (mu + 1)).to(torch.int64)


def _mu_law_buckets(x, mu=255):
    return torch.floor((_companded(x, mu) + 1) / 2 * (mu + 1)).clamp(max=mu).to(torch.int64)


def _mu_law_no_clamp(x, mu=255):
    y = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)
    return torch.round((y + 1) / 2 * mu).to(torch.int64)


_MU_LAW_MISTAKES = [
    (_mu_law_uniform, "compand before quantizing: y = sign(x) ln(1 + mu |x|) / ln(1 + mu), so quiet "
     "sounds get finer levels"),
    (_mu_law_floor, "round to the nearest level, do not floor: round((y + 1) / 2 * mu)"),
    (_mu_law_no_sign, "the sign was lost: y = sign(x) * ln(1 + mu |x|) / ln(1 + mu)"),
    (_mu_law_mu_plus_one, "the mu + 1 levels 0..mu are mu steps apart: scale (y + 1) / 2 by mu, not mu + 1"),
    (_mu_law_buckets, "the mu + 1 levels 0..mu are mu steps apart: round((y + 1) / 2 * mu), not equal "
     "buckets of (y + 1) / 2 * (mu + 1)"),
    (_mu_law_no_clamp, "clip x to [-1, 1] first (x.clamp(-1, 1)): louder samples must land on level 0 or mu"),
]


def _away_from_ties(x: torch.Tensor, mu: int, shape: tuple[int, ...]) -> torch.Tensor:
    """The first prod(shape) values of x whose level is not within 1e-3 of a rounding tie.

    Far from ties, float32 and float64 (and log1p or log) give the same level, so a correct
    answer is never rejected for the precision it computes in.
    """
    t = (_companded(x.double(), mu) + 1) / 2 * mu
    safe = x[((t - t.floor()) - 0.5).abs() > 1e-3]
    return safe[: math.prod(shape)].reshape(shape).clone()


def _check_mu_law(fn) -> int:
    g = torch.Generator().manual_seed(0)
    wide = torch.rand(400, generator=g) * 2 - 1
    quiet = torch.rand(60, generator=g) * 0.2 - 0.1
    coarse = torch.rand(60, generator=g) * 2 - 1
    default = torch.rand(60, generator=g) * 2 - 1
    _require_dtype(call(fn, torch.tensor([-0.5, 0.5]), 255, inputs="x = [-0.5, 0.5], mu = 255"),
                   "x = [-0.5, 0.5], mu = 255", "an int64 tensor of levels (dtype torch.int64)",
                   lambda d: d == torch.int64, "levels index an embedding and are cross-entropy targets, "
                   "both take int64; end with .long() or .to(torch.int64)")
    cases = [
        ("x = [-1, -0.5, 0, 0.01, 0.5, 1], mu = 255", (torch.tensor([-1.0, -0.5, 0.0, 0.01, 0.5, 1.0]), 255)),
        ("x (3, 50) uniform in [-1, 1], mu = 255", (_away_from_ties(wide, 255, (3, 50)), 255)),
        ("x (20,) uniform in [-0.1, 0.1], mu = 15", (_away_from_ties(quiet, 15, (20,)), 15)),
        ("x (2, 4, 3) uniform in [-1, 1], mu = 3", (_away_from_ties(coarse, 3, (2, 4, 3)), 3)),
        ("x = [-3, -1.5, -1.0001, 0.3, 1.2, 2.5] (loud: beyond [-1, 1]), mu = 255",
         (torch.tensor([-3.0, -1.5, -1.0001, 0.3, 1.2, 2.5]), 255)),
        ("x (4, 6) uniform in [-1, 1], mu left at its default", (_away_from_ties(default, 255, (4, 6)),)),
    ]
    return check_cases(fn, ar.mu_law_encode, cases, _MU_LAW_MISTAKES, what="the tensor of levels")


register(Exercise("autoregressive.mu_law_encode", _check_mu_law, ar.mu_law_encode, _MU_LAW_MISTAKES))

# -------------------------------------------------------- logistic_bin_probability


def _bin(x, mean, scale, half, num_bins, cdf=torch.sigmoid, edges=True):
    """P(bin of x) for the near misses below: the CDF difference over x -+ half, edge bins optional."""
    upper, lower = cdf((x - mean + half) / scale), cdf((x - mean - half) / scale)
    if edges:
        index = torch.round((x + 1) / 2 * (num_bins - 1))
        upper = torch.where(index >= num_bins - 1, 1.0, upper)
        lower = torch.where(index <= 0, 0.0, lower)
    return upper - lower


def _bin_no_edges(x, mean, log_scale, num_bins=256):
    return _bin(x, mean, torch.exp(log_scale), 1 / (num_bins - 1), num_bins, edges=False)


def _bin_scale_not_exponentiated(x, mean, log_scale, num_bins=256):
    return _bin(x, mean, log_scale.abs(), 1 / (num_bins - 1), num_bins)


def _bin_log_scale_as_scale(x, mean, log_scale, num_bins=256):
    return _bin(x, mean, log_scale, 1 / (num_bins - 1), num_bins)


def _bin_width_from_num_bins(x, mean, log_scale, num_bins=256):
    return _bin(x, mean, torch.exp(log_scale), 1 / num_bins, num_bins)


def _bin_whole_bin(x, mean, log_scale, num_bins=256):
    return _bin(x, mean, torch.exp(log_scale), 2 / (num_bins - 1), num_bins)


def _bin_exp_over_one_plus_exp(x, mean, log_scale, num_bins=256):
    return _bin(x, mean, torch.exp(log_scale), 1 / (num_bins - 1), num_bins,
                cdf=lambda z: torch.exp(z) / (1 + torch.exp(z)))


_BIN_MISTAKES = [
    (_bin_no_edges, "the edge bins take the tails: the first bin's lower edge is -inf (use CDF 0), the last "
     "bin's upper edge +inf (use CDF 1), or the probabilities do not sum to one"),
    (_bin_scale_not_exponentiated, "log_scale is a logarithm: the scale is s = exp(log_scale)"),
    (_bin_log_scale_as_scale, "log_scale is a logarithm: the scale is s = exp(log_scale)"),
    (_bin_width_from_num_bins, "num_bins centres span [-1, 1], so a bin is 2 / (num_bins - 1) wide: its edges "
     "are x -+ 1 / (num_bins - 1)"),
    (_bin_whole_bin, "the bin around x reaches half a bin each way: its edges are x -+ 1 / (num_bins - 1), "
     "the centres being 2 / (num_bins - 1) apart"),
    (_bin_exp_over_one_plus_exp, "exp(z) / (1 + exp(z)) is inf / inf = nan once exp(z) overflows (z > 88 in "
     "float32): use torch.sigmoid, which is stable for any z"),
]


def _check_bin_probability(fn) -> int:
    g = torch.Generator().manual_seed(0)
    centres = torch.linspace(-1, 1, 256)
    sixteen = torch.linspace(-1, 1, 16)
    picked = torch.randint(0, 32, (5, 7), generator=g)
    cases = [
        ("x = every bin centre of 256, mean = 0.3, log_scale = -3",
         (centres, torch.tensor(0.3), torch.tensor(-3.0), 256)),
        ("x = [-1, 0, 1] (the 3 bins of 3), mean = [-0.9, 0, 0.8], log_scale = [-1, -2, -0.5]",
         (torch.tensor([-1.0, 0.0, 1.0]), torch.tensor([-0.9, 0.0, 0.8]), torch.tensor([-1.0, -2.0, -0.5]), 3)),
        ("x (1, 256) every bin centre, mean (2, 1) = [[-0.97], [0.95]], log_scale (2, 1) = [[-2], [-1.5]] "
         "(broadcast to (2, 256): both tails hold mass)",
         (centres[None], torch.tensor([[-0.97], [0.95]]), torch.tensor([[-2.0], [-1.5]]), 256)),
        ("x (16,) every bin centre of 16, mean (3, 1) = [[0.0002], [3], [-2.5]], log_scale = -8 (a very narrow "
         "logistic: (x - mean) / s reaches thousands)",
         (sixteen, torch.tensor([[0.0002], [3.0], [-2.5]]), torch.tensor(-8.0), 16)),
        ("x (5, 7) bin centres of 32, mean (5, 7) uniform in [-1, 1], log_scale (5, 7) uniform in [-4, -1]",
         (picked / 31 * 2 - 1, torch.rand(5, 7, generator=g) * 2 - 1, torch.rand(5, 7, generator=g) * 3 - 4, 32)),
    ]
    return check_cases(fn, ar.logistic_bin_probability, cases, _BIN_MISTAKES, what="the tensor of probabilities")


register(Exercise("autoregressive.logistic_bin_probability", _check_bin_probability, ar.logistic_bin_probability,
                  _BIN_MISTAKES))

# ---------------------------------------------------------- multiscale_evaluations


def _evaluations_four_groups(size, base=1):
    return base * base + 4 * int(math.log2(size // base))


def _evaluations_base_once(size, base=1):
    return 1 + 3 * int(math.log2(size // base))


def _evaluations_base_linear(size, base=1):
    return base + 3 * int(math.log2(size // base))


def _evaluations_from_one(size, base=1):
    return base * base + 3 * int(math.log2(size))


def _evaluations_off_by_one(size, base=1):
    return base * base + 3 * (int(math.log2(size // base)) + 1)


_EVALUATION_MISTAKES = [
    (_evaluations_four_groups, "group 0 of each doubling is the coarser image itself: 3 evaluations per "
     "doubling, not 4"),
    (_evaluations_base_once, "the base x base image is sampled one pixel at a time: base * base evaluations"),
    (_evaluations_base_linear, "the base x base image is sampled one pixel at a time: base * base evaluations"),
    (_evaluations_from_one, "count the doublings from base to size: log2(size / base)"),
    (_evaluations_off_by_one, "count the doublings from base to size: log2(size / base), which is 0 when "
     "size == base"),
]


def _check_evaluations(fn) -> int:
    cases = [(f"size = {s}, base = {b}", (s, b))
             for s, b in ((8, 1), (64, 4), (256, 8), (2, 2), (1, 1), (1024, 32), (32, 2))]
    return check_cases(fn, ar.multiscale_evaluations, cases, _EVALUATION_MISTAKES,
                       what="the number of evaluations", **_COUNT)


register(Exercise("autoregressive.multiscale_evaluations", _check_evaluations, ar.multiscale_evaluations,
                  _EVALUATION_MISTAKES))

# ------------------------------------------------------------------------ generate


class _NextLogits:
    """A stand-in sequence model for the generate checker: records every window it is given.

    kind "peaked": logit +1000 for one value, a function of the whole window (every step of
    it, weighted by position, and its length), 0 for the others: the sequence is determined.
    kind "flat": logits all 0. kind "skewed": softmax(logits) = ``probs`` (logits shifted by 20).
    """

    def __init__(self, kind: str, batch: int, vocab: int, probs: tuple[float, ...] = ()):
        self.kind, self.batch, self.vocab, self.probs = kind, batch, vocab, probs
        self.windows: list[torch.Tensor] = []

    def __call__(self, x):
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.dtype != torch.int64 or x.shape[1] < 1:
            shown = f"{x.dtype} of shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"next_logits takes a window of int64 steps of shape (B, L), L >= 1, got {shown}")
        if x.shape[0] != self.batch:
            raise ValueError(f"next_logits takes all {self.batch} rows at once, (B, L) with B = {self.batch}; "
                             f"got {x.shape[0]} row(s)")
        self.windows.append(x.clone())
        if self.kind == "peaked":
            return 1000.0 * F.one_hot(_peaked_choice(x, self.vocab), self.vocab).float()
        if self.kind == "flat":
            return torch.zeros(self.batch, self.vocab)
        return (torch.tensor(self.probs).log() + 20.0).expand(self.batch, -1).clone()


def _peaked_choice(window: torch.Tensor, vocab: int) -> torch.Tensor:
    """(B, L) -> (B,): a value that depends on every step of the window, on its order and on its length."""
    weights = torch.arange(1, window.shape[1] + 1)
    return (window * weights).sum(1).add(window.shape[1]).remainder(vocab)


def _expected_peaked(prompt: torch.Tensor, n: int, receptive_field: int, vocab: int) -> torch.Tensor:
    x = prompt
    for _ in range(n):
        x = torch.cat([x, _peaked_choice(x[:, -receptive_field:], vocab)[:, None]], dim=1)
    return x


def _generate_output(got, prompt: torch.Tensor, n: int, inputs: str) -> torch.Tensor:
    """Check the shape, dtype and prompt of generate's answer; return it."""
    B, T0 = prompt.shape
    if not isinstance(got, torch.Tensor):
        raise Mismatch(f"on {inputs}, return a torch tensor of shape ({B}, {T0 + n}), got {type(got).__name__}")
    if tuple(got.shape) == (B, n) and n != T0 + n:
        raise Mismatch(f"on {inputs}, the result should have shape ({B}, {T0 + n}), got ({B}, {n}): return the "
                       "prompt followed by the n new steps, not the new steps alone")
    if tuple(got.shape) != (B, T0 + n):
        raise Mismatch(f"on {inputs}, the result should have shape (B, T0 + n) = ({B}, {T0 + n}), got "
                       f"{tuple(got.shape)}")
    if got.dtype != torch.int64:
        raise Mismatch(f"on {inputs}, the result should be int64 steps (dtype torch.int64) like the prompt, got "
                       f"{got.dtype}")
    if not torch.equal(got[:, :T0], prompt):
        raise Mismatch(f"on {inputs}, the result should start with the prompt unchanged; its first {T0} steps "
                       "differ from the prompt")
    return got


def _check_windows(toy: _NextLogits, got: torch.Tensor, T0: int, n: int, receptive_field: int, inputs: str) -> None:
    """Every call of next_logits got exactly the last receptive_field steps generated so far."""
    calls = len(toy.windows)
    if calls != n:
        raise Mismatch(f"on {inputs}, next_logits was called {calls} times for {n} new steps: call it once per "
                       "new step, on the whole batch")
    lengths = [window.shape[1] for window in toy.windows]
    if lengths == [T0 + i for i in range(n)] and T0 + n - 1 > receptive_field + 1:
        raise Mismatch(f"on {inputs}, next_logits was given the whole history (up to {lengths[-1]} steps); feed "
                       f"only the last receptive_field = {receptive_field} steps, x[:, -receptive_field:], all a "
                       "model with that receptive field can use")
    for i, window in enumerate(toy.windows):
        T = T0 + i  # steps known before the i-th new one
        want = min(T, receptive_field)
        if window.shape[1] != want:
            more = " feed the last receptive_field steps, x[:, -receptive_field:] (all of them while fewer exist)"
            raise Mismatch(f"on {inputs}, with {T} steps known (before new step {i + 1}) next_logits was given "
                           f"{window.shape[1]} step(s), should be min({T}, receptive_field = {receptive_field}) = "
                           f"{want}:{more}")
        if not torch.equal(window, got[:, T - want: T]):
            raise Mismatch(f"on {inputs}, before new step {i + 1} next_logits was given a window that is not the "
                           f"last {want} steps of the sequence so far, in order")


def _generate_argmax(next_logits, prompt, n, receptive_field, generator):
    x = prompt
    for _ in range(n):
        x = torch.cat([x, next_logits(x[:, -receptive_field:]).argmax(-1, keepdim=True)], dim=1)
    return x


def _generate_global_rng(next_logits, prompt, n, receptive_field, generator):
    return ar.generate(next_logits, prompt, n, receptive_field, None)


def _generate_own_generator(next_logits, prompt, n, receptive_field, generator):
    return ar.generate(next_logits, prompt, n, receptive_field, torch.Generator().manual_seed(0))


def _generate_whole_history(next_logits, prompt, n, receptive_field, generator):
    return ar.generate(next_logits, prompt, n, 10**9, generator)


def _generate_window_plus_one(next_logits, prompt, n, receptive_field, generator):
    return ar.generate(next_logits, prompt, n, receptive_field + 1, generator)


def _generate_window_minus_one(next_logits, prompt, n, receptive_field, generator):
    x = prompt
    for _ in range(n):
        probs = torch.softmax(next_logits(x[:, -receptive_field + 1:]), dim=-1)  # -(rf - 1): one step short
        x = torch.cat([x, torch.multinomial(probs, 1, generator=generator)], dim=1)
    return x


def _generate_same_draw(next_logits, prompt, n, receptive_field, generator):
    x = prompt
    for _ in range(n):
        probs = torch.softmax(next_logits(x[:, -receptive_field:]), dim=-1)
        x = torch.cat([x, torch.multinomial(probs[0], 1, generator=generator).expand(len(x), 1)], dim=1)
    return x


def _generate_new_only(next_logits, prompt, n, receptive_field, generator):
    return ar.generate(next_logits, prompt, n, receptive_field, generator)[:, prompt.shape[1]:]


def _generate_sigmoid_weights(next_logits, prompt, n, receptive_field, generator):
    x = prompt
    for _ in range(n):
        weights = torch.sigmoid(next_logits(x[:, -receptive_field:]))
        x = torch.cat([x, torch.multinomial(weights, 1, generator=generator)], dim=1)
    return x


_GENERATE_MISTAKES = [
    (_generate_argmax, "draw the next step from softmax(logits) with torch.multinomial; the most likely "
     "value (argmax) is not a sample"),
    (_generate_global_rng, "pass generator=generator to torch.multinomial"),
    (_generate_own_generator, "draw from the generator you are given"),
    (_generate_whole_history, "was given the whole history"),
    (_generate_window_plus_one, "should be min("),
    (_generate_window_minus_one, "should be min("),
    (_generate_same_draw, "draw each row independently"),
    (_generate_new_only, "not the new steps alone"),
    (_generate_sigmoid_weights, "draw from p = softmax(logits)"),
]


def _check_generate(fn) -> int:
    passed = 0
    # Equal logits: samples spread over the values, rows independent, the generator used.
    B, T0, n, rf, vocab = 6, 2, 150, 4, 8
    prompt = torch.zeros(B, T0, dtype=torch.int64)
    inputs = (f"prompt ({B}, {T0}) of zeros, n = {n}, receptive_field = {rf}, and a toy next_logits "
              f"with logits 0 for all {vocab} values")
    runs = {}
    for name, seed in (("first", 0), ("again", 0), ("other", 1)):
        toy = _NextLogits("flat", B, vocab)
        got = call(fn, toy, prompt.clone(), n, rf, torch.Generator().manual_seed(seed),
                   inputs=f"{inputs}, a generator seeded with {seed}")
        runs[name] = _generate_output(got, prompt, n, inputs)
        _check_windows(toy, runs[name], T0, n, rf, inputs)
    new = runs["first"][:, T0:]
    if new.min() < 0 or new.max() >= vocab:
        raise Mismatch(f"on {inputs}, the new steps should be values 0..{vocab - 1}, got {new.min()}..{new.max()}")
    distinct = new.unique().numel()
    if distinct < vocab // 2:
        raise Mismatch(f"on {inputs}, the {B * n} new steps took only {distinct} distinct value(s) where every "
                       f"value has probability 1/{vocab}: draw the next step from softmax(logits) with "
                       "torch.multinomial; the most likely value (argmax) is not a sample")
    if (new == new[:1]).all():
        raise Mismatch(f"on {inputs}, all {B} rows got the same samples: draw each row independently, "
                       "torch.multinomial(probs, 1) draws one value per row of probs (B, V)")
    if not torch.equal(runs["first"], runs["again"]):
        raise Mismatch(f"on {inputs}, two runs with generators seeded alike (0 and 0) gave different samples: "
                       "pass generator=generator to torch.multinomial")
    if torch.equal(runs["first"], runs["other"]):
        raise Mismatch(f"on {inputs}, generators seeded 0 and 1 gave the same samples: draw from the generator "
                       "you are given")
    passed += 1

    # Unequal probabilities: the draws follow softmax(logits).
    probs = (0.4, 0.2, 0.12, 0.1, 0.08, 0.05, 0.03, 0.02)  # a long tail: top-k or top-p cuts it
    B, T0, n, rf = 40, 1, 60, 3
    inputs = (f"prompt ({B}, {T0}) of zeros, n = {n}, receptive_field = {rf}, and a toy next_logits with logits "
              f"log p + 20 for p = {list(probs)}")
    toy = _NextLogits("skewed", B, len(probs), probs)
    got = call(fn, toy, torch.zeros(B, T0, dtype=torch.int64), n, rf, torch.Generator().manual_seed(0),
               inputs=inputs)
    got = _generate_output(got, torch.zeros(B, T0, dtype=torch.int64), n, inputs)
    _check_windows(toy, got, T0, n, rf, inputs)
    draws = got[:, T0:].flatten()
    if draws.min() < 0 or draws.max() >= len(probs):
        raise Mismatch(f"on {inputs}, the new steps should be values 0..{len(probs) - 1}")
    frequency = torch.bincount(draws, minlength=len(probs)).double() / draws.numel()
    p = torch.tensor(probs, dtype=torch.float64)
    if ((frequency - p).abs() > 4.5 * (p * (1 - p) / draws.numel()).sqrt()).any():
        shown = ", ".join(f"{f:.3f}" for f in frequency.tolist())
        raise Mismatch(f"on {inputs}, the {draws.numel()} draws came out with frequencies [{shown}], far from "
                       f"p: draw from p = softmax(logits), e.g. torch.multinomial(torch.softmax(logits, -1), 1, "
                       "generator=generator)")
    passed += 1

    g = torch.Generator().manual_seed(0)
    vocab = 11
    # A determined sequence: every window, its order and its length, show in the output.
    for B, T0, n, rf in ((3, 4, 25, 6), (2, 1, 12, 5), (2, 3, 0, 4)):
        prompt = torch.randint(0, vocab, (B, T0), generator=g)
        inputs = (f"prompt ({B}, {T0}), n = {n}, receptive_field = {rf}, and a toy next_logits whose logits are "
                  f"+1000 for one of {vocab} values (a function of the whole window) and 0 for the others")
        toy = _NextLogits("peaked", B, vocab)
        given = prompt.clone()
        got = call(fn, toy, given, n, rf, torch.Generator().manual_seed(0), inputs=inputs)
        if not torch.equal(given, prompt):
            raise Mismatch(f"on {inputs}, your function changed the prompt in place; build a new tensor "
                           "(torch.cat) and leave the prompt as it is")
        got = _generate_output(got, prompt, n, inputs)
        _check_windows(toy, got, T0, n, rf, inputs)
        compare(got, _expected_peaked(prompt, n, rf, vocab), inputs=inputs, what="the sequence")
        passed += 1

    return passed


register(Exercise("autoregressive.generate", _check_generate, ar.generate, _GENERATE_MISTAKES))

# ----------------------------------------------------------- causal_self_attention


def _split_heads(t, num_heads):  # (B, T, D) -> (B, heads, T, d)
    B, T, D = t.shape
    return t.view(B, T, num_heads, D // num_heads).transpose(1, 2)


def _attention_parts(x, qkv_weight, qkv_bias, num_heads):
    return [_split_heads(t, num_heads) for t in F.linear(x, qkv_weight, qkv_bias).chunk(3, dim=-1)]


def _merge(context, proj_weight, proj_bias):  # (B, heads, T, d) -> (B, T, D)
    B, h, T, d = context.shape
    return F.linear(context.transpose(1, 2).reshape(B, T, h * d), proj_weight, proj_bias)


def _attend(q, k, v, mask, scale):
    scores = (q @ k.transpose(-2, -1)) / scale
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def _attention_heads_view(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    B, T, D = x.shape
    q, k, v = (t.reshape(B, num_heads, T, D // num_heads)
               for t in F.linear(x, qkv_weight, qkv_bias).chunk(3, dim=-1))
    context = _attend(q, k, v, ar.causal_mask(T), math.sqrt(D // num_heads))
    return _merge(context, proj_weight, proj_bias)


def _attention_no_mask(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    q, k, v = _attention_parts(x, qkv_weight, qkv_bias, num_heads)
    return _merge(_attend(q, k, v, None, math.sqrt(q.shape[-1])), proj_weight, proj_bias)


def _attention_mask_transposed(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    q, k, v = _attention_parts(x, qkv_weight, qkv_bias, num_heads)
    mask = ar.causal_mask(x.shape[1]).T
    return _merge(_attend(q, k, v, mask, math.sqrt(q.shape[-1])), proj_weight, proj_bias)


def _attention_scale_by_D(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    q, k, v = _attention_parts(x, qkv_weight, qkv_bias, num_heads)
    context = _attend(q, k, v, ar.causal_mask(x.shape[1]), math.sqrt(x.shape[-1]))
    return _merge(context, proj_weight, proj_bias)


def _attention_q_k_swapped(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    k, q, v = _attention_parts(x, qkv_weight, qkv_bias, num_heads)
    return _merge(_attend(q, k, v, ar.causal_mask(x.shape[1]), math.sqrt(q.shape[-1])), proj_weight, proj_bias)


def _attention_per_head_layout(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    B, T, D = x.shape
    qkv = F.linear(x, qkv_weight, qkv_bias).view(B, T, num_heads, 3, D // num_heads)
    q, k, v = qkv.permute(3, 0, 2, 1, 4)
    return _merge(_attend(q, k, v, ar.causal_mask(T), math.sqrt(D // num_heads)), proj_weight, proj_bias)


def _attention_heads_interleaved(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    q, k, v = _attention_parts(x, qkv_weight, qkv_bias, num_heads)
    context = _attend(q, k, v, ar.causal_mask(x.shape[1]), math.sqrt(q.shape[-1]))  # (B, h, T, d)
    B, h, T, d = context.shape
    return F.linear(context.permute(0, 2, 3, 1).reshape(B, T, h * d), proj_weight, proj_bias)


def _attention_naive_softmax(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    q, k, v = _attention_parts(x, qkv_weight, qkv_bias, num_heads)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    e = scores.exp().masked_fill(~ar.causal_mask(x.shape[1]), 0.0)
    return _merge(e / e.sum(-1, keepdim=True) @ v, proj_weight, proj_bias)


def _attention_no_projection(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    q, k, v = _attention_parts(x, qkv_weight, qkv_bias, num_heads)
    context = _attend(q, k, v, ar.causal_mask(x.shape[1]), math.sqrt(q.shape[-1]))
    return context.transpose(1, 2).reshape(x.shape)


_ATTENTION_MISTAKES = [
    (_attention_heads_view, "split the heads with view(B, T, heads, d).transpose(1, 2): a plain view(B, heads, "
     "T, d) mixes features of different positions"),
    (_attention_no_mask, "the causal mask is missing: step t may attend only to s <= t"),
    (_attention_mask_transposed, "the mask is transposed: True where the key's position s <= the query's t "
     "(rows are queries), i.e. causal_mask(T), not its transpose"),
    (_attention_scale_by_D, "scale the scores by sqrt(d), d = D / num_heads the size of one head, not sqrt(D)"),
    (_attention_q_k_swapped, "queries and keys are swapped: the first D outputs of qkv are the queries, the next "
     "D the keys, the last D the values"),
    (_attention_per_head_layout, "the outputs of qkv are [q | k | v], each D wide and then cut into heads; not "
     "[q, k, v] side by side within each head"),
    (_attention_heads_interleaved, "concatenate the heads side by side, head 0's d features first: "
     "transpose(1, 2).reshape(B, T, D), not a permutation that interleaves them"),
    (_attention_naive_softmax, "exp(score) overflows to inf for scores in the hundreds: use torch.softmax (or "
     "dlpt.sequences.attention), which subtracts the largest score first; mask with -inf before it"),
    (_attention_no_projection, "the output projection is missing: finish with proj_weight and proj_bias"),
]


def _attention_by_module(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    """The expected output: an ar.CausalSelfAttention with these weights, in the dtype of x."""
    with torch.random.fork_rng(devices=[]):  # building the layer draws its initial weights: leave the RNG alone
        layer = ar.CausalSelfAttention(x.shape[-1], num_heads).to(x.dtype)
    with torch.no_grad():
        layer.qkv.weight.copy_(qkv_weight)
        layer.qkv.bias.copy_(qkv_bias)
        layer.proj.weight.copy_(proj_weight)
        layer.proj.bias.copy_(proj_bias)
        return layer(x)


def _attention_case(g, B, T, D, heads, scale=1.0):
    return (scale * torch.randn(B, T, D, generator=g), torch.randn(3 * D, D, generator=g) / math.sqrt(D),
            0.5 * torch.randn(3 * D, generator=g), torch.randn(D, D, generator=g) / math.sqrt(D),
            0.5 * torch.randn(D, generator=g), heads)


def _check_causal_self_attention(fn) -> int:
    g = torch.Generator().manual_seed(0)
    cases = [
        ("x (2, 5, 12), num_heads = 3", _attention_case(g, 2, 5, 12, 3)),
        ("x (3, 7, 8), num_heads = 4", _attention_case(g, 3, 7, 8, 4)),
        ("x (1, 6, 10), num_heads = 5", _attention_case(g, 1, 6, 10, 5)),
        ("x (2, 3, 6), num_heads = 1", _attention_case(g, 2, 3, 6, 1)),
        ("x (4, 1, 8), num_heads = 2 (one step)", _attention_case(g, 4, 1, 8, 2)),
        ("x (3, 9, 16) with entries of size about 8 (scores in the hundreds), num_heads = 2",
         _attention_case(g, 3, 9, 16, 2, scale=8.0)),
    ]
    return check_cases(fn, _attention_by_module, cases, _ATTENTION_MISTAKES, what="the output", atol=1e-4,
                       rtol=1e-4)


register(Exercise("autoregressive.causal_self_attention", _check_causal_self_attention, ar.causal_self_attention,
                  _ATTENTION_MISTAKES))

# -------------------------------------------------------------------- sample_pixels


class _PixelToy(nn.Module):
    """A stand-in pixel model for the sample_pixels checker; it counts its calls.

    kind "rule": logit +-40 so that pixel (i, j) = c_ij XOR (pixel left of it) XOR (pixel above
    and to the right of it), both earlier in raster order: the images are determined, and
    any other order or a single pass gives others. kind "constant": every logit ``logit``.
    """

    def __init__(self, kind: str, n: int, height: int, width: int, logit: float = 0.0):
        super().__init__()
        self.kind, self.shape, self.logit = kind, (n, 1, height, width), logit
        self.anchor = nn.Parameter(torch.zeros(()))  # so that the model has a device to be found on
        self.pattern = torch.rand(height, width, generator=torch.Generator().manual_seed(height * 100 + width)) < 0.5
        self.calls = 0

    def forward(self, x):
        if not isinstance(x, torch.Tensor) or tuple(x.shape) != self.shape or not x.is_floating_point():
            shown = f"{x.dtype} of shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"the model takes a float canvas of shape (n, 1, H, W) = {self.shape}, got {shown}")
        self.calls += 1
        if self.kind == "constant":
            return torch.full(self.shape, self.logit)
        return 40.0 * (2 * _pixel_rule(x, self.pattern) - 1)


def _pixel_rule(x: torch.Tensor, pattern: torch.Tensor) -> torch.Tensor:
    """(n, 1, H, W) -> (n, 1, H, W) of 0/1: pattern XOR the pixel to the left XOR the pixel above-right."""
    left = F.pad(x, (1, 0))[..., :, :-1]  # x[i, j - 1], 0 in the first column
    above_right = F.pad(x, (0, 1, 1, 0))[..., :-1, 1:]  # x[i - 1, j + 1], 0 in the first row and last column
    return (pattern.float() + left.round() + above_right.round()).remainder(2)


def _expected_rule_images(n: int, height: int, width: int, pattern: torch.Tensor) -> torch.Tensor:
    x = torch.zeros(n, 1, height, width)
    for i in range(height):
        for j in range(width):
            left = x[:, 0, i, j - 1] if j > 0 else 0
            above_right = x[:, 0, i - 1, j + 1] if i > 0 and j + 1 < width else 0
            x[:, 0, i, j] = (float(pattern[i, j]) + left + above_right) % 2
    return x


def _pixel_images(got, n: int, height: int, width: int, inputs: str) -> torch.Tensor:
    if not isinstance(got, torch.Tensor):
        raise Mismatch(f"on {inputs}, return a torch tensor of shape (n, 1, H, W) = ({n}, 1, {height}, {width}), "
                       f"got {type(got).__name__}")
    if tuple(got.shape) != (n, 1, height, width):
        raise Mismatch(f"on {inputs}, the images should have shape (n, 1, H, W) = ({n}, 1, {height}, {width}), got "
                       f"{tuple(got.shape)}")
    if not got.is_floating_point():
        raise Mismatch(f"on {inputs}, the images should be a float tensor of 0s and 1s (the model's input), got "
                       f"dtype {got.dtype}")
    if not ((got == 0) | (got == 1)).all():
        raise Mismatch(f"on {inputs}, every pixel should be 0 or 1, a sample, got values such as "
                       f"{got[(got != 0) & (got != 1)][0].item():.4g}: draw each pixel with torch.bernoulli(p, "
                       "generator=generator), do not store its probability")
    return got


def _pixel_calls(model: _PixelToy, height: int, width: int, inputs: str) -> None:
    if model.calls != height * width:
        raise Mismatch(f"on {inputs}, the model was called {model.calls} times; sampling all n images at once "
                       f"takes one call per pixel, H * W = {height * width}: pixel (i, j) depends on the pixels "
                       "drawn before it, so each needs a fresh evaluation")


def _pixels_column_major(model, n, height, width, generator):
    x = torch.zeros(n, 1, height, width)
    with torch.no_grad():
        for j in range(width):
            for i in range(height):
                x[:, 0, i, j] = torch.bernoulli(torch.sigmoid(model(x)[:, 0, i, j]), generator=generator)
    return x


def _pixels_one_pass(model, n, height, width, generator):
    with torch.no_grad():
        return torch.bernoulli(torch.sigmoid(model(torch.zeros(n, 1, height, width))), generator=generator)


def _pixels_global_rng(model, n, height, width, generator):
    return ar.sample_pixels(model, n, height, width, None)


def _pixels_threshold(model, n, height, width, generator):
    x = torch.zeros(n, 1, height, width)
    with torch.no_grad():
        for i in range(height):
            for j in range(width):
                x[:, 0, i, j] = (torch.sigmoid(model(x)[:, 0, i, j]) > 0.5).float()
    return x


def _pixels_same_draw(model, n, height, width, generator):
    x = torch.zeros(n, 1, height, width)
    with torch.no_grad():
        for i in range(height):
            for j in range(width):
                p = torch.sigmoid(model(x)[:1, 0, i, j])
                x[:, 0, i, j] = torch.bernoulli(p, generator=generator)
    return x


def _pixels_store_probability(model, n, height, width, generator):
    x = torch.zeros(n, 1, height, width)
    with torch.no_grad():
        for i in range(height):
            for j in range(width):
                x[:, 0, i, j] = torch.sigmoid(model(x)[:, 0, i, j])
    return x


def _pixels_per_image(model, n, height, width, generator):
    x = torch.zeros(n, 1, height, width)
    with torch.no_grad():
        for b in range(n):
            for i in range(height):
                for j in range(width):
                    p = torch.sigmoid(model(x)[b, 0, i, j])
                    x[b, 0, i, j] = torch.bernoulli(p, generator=generator)
    return x


def _pixels_reversed_draw(model, n, height, width, generator):
    x = torch.zeros(n, 1, height, width)
    with torch.no_grad():
        for i in range(height):
            for j in range(width):
                p = torch.sigmoid(model(x)[:, 0, i, j])
                x[:, 0, i, j] = (torch.rand(n, generator=generator) > p).float()
    return x


def _pixels_halved_logits(model, n, height, width, generator):
    x = torch.zeros(n, 1, height, width)
    with torch.no_grad():
        for i in range(height):
            for j in range(width):
                p = torch.sigmoid(model(x)[:, 0, i, j] / 2)  # a temperature of 2 that nobody asked for
                x[:, 0, i, j] = torch.bernoulli(p, generator=generator)
    return x


_PIXEL_MISTAKES = [
    (_pixels_column_major, "the images differ"),
    (_pixels_one_pass, "one call per pixel, H * W"),
    (_pixels_global_rng, "pass generator=generator to torch.bernoulli"),
    (_pixels_threshold, "draw each pixel with torch.bernoulli"),
    (_pixels_same_draw, "draw each image independently"),
    (_pixels_store_probability, "do not store its probability"),
    (_pixels_per_image, "sampling all n images at once"),
    (_pixels_reversed_draw, "the images differ"),
    (_pixels_halved_logits, "the fraction of ones"),
]


def _check_sample_pixels(fn) -> int:
    passed = 0
    for n, height, width in ((3, 5, 7), (2, 4, 3)):
        model = _PixelToy("rule", n, height, width)
        inputs = (f"n = {n}, height = {height}, width = {width}, and a toy model whose logits (+-40) make pixel "
                  "(i, j) a function of the pixel to its left and the pixel above and to its right")
        got = _pixel_images(call(fn, model, n, height, width, torch.Generator().manual_seed(0), inputs=inputs),
                            n, height, width, inputs)
        _pixel_calls(model, height, width, inputs)
        expected = _expected_rule_images(n, height, width, model.pattern)
        if not torch.equal(got, expected):
            i, j = (int(v) for v in (got != expected).any(0)[0].nonzero()[0])
            raise Mismatch(f"on {inputs}, the images differ from the expected ones, first at pixel ({i}, {j}): "
                           "sample in raster order, row by row and left to right within a row, each pixel from "
                           "a fresh evaluation of the model on the canvas drawn so far")
        passed += 1

    n, height, width = 8, 3, 5
    inputs = f"n = {n}, height = {height}, width = {width}, and a toy model with every logit 0 (p = 0.5)"
    runs = {}
    for name, seed in (("first", 0), ("again", 0), ("other", 1)):
        model = _PixelToy("constant", n, height, width, 0.0)
        runs[name] = _pixel_images(call(fn, model, n, height, width, torch.Generator().manual_seed(seed),
                                        inputs=f"{inputs}, a generator seeded with {seed}"), n, height, width, inputs)
        _pixel_calls(model, height, width, inputs)
    first = runs["first"]
    if first.min() == first.max():
        raise Mismatch(f"on {inputs}, all {first.numel()} pixels came out {int(first[0, 0, 0, 0])}: draw each pixel "
                       "with torch.bernoulli(p, generator=generator), p = sigmoid(logit): about half should be 1")
    if (first == first[:1]).all():
        raise Mismatch(f"on {inputs}, all {n} images are the same: draw each image independently, "
                       "torch.bernoulli(p) with p of shape (n,) draws n pixels")
    if not torch.equal(first, runs["again"]):
        raise Mismatch(f"on {inputs}, two runs with generators seeded alike (0 and 0) gave different images: "
                       "pass generator=generator to torch.bernoulli")
    if torch.equal(first, runs["other"]):
        raise Mismatch(f"on {inputs}, generators seeded 0 and 1 gave the same images: draw from the generator "
                       "you are given")
    passed += 1

    n, height, width, p = 16, 4, 6, 0.85
    inputs = (f"n = {n}, height = {height}, width = {width}, and a toy model with every logit "
              f"log({p} / {1 - p:.2f}) (p = {p})")
    model = _PixelToy("constant", n, height, width, math.log(p / (1 - p)))
    got = _pixel_images(call(fn, model, n, height, width, torch.Generator().manual_seed(0), inputs=inputs),
                        n, height, width, inputs)
    _pixel_calls(model, height, width, inputs)
    ones = got.mean().item()
    if abs(ones - p) > 5 * math.sqrt(p * (1 - p) / got.numel()):
        raise Mismatch(f"on {inputs}, the fraction of ones is {ones:.3f}, far from p = {p}: a pixel is 1 with "
                       "probability sigmoid(logit), torch.bernoulli(torch.sigmoid(logits), generator=generator)")
    return passed + 1


register(Exercise("autoregressive.sample_pixels", _check_sample_pixels, ar.sample_pixels, _PIXEL_MISTAKES))
