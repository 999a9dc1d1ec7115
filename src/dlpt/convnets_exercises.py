"""Hidden tests of chapter 2's exercises, with the plausible mistakes each must catch."""

from __future__ import annotations

import torch

from dlpt import convnets
from dlpt.check import Exercise, call, compare, register

# ------------------------------------------------------------------------- conv2d


def _conv_no_bias(x, weight, bias=None, stride=1, padding=0):
    return convnets.conv2d(x, weight, None, stride, padding)


def _conv_flipped(x, weight, bias=None, stride=1, padding=0):
    return convnets.conv2d(x, weight.flip(-1, -2), bias, stride, padding)


def _conv_kernel_transposed(x, weight, bias=None, stride=1, padding=0):
    return convnets.conv2d(x, weight.transpose(-1, -2).contiguous(), bias, stride, padding)


def _conv_height_width_swapped(x, weight, bias=None, stride=1, padding=0):
    out = convnets.conv2d(x, weight, bias, stride, padding)
    return out.reshape(out.shape[0], out.shape[1], out.shape[3], out.shape[2])


def _conv_ignores_stride(x, weight, bias=None, stride=1, padding=0):
    return convnets.conv2d(x, weight, bias, 1, padding)


_CONV_MISTAKES = [
    (_conv_no_bias, "the bias is missing: add bias[c] to every position of output channel c"),
    (_conv_flipped, "the kernel is flipped (a textbook convolution); deep learning's conv2d slides "
     "the kernel unflipped (cross-correlation), as F.unfold's patches line up with weight"),
    (_conv_kernel_transposed, "the kernel's rows and columns are swapped; flatten weight as "
     "weight.reshape(C_out, -1), in the same order F.unfold flattens a patch"),
    (_conv_height_width_swapped, "height and width of the output are swapped: the L columns of "
     "F.unfold run row by row, so reshape to (B, C_out, H_out, W_out)"),
    (_conv_ignores_stride, "the stride is ignored: pass stride to F.unfold"),
]


def _check_conv2d(fn) -> int:
    g = torch.Generator().manual_seed(0)
    cases = [
        ("x (1, 1, 4, 4), weight (1, 1, 3, 3), bias (1,)", (1, 1, 4, 4), (1, 1, 3, 3), 1, 0),
        ("x (2, 3, 5, 7), weight (4, 3, 3, 2), bias (4,)", (2, 3, 5, 7), (4, 3, 3, 2), 1, 0),
        ("x (2, 2, 6, 9), weight (3, 2, 3, 3), bias (3,), stride 2, padding 1", (2, 2, 6, 9), (3, 2, 3, 3), 2, 1),
    ]
    for inputs, x_shape, w_shape, stride, padding in cases:
        x, w = torch.randn(x_shape, generator=g), torch.randn(w_shape, generator=g)
        b = torch.randn(w_shape[0], generator=g)
        got = call(fn, x.clone(), w.clone(), b.clone(), stride, padding, inputs=inputs)
        expected = convnets.conv2d(x, w, b, stride, padding)
        mistakes = [(wrong(x, w, b, stride, padding), hint) for wrong, hint in _CONV_MISTAKES]
        compare(got, expected, inputs=inputs, what="the output", atol=1e-4, mistakes=mistakes)
    return len(cases)


register(Exercise("convnets.conv2d", _check_conv2d, convnets.conv2d, _CONV_MISTAKES))

# -------------------------------------------------------------------- output_size


def _size_no_plus_one(n, kernel_size, stride=1, padding=0, dilation=1):
    return convnets.output_size(n, kernel_size, stride, padding, dilation) - 1


def _size_padding_once(n, kernel_size, stride=1, padding=0, dilation=1):
    return (n + padding - dilation * (kernel_size - 1) - 1) // stride + 1


def _size_ignores_dilation(n, kernel_size, stride=1, padding=0, dilation=1):
    return convnets.output_size(n, kernel_size, stride, padding, 1)


def _size_rounds_up(n, kernel_size, stride=1, padding=0, dilation=1):
    return -(-(n + 2 * padding - dilation * (kernel_size - 1) - 1) // stride) + 1


_SIZE_MISTAKES = [
    (_size_no_plus_one, "one too few: count the first position too (the formula ends in + 1)"),
    (_size_padding_once, "padding is added on both sides: 2 * padding"),
    (_size_ignores_dilation, "a dilated kernel spans dilation * (kernel_size - 1) + 1 inputs"),
    (_size_rounds_up, "a window that does not fit entirely is dropped: round down"),
]


def _check_output_size(fn) -> int:
    # Ordered so that the first case each mistake fails tells it apart from the others.
    cases = [(8, 3, 1, 0, 1), (10, 3, 1, 3, 1), (16, 3, 1, 0, 2), (10, 3, 2, 0, 1), (32, 5, 2, 2, 1),
             (28, 4, 3, 1, 1), (40, 5, 2, 1, 1)]
    for n, k, s, p, d in cases:
        inputs = f"n={n}, kernel_size={k}, stride={s}, padding={p}, dilation={d}"
        got = call(fn, n, k, s, p, d, inputs=inputs)
        mistakes = [(wrong(n, k, s, p, d), hint) for wrong, hint in _SIZE_MISTAKES]
        compare(got, convnets.output_size(n, k, s, p, d), inputs=inputs, what="the size", mistakes=mistakes)
    return len(cases)


register(Exercise("convnets.output_size", _check_output_size, convnets.output_size, _SIZE_MISTAKES))

# -------------------------------------------------------------------- conv_params


def _params_no_bias(c_in, c_out, kernel_size):
    return c_out * c_in * kernel_size**2


def _params_no_input_channels(c_in, c_out, kernel_size):
    return c_out * kernel_size**2 + c_out


def _params_bias_per_input(c_in, c_out, kernel_size):
    return c_out * c_in * kernel_size**2 + c_in


_PARAMS_MISTAKES = [
    (_params_no_bias, "each output channel also has one bias"),
    (_params_no_input_channels, "each kernel covers all C_in input channels: C_in * k * k weights"),
    (_params_bias_per_input, "there is one bias per output channel, not per input channel"),
]


def _check_conv_params(fn) -> int:
    cases = [(1, 1, 3), (3, 16, 3), (16, 32, 5), (64, 8, 1)]
    for c_in, c_out, k in cases:
        inputs = f"c_in={c_in}, c_out={c_out}, kernel_size={k}"
        got = call(fn, c_in, c_out, k, inputs=inputs)
        mistakes = [(wrong(c_in, c_out, k), hint) for wrong, hint in _PARAMS_MISTAKES]
        compare(got, convnets.conv_params(c_in, c_out, k), inputs=inputs, what="the count", mistakes=mistakes)
    return len(cases)


register(Exercise("convnets.conv_params", _check_conv_params, convnets.conv_params, _PARAMS_MISTAKES))
