"""Chapter 2's checkers attacked with plausible wrong answers, and fed correct variants.

Every wrong answer here is one a learner could write; each must be rejected (with the
phrase given, where the message should name the mistake). Every correct variant (loops,
float64, NumPy, PyTorch's own function) must pass. The last part tests the reference
functions that chapter 2's new exercises ask for.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlpt import check, convnets
from dlpt import convnets_exercises as ex
from dlpt.check import ExerciseFailed
from dlpt.convnets_exercises import LayersOnlyBlock


def rejected(name: str, fn, phrase: str = "") -> str:
    with pytest.raises(ExerciseFailed) as info:
        check.exercise(name, fn)
    message = str(info.value)
    assert phrase in message, message
    return message


def accepted(name: str, fn, capsys) -> None:
    check.exercise(name, fn)
    assert capsys.readouterr().out.startswith(f"✓ {name}: ")


# --------------------------------------------------------------------- output_size

SIZE_WRONG = {
    "the +1 folded into the numerator": (lambda n, k, s=1, p=0, d=1: (n + 2 * p - d * (k - 1)) // s,
                                         "the + 1 comes after the division"),
    "true division": (lambda n, k, s=1, p=0, d=1: (n + 2 * p - d * (k - 1) - 1) / s + 1, "expected"),
    "no + 1": (lambda n, k, s=1, p=0, d=1: (n + 2 * p - d * (k - 1) - 1) // s, "the formula ends in + 1"),
    "padding once": (lambda n, k, s=1, p=0, d=1: (n + p - d * (k - 1) - 1) // s + 1, "2 * padding"),
    "dilation ignored": (lambda n, k, s=1, p=0, d=1: (n + 2 * p - k) // s + 1, "dilation * (kernel_size - 1)"),
    "rounded up": (lambda n, k, s=1, p=0, d=1: math.ceil((n + 2 * p - d * (k - 1) - 1) / s) + 1, "round down"),
    "rounded to nearest": (lambda n, k, s=1, p=0, d=1: round((n + 2 * p - d * (k - 1) - 1) / s) + 1, ""),
    "dilation times k": (lambda n, k, s=1, p=0, d=1: (n + 2 * p - d * k) // s + 1, ""),
    "a float, not an int": (lambda n, k, s=1, p=0, d=1: math.floor((n + 2 * p - d * (k - 1) - 1) / s) + 1.0,
                            "should be an int"),
    "+ 1 inside the floor": (lambda n, k, s=1, p=0, d=1: (n + 2 * p - d * (k - 1) - 1 + 1) // s + 1, ""),
}


@pytest.mark.parametrize("wrong", SIZE_WRONG, ids=list(SIZE_WRONG))
def test_output_size_rejects(wrong):
    fn, phrase = SIZE_WRONG[wrong]
    rejected("convnets.output_size", fn, phrase)


def _size_by_conv(n, kernel_size, stride=1, padding=0, dilation=1):
    conv = nn.Conv1d(1, 1, kernel_size, stride, padding, dilation)
    return conv(torch.zeros(1, 1, n)).shape[-1]


SIZE_RIGHT = {
    "int of a true division": lambda n, k, s=1, p=0, d=1: int((n + 2 * p - d * (k - 1) - 1) / s) + 1,
    "math.floor": lambda n, k, s=1, p=0, d=1: math.floor((n + 2 * p - d * (k - 1) - 1) / s) + 1,
    "numpy": lambda n, k, s=1, p=0, d=1: np.floor_divide(n + 2 * p - d * (k - 1) - 1, s) + 1,
    "an integer tensor": lambda n, k, s=1, p=0, d=1: torch.tensor(n + 2 * p - d * (k - 1) - 1) // s + 1,
    "PyTorch's Conv1d": _size_by_conv,
}


@pytest.mark.parametrize("right", SIZE_RIGHT, ids=list(SIZE_RIGHT))
def test_output_size_accepts(right, capsys):
    accepted("convnets.output_size", SIZE_RIGHT[right], capsys)


# --------------------------------------------------------------------- conv_params

PARAMS_WRONG = {
    "no bias": (lambda i, o, k: o * i * k * k, "one bias"),
    "no input channels": (lambda i, o, k: o * k * k + o, "all C_in input channels"),
    "bias per input channel": (lambda i, o, k: o * i * k * k + i, "not per input channel"),
    "kernel not squared": (lambda i, o, k: o * i * k + o, "k * k weights"),
    "k * 2 for k ** 2": (lambda i, o, k: o * i * k * 2 + o, ""),
    "a bias per weight": (lambda i, o, k: (i + 1) * o * k * k, ""),
    "in and out swapped": (lambda o, i, k: o * i * k * k + o, "not per input channel"),
    "a float": (lambda i, o, k: o * (i * k**2 + 1.0), "should be an int"),
    "PyTorch's layer without bias": (lambda i, o, k: sum(p.numel() for p in nn.Conv2d(i, o, k, bias=False)
                                                         .parameters()), "one bias"),
}


@pytest.mark.parametrize("wrong", PARAMS_WRONG, ids=list(PARAMS_WRONG))
def test_conv_params_rejects(wrong):
    fn, phrase = PARAMS_WRONG[wrong]
    rejected("convnets.conv_params", fn, phrase)


PARAMS_RIGHT = {
    "factored": lambda in_channels, out_channels, kernel_size: (in_channels * kernel_size**2 + 1) * out_channels,
    "PyTorch's layer": lambda i, o, k: sum(p.numel() for p in nn.Conv2d(i, o, k).parameters()),
    "numpy": lambda i, o, k: np.prod([o, i, k, k]) + o,
}


@pytest.mark.parametrize("right", PARAMS_RIGHT, ids=list(PARAMS_RIGHT))
def test_conv_params_accepts(right, capsys):
    accepted("convnets.conv_params", PARAMS_RIGHT[right], capsys)


# -------------------------------------------------------------------------- conv2d


def _unfold_conv(x, weight, bias, stride, padding, *, flip=False, transpose=False, swap=False, ceil=False,
                 no_pad=False, no_stride=False, positions_first=False, h_from_kernel_h=False):
    """A configurable im2col convolution, to write the learners' mistakes one flag at a time."""
    b, _, h, w = x.shape
    c_out, c_in, kh, kw = weight.shape
    if flip:
        weight = weight.flip(-1, -2)
    s, p = (1 if no_stride else stride), (0 if no_pad else padding)

    def size(n, k):
        return -(-(n + 2 * p - k) // s) + 1 if ceil else (n + 2 * p - k) // s + 1

    h_out, w_out = size(h, kh), size(w, kh if h_from_kernel_h else kw)
    columns = F.unfold(x, (kh, kw), padding=p, stride=s)
    flat = weight.transpose(-1, -2).reshape(c_out, -1) if transpose else weight.reshape(c_out, -1)
    if positions_first:
        out = columns.transpose(1, 2) @ flat.T  # (B, L, C_out)
        if bias is not None:
            out = out + bias
        return out.reshape(b, c_out, h_out, w_out)
    out = flat @ columns
    if bias is not None:
        out = out + bias[:, None]
    return out.reshape(b, c_out, w_out, h_out) if swap else out.reshape(b, c_out, h_out, w_out)


def _conv_always_bias(x, weight, bias=None, stride=1, padding=0):
    return _unfold_conv(x, weight, None, stride, padding) + bias[None, :, None, None]


def _conv_bias_unsqueezed_in_place(x, weight, bias=None, stride=1, padding=0):
    out = _unfold_conv(x, weight, None, stride, padding)
    return out if bias is None else out + bias.unsqueeze_(-1).unsqueeze_(-1)


CONV_WRONG = {
    "bias ignored": (lambda x, w, b=None, s=1, p=0: _unfold_conv(x, w, None, s, p), "the bias is missing"),
    "kernel flipped": (lambda x, w, b=None, s=1, p=0: _unfold_conv(x, w, b, s, p, flip=True), "flipped"),
    "kernel flattened transposed": (lambda x, w, b=None, s=1, p=0: _unfold_conv(x, w, b, s, p, transpose=True),
                                    "rows and columns are swapped"),
    "height and width swapped": (lambda x, w, b=None, s=1, p=0: _unfold_conv(x, w, b, s, p, swap=True),
                                 "height and width"),
    "stride ignored": (lambda x, w, b=None, s=1, p=0: _unfold_conv(x, w, b, s, p, no_stride=True), ""),
    "padding ignored": (lambda x, w, b=None, s=1, p=0: _unfold_conv(x, w, b, s, p, no_pad=True), ""),
    "output size rounded up": (lambda x, w, b=None, s=1, p=0: _unfold_conv(x, w, b, s, p, ceil=True), "raised"),
    "width from the kernel's height": (lambda x, w, b=None, s=1, p=0: _unfold_conv(x, w, b, s, p,
                                                                                    h_from_kernel_h=True), ""),
    "(B, L, C_out) reshaped directly": (lambda x, w, b=None, s=1, p=0: _unfold_conv(x, w, b, s, p,
                                                                                     positions_first=True), ""),
    "bias None not handled": (_conv_always_bias, "NoneType"),
    "bias changed in place": (_conv_bias_unsqueezed_in_place, "changed its input `bias` in place"),
    "a numpy array": (lambda x, w, b=None, s=1, p=0: convnets.conv2d(x, w, b, s, p).numpy(), "torch tensor"),
}


@pytest.mark.parametrize("wrong", CONV_WRONG, ids=list(CONV_WRONG))
def test_conv2d_rejects(wrong):
    fn, phrase = CONV_WRONG[wrong]
    rejected("convnets.conv2d", fn, phrase)


def _conv_loops(x, weight, bias=None, stride=1, padding=0):
    x = F.pad(x, (padding, padding, padding, padding))
    b, _, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    h_out, w_out = (h - kh) // stride + 1, (w - kw) // stride + 1
    out = torch.zeros(b, c_out, h_out, w_out, dtype=x.dtype)
    for i in range(h_out):
        for j in range(w_out):
            window = x[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]  # (B, C_in, kH, kW)
            out[:, :, i, j] = torch.einsum("bcuv,ocuv->bo", window, weight)
    return out if bias is None else out + bias[:, None, None]


def _conv_numpy(x, weight, bias=None, stride=1, padding=0):
    xn, wn = x.numpy(), weight.numpy()
    xn = np.pad(xn, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    kh, kw = wn.shape[-2:]
    windows = np.lib.stride_tricks.sliding_window_view(xn, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    out = np.einsum("bchwuv,ocuv->bohw", windows, wn)
    if bias is not None:
        out = out + bias.numpy()[:, None, None]
    return torch.from_numpy(np.ascontiguousarray(out))


CONV_RIGHT = {
    "the reference": convnets.conv2d,
    "PyTorch's conv2d": lambda x, w, b=None, s=1, p=0: F.conv2d(x, w, b, s, p),
    "loops over positions": _conv_loops,
    "numpy": _conv_numpy,
    "in float64": lambda x, w, b=None, s=1, p=0: convnets.conv2d(x.double(), w.double(),
                                                                 None if b is None else b.double(), s, p),
}


@pytest.mark.parametrize("right", CONV_RIGHT, ids=list(CONV_RIGHT))
def test_conv2d_accepts(right, capsys):
    accepted("convnets.conv2d", CONV_RIGHT[right], capsys)


# ---------------------------------------------------------------------- avg_pool2d


def _pool_float32_kernel(x, k):
    c = x.shape[1]
    return F.conv2d(x, torch.full((c, 1, k, k), 1.0 / k**2), stride=k, groups=c)


def _pool_channels_batch_mixed(x, k):
    b, c, h, w = x.shape
    folded = x.transpose(0, 1).reshape(b * c, 1, h, w)  # channel-major ...
    out = F.conv2d(folded, torch.full((1, 1, k, k), 1.0 / k**2, dtype=x.dtype), stride=k)
    return out.reshape(b, c, *out.shape[-2:])  # ... read back batch-major


POOL_WRONG = {
    "summed": (lambda x, k: F.avg_pool2d(x, k) * k * k, "summed, not averaged"),
    "overlapping windows": (lambda x, k: F.avg_pool2d(x, k, stride=1), "stride = kernel_size"),
    "channels summed": (lambda x, k: F.conv2d(x, torch.full((x.shape[1], x.shape[1], k, k), 1 / k**2,
                                                            dtype=x.dtype), stride=k), "channels were mixed"),
    "channels averaged": (lambda x, k: F.avg_pool2d(x, k).mean(1, keepdim=True).expand(-1, x.shape[1], -1, -1),
                          "averaged together"),
    "partial windows kept": (lambda x, k: F.avg_pool2d(x, k, ceil_mode=True), "shape"),
    "max pooling": (lambda x, k: F.max_pool2d(x, k), ""),
    "a float32 kernel on float64 input": (_pool_float32_kernel, "raised"),
    "batch and channels mixed up": (_pool_channels_batch_mixed, ""),
}


@pytest.mark.parametrize("wrong", POOL_WRONG, ids=list(POOL_WRONG))
def test_avg_pool2d_rejects(wrong):
    fn, phrase = POOL_WRONG[wrong]
    rejected("convnets.avg_pool2d", fn, phrase)


def _pool_loops(x, k):
    b, c, h, w = x.shape
    out = torch.zeros(b, c, h // k, w // k, dtype=x.dtype)
    for i in range(h // k):
        for j in range(w // k):
            out[:, :, i, j] = x[:, :, i * k:(i + 1) * k, j * k:(j + 1) * k].mean(dim=(-2, -1))
    return out


def _pool_numpy(x, k):
    b, c, h, w = x.shape
    trimmed = x.numpy()[:, :, : h // k * k, : w // k * k]
    return torch.from_numpy(trimmed.reshape(b, c, h // k, k, w // k, k).mean(axis=(3, 5)))


POOL_RIGHT = {
    "the reference": convnets.avg_pool2d,
    "PyTorch's avg_pool2d": lambda x, k: F.avg_pool2d(x, k),
    "a grouped convolution": lambda x, k: F.conv2d(x, torch.full((x.shape[1], 1, k, k), 1 / k**2, dtype=x.dtype),
                                                   stride=k, groups=x.shape[1]),
    "loops": _pool_loops,
    "numpy": _pool_numpy,
}


@pytest.mark.parametrize("right", POOL_RIGHT, ids=list(POOL_RIGHT))
def test_avg_pool2d_accepts(right, capsys):
    accepted("convnets.avg_pool2d", POOL_RIGHT[right], capsys)


# ---------------------------------------------------------- permuted_input_weights


def _perm_in_place(weight, permutation):
    weight[:] = weight[:, permutation]
    return weight


def _perm_scatter(weight, permutation):
    moved = torch.empty_like(weight)
    moved[:, permutation] = weight
    return moved


PERM_WRONG = {
    "inverse permutation": (lambda w, p: w[:, torch.argsort(p)], "inverse permutation"),
    "rows permuted": (lambda w, p: w[p], "the rows were permuted"),
    "unchanged": (lambda w, p: w.clone(), "the weights are unchanged"),
    "changed in place": (_perm_in_place, "changed its input `weight` in place"),
    "a permutation matrix the wrong way round": (lambda w, p: w @ torch.eye(len(p))[p], "inverse permutation"),
    "scattered instead of gathered": (_perm_scatter, "inverse permutation"),
    "transposed": (lambda w, p: w[:, p].T, "shape"),
    "a numpy array": (lambda w, p: w.numpy()[:, p.numpy()], "torch tensor"),
}


@pytest.mark.parametrize("wrong", PERM_WRONG, ids=list(PERM_WRONG))
def test_permuted_input_weights_rejects(wrong):
    fn, phrase = PERM_WRONG[wrong]
    rejected("convnets.permuted_input_weights", fn, phrase)


def _perm_loop(weight, permutation):
    moved = torch.empty_like(weight)
    for j, i in enumerate(permutation.tolist()):
        moved[:, j] = weight[:, i]
    return moved


PERM_RIGHT = {
    "columns indexed": lambda w, p: w[:, p],
    "rows of the transpose": lambda w, p: w.T[p].T,
    "a permutation matrix": lambda w, p: w @ torch.eye(len(p))[p].T,
    "index_select": lambda w, p: w.index_select(1, p),
    "a loop": _perm_loop,
    "numpy": lambda w, p: torch.from_numpy(w.numpy()[:, p.numpy()]),
    "float64": lambda w, p: w.double()[:, p],
}


@pytest.mark.parametrize("right", PERM_RIGHT, ids=list(PERM_RIGHT))
def test_permuted_input_weights_accepts(right, capsys):
    accepted("convnets.permuted_input_weights", PERM_RIGHT[right], capsys)


# -------------------------------------------------------------------- shuffled_mlp


def _sizes(model):
    return model.net[0].in_features, model.net[0].out_features, model.net[-1].out_features


def _shuffled_changes_original(model, permutation):
    with torch.no_grad():
        model.net[0].weight.copy_(model.net[0].weight[:, permutation])
    return copy.deepcopy(model)


def _shuffled_default_sizes(model, permutation):
    moved = convnets.MLP1d()
    moved.load_state_dict(model.state_dict())
    with torch.no_grad():
        moved.net[0].weight.copy_(model.net[0].weight[:, permutation])
    return moved


def _shuffled_rows(model, permutation):
    moved = copy.deepcopy(model)
    with torch.no_grad():
        moved.net[0].weight.copy_(model.net[0].weight[permutation])
    return moved


def _shuffled_output_layer(model, permutation):
    moved = copy.deepcopy(model)
    with torch.no_grad():
        moved.net[-1].weight.copy_(model.net[-1].weight[:, permutation])
    return moved


class _Unshuffle(nn.Module):
    def __init__(self, model, permutation):
        super().__init__()
        self.model, self.inverse = copy.deepcopy(model), torch.argsort(permutation)

    def forward(self, x):
        return self.model(x[:, self.inverse])


def _shuffled_weights_without_biases(model, permutation):
    moved = convnets.MLP1d(*_sizes(model))
    with torch.no_grad():
        moved.net[0].weight.copy_(model.net[0].weight[:, permutation])
        moved.net[2].weight.copy_(model.net[2].weight)
        moved.net[4].weight.copy_(model.net[4].weight)
    return moved


def _shuffled_shares(model, permutation):
    moved = convnets.MLP1d(*_sizes(model))
    moved.net[2], moved.net[4] = model.net[2], model.net[4]
    moved.net[0].weight = nn.Parameter(model.net[0].weight[:, permutation])
    moved.net[0].bias = model.net[0].bias
    return moved


def _shuffled_inverse(model, permutation):
    moved = copy.deepcopy(model)
    with torch.no_grad():
        moved.net[0].weight.copy_(model.net[0].weight[:, torch.argsort(permutation)])
    return moved


def _shuffled_in_place(model, permutation):
    with torch.no_grad():
        model.net[0].weight.copy_(model.net[0].weight[:, permutation])
    return model


SHUFFLED_WRONG = {
    "the original changed and returned": (_shuffled_in_place, "returned the model it was given"),
    "the original changed, a copy returned": (_shuffled_changes_original,
                                              "changed net.0.weight of the original model in place"),
    "inverse permutation": (_shuffled_inverse, "inverse permutation"),
    "a fresh model with only the first weight": (ex._shuffled_first_weight_only, "differ from the original's"),
    "the weights without their biases": (_shuffled_weights_without_biases, "net.0.bias, net.2.bias, net.4.bias"),
    "a copy, not permuted": (lambda m, p: copy.deepcopy(m), "the first weight is unchanged"),
    "layers shared with the original": (_shuffled_shares, "shares"),
    "the default MLP1d()": (_shuffled_default_sizes, "not MLP1d() with its default sizes"),
    "the first weight's rows permuted": (_shuffled_rows, "raised"),
    "the output layer permuted": (_shuffled_output_layer, "raised"),
    "a wrapper that unshuffles the input": (_Unshuffle, "should return a new dlpt.convnets.MLP1d, got a _Unshuffle"),
}


@pytest.mark.parametrize("wrong", SHUFFLED_WRONG, ids=list(SHUFFLED_WRONG))
def test_shuffled_mlp_rejects(wrong):
    fn, phrase = SHUFFLED_WRONG[wrong]
    rejected("convnets.shuffled_mlp", fn, phrase)


def _shuffled_by_state_dict(model, permutation):
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["net.0.weight"] = state["net.0.weight"][:, permutation]
    moved = convnets.MLP1d(*_sizes(model))
    moved.load_state_dict(state)
    return moved


def _shuffled_layer_by_layer(model, permutation):
    moved = convnets.MLP1d(*_sizes(model))
    with torch.no_grad():
        for new, old in zip(moved.net, model.net):
            if isinstance(old, nn.Linear):
                new.weight.copy_(old.weight)
                new.bias.copy_(old.bias)
        moved.net[0].weight.copy_(torch.from_numpy(model.net[0].weight.numpy()[:, permutation.numpy()].copy()))
    return moved


SHUFFLED_RIGHT = {
    "the reference": convnets.shuffled_mlp,
    "through a state dict": _shuffled_by_state_dict,
    "layer by layer, with numpy": _shuffled_layer_by_layer,
    "a float64 copy": lambda m, p: convnets.shuffled_mlp(copy.deepcopy(m).double(), p),
}


@pytest.mark.parametrize("right", SHUFFLED_RIGHT, ids=list(SHUFFLED_RIGHT))
def test_shuffled_mlp_accepts(right, capsys):
    accepted("convnets.shuffled_mlp", SHUFFLED_RIGHT[right], capsys)


# ----------------------------------------------------------------- receptive_field


def _field_d_times_k(kernel_sizes, dilations=None, strides=None):
    n = len(kernel_sizes)
    dilations, strides = dilations or [1] * n, strides or [1] * n
    field, jump = 1, 1
    for k, d, s in zip(kernel_sizes, dilations, strides):
        field += (d * k - 1) * jump
        jump *= s
    return field


def _field_reversed(kernel_sizes, dilations=None, strides=None):
    n = len(kernel_sizes)
    dilations, strides = dilations or [1] * n, strides or [1] * n
    return convnets.receptive_field(kernel_sizes[::-1], dilations[::-1], strides[::-1])


def _field_total_stride(kernel_sizes, dilations=None, strides=None):
    n = len(kernel_sizes)
    dilations, strides = dilations or [1] * n, strides or [1] * n
    return 1 + sum(d * (k - 1) for k, d in zip(kernel_sizes, dilations)) * math.prod(strides)


def _field_none_unhandled(kernel_sizes, dilations=None, strides=None):
    field, jump = 1, 1
    for k, d, s in zip(kernel_sizes, dilations, strides):
        field += d * (k - 1) * jump
        jump *= s
    return field


def _field_shifts_strides_in_place(kernel_sizes, dilations=None, strides=None):
    n = len(kernel_sizes)
    dilations = dilations or [1] * n
    if strides is None:
        strides = [1] * n
    strides.insert(0, 1)  # the stride before layer l
    field, jump = 1, 1
    for k, d, s in zip(kernel_sizes, dilations, strides):
        jump *= s
        field += d * (k - 1) * jump
    return field


def _field_float(kernel_sizes, dilations=None, strides=None):
    return float(convnets.receptive_field(kernel_sizes, dilations, strides))


FIELD_WRONG = {
    "k per layer": (lambda k, d=None, s=None: sum(k), "adds k - 1 inputs"),
    "dilation ignored": (lambda k, d=None, s=None: convnets.receptive_field(k, None, s), "multiply each layer's"),
    "own stride": (ex._field_own_stride, "own stride"),
    "strides ignored": (lambda k, d=None, s=None: convnets.receptive_field(k, d, None), "strides are ignored"),
    "d * k - 1 per layer": (_field_d_times_k, ""),
    "layers in reverse order": (_field_reversed, ""),
    "the total stride for every layer": (_field_total_stride, ""),
    "None not handled": (_field_none_unhandled, "raised TypeError"),
    "strides changed in place": (_field_shifts_strides_in_place, "changed its input `strides` in place"),
    "a float": (_field_float, "should be an int"),
}


@pytest.mark.parametrize("wrong", FIELD_WRONG, ids=list(FIELD_WRONG))
def test_receptive_field_rejects(wrong):
    fn, phrase = FIELD_WRONG[wrong]
    rejected("convnets.receptive_field", fn, phrase)


def _field_backwards(kernel_sizes, dilations=None, strides=None):
    n = len(kernel_sizes)
    dilations, strides = dilations or [1] * n, strides or [1] * n
    field = 1
    for k, d, s in reversed(list(zip(kernel_sizes, dilations, strides))):
        field = (field - 1) * s + d * (k - 1) + 1
    return field


def _field_numpy(kernel_sizes, dilations=None, strides=None):
    n = len(kernel_sizes)
    k = np.array(kernel_sizes)
    d = np.ones(n, dtype=int) if dilations is None else np.array(dilations)
    s = np.ones(n, dtype=int) if strides is None else np.array(strides)
    jumps = np.concatenate([[1], np.cumprod(s)[:-1]])
    return 1 + np.sum(d * (k - 1) * jumps)


FIELD_RIGHT = {
    "the reference": convnets.receptive_field,
    "backwards from the output": _field_backwards,
    "numpy": _field_numpy,
}


@pytest.mark.parametrize("right", FIELD_RIGHT, ids=list(FIELD_RIGHT))
def test_receptive_field_accepts(right, capsys):
    accepted("convnets.receptive_field", FIELD_RIGHT[right], capsys)


# -------------------------------------------------------------------------- he_std


def _fan_in(shape):
    return math.prod(shape[1:])


HE_WRONG = {
    "fan_out": (lambda shape: math.sqrt(2 / (shape[0] * math.prod(shape[2:]))), "fan_out"),
    "input channels only": (lambda shape: math.sqrt(2 / shape[1]), "not C_in"),
    "the variance": (lambda shape: 2 / _fan_in(shape), "square root"),
    "no factor 2": (lambda shape: math.sqrt(1 / _fan_in(shape)), "doubles the variance"),
    "all the weights": (lambda shape: math.sqrt(2 / math.prod(shape)), "leave out C_out"),
    "the kernel area only": (lambda shape: math.sqrt(2 / math.prod(shape[2:])), ""),
    "four dimensions assumed": (lambda shape: math.sqrt(2 / (shape[1] * shape[2] * shape[3])), "raised IndexError"),
    "Glorot's average of fans": (lambda shape: math.sqrt(2 / (_fan_in(shape) + shape[0] * math.prod(shape[2:]))),
                                 ""),
    "measured on a sample": (lambda shape: nn.init.kaiming_normal_(torch.empty(shape)).std().item(), ""),
}


@pytest.mark.parametrize("wrong", HE_WRONG, ids=list(HE_WRONG))
def test_he_std_rejects(wrong):
    fn, phrase = HE_WRONG[wrong]
    rejected("convnets.he_std", fn, phrase)


def _he_from_pytorch(shape):
    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    return nn.init.calculate_gain("relu") / math.sqrt(fan_in)


HE_RIGHT = {
    "the reference": convnets.he_std,
    "a float32 tensor": lambda shape: torch.sqrt(torch.tensor(2.0) / _fan_in(shape)),
    "numpy": lambda shape: np.sqrt(2 / np.prod(shape[1:])),
    "PyTorch's fan and gain": _he_from_pytorch,
}


@pytest.mark.parametrize("right", HE_RIGHT, ids=list(HE_RIGHT))
def test_he_std_accepts(right, capsys):
    accepted("convnets.he_std", HE_RIGHT[right], capsys)


# ---------------------------------------------------------------------- batch_norm


def _affine(y, w, b):
    return y * w[:, None, None] + b[:, None, None]


def _bn_centres_in_place(x, weight, bias, eps=1e-5):
    x -= x.mean(dim=(0, 2, 3), keepdim=True)
    return _affine(x / torch.sqrt(x.square().mean(dim=(0, 2, 3), keepdim=True) + eps), weight, bias)


def _bn_with_dims(dims):
    def bn(x, weight, bias, eps=1e-5):
        mean, var = x.mean(dim=dims, keepdim=True), x.var(dim=dims, correction=0, keepdim=True)
        return _affine((x - mean) / torch.sqrt(var + eps), weight, bias)
    return bn


def _bn_no_eps(x, weight, bias, eps=1e-5):
    mean, var = x.mean(dim=(0, 2, 3), keepdim=True), x.var(dim=(0, 2, 3), correction=0, keepdim=True)
    return _affine((x - mean) / var.sqrt(), weight, bias)


def _bn_broadcast_last(x, weight, bias, eps=1e-5):
    mean, var = x.mean(dim=(0, 2, 3), keepdim=True), x.var(dim=(0, 2, 3), correction=0, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


BN_WRONG = {
    "layer norm": (ex._bn_layer_norm, "layer normalization"),
    "over the batch only": (ex._bn_batch_only, "over the batch alone"),
    "unbiased variance": (ex._bn_unbiased, "unbiased"),
    "eps outside the root": (ex._bn_eps_outside, "inside the square root"),
    "no scale and shift": (ex._bn_no_affine, "scale and shift are missing"),
    "divided by the variance": (ex._bn_by_variance, "not by the variance"),
    "std for the variance": (ex._bn_std_for_variance, "square root is taken twice"),
    "eps fixed at 1e-5": (ex._bn_fixed_eps, "eps that is passed in"),
    "mean of squares minus square of mean": (ex._bn_mean_of_squares, "loses its digits"),
    "x centred in place": (_bn_centres_in_place, "changed its input `x` in place"),
    "instance norm": (_bn_with_dims((2, 3)), ""),
    "statistics over (B, C, H)": (_bn_with_dims((0, 1, 2)), ""),
    "statistics over everything": (_bn_with_dims((0, 1, 2, 3)), ""),
    "no eps at all": (_bn_no_eps, ""),
    "scale broadcast along the width": (_bn_broadcast_last, "raised"),
    "also returns the statistics": (lambda x, w, b, eps=1e-5: (convnets.batch_norm(x, w, b, eps), x.mean()), ""),
    "running statistics in eval mode": (lambda x, w, b, eps=1e-5: F.batch_norm(
        x, torch.zeros(x.shape[1]), torch.ones(x.shape[1]), w, b, training=False, eps=eps), ""),
}


@pytest.mark.parametrize("wrong", BN_WRONG, ids=list(BN_WRONG))
def test_batch_norm_rejects(wrong):
    fn, phrase = BN_WRONG[wrong]
    rejected("convnets.batch_norm", fn, phrase)


def _bn_module(x, weight, bias, eps=1e-5):
    bn = nn.BatchNorm2d(x.shape[1], eps=eps).to(x.dtype)
    with torch.no_grad():
        bn.weight.copy_(weight)
        bn.bias.copy_(bias)
    return bn(x)


def _bn_loops(x, weight, bias, eps=1e-5):
    out = torch.empty_like(x)
    for c in range(x.shape[1]):
        channel = x[:, c]
        mean = channel.mean()
        var = ((channel - mean) ** 2).mean()
        out[:, c] = (channel - mean) / math.sqrt(var.item() + eps) * weight[c] + bias[c]
    return out


def _bn_numpy(x, weight, bias, eps=1e-5):
    xn = x.numpy().astype(np.float64)
    mean, var = xn.mean(axis=(0, 2, 3), keepdims=True), xn.var(axis=(0, 2, 3), keepdims=True)
    w, b = weight.numpy()[:, None, None], bias.numpy()[:, None, None]
    return torch.from_numpy((xn - mean) / np.sqrt(var + eps) * w + b)


def _bn_var_mean(x, weight, bias, eps=1e-5):
    var, mean = torch.var_mean(x, dim=(0, 2, 3), correction=0, keepdim=True)
    return _affine((x - mean) * torch.rsqrt(var + eps), weight, bias)


BN_RIGHT = {
    "the reference": convnets.batch_norm,
    "F.batch_norm": lambda x, w, b, eps=1e-5: F.batch_norm(x, None, None, w, b, training=True, eps=eps),
    "nn.BatchNorm2d in training mode": _bn_module,
    "a loop over channels": _bn_loops,
    "numpy in float64": _bn_numpy,
    "var_mean and rsqrt": _bn_var_mean,
}


@pytest.mark.parametrize("right", BN_RIGHT, ids=list(BN_RIGHT))
def test_batch_norm_accepts(right, capsys):
    accepted("convnets.batch_norm", BN_RIGHT[right], capsys)


# ------------------------------------------------------------------ residual_block


def _res_adds_in_place(x, block):
    x += block.residual(x)
    return torch.relu(x)


def _res_in_training_mode(x, block):
    block.train()
    return torch.relu(x + block.residual(x))


RES_WRONG = {
    "the block's own forward": (lambda x, block: block(x), "forward is switched off"),
    "no skip": (lambda x, block: torch.relu(block.residual(x)), "skip connection is missing"),
    "ReLU before the addition": (lambda x, block: x + torch.relu(block.residual(x)), "after the addition"),
    "no final ReLU": (lambda x, block: x + block.residual(x), "final ReLU is missing"),
    "skip after the first convolution": (ex._res_skip_after_first_conv, "the block's input x itself"),
    "ReLU of x added": (lambda x, block: torch.relu(x) + block.residual(x), ""),
    "no inner ReLU": (lambda x, b: torch.relu(x + b.bn2(b.conv2(b.bn1(b.conv1(x))))), ""),
    "bn1 used twice": (lambda x, b: torch.relu(x + b.bn1(b.conv2(torch.relu(b.bn1(b.conv1(x)))))), ""),
    "no batch norm": (lambda x, b: torch.relu(x + b.conv2(torch.relu(b.conv1(x)))), ""),
    "x changed in place": (_res_adds_in_place, "changed its input `x` in place"),
    "switched to training mode": (_res_in_training_mode, "switched the block to training mode"),
}


@pytest.mark.parametrize("wrong", RES_WRONG, ids=list(RES_WRONG))
def test_residual_block_rejects(wrong):
    fn, phrase = RES_WRONG[wrong]
    rejected("convnets.residual_block", fn, phrase)


def _res_written_out(x, block):
    h = F.relu(block.bn1(block.conv1(x)))
    return F.relu(x + block.bn2(block.conv2(h)))


def _res_in_place_on_new_tensor(x, block):
    out = block.residual(x)
    out += x
    return out.relu_()


RES_RIGHT = {
    "the worked solution": ex.residual_block,
    "written out from the layers": _res_written_out,
    "in place on a new tensor": _res_in_place_on_new_tensor,
    "clamp": lambda x, block: (x + block.residual(x)).clamp(min=0),
}


@pytest.mark.parametrize("right", RES_RIGHT, ids=list(RES_RIGHT))
def test_residual_block_accepts(right, capsys):
    accepted("convnets.residual_block", RES_RIGHT[right], capsys)


def test_the_residual_check_passes_a_block_whose_forward_is_switched_off():
    block = LayersOnlyBlock(2).eval()
    with pytest.raises(RuntimeError, match="block.conv1"):
        block(torch.randn(1, 2, 4, 4))
    assert isinstance(block, convnets.ResidualBlock)


# ------------------------------------------------------------- dense_block_forward


def _dense_each_on_x(x, layers):
    return torch.cat([x, *(layer(x) for layer in layers)], dim=1)


def _dense_train_mode(x, layers):
    layers.train()
    return convnets.dense_block_forward(x, layers)


DENSE_WRONG = {
    "fed only the previous output": (ex._dense_previous_only, "not only the previous layer's output"),
    "layers applied in sequence": (lambda x, layers: nn.Sequential(*layers)(x), "not only the previous"),
    "every layer fed x alone": (_dense_each_on_x, "raised"),
    "output without x": (ex._dense_without_input, "starts with its input"),
    "only the last output": (ex._dense_last_only, "not the last layer's alone"),
    "x and the last output": (ex._dense_input_and_last, "not only the last one's"),
    "outputs in reverse order": (ex._dense_reversed, "keep the order"),
    "concatenated along the batch": (ex._dense_batch_dim, "dim=1"),
    "concatenated along the width": (ex._dense_width_dim, "dim=1"),
    "stacked": (lambda x, layers: torch.stack([x, x]), ""),
    "layers switched to training mode": (_dense_train_mode, "switched the layers to training mode"),
}


@pytest.mark.parametrize("wrong", DENSE_WRONG, ids=list(DENSE_WRONG))
def test_dense_block_forward_rejects(wrong):
    fn, phrase = DENSE_WRONG[wrong]
    rejected("convnets.dense_block_forward", fn, phrase)


def _dense_growing(x, layers):
    h = x
    for layer in layers:
        h = torch.cat([h, layer(h)], dim=1)
    return h


DENSE_RIGHT = {
    "the reference": convnets.dense_block_forward,
    "a growing tensor": _dense_growing,
    "in float64": lambda x, layers: convnets.dense_block_forward(x.double(), copy.deepcopy(layers).double()),
}


@pytest.mark.parametrize("right", DENSE_RIGHT, ids=list(DENSE_RIGHT))
def test_dense_block_forward_accepts(right, capsys):
    accepted("convnets.dense_block_forward", DENSE_RIGHT[right], capsys)


# ----------------------------------------------------------------------------- iou


def _iou_no_empty_case(p, t):
    return ((p.bool() & t.bool()).sum() / (p.bool() | t.bool()).sum()).item()


def _iou_products(p, t):
    return ((p * t).sum() / (p + t).sum()).item()


def _iou_dims(p, t):
    p, t = p.bool(), t.bool()
    inter, union = (p & t).sum(dim=(-2, -1)).float(), (p | t).sum(dim=(-2, -1)).float()
    return torch.where(union > 0, inter / union.clamp(min=1), 1.0).mean().item()


IOU_WRONG = {
    "union as |P| + |T|": (ex._iou_sum_union, "counts the overlap twice"),
    "Dice": (ex._iou_dice, "Dice coefficient"),
    "per-image average": (ex._iou_per_image, "image by image"),
    "per-image average over the last two dims": (_iou_dims, "image by image"),
    "nan on empty masks": (ex._iou_empty_nan, "return 1.0"),
    "0 on empty masks": (ex._iou_empty_zero, "return 1.0"),
    "no empty case": (_iou_no_empty_case, "non-finite"),
    "products and sums": (_iou_products, ""),
    "recall": (lambda p, t: (p.bool() & t.bool()).sum().item() / max(1, t.bool().sum().item()), ""),
    "pixel accuracy": (lambda p, t: (p.bool() == t.bool()).float().mean().item(), ""),
    "smoothed": (lambda p, t: ((p.bool() & t.bool()).sum().item() + 1) / ((p.bool() | t.bool()).sum().item() + 1),
                 ""),
    "epsilon in the denominator": (lambda p, t: (p.bool() & t.bool()).sum().item()
                                   / ((p.bool() | t.bool()).sum().item() + 1e-6), "expected 1, got 0"),
    "bitwise operators on float masks": (lambda p, t: ex._iou_empty_zero(p, t) if p.dtype == torch.bool
                                         else (p & t).sum().item(), "raised NotImplementedError"),
    "integer division": (lambda p, t: (p.bool() & t.bool()).sum().item() // max(1, (p.bool() | t.bool()).sum().item()),
                         ""),
}


@pytest.mark.parametrize("wrong", IOU_WRONG, ids=list(IOU_WRONG))
def test_iou_rejects(wrong):
    fn, phrase = IOU_WRONG[wrong]
    rejected("convnets.iou", fn, phrase)


def _iou_tensor(p, t):
    p, t = p.bool(), t.bool()
    inter, union = torch.logical_and(p, t).sum(), torch.logical_or(p, t).sum()
    return torch.where(union == 0, torch.tensor(1.0), inter / union.clamp(min=1))


def _iou_numpy(p, t):
    p, t = p.numpy().astype(bool), t.numpy().astype(bool)
    union = np.logical_or(p, t).sum()
    return 1.0 if union == 0 else np.logical_and(p, t).sum() / union


IOU_RIGHT = {
    "the reference": convnets.iou,
    "a 0-d tensor": _iou_tensor,
    "numpy": _iou_numpy,
    "float64 products": lambda p, t: (lambda i, u: 1.0 if u == 0 else i / u)(
        (p.double() * t.double()).sum().item(), (p.double() + t.double()).clamp(max=1).sum().item()),
}


@pytest.mark.parametrize("right", IOU_RIGHT, ids=list(IOU_RIGHT))
def test_iou_accepts(right, capsys):
    accepted("convnets.iou", IOU_RIGHT[right], capsys)


# ------------------------------------------------------- the new reference functions


def test_shuffled_mlp_predicts_on_shuffled_inputs_what_the_original_does_and_leaves_it_alone():
    torch.manual_seed(0)
    model = convnets.MLP1d(12, 7, 3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    permutation = torch.randperm(12)
    moved = convnets.shuffled_mlp(model, permutation)
    x = torch.randn(5, 12)
    torch.testing.assert_close(moved(x[:, permutation]), model(x))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    with torch.no_grad():
        moved.net[2].weight.zero_()  # independent copies
    assert torch.equal(model.net[2].weight, before["net.2.weight"])
    with pytest.raises(ValueError, match=r"shape \(12,\)"):
        convnets.shuffled_mlp(model, torch.randperm(10))


def test_batch_norm_equals_pytorchs_in_training_mode():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 5, 6, generator=g) * 3 + 2
    weight, bias = torch.randn(3, generator=g), torch.randn(3, generator=g)
    for eps in (1e-5, 0.5):
        expected = F.batch_norm(x, None, None, weight, bias, training=True, eps=eps)
        torch.testing.assert_close(convnets.batch_norm(x, weight, bias, eps), expected, atol=1e-5, rtol=1e-5)
    module = nn.BatchNorm2d(3).train()
    with torch.no_grad():
        module.weight.copy_(weight)
        module.bias.copy_(bias)
    torch.testing.assert_close(convnets.batch_norm(x, weight, bias), module(x), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        convnets.batch_norm(x[0], weight, bias)
    with pytest.raises(ValueError, match="weight: \\(C,\\)"):
        convnets.batch_norm(x, weight[:2], bias)


def test_dense_block_forward_equals_the_blocks_own_forward():
    torch.manual_seed(0)
    block = convnets.DenseBlock(3, 4, 3)
    x = torch.randn(2, 3, 5, 7)
    for mode in (block.train, block.eval):
        mode()
        torch.testing.assert_close(convnets.dense_block_forward(x, block.layers), block(x))
    assert convnets.dense_block_forward(x, block.layers).shape == (2, 3 + 3 * 4, 5, 7)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        convnets.dense_block_forward(x[0], block.layers)


def test_he_std_is_the_standard_deviation_kaiming_normal_draws_with():
    for shape in [(64, 32, 3, 3), (200, 50), (16, 8, 5, 3), (30, 4, 7)]:
        fan_in = math.prod(shape[1:])
        assert convnets.he_std(shape) == pytest.approx(math.sqrt(2 / fan_in))
        torch.manual_seed(0)
        sample = nn.init.kaiming_normal_(torch.empty(shape), nonlinearity="relu")
        assert sample.std().item() == pytest.approx(convnets.he_std(shape), rel=0.05)
    assert isinstance(convnets.he_std(torch.Size([4, 2, 3, 3])), float)
    with pytest.raises(ValueError, match="shape"):
        convnets.he_std((5,))


def test_avg_pool2d_drops_windows_that_do_not_fit_as_pytorch_does():
    x = torch.randn(2, 3, 7, 10)
    torch.testing.assert_close(convnets.avg_pool2d(x, 3), F.avg_pool2d(x, 3))


def test_a_hint_needs_the_mistake_on_every_case():
    # Right on the cases without stride, the + 1 folded in elsewhere: no hint may be given.
    def half_right(n, k, s=1, p=0, d=1):
        return (n + 2 * p - d * (k - 1)) // s if s > 2 else convnets.output_size(n, k, s, p, d)

    message = rejected("convnets.output_size", half_right)
    assert "Hint" not in message


def test_the_stubs_bare_not_implemented_error_means_not_attempted_and_pytorchs_does_not(capsys):
    def stub(predicted, target):
        raise NotImplementedError  # your code here

    check.exercise("convnets.iou", stub)
    assert "not attempted yet" in capsys.readouterr().out
    rejected("convnets.iou", lambda p, t: (p & t).sum().item(), "raised NotImplementedError: \"bitwise_and")


def _retry_forever(x, block):
    while True:  # the block's forward always raises in the check: this never returns
        try:
            return block(x)
        except Exception:
            pass


def _stubborn(*args):
    while True:
        try:
            raise ValueError("not yet")
        except Exception:
            pass


@pytest.mark.parametrize(("name", "fn"), [("convnets.residual_block", _retry_forever),
                                          ("convnets.dense_block_forward", _stubborn),
                                          ("convnets.shuffled_mlp", _stubborn), ("convnets.output_size", _stubborn)])
def test_a_loop_that_swallows_every_error_does_not_hang_the_check(name, fn):
    with pytest.raises(ExerciseFailed, match="did not return within 0.3 s"):
        check.exercise(name, fn, timeout=0.3)


def test_iou_with_one_empty_mask_is_zero_not_one():
    def one_empty_is_perfect(predicted, target):
        predicted, target = predicted.bool(), target.bool()
        if predicted.sum() == 0:
            return 1.0
        return (predicted & target).sum().item() / (predicted | target).sum().item()

    with pytest.raises(ExerciseFailed, match="an empty prediction"):
        check.exercise("convnets.iou", one_empty_is_perfect)


def test_a_float32_result_for_float64_inputs_is_rejected():
    def pooled_in_float32(x, kernel_size):
        b, c, h, w = x.shape
        kernel = torch.full((1, 1, kernel_size, kernel_size), 1.0 / kernel_size**2)
        out = F.conv2d(x.float().reshape(b * c, 1, h, w), kernel, stride=kernel_size)
        return out.reshape(b, c, h // kernel_size, w // kernel_size)

    with pytest.raises(ExerciseFailed, match="the result should be float64 too"):
        check.exercise("convnets.avg_pool2d", pooled_in_float32)
