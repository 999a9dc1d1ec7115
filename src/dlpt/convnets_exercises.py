"""Hidden tests of chapter 2's exercises, with the plausible mistakes each must catch."""

from __future__ import annotations

import torch

from dlpt import convnets
from dlpt.check import Exercise, call, check_cases, compare, register

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
    shapes = [
        ("x (1, 1, 4, 4), weight (1, 1, 3, 3), bias (1,)", (1, 1, 4, 4), (1, 1, 3, 3), 1, 0),
        ("x (2, 3, 5, 7), weight (4, 3, 3, 2), bias (4,)", (2, 3, 5, 7), (4, 3, 3, 2), 1, 0),
        ("x (2, 2, 6, 9), weight (3, 2, 3, 3), bias (3,), stride 2, padding 1", (2, 2, 6, 9), (3, 2, 3, 3), 2, 1),
    ]
    cases = [
        (inputs, (torch.randn(x, generator=g), torch.randn(w, generator=g), torch.randn(w[0], generator=g),
                  stride, padding))
        for inputs, x, w, stride, padding in shapes
    ]
    return check_cases(fn, convnets.conv2d, cases, _CONV_MISTAKES, what="the output", atol=1e-4)


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
    described = [(f"n={n}, kernel_size={k}, stride={s}, padding={p}, dilation={d}", (n, k, s, p, d))
                 for n, k, s, p, d in cases]
    return check_cases(fn, convnets.output_size, described, _SIZE_MISTAKES, what="the size")


register(Exercise("convnets.output_size", _check_output_size, convnets.output_size, _SIZE_MISTAKES))

# -------------------------------------------------------------------- conv_params


def _params_no_bias(in_channels, out_channels, kernel_size):
    return out_channels * in_channels * kernel_size**2


def _params_no_input_channels(in_channels, out_channels, kernel_size):
    return out_channels * kernel_size**2 + out_channels


def _params_bias_per_input(in_channels, out_channels, kernel_size):
    return out_channels * in_channels * kernel_size**2 + in_channels


_PARAMS_MISTAKES = [
    (_params_no_bias, "each output channel also has one bias"),
    (_params_no_input_channels, "each kernel covers all C_in input channels: C_in * k * k weights"),
    (_params_bias_per_input, "there is one bias per output channel, not per input channel"),
]


def _check_conv_params(fn) -> int:
    cases = [(f"in_channels={c_in}, out_channels={c_out}, kernel_size={k}", (c_in, c_out, k))
             for c_in, c_out, k in [(1, 1, 3), (3, 16, 3), (16, 32, 5), (64, 8, 1)]]
    return check_cases(fn, convnets.conv_params, cases, _PARAMS_MISTAKES, what="the count")


register(Exercise("convnets.conv_params", _check_conv_params, convnets.conv_params, _PARAMS_MISTAKES))

# --------------------------------------------------------------- permuted weights


def _perm_inverse(weight, permutation):
    return weight[:, torch.argsort(permutation)]


def _perm_rows(weight, permutation):
    return weight[permutation]


def _perm_unchanged(weight, permutation):
    return weight.clone()


_PERM_MISTAKES = [
    (_perm_inverse, "that is the inverse permutation: column j must be weight[:, permutation[j]]"),
    (_perm_rows, "the rows were permuted; the inputs meet the columns of the weight matrix"),
    (_perm_unchanged, "the weights are unchanged: the shuffled inputs meet the wrong columns"),
]


def _check_permuted(fn) -> int:
    g = torch.Generator().manual_seed(0)
    cases = []
    for n in (5, 40):
        weight = torch.randn(n, n, generator=g)
        permutation = torch.randperm(n, generator=g)
        while torch.equal(permutation[permutation], torch.arange(n)):  # avoid self-inverse ones
            permutation = torch.randperm(n, generator=g)
        cases.append((f"weight ({n}, {n}), a permutation of {n} positions", (weight, permutation)))
    return check_cases(fn, convnets.permuted_input_weights, cases, _PERM_MISTAKES, what="the new weights")


register(Exercise("convnets.permuted_input_weights", _check_permuted, convnets.permuted_input_weights,
                  _PERM_MISTAKES))

# ---------------------------------------------------------------- receptive_field


def _field_ignores_dilation(kernel_sizes, dilations=None, strides=None):
    return convnets.receptive_field(kernel_sizes, None, strides)


def _field_k_per_layer(kernel_sizes, dilations=None, strides=None):
    return sum(kernel_sizes)


def _field_own_stride(kernel_sizes, dilations=None, strides=None):
    n = len(kernel_sizes)
    dilations, strides = dilations or [1] * n, strides or [1] * n
    field, jump = 1, 1
    for k, d, s in zip(kernel_sizes, dilations, strides):
        jump *= s  # the layer's own stride applied too early
        field += d * (k - 1) * jump
    return field


_FIELD_MISTAKES = [
    (_field_k_per_layer, "each layer adds k - 1 inputs, not k: one input of a window is already "
     "counted (the field of a single 3x3 layer is 3, of two is 5)"),
    (_field_ignores_dilation, "a dilated kernel spans d * (k - 1) + 1 inputs: multiply each layer's "
     "growth by its dilation"),
    (_field_own_stride, "a layer's own stride does not widen its own window; only the strides of the "
     "layers before it stretch its steps"),
]


