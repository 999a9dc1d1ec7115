"""Chapter 4's checkers under attack: wrong solutions a learner could write, each rejected with a
useful message, and correct variants (float64, loops, NumPy, other formulas), each accepted.
Also unit tests of the references added for the exercises (generate, causal_self_attention)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlpt import autoregressive as ar
from dlpt import autoregressive_exercises as ex  # noqa: F401  (registers the exercises)
from dlpt import check
from dlpt.check import ExerciseFailed
from dlpt.sequences import attention

# ======================================================================= causal_mask


def mask_float_tril(T):
    return torch.tril(torch.ones(T, T))


def mask_int_ones(T):
    return torch.ones(T, T, dtype=torch.int64).tril()


def mask_strict(T):
    return torch.arange(T)[:, None] > torch.arange(T)


def mask_upper(T):
    return torch.ones(T, T, dtype=torch.bool).triu()


def mask_nothing_hidden(T):
    return torch.ones(T, T, dtype=torch.bool)


def mask_future_true(T):
    return torch.tril(torch.ones(T, T)) == 0  # True strictly above the diagonal: the future


def mask_fixed_size(T):
    return torch.ones(4, 4, dtype=torch.bool).tril()


def mask_numpy(T):
    return np.tril(np.ones((T, T), dtype=bool))


def mask_mirrored(T):
    return torch.ones(T, T, dtype=torch.bool).tril().fliplr()


def mask_ok_compare(T):
    return torch.arange(T)[:, None] >= torch.arange(T)


def mask_ok_not_triu(T):
    return ~torch.ones(T, T, dtype=torch.bool).triu(1)


def mask_ok_loop(T):
    mask = torch.zeros(T, T, dtype=torch.bool)
    for t in range(T):
        for s in range(t + 1):
            mask[t, s] = True
    return mask


def mask_ok_numpy(T):
    return torch.from_numpy(np.tril(np.ones((T, T), dtype=bool)))


def mask_ok_float_then_bool(T):
    return torch.tril(torch.ones(T, T, dtype=torch.float64)).bool()


# ===================================================================== pixelcnn_mask


def _raster_mask(k, mask_type, dtype=torch.float32):
    c = k // 2
    mask = torch.zeros(k, k, dtype=dtype)
    for i in range(k):
        for j in range(k):
            before = i * k + j < c * k + c
            mask[i, j] = float(before or (i == c and j == c and mask_type == "B"))
    return mask


def pixel_bool(k, mask_type):
    return ar.pixelcnn_mask(k, mask_type).bool()


def pixel_int(k, mask_type):
    return ar.pixelcnn_mask(k, mask_type).long()


def pixel_swapped(k, mask_type):
    c = k // 2
    mask = torch.ones(k, k)
    mask[c + 1:] = 0
    mask[c, c + 1:] = 0
    mask[c, c] = float(mask_type == "A")
    return mask


def pixel_rows_above_only(k, mask_type):
    c = k // 2
    mask = torch.zeros(k, k)
    mask[:c] = 1
    mask[c, c] = float(mask_type == "B")
    return mask


def pixel_right_shown(k, mask_type):
    c = k // 2
    mask = torch.ones(k, k)
    mask[c + 1:] = 0
    mask[c, c] = float(mask_type == "B")
    return mask


def pixel_columns(k, mask_type):
    c = k // 2
    mask = torch.ones(k, k)
    mask[:, c + 1:] = 0
    mask[c + 1:, c] = 0
    mask[c, c] = float(mask_type == "B")
    return mask


def pixel_rows_below_shown(k, mask_type):
    c = k // 2
    mask = torch.ones(k, k)
    mask[c, c + 1:] = 0
    mask[c, c] = float(mask_type == "B")
    return mask


def pixel_whole_centre_row_hidden(k, mask_type):
    mask = torch.ones(k, k)
    mask[k // 2:] = 0
    return mask


def pixel_centre_always_hidden(k, mask_type):
    c = k // 2
    mask = torch.ones(k, k)
    mask[c + 1:] = 0
    mask[c, c:] = 0
    return mask


def pixel_fixed_three(k, mask_type):
    return ar.pixelcnn_mask(3, mask_type)


def pixel_lower_triangle(k, mask_type):
    mask = torch.ones(k, k).tril()
    mask[k // 2, k // 2] = float(mask_type == "B")
    return mask


def pixel_ok_raster_loop(k, mask_type):
    return _raster_mask(k, mask_type)


def pixel_ok_float64(k, mask_type):
    return _raster_mask(k, mask_type, torch.float64)


def pixel_ok_numpy(k, mask_type):
    c = k // 2
    index = np.arange(k * k).reshape(k, k)
    mask = (index < c * k + c) | ((index == c * k + c) & (mask_type == "B"))
    return torch.from_numpy(mask.astype(np.float32))


def pixel_ok_bool_then_float(k, mask_type):
    c = k // 2
    mask = torch.ones(k, k, dtype=torch.bool)
    mask[c + 1:] = False
    mask[c, c + (mask_type == "B"):] = False
    return mask.float()


# =============================================================== vertical_stack_mask


def vertical_bool(k, first):
    return ar.vertical_stack_mask(k, first).bool()


def vertical_centre_row_always(k, first):
    mask = torch.ones(k, k)
    mask[k // 2 + 1:] = 0
    return mask


def vertical_centre_row_never(k, first):
    mask = torch.zeros(k, k)
    mask[: k // 2] = 1
    return mask


def vertical_swapped(k, first):
    mask = torch.ones(k, k)
    mask[k // 2 + 1:] = 0
    if not first:
        mask[k // 2] = 0
    return mask


def vertical_pixelcnn_like(k, first):
    return ar.pixelcnn_mask(k, "A" if first else "B")


def vertical_columns(k, first):
    mask = torch.ones(k, k)
    mask[:, k // 2 + 1:] = 0
    if first:
        mask[:, k // 2] = 0
    return mask


def vertical_everything(k, first):
    return torch.ones(k, k)


def vertical_ok_loop(k, first):
    mask = torch.zeros(k, k, dtype=torch.float64)
    for i in range(k):
        mask[i] = float(i < k // 2 or (i == k // 2 and not first))
    return mask


def vertical_ok_arange(k, first):
    rows = torch.arange(k)[:, None].expand(k, k)
    return (rows < k // 2 + (not first)).float()


# ===================================================================== causal_conv1d


def conv_same_padding(x, weight, bias=None, dilation=1):
    return F.conv1d(x, weight, bias, padding="same", dilation=dilation)


def conv_pad_right(x, weight, bias=None, dilation=1):
    return F.conv1d(F.pad(x, (0, (weight.shape[-1] - 1) * dilation)), weight, bias, dilation=dilation)


def conv_crop_last(x, weight, bias=None, dilation=1):
    left = (weight.shape[-1] - 1) * dilation
    return F.conv1d(x, weight, bias, padding=left, dilation=dilation)[..., -x.shape[-1]:]


def conv_pad_without_dilation(x, weight, bias=None, dilation=1):
    return F.conv1d(F.pad(x, (weight.shape[-1] - 1, 0)), weight, bias, dilation=dilation)


def conv_no_bias(x, weight, bias=None, dilation=1):
    return F.conv1d(F.pad(x, ((weight.shape[-1] - 1) * dilation, 0)), weight, None, dilation=dilation)


def conv_pad_k(x, weight, bias=None, dilation=1):  # one zero too many
    return F.conv1d(F.pad(x, (weight.shape[-1] * dilation, 0)), weight, bias, dilation=dilation)


def conv_ignores_dilation(x, weight, bias=None, dilation=1):
    left = (weight.shape[-1] - 1) * dilation
    return F.conv1d(F.pad(x, (left, 0)), weight, bias)[..., -x.shape[-1]:]


def conv_flipped_kernel(x, weight, bias=None, dilation=1):
    left = (weight.shape[-1] - 1) * dilation
    return F.conv1d(F.pad(x, (left, 0)), weight.flip(-1), bias, dilation=dilation)


def conv_pads_in_place(x, weight, bias=None, dilation=1):  # right values, but x is scaled and restored wrong
    x.mul_(1.0)
    x[..., 0] = 0.0
    return F.conv1d(F.pad(x, ((weight.shape[-1] - 1) * dilation, 0)), weight, bias, dilation=dilation)


def conv_float32_cast(x, weight, bias=None, dilation=1):  # right in float32, wrong for float64 inputs
    left = (weight.shape[-1] - 1) * dilation
    out = F.conv1d(F.pad(x.float(), (left, 0)), weight.float(), None if bias is None else bias.float(),
                   dilation=dilation)
    return out.half().to(x.dtype)


def conv_ok_padding_then_crop(x, weight, bias=None, dilation=1):
    left = (weight.shape[-1] - 1) * dilation
    return F.conv1d(x, weight, bias, padding=left, dilation=dilation)[..., : x.shape[-1]]


def conv_ok_loop(x, weight, bias=None, dilation=1):
    B, _, T = x.shape
    out = torch.zeros(B, weight.shape[0], T, dtype=x.dtype)
    k = weight.shape[-1]
    for t in range(T):
        for j in range(k):
            s = t - (k - 1 - j) * dilation
            if s >= 0:
                out[:, :, t] += x[:, :, s] @ weight[:, :, j].T
    return out if bias is None else out + bias[:, None]


def conv_ok_unfold(x, weight, bias=None, dilation=1):
    left = (weight.shape[-1] - 1) * dilation
    windows = F.pad(x, (left, 0)).unfold(-1, left + 1, 1)[..., ::dilation]  # (B, C_in, T, k)
    out = torch.einsum("bctk,ock->bot", windows, weight)
    return out if bias is None else out + bias[:, None]


# ===================================================================== mu_law_encode


def _compand(x, mu):
    return torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)


def mu_floor(x, mu=255):
    return torch.floor((_compand(x.clamp(-1, 1), mu) + 1) / 2 * mu).long()


def mu_plus_one(x, mu=255):
    return torch.round((_compand(x.clamp(-1, 1), mu) + 1) / 2 * (mu + 1)).long()


def mu_buckets(x, mu=255):
    return ((_compand(x.clamp(-1, 1), mu) + 1) / 2 * (mu + 1)).long().clamp(max=mu)


def mu_int32(x, mu=255):
    return ar.mu_law_encode(x, mu).to(torch.int32)


def mu_float(x, mu=255):
    return torch.round((_compand(x.clamp(-1, 1), mu) + 1) / 2 * mu)


def mu_no_clamp(x, mu=255):
    return torch.round((_compand(x, mu) + 1) / 2 * mu).long()


def mu_clamp_in_place(x, mu=255):
    x.clamp_(-1, 1)
    return torch.round((_compand(x, mu) + 1) / 2 * mu).long()


def mu_hardcoded_255(x, mu=255):
    y = torch.sign(x.clamp(-1, 1)) * torch.log1p(mu * x.clamp(-1, 1).abs()) / math.log1p(255)
    return torch.round((y + 1) / 2 * mu).long()


def mu_no_sign(x, mu=255):
    return torch.round((torch.log1p(mu * x.clamp(-1, 1).abs()) / math.log1p(mu) + 1) / 2 * mu).long()


def mu_uniform(x, mu=255):
    return torch.round((x.clamp(-1, 1) + 1) / 2 * mu).long()


def mu_log_of_mu(x, mu=255):
    x = x.clamp(-1, 1)
    y = torch.sign(x) * torch.log(1 + mu * x.abs()) / math.log(mu)
    return torch.round((y + 1) / 2 * mu).long()


def mu_other_default(x, mu=256):
    return ar.mu_law_encode(x, mu)


def mu_ok_float64(x, mu=255):
    x = x.double().clamp(-1, 1)
    return torch.round((torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu) + 1) / 2 * mu).long()


def mu_ok_half_up(x, mu=255):  # torchaudio's way: add 0.5 and truncate
    y = _compand(x.clamp(-1, 1), mu)
    return ((y + 1) / 2 * mu + 0.5).to(torch.int64)


def mu_ok_clamp_levels(x, mu=255):
    return torch.round((_compand(x, mu) + 1) / 2 * mu).clamp(0, mu).long()


def mu_ok_log(x, mu=255):
    x = torch.clip(x, -1, 1)
    y = torch.sign(x) * torch.log(1 + mu * torch.abs(x)) / torch.log(torch.tensor(1.0 + mu))
    return torch.round((y + 1) / 2 * mu).to(torch.int64)


def mu_ok_numpy(x, mu=255):
    a = np.clip(x.numpy(), -1, 1)
    y = np.sign(a) * np.log1p(mu * np.abs(a)) / np.log1p(mu)
    return torch.from_numpy(np.round((y + 1) / 2 * mu).astype(np.int64))


# ========================================================== logistic_bin_probability


def _edges(x, num_bins):
    index = torch.round((x + 1) / 2 * (num_bins - 1))
    return index <= 0, index >= num_bins - 1


def bin_no_tails(x, mean, log_scale, num_bins=256):
    s, h = log_scale.exp(), 1 / (num_bins - 1)
    return torch.sigmoid((x - mean + h) / s) - torch.sigmoid((x - mean - h) / s)


def bin_log_scale_as_scale(x, mean, log_scale, num_bins=256):
    h = 1 / (num_bins - 1)
    first, last = _edges(x, num_bins)
    upper = torch.where(last, 1.0, torch.sigmoid((x - mean + h) / log_scale))
    lower = torch.where(first, 0.0, torch.sigmoid((x - mean - h) / log_scale))
    return upper - lower


def _bin_with(x, mean, s, h, num_bins, cdf=torch.sigmoid, first_tail=True, last_tail=True):
    first, last = _edges(x, num_bins)
    upper, lower = cdf((x - mean + h) / s), cdf((x - mean - h) / s)
    if last_tail:
        upper = torch.where(last, 1.0, upper)
    if first_tail:
        lower = torch.where(first, 0.0, lower)
    return upper - lower


def bin_half_over_num_bins(x, mean, log_scale, num_bins=256):
    return _bin_with(x, mean, log_scale.exp(), 1 / num_bins, num_bins)


def bin_whole_bin(x, mean, log_scale, num_bins=256):
    return _bin_with(x, mean, log_scale.exp(), 2 / (num_bins - 1), num_bins)


def bin_naive_sigmoid(x, mean, log_scale, num_bins=256):
    return _bin_with(x, mean, log_scale.exp(), 1 / (num_bins - 1), num_bins, cdf=lambda z: z.exp() / (1 + z.exp()))


def bin_first_tail_only(x, mean, log_scale, num_bins=256):
    return _bin_with(x, mean, log_scale.exp(), 1 / (num_bins - 1), num_bins, last_tail=False)


def bin_times_scale(x, mean, log_scale, num_bins=256):
    return _bin_with(x, mean, 1 / log_scale.exp(), 1 / (num_bins - 1), num_bins)


def bin_edges_swapped(x, mean, log_scale, num_bins=256):
    return -ar.logistic_bin_probability(x, mean, log_scale, num_bins)


def bin_abs_scale(x, mean, log_scale, num_bins=256):
    return _bin_with(x, mean, log_scale.abs(), 1 / (num_bins - 1), num_bins)


def bin_in_place(x, mean, log_scale, num_bins=256):
    x -= mean
    s, h = log_scale.exp(), 1 / (num_bins - 1)
    first, last = _edges(x + mean, num_bins)
    return torch.where(last, 1.0, torch.sigmoid((x + h) / s)) - torch.where(first, 0.0, torch.sigmoid((x - h) / s))


def bin_ok_float64(x, mean, log_scale, num_bins=256):
    return ar.logistic_bin_probability(x.double(), mean.double(), log_scale.double(), num_bins)


def bin_ok_compare_with_ends(x, mean, log_scale, num_bins=256):
    s, h = torch.exp(log_scale), 1 / (num_bins - 1)
    upper = torch.where(x >= 1 - h, torch.ones(()), torch.sigmoid((x - mean + h) / s))
    lower = torch.where(x <= -1 + h, torch.zeros(()), torch.sigmoid((x - mean - h) / s))
    return upper - lower


def bin_ok_log_space(x, mean, log_scale, num_bins=256):
    # 1 - sigmoid(z) = sigmoid(-z), written out through logsigmoid: stable in both tails.
    s, h = torch.exp(log_scale), 1 / (num_bins - 1)
    first, last = _edges(x, num_bins)
    upper, lower = (x - mean + h) / s, (x - mean - h) / s
    middle = torch.sigmoid(upper) - torch.sigmoid(lower)
    return torch.where(first, F.logsigmoid(upper).exp(), torch.where(last, F.logsigmoid(-lower).exp(), middle))


def bin_ok_numpy(x, mean, log_scale, num_bins=256):
    xs, m, ls = (t.double().numpy() for t in (x, mean, log_scale))
    h = 1 / (num_bins - 1)

    def cdf(z):
        return 0.5 * (1 + np.tanh(z / 2))  # the logistic CDF, without overflow

    upper = np.where(xs >= 1 - h / 2, 1.0, cdf((xs - m + h) / np.exp(ls)))
    lower = np.where(xs <= -1 + h / 2, 0.0, cdf((xs - m - h) / np.exp(ls)))
    return torch.from_numpy(upper - lower)


# ============================================================ multiscale_evaluations


def evals_four(size, base=1):
    return base * base + 4 * int(math.log2(size // base))


def evals_base_once(size, base=1):
    return 1 + 3 * int(math.log2(size // base))


def evals_base_linear(size, base=1):
    return base + 3 * int(math.log2(size // base))


def evals_from_one(size, base=1):
    return base**2 + 3 * int(math.log2(size))


def evals_bit_length(size, base=1):
    return base**2 + 3 * (size // base).bit_length()


def evals_ignores_base(size, base=1):
    return 1 + 3 * int(math.log2(size))


def evals_natural_log(size, base=1):
    return base**2 + 3 * math.log(size / base)


def evals_two_to_base(size, base=1):
    return 2**base + 3 * int(math.log2(size // base))


def evals_ok_float(size, base=1):
    return base**2 + 3 * math.log2(size / base)


def evals_ok_loop(size, base=1):
    count, side = base * base, base
    while side < size:
        side *= 2
        count += 3
    return count


def evals_ok_numpy(size, base=1):
    return np.int64(base**2 + 3 * np.log2(size // base).astype(np.int64))


def evals_ok_tensor(size, base=1):
    return torch.tensor(base**2 + 3 * (size // base).bit_length() - 3)


# ========================================================================== generate


def _sample(logits, generator):
    return torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator)


def gen_argmax(next_logits, prompt, n, receptive_field, generator):
    x = prompt
    for _ in range(n):
        x = torch.cat([x, next_logits(x[:, -receptive_field:]).argmax(-1, keepdim=True)], 1)
    return x


def gen_ignores_generator(next_logits, prompt, n, receptive_field, generator):
    x = prompt
    for _ in range(n):
        x = torch.cat([x, torch.multinomial(torch.softmax(next_logits(x[:, -receptive_field:]), -1), 1)], 1)
    return x


def gen_categorical(next_logits, prompt, n, receptive_field, generator):
    x = prompt
    for _ in range(n):
        dist = torch.distributions.Categorical(logits=next_logits(x[:, -receptive_field:]))
        x = torch.cat([x, dist.sample()[:, None]], 1)
    return x


def gen_own_generator(next_logits, prompt, n, receptive_field, generator):
    generator = torch.Generator().manual_seed(42)
    x = prompt
    for _ in range(n):
        x = torch.cat([x, _sample(next_logits(x[:, -receptive_field:]), generator)], 1)
    return x


def gen_whole_history(next_logits, prompt, n, receptive_field, generator):
    x = prompt
    for _ in range(n):
        x = torch.cat([x, _sample(next_logits(x), generator)], 1)
    return x


def gen_window_plus_one(next_logits, prompt, n, receptive_field, generator):
    x = prompt
    for _ in range(n):
        x = torch.cat([x, _sample(next_logits(x[:, -(receptive_field + 1):]), generator)], 1)
    return x


def gen_window_drops_last(next_logits, prompt, n, receptive_field, generator):
    x = prompt
    for _ in range(n):
        x = torch.cat([x, _sample(next_logits(x[:, -receptive_field - 1:-1]), generator)], 1)
    return x


def gen_window_from_prompt(next_logits, prompt, n, receptive_field, generator):
    x = prompt
    for _ in range(n):
        x = torch.cat([x, _sample(next_logits(prompt[:, -receptive_field:]), generator)], 1)
    return x


def gen_window_reversed(next_logits, prompt, n, receptive_field, generator):
    x = prompt
    for _ in range(n):
        x = torch.cat([x, _sample(next_logits(x.flip(1)[:, :receptive_field]), generator)], 1)
    return x


def gen_same_draw(next_logits, prompt, n, receptive_field, generator):
    x = prompt
    for _ in range(n):
        probs = torch.softmax(next_logits(x[:, -receptive_field:]), -1)
        x = torch.cat([x, torch.multinomial(probs[0], 1, generator=generator).repeat(len(x), 1)], 1)
    return x


def gen_new_only(next_logits, prompt, n, receptive_field, generator):
    x, new = prompt, []
    for _ in range(n):
        step = _sample(next_logits(x[:, -receptive_field:]), generator)
        x = torch.cat([x, step], 1)
        new.append(step)
    return torch.cat(new, 1) if new else prompt[:, :0]


def gen_sigmoid(next_logits, prompt, n, receptive_field, generator):
    x = prompt
    for _ in range(n):
        weights = torch.sigmoid(next_logits(x[:, -receptive_field:]))
        x = torch.cat([x, torch.multinomial(weights, 1, generator=generator)], 1)
    return x


def gen_naive_softmax(next_logits, prompt, n, receptive_field, generator):
    x = prompt
    for _ in range(n):
        e = next_logits(x[:, -receptive_field:]).exp()
        x = torch.cat([x, torch.multinomial(e / e.sum(-1, keepdim=True), 1, generator=generator)], 1)
    return x


def gen_float_buffer(next_logits, prompt, n, receptive_field, generator):
    out = torch.zeros(prompt.shape[0], prompt.shape[1] + n)
    out[:, : prompt.shape[1]] = prompt
    for t in range(prompt.shape[1], out.shape[1]):
        out[:, t] = _sample(next_logits(out[:, max(0, t - receptive_field): t].long()), generator)[:, 0]
    return out


def gen_temperature_two(next_logits, prompt, n, receptive_field, generator):
    x = prompt
    for _ in range(n):
        x = torch.cat([x, _sample(next_logits(x[:, -receptive_field:]) / 2, generator)], 1)
    return x


def gen_prompt_last(next_logits, prompt, n, receptive_field, generator):
    x = prompt
    for _ in range(n):
        x = torch.cat([_sample(next_logits(x[:, :receptive_field]), generator), x], 1)
    return x


def gen_two_calls(next_logits, prompt, n, receptive_field, generator):
    x = prompt
    vocab = next_logits(x[:, -receptive_field:]).shape[-1] if n else 0
    for _ in range(n):
        x = torch.cat([x, _sample(next_logits(x[:, -receptive_field:])[:, :vocab], generator)], 1)
    return x


def gen_retries_forever(next_logits, prompt, n, receptive_field, generator):
    while True:
        try:
            return torch.cat([prompt, next_logits(prompt.float())], 1)
        except Exception:
            continue


def gen_ok_preallocated(next_logits, prompt, n, receptive_field, generator):
    B, T0 = prompt.shape
    out = torch.empty(B, T0 + n, dtype=torch.int64)
    out[:, :T0] = prompt
    for t in range(T0, T0 + n):
        out[:, t] = _sample(next_logits(out[:, max(0, t - receptive_field): t]), generator)[:, 0]
    return out


def gen_ok_inverse_cdf(next_logits, prompt, n, receptive_field, generator):
    x = prompt
    for _ in range(n):
        cdf = torch.softmax(next_logits(x[:, -receptive_field:]).double(), -1).cumsum(-1)
        u = torch.rand(len(x), 1, generator=generator, dtype=torch.float64)
        x = torch.cat([x, (cdf < u).sum(-1, keepdim=True).clamp(max=cdf.shape[-1] - 1)], 1)
    return x


def gen_ok_gumbel(next_logits, prompt, n, receptive_field, generator):
    x = prompt
    for _ in range(n):
        logits = next_logits(x[:, -receptive_field:])
        u = torch.rand(logits.shape, generator=generator).clamp(1e-20, 1)
        x = torch.cat([x, (logits - torch.log(-torch.log(u))).argmax(-1, keepdim=True)], 1)
    return x


def gen_ok_rows_one_by_one(next_logits, prompt, n, receptive_field, generator):
    x = prompt
    for _ in range(n):
        probs = torch.softmax(next_logits(x[:, -receptive_field:]), -1)
        rows = [torch.multinomial(p, 1, generator=generator) for p in probs]
        x = torch.cat([x, torch.stack(rows)], 1)
    return x


def gen_ok_list(next_logits, prompt, n, receptive_field, generator):
    steps = list(prompt.unbind(1))
    for _ in range(n):
        window = torch.stack(steps[-receptive_field:], 1)
        steps.append(_sample(next_logits(window), generator)[:, 0])
    return torch.stack(steps, 1)


# ============================================================= causal_self_attention


def _heads(t, h):
    B, T, D = t.shape
    return t.view(B, T, h, D // h).transpose(1, 2)


def _parts(x, w, b, h):
    return [_heads(t, h) for t in (x @ w.T + b).split(x.shape[-1], dim=-1)]


def _concat(context, proj_w, proj_b):
    B, h, T, d = context.shape
    return context.transpose(1, 2).reshape(B, T, h * d) @ proj_w.T + proj_b


def att_view_no_transpose(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    B, T, D = x.shape
    q, k, v = (t.contiguous().view(B, num_heads, T, D // num_heads)
               for t in F.linear(x, qkv_weight, qkv_bias).chunk(3, -1))
    context, _ = attention(q, k, v, ar.causal_mask(T))
    return _concat(context, proj_weight, proj_bias)


def att_no_mask(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    q, k, v = _parts(x, qkv_weight, qkv_bias, num_heads)
    return _concat(attention(q, k, v)[0], proj_weight, proj_bias)


def att_mask_transposed(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    q, k, v = _parts(x, qkv_weight, qkv_bias, num_heads)
    return _concat(attention(q, k, v, ar.causal_mask(x.shape[1]).T)[0], proj_weight, proj_bias)


def att_sqrt_D(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    q, k, v = _parts(x, qkv_weight, qkv_bias, num_heads)
    scores = q @ k.transpose(-2, -1) / math.sqrt(x.shape[-1])
    scores = scores.masked_fill(~ar.causal_mask(x.shape[1]), float("-inf"))
    return _concat(scores.softmax(-1) @ v, proj_weight, proj_bias)


def att_k_q_v(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    k, q, v = _parts(x, qkv_weight, qkv_bias, num_heads)
    return _concat(attention(q, k, v, ar.causal_mask(x.shape[1]))[0], proj_weight, proj_bias)


def att_v_k_q(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    v, k, q = _parts(x, qkv_weight, qkv_bias, num_heads)
    return _concat(attention(q, k, v, ar.causal_mask(x.shape[1]))[0], proj_weight, proj_bias)


def att_per_head_layout(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    B, T, D = x.shape
    q, k, v = F.linear(x, qkv_weight, qkv_bias).view(B, T, num_heads, 3, D // num_heads).permute(3, 0, 2, 1, 4)
    return _concat(attention(q, k, v, ar.causal_mask(T))[0], proj_weight, proj_bias)


def att_heads_interleaved(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    q, k, v = _parts(x, qkv_weight, qkv_bias, num_heads)
    context = attention(q, k, v, ar.causal_mask(x.shape[1]))[0]
    B, h, T, d = context.shape
    return context.permute(0, 2, 3, 1).reshape(B, T, h * d) @ proj_weight.T + proj_bias


def att_heads_reshaped_without_transpose(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    q, k, v = _parts(x, qkv_weight, qkv_bias, num_heads)
    context = attention(q, k, v, ar.causal_mask(x.shape[1]))[0]
    return context.reshape(x.shape) @ proj_weight.T + proj_bias


def att_no_projection(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    q, k, v = _parts(x, qkv_weight, qkv_bias, num_heads)
    context = attention(q, k, v, ar.causal_mask(x.shape[1]))[0]
    return context.transpose(1, 2).reshape(x.shape)


def att_softmax_wrong_dim(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    q, k, v = _parts(x, qkv_weight, qkv_bias, num_heads)
    scores = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(~ar.causal_mask(x.shape[1]), -1e9)
    return _concat(scores.softmax(-2) @ v, proj_weight, proj_bias)


def att_mask_after_softmax(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    q, k, v = _parts(x, qkv_weight, qkv_bias, num_heads)
    weights = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(-1) * ar.causal_mask(x.shape[1])
    return _concat(weights @ v, proj_weight, proj_bias)


def att_mask_with_zero(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    q, k, v = _parts(x, qkv_weight, qkv_bias, num_heads)
    scores = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(~ar.causal_mask(x.shape[1]), 0.0)
    return _concat(scores.softmax(-1) @ v, proj_weight, proj_bias)


def att_no_biases(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    return ar.causal_self_attention(x, qkv_weight, None, proj_weight, None, num_heads)


def att_naive_softmax(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    q, k, v = _parts(x, qkv_weight, qkv_bias, num_heads)
    e = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).exp() * ar.causal_mask(x.shape[1])
    return _concat(e / e.sum(-1, keepdim=True) @ v, proj_weight, proj_bias)


def att_ok_sdpa(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    q, k, v = _parts(x, qkv_weight, qkv_bias, num_heads)
    return _concat(F.scaled_dot_product_attention(q, k, v, is_causal=True), proj_weight, proj_bias)


def att_ok_float64(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    args = [t.double() for t in (x, qkv_weight, qkv_bias, proj_weight, proj_bias)]
    return ar.causal_self_attention(*args, num_heads)


def att_ok_big_negative(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    q, k, v = _parts(x, qkv_weight, qkv_bias, num_heads)
    scores = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(~ar.causal_mask(x.shape[1]), -1e9)
    return _concat(scores.softmax(-1) @ v, proj_weight, proj_bias)


def att_max_over_future_too(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    # Subtracts the largest score of the row, future included: when a future score dwarfs the past
    # ones, every allowed exp underflows to 0 and the weights are 0 / 0.
    q, k, v = _parts(x, qkv_weight, qkv_bias, num_heads)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    weights = (scores - scores.amax(-1, keepdim=True)).exp() * ar.causal_mask(x.shape[1])
    return _concat(weights / weights.sum(-1, keepdim=True) @ v, proj_weight, proj_bias)


def att_renormalized_after_softmax(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    # Right on paper; but when future scores dwarf the past ones, the past weights underflow to 0 and 0 / 0 = nan.
    q, k, v = _parts(x, qkv_weight, qkv_bias, num_heads)
    weights = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(-1) * ar.causal_mask(x.shape[1])
    return _concat(weights / weights.sum(-1, keepdim=True) @ v, proj_weight, proj_bias)


def att_ok_written_out_softmax(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    q, k, v = _parts(x, qkv_weight, qkv_bias, num_heads)
    scores = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(~ar.causal_mask(x.shape[1]), -math.inf)
    weights = (scores - scores.amax(-1, keepdim=True)).exp()
    return _concat(weights / weights.sum(-1, keepdim=True) @ v, proj_weight, proj_bias)


def att_ok_loop_over_heads(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    B, T, D = x.shape
    d = D // num_heads
    q, k, v = F.linear(x, qkv_weight, qkv_bias).split(D, -1)
    outputs = []
    for h in range(num_heads):
        part = slice(h * d, (h + 1) * d)
        outputs.append(attention(q[..., part], k[..., part], v[..., part], ar.causal_mask(T))[0])
    return F.linear(torch.cat(outputs, -1), proj_weight, proj_bias)


def att_ok_module(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    layer = ar.CausalSelfAttention(x.shape[-1], num_heads)
    layer.load_state_dict({"qkv.weight": qkv_weight, "qkv.bias": qkv_bias, "proj.weight": proj_weight,
                           "proj.bias": proj_bias})
    with torch.no_grad():
        return layer(x)


# ===================================================================== sample_pixels


def _loop(model, n, height, width, draw, order="rows", canvas=None):
    x = torch.zeros(n, 1, height, width) if canvas is None else canvas
    cells = [(i, j) for i in range(height) for j in range(width)]
    if order == "columns":
        cells = [(i, j) for j in range(width) for i in range(height)]
    if order == "bottom up":
        cells = [(i, j) for i in reversed(range(height)) for j in range(width)]
    with torch.no_grad():
        for i, j in cells:
            x[:, 0, i, j] = draw(model(x)[:, 0, i, j])
    return x


def pix_column_major(model, n, height, width, generator):
    return _loop(model, n, height, width, lambda lg: torch.bernoulli(torch.sigmoid(lg), generator=generator),
                 "columns")


def pix_bottom_up(model, n, height, width, generator):
    return _loop(model, n, height, width, lambda lg: torch.bernoulli(torch.sigmoid(lg), generator=generator),
                 "bottom up")


def pix_one_pass(model, n, height, width, generator):
    with torch.no_grad():
        return torch.bernoulli(torch.sigmoid(model(torch.zeros(n, 1, height, width))), generator=generator)


def pix_row_at_once(model, n, height, width, generator):
    x = torch.zeros(n, 1, height, width)
    with torch.no_grad():
        for i in range(height):
            x[:, 0, i] = torch.bernoulli(torch.sigmoid(model(x)[:, 0, i]), generator=generator)
    return x


def pix_no_generator(model, n, height, width, generator):
    return _loop(model, n, height, width, lambda lg: (torch.rand(n) < torch.sigmoid(lg)).float())


def pix_threshold(model, n, height, width, generator):
    return _loop(model, n, height, width, lambda lg: (torch.sigmoid(lg) > 0.5).float())


def pix_round(model, n, height, width, generator):
    return _loop(model, n, height, width, lambda lg: torch.sigmoid(lg).round())


def pix_same_for_all(model, n, height, width, generator):
    return _loop(model, n, height, width,
                 lambda lg: torch.bernoulli(torch.sigmoid(lg[:1]), generator=generator).expand(n))


def pix_probability(model, n, height, width, generator):
    return _loop(model, n, height, width, torch.sigmoid)


def pix_per_image(model, n, height, width, generator):
    x = torch.zeros(n, 1, height, width)
    with torch.no_grad():
        for b in range(n):
            for i in range(height):
                for j in range(width):
                    x[b, 0, i, j] = torch.bernoulli(torch.sigmoid(model(x)[b, 0, i, j]), generator=generator)
    return x


def pix_reversed(model, n, height, width, generator):
    return _loop(model, n, height, width, lambda lg: (torch.rand(n, generator=generator) > torch.sigmoid(lg)).float())


def pix_height_width_swapped(model, n, height, width, generator):
    x = torch.zeros(n, 1, width, height)
    with torch.no_grad():
        for i in range(width):
            for j in range(height):
                x[:, 0, i, j] = torch.bernoulli(torch.sigmoid(model(x)[:, 0, i, j]), generator=generator)
    return x


def pix_logits_as_probabilities(model, n, height, width, generator):
    return _loop(model, n, height, width, lambda lg: torch.bernoulli(lg.clamp(0, 1), generator=generator))


def pix_long_images(model, n, height, width, generator):
    return ar.sample_pixels(model, n, height, width, generator).long()


def pix_halved_logits(model, n, height, width, generator):
    return _loop(model, n, height, width, lambda lg: torch.bernoulli(torch.sigmoid(lg / 2), generator=generator))


def pix_ok_rand(model, n, height, width, generator):
    return _loop(model, n, height, width, lambda lg: (torch.rand(n, generator=generator) < torch.sigmoid(lg)).float())


def pix_ok_float64(model, n, height, width, generator):
    canvas = torch.zeros(n, 1, height, width, dtype=torch.float64)
    return _loop(lambda x: model(x.float()).double(), n, height, width,
                 lambda lg: torch.bernoulli(torch.sigmoid(lg), generator=generator), canvas=canvas)


def pix_ok_half_canvas(model, n, height, width, generator):  # later pixels are never read by a causal model
    return _loop(model, n, height, width, lambda lg: torch.bernoulli(torch.sigmoid(lg), generator=generator),
                 canvas=torch.full((n, 1, height, width), 0.5))


def pix_ok_device(model, n, height, width, generator):
    device = next(model.parameters()).device
    x = torch.zeros(n, 1, height, width, device=device)
    model.eval()
    for i in range(height):
        for j in range(width):
            with torch.no_grad():
                probs = torch.sigmoid(model(x))[:, 0, i, j]
            x[:, 0, i, j] = torch.bernoulli(probs, generator=generator)
    return x


# ========================================================================== the lists

WRONG = [
    ("causal_mask", mask_float_tril, "a bool tensor"),
    ("causal_mask", mask_int_ones, "a bool tensor"),
    ("causal_mask", mask_strict, "may attend to itself"),
    ("causal_mask", mask_upper, "not above"),
    ("causal_mask", mask_nothing_hidden, "the mask is wrong"),
    ("causal_mask", mask_future_true, "the mask is wrong"),
    ("causal_mask", mask_fixed_size, "shape"),
    ("causal_mask", mask_numpy, "should be a torch tensor"),
    ("causal_mask", mask_mirrored, "mirrored"),
    ("pixelcnn_mask", pixel_bool, "a float tensor"),
    ("pixelcnn_mask", pixel_int, "a float tensor"),
    ("pixelcnn_mask", pixel_swapped, "swapped"),
    ("pixelcnn_mask", pixel_rows_above_only, "left of the centre"),
    ("pixelcnn_mask", pixel_right_shown, "right of the centre"),
    ("pixelcnn_mask", pixel_columns, "the mask is wrong"),
    ("pixelcnn_mask", pixel_rows_below_shown, "rows below the centre"),
    ("pixelcnn_mask", pixel_centre_always_hidden, "the mask is wrong"),
    ("pixelcnn_mask", pixel_whole_centre_row_hidden, "the mask is wrong"),
    ("pixelcnn_mask", pixel_fixed_three, "shape"),
    ("pixelcnn_mask", pixel_lower_triangle, "the mask is wrong"),
    ("vertical_stack_mask", vertical_bool, "a float tensor"),
    ("vertical_stack_mask", vertical_centre_row_always, "must be hidden"),
    ("vertical_stack_mask", vertical_centre_row_never, "show the centre row"),
    ("vertical_stack_mask", vertical_swapped, "swapped"),
    ("vertical_stack_mask", vertical_pixelcnn_like, "this is the PixelCNN mask"),
    ("vertical_stack_mask", vertical_columns, "rows, not columns"),
    ("vertical_stack_mask", vertical_everything, "the mask is wrong"),
    ("causal_conv1d", conv_same_padding, "padding on both sides"),
    ("causal_conv1d", conv_pad_right, "each output reads the steps after it"),
    ("causal_conv1d", conv_crop_last, "each output reads the steps after it"),
    ("causal_conv1d", conv_pad_without_dilation, "reaches (k - 1) * dilation steps back"),
    ("causal_conv1d", conv_no_bias, "the bias is missing"),
    ("causal_conv1d", conv_pad_k, "should have shape"),
    ("causal_conv1d", conv_ignores_dilation, "is wrong"),
    ("causal_conv1d", conv_flipped_kernel, "is wrong"),
    ("causal_conv1d", conv_pads_in_place, "changed its input `x` in place"),
    ("causal_conv1d", conv_float32_cast, "is wrong"),
    ("mu_law_encode", mu_floor, "do not floor"),
    ("mu_law_encode", mu_plus_one, "not mu + 1"),
    ("mu_law_encode", mu_buckets, "not equal buckets"),
    ("mu_law_encode", mu_int32, "int64"),
    ("mu_law_encode", mu_float, "int64"),
    ("mu_law_encode", mu_no_clamp, "clip x to [-1, 1] first"),
    ("mu_law_encode", mu_clamp_in_place, "changed its input `x` in place"),
    ("mu_law_encode", mu_hardcoded_255, "mu = 15"),
    ("mu_law_encode", mu_no_sign, "the sign was lost"),
    ("mu_law_encode", mu_uniform, "compand before quantizing"),
    ("mu_law_encode", mu_log_of_mu, "the tensor of levels is wrong"),
    ("mu_law_encode", mu_other_default, "mu left at its default"),
    ("logistic_bin_probability", bin_no_tails, "the edge bins take the tails"),
    ("logistic_bin_probability", bin_log_scale_as_scale, "s = exp(log_scale)"),
    ("logistic_bin_probability", bin_abs_scale, "s = exp(log_scale)"),
    ("logistic_bin_probability", bin_half_over_num_bins, "2 / (num_bins - 1) wide"),
    ("logistic_bin_probability", bin_whole_bin, "half a bin each way"),
    ("logistic_bin_probability", bin_naive_sigmoid, "use torch.sigmoid"),
    ("logistic_bin_probability", bin_first_tail_only, "the tensor of probabilities is wrong"),
    ("logistic_bin_probability", bin_times_scale, "the tensor of probabilities is wrong"),
    ("logistic_bin_probability", bin_edges_swapped, "the tensor of probabilities is wrong"),
    ("logistic_bin_probability", bin_in_place, "changed its input `x` in place"),
    ("multiscale_evaluations", evals_four, "not 4"),
    ("multiscale_evaluations", evals_base_once, "base * base evaluations"),
    ("multiscale_evaluations", evals_base_linear, "base * base evaluations"),
    ("multiscale_evaluations", evals_from_one, "log2(size / base)"),
    ("multiscale_evaluations", evals_bit_length, "0 when size == base"),
    ("multiscale_evaluations", evals_ignores_base, "is wrong"),
    ("multiscale_evaluations", evals_natural_log, "is wrong"),
    ("multiscale_evaluations", evals_two_to_base, "is wrong"),
    ("generate", gen_argmax, "argmax"),
    ("generate", gen_ignores_generator, "pass generator=generator"),
    ("generate", gen_categorical, "pass generator=generator"),
    ("generate", gen_own_generator, "draw from the generator you are given"),
    ("generate", gen_whole_history, "was given the whole history"),
    ("generate", gen_window_plus_one, "should be min("),
    ("generate", gen_window_drops_last, "should be min("),
    ("generate", gen_window_from_prompt, "should be min("),
    ("generate", gen_window_reversed, "not the last"),
    ("generate", gen_same_draw, "draw each row independently"),
    ("generate", gen_new_only, "not the new steps alone"),
    ("generate", gen_sigmoid, "draw from p = softmax(logits)"),
    ("generate", gen_temperature_two, "draw from p = softmax(logits)"),
    ("generate", gen_naive_softmax, "raised RuntimeError"),
    ("generate", gen_float_buffer, "int64"),
    ("generate", gen_prompt_last, "start with the prompt"),
    ("generate", gen_two_calls, "once per new step"),
    ("causal_self_attention", att_view_no_transpose, "a plain view(B, heads, T, d)"),
    ("causal_self_attention", att_no_mask, "the causal mask is missing"),
    ("causal_self_attention", att_mask_transposed, "the mask is transposed"),
    ("causal_self_attention", att_sqrt_D, "not sqrt(D)"),
    ("causal_self_attention", att_k_q_v, "queries and keys are swapped"),
    ("causal_self_attention", att_v_k_q, "the output is wrong"),
    ("causal_self_attention", att_per_head_layout, "not [q, k, v] side by side within each head"),
    ("causal_self_attention", att_heads_interleaved, "interleaves them"),
    ("causal_self_attention", att_heads_reshaped_without_transpose, "the output is wrong"),
    ("causal_self_attention", att_no_projection, "the output projection is missing"),
    ("causal_self_attention", att_softmax_wrong_dim, "the output is wrong"),
    ("causal_self_attention", att_mask_after_softmax, "the output is wrong"),
    ("causal_self_attention", att_mask_with_zero, "the output is wrong"),
    ("causal_self_attention", att_no_biases, "the output is wrong"),
    ("causal_self_attention", att_naive_softmax, "non-finite"),
    ("causal_self_attention", att_max_over_future_too, "non-finite"),
    ("causal_self_attention", att_renormalized_after_softmax, "non-finite"),
    ("sample_pixels", pix_column_major, "the images differ"),
    ("sample_pixels", pix_bottom_up, "the images differ"),
    ("sample_pixels", pix_one_pass, "one call per pixel"),
    ("sample_pixels", pix_row_at_once, "one call per pixel"),
    ("sample_pixels", pix_no_generator, "pass generator=generator"),
    ("sample_pixels", pix_threshold, "about half should be 1"),
    ("sample_pixels", pix_round, "about half should be 1"),
    ("sample_pixels", pix_same_for_all, "draw each image independently"),
    ("sample_pixels", pix_probability, "do not store its probability"),
    ("sample_pixels", pix_per_image, "sampling all n images at once"),
    ("sample_pixels", pix_reversed, "the images differ"),
    ("sample_pixels", pix_height_width_swapped, "the model takes a float canvas of shape"),
    ("sample_pixels", pix_logits_as_probabilities, "about half should be 1"),
    ("sample_pixels", pix_long_images, "float tensor"),
    ("sample_pixels", pix_halved_logits, "the fraction of ones"),
]

CORRECT = [
    ("causal_mask", mask_ok_compare),
    ("causal_mask", mask_ok_not_triu),
    ("causal_mask", mask_ok_loop),
    ("causal_mask", mask_ok_numpy),
    ("causal_mask", mask_ok_float_then_bool),
    ("pixelcnn_mask", pixel_ok_raster_loop),
    ("pixelcnn_mask", pixel_ok_float64),
    ("pixelcnn_mask", pixel_ok_numpy),
    ("pixelcnn_mask", pixel_ok_bool_then_float),
    ("vertical_stack_mask", vertical_ok_loop),
    ("vertical_stack_mask", vertical_ok_arange),
    ("causal_conv1d", conv_ok_padding_then_crop),
    ("causal_conv1d", conv_ok_loop),
    ("causal_conv1d", conv_ok_unfold),
    ("mu_law_encode", mu_ok_float64),
    ("mu_law_encode", mu_ok_half_up),
    ("mu_law_encode", mu_ok_clamp_levels),
    ("mu_law_encode", mu_ok_log),
    ("mu_law_encode", mu_ok_numpy),
    ("logistic_bin_probability", bin_ok_float64),
    ("logistic_bin_probability", bin_ok_compare_with_ends),
    ("logistic_bin_probability", bin_ok_log_space),
    ("logistic_bin_probability", bin_ok_numpy),
    ("multiscale_evaluations", evals_ok_float),
    ("multiscale_evaluations", evals_ok_loop),
    ("multiscale_evaluations", evals_ok_numpy),
    ("multiscale_evaluations", evals_ok_tensor),
    ("generate", gen_ok_preallocated),
    ("generate", gen_ok_inverse_cdf),
    ("generate", gen_ok_gumbel),
    ("generate", gen_ok_rows_one_by_one),
    ("generate", gen_ok_list),
    ("causal_self_attention", att_ok_sdpa),
    ("causal_self_attention", att_ok_float64),
    ("causal_self_attention", att_ok_big_negative),
    ("causal_self_attention", att_ok_written_out_softmax),
    ("causal_self_attention", att_ok_loop_over_heads),
    ("causal_self_attention", att_ok_module),
    ("sample_pixels", pix_ok_rand),
    ("sample_pixels", pix_ok_float64),
    ("sample_pixels", pix_ok_half_canvas),
    ("sample_pixels", pix_ok_device),
]


@pytest.mark.parametrize(("name", "wrong", "phrase"), WRONG, ids=[f"{n}-{w.__name__}" for n, w, _ in WRONG])
def test_wrong_solution_is_rejected(name, wrong, phrase):
    with pytest.raises(ExerciseFailed) as info:
        check.exercise(f"autoregressive.{name}", wrong)
    assert phrase in str(info.value), str(info.value)


@pytest.mark.parametrize(("name", "right"), CORRECT, ids=[f"{n}-{r.__name__}" for n, r in CORRECT])
def test_correct_variant_is_accepted(name, right, capsys):
    check.exercise(f"autoregressive.{name}", right)
    assert capsys.readouterr().out.startswith(f"✓ autoregressive.{name}: ")


def test_every_exercise_has_at_least_five_attacks_and_two_correct_variants():
    names = {name for name, _, _ in WRONG}
    assert len(names) == 10
    for name in names:
        assert sum(n == name for n, _, _ in WRONG) >= 5, name
        assert sum(n == name for n, _ in CORRECT) >= 2, name


def test_a_loop_that_swallows_exceptions_does_not_hang_the_check():
    with pytest.raises(ExerciseFailed) as info:
        check.exercise("autoregressive.generate", gen_retries_forever, timeout=0.5)
    assert "did not return within" in str(info.value)


def test_wrong_answers_get_no_hint_of_a_mistake_they_did_not_make():
    # Off in the number of doublings only where base > 1: the hint of a mistake matched on some cases is not given.
    def half_right(size, base=1):
        return ar.multiscale_evaluations(size, base) + (3 if base > 1 else 0)

    with pytest.raises(ExerciseFailed) as info:
        check.exercise("autoregressive.multiscale_evaluations", half_right)
    assert "Hint" not in str(info.value)


def test_mu_law_cases_are_far_from_rounding_ties():
    # The float32 answer of every formula that is right must agree with the float64 reference.
    for wrong in (mu_ok_log, mu_ok_half_up, mu_ok_numpy):
        check.exercise("autoregressive.mu_law_encode", wrong)


# ========================================================= the references added for chapter 4


def test_generate_is_wavenets_sampling_loop():
    model = ar.WaveNet(levels=16, channels=4, skip_channels=8, num_layers=3)
    prompt = torch.randint(0, 16, (2, 5), generator=torch.Generator().manual_seed(0))
    ours = ar.generate(lambda x: model(x)[:, :, -1], prompt, 20, model.receptive_field,
                       torch.Generator().manual_seed(1))
    theirs = model.generate(prompt, 20, generator=torch.Generator().manual_seed(1))
    assert torch.equal(ours, theirs)
    assert torch.equal(ours[:, :5], prompt)


def test_generate_feeds_the_window_and_refuses_bad_input():
    lengths = []

    def record(x):
        lengths.append(x.shape[1])
        return torch.zeros(x.shape[0], 3)

    ar.generate(record, torch.zeros(1, 2, dtype=torch.int64), 6, 4)
    assert lengths == [2, 3, 4, 4, 4, 4]
    with pytest.raises(ValueError, match=r"\(B, T0\)"):
        ar.generate(record, torch.zeros(3, dtype=torch.int64), 2, 4)
    with pytest.raises(ValueError, match=r"\(B, T0\)"):
        ar.generate(record, torch.zeros(1, 2), 2, 4)
    with pytest.raises(ValueError, match=r"\(B, V\)"):
        ar.generate(lambda x: torch.zeros(3), torch.zeros(1, 2, dtype=torch.int64), 2, 4)


def test_causal_self_attention_equals_the_module_and_refuses_bad_shapes():
    layer = ar.CausalSelfAttention(12, 3)
    x = torch.randn(2, 5, 12)
    got = ar.causal_self_attention(x, layer.qkv.weight, layer.qkv.bias, layer.proj.weight, layer.proj.bias, 3)
    torch.testing.assert_close(got, layer(x))
    with pytest.raises(ValueError, match=r"\(B, T, D\)"):
        ar.causal_self_attention(x[0], layer.qkv.weight, layer.qkv.bias, layer.proj.weight, layer.proj.bias, 3)
    with pytest.raises(ValueError, match="divisible"):
        ar.causal_self_attention(x, layer.qkv.weight, layer.qkv.bias, layer.proj.weight, layer.proj.bias, 5)
    with pytest.raises(ValueError, match=r"\(3D, D\)"):
        ar.causal_self_attention(x, layer.proj.weight, layer.qkv.bias, layer.proj.weight, layer.proj.bias, 3)


def test_causal_self_attention_is_causal():
    layer = ar.CausalSelfAttention(8, 2)
    x = torch.randn(1, 6, 8)
    y = ar.causal_self_attention(x, layer.qkv.weight, layer.qkv.bias, layer.proj.weight, layer.proj.bias, 2)
    x2 = x.clone()
    x2[0, 4:] += 1.0
    y2 = ar.causal_self_attention(x2, layer.qkv.weight, layer.qkv.bias, layer.proj.weight, layer.proj.bias, 2)
    torch.testing.assert_close(y[0, :4], y2[0, :4])
    assert not torch.allclose(y[0, 4:], y2[0, 4:])


def test_checks_leave_the_global_random_state_alone():
    state = torch.get_rng_state()
    for name in ("causal_self_attention", "generate", "sample_pixels", "mu_law_encode", "logistic_bin_probability"):
        check.exercise(f"autoregressive.{name}", check.registry("autoregressive")[f"autoregressive.{name}"].solution)
    assert torch.equal(state, torch.get_rng_state())


def test_generate_with_top_k_filtering_is_rejected():
    def top_k(next_logits, prompt, n, receptive_field, generator):
        x = prompt
        for _ in range(n):
            logits = next_logits(x[:, -receptive_field:])
            values, index = logits.topk(min(4, logits.shape[-1]), -1)
            chosen = torch.multinomial(torch.softmax(values, -1), 1, generator=generator)
            x = torch.cat([x, index.gather(1, chosen)], 1)
        return x

    with pytest.raises(ExerciseFailed, match="far from p"):
        check.exercise("autoregressive.generate", top_k)