def _check_receptive_field(fn) -> int:
    cases = [([3], None, None), ([3, 3, 3], None, None), ([3, 3, 3, 3], [1, 2, 4, 8], None),
             ([2, 2, 2], [1, 2, 4], None), ([7, 3, 3], None, [2, 2, 1]), ([5, 3, 3], [1, 1, 2], [2, 1, 1])]
    described = [(f"kernel_sizes={k}, dilations={d}, strides={s}", (k, d, s)) for k, d, s in cases]
    return check_cases(fn, convnets.receptive_field, described, _FIELD_MISTAKES, what="the receptive field")


register(Exercise("convnets.receptive_field", _check_receptive_field, convnets.receptive_field, _FIELD_MISTAKES))

# ---------------------------------------------------------------- residual block


def residual_block(x: torch.Tensor, block: convnets.PlainBlock) -> torch.Tensor:
    """The worked solution: ``relu(x + F(x))`` with ``F = block.residual``."""
    return torch.relu(x + block.residual(x))


def _res_relu_before_add(x, block):
    return x + torch.relu(block.residual(x))


def _res_no_skip(x, block):
    return torch.relu(block.residual(x))


def _res_skip_after_first_conv(x, block):
    h = block.conv1(x)
    return torch.relu(h + block.bn2(block.conv2(torch.relu(block.bn1(h)))))


def _res_no_final_relu(x, block):
    return x + block.residual(x)


_RES_MISTAKES = [
    (_res_no_skip, "the skip connection is missing: add the block's input x to F(x)"),
    (_res_relu_before_add, "the ReLU comes after the addition: relu(x + F(x)), not x + relu(F(x))"),
    (_res_no_final_relu, "the final ReLU is missing: relu(x + F(x))"),
    (_res_skip_after_first_conv, "the skip must carry the block's input x itself, not the first "
     "convolution's output"),
]


def _check_residual_block(fn) -> int:
    g = torch.Generator().manual_seed(0)
    torch_state = torch.get_rng_state()
    torch.manual_seed(0)
    block = convnets.ResidualBlock(4)
    torch.set_rng_state(torch_state)
    with torch.no_grad():  # random batch-norm statistics, so that a mistake cannot hide behind them
        for bn in (block.bn1, block.bn2):
            bn.running_mean.normal_(0, 0.5, generator=g)
            bn.running_var.uniform_(0.5, 2.0, generator=g)
            bn.weight.uniform_(0.5, 1.5, generator=g)
            bn.bias.normal_(0, 0.5, generator=g)
    block.eval()
    x = torch.randn(2, 4, 6, 6, generator=g)
    inputs = "x (2, 4, 6, 6) and a ResidualBlock(4) in eval mode"
    with torch.no_grad():
        got = call(fn, x.clone(), block, inputs=inputs)
        mistakes = [(wrong(x, block), hint) for wrong, hint in _RES_MISTAKES]
        compare(got, block(x), inputs=inputs, what="the output", atol=1e-5, mistakes=mistakes)
    return 1


register(Exercise("convnets.residual_block", _check_residual_block, residual_block, _RES_MISTAKES))

# ----------------------------------------------------------------------------- iou


def _iou_sum_union(predicted, target):
    predicted, target = predicted.bool(), target.bool()
    return (predicted & target).sum().item() / max(1, predicted.sum().item() + target.sum().item())


def _iou_dice(predicted, target):
    predicted, target = predicted.bool(), target.bool()
    total = predicted.sum().item() + target.sum().item()
    return 1.0 if total == 0 else 2 * (predicted & target).sum().item() / total


def _iou_per_image(predicted, target):
    return sum(convnets.iou(p, t) for p, t in zip(predicted, target)) / len(predicted)


def _iou_empty_nan(predicted, target):
    predicted, target = predicted.bool(), target.bool()
    union = (predicted | target).sum().item()
    return float("nan") if union == 0 else (predicted & target).sum().item() / union


_IOU_MISTAKES = [
    (_iou_sum_union, "the union counts the overlap twice: |P or T| = |P| + |T| - |P and T|"),
    (_iou_dice, "that is the Dice coefficient, 2|P and T| / (|P| + |T|); IoU divides by the union"),
    (_iou_per_image, "the IoU was averaged image by image; pool the pixels of all images first"),
    (_iou_empty_nan, "two empty masks agree perfectly: return 1.0 when the union is empty"),
]


def _check_iou(fn) -> int:
    g = torch.Generator().manual_seed(0)
    big = torch.zeros(2, 8, 8, dtype=torch.bool)
    big[0, 1:7, 1:7] = True  # a large object predicted well ...
    truth_big = big.clone()
    truth_big[0, 1:7, 6] = False
    big[1, 0, 0], truth_big[1, 0, 1] = True, True  # ... and a tiny one missed
    empty = torch.zeros(3, 3, dtype=torch.bool)
    cases = [
        ("predicted (2, 4, 4) and target (2, 4, 4) random masks",
         (torch.rand(2, 4, 4, generator=g) > 0.5, torch.rand(2, 4, 4, generator=g) > 0.5)),
        ("two 8x8 images: a large object found well and a one-pixel object missed", (big, truth_big)),
        ("two empty (3, 3) masks", (empty, empty.clone())),
    ]
    return check_cases(fn, convnets.iou, cases, _IOU_MISTAKES, what="the IoU")


register(Exercise("convnets.iou", _check_iou, convnets.iou, _IOU_MISTAKES))
