"""Chapter 2, Convolutional networks: the blocks the chapter teaches.

Convolution written as one matrix product (im2col), the arithmetic of output sizes,
parameter counts and receptive fields, and the small models of the MNIST-1D
inductive-bias experiment.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "output_size",
    "conv2d",
    "avg_pool2d",
    "dense_params",
    "locally_connected_params",
    "conv_params",
    "LocallyConnected2d",
    "permuted_input_weights",
    "receptive_field",
    "gradient_map",
    "measured_receptive_field",
    "conv_stack",
    "activation_stds",
    "ResidualBlock",
    "residual_block",
    "PlainBlock",
    "DeepConvNet",
    "DenseBlock",
    "UNet",
    "iou",
    "Logistic",
    "MLP1d",
    "ConvNet1d",
    "GRUClassifier",
    "shuffled_mlp",
    "batch_norm",
    "dense_block_forward",
    "he_std",
]


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def output_size(n: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Length of a convolution's output along one axis of length ``n``.

    ``floor((n + 2 * padding - dilation * (kernel_size - 1) - 1) / stride) + 1``, the
    formula in the documentation of ``torch.nn.Conv2d``.
    """
    span = dilation * (kernel_size - 1) + 1  # how many input positions one output sees
    if n + 2 * padding < span:
        raise ValueError(f"a kernel spanning {span} does not fit an input of {n} padded by {padding}")
    return (n + 2 * padding - span) // stride + 1


def conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
) -> torch.Tensor:
    """2-D convolution (cross-correlation, as in deep learning) as one matrix product.

    x: (B, C_in, H, W), weight: (C_out, C_in, kH, kW), bias: (C_out,) or None
    -> (B, C_out, H_out, W_out), equal to ``torch.nn.functional.conv2d``.

    ``F.unfold`` copies every kH x kW patch of every input channel into a column
    (im2col): ``(B, C_in * kH * kW, L)`` for the ``L = H_out * W_out`` output positions.
    The flattened kernels ``(C_out, C_in * kH * kW)`` then multiply all columns at once.
    """
    if x.dim() != 4 or weight.dim() != 4:
        raise ValueError(
            f"expected x: (B, C_in, H, W) and weight: (C_out, C_in, kH, kW); "
            f"got x {tuple(x.shape)} and weight {tuple(weight.shape)}"
        )
    batch, c_in, height, width = x.shape
    c_out, c_in_w, k_h, k_w = weight.shape
    if c_in != c_in_w:
        raise ValueError(f"x has {c_in} channels but weight expects C_in = {c_in_w} (weight {tuple(weight.shape)})")
    (s_h, s_w), (p_h, p_w) = _pair(stride), _pair(padding)
    h_out, w_out = output_size(height, k_h, s_h, p_h), output_size(width, k_w, s_w, p_w)
    columns = F.unfold(x, (k_h, k_w), padding=(p_h, p_w), stride=(s_h, s_w))  # (B, C_in*kH*kW, L)
    out = weight.reshape(c_out, -1) @ columns  # (B, C_out, L)
    if bias is not None:
        out = out + bias[:, None]
    return out.reshape(batch, c_out, h_out, w_out)


def avg_pool2d(x: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Average pooling as a convolution with fixed weights ``1 / k**2``, stride ``k``.

    x: (B, C, H, W) -> (B, C, H // k, W // k). Each channel is pooled on its own, so the
    channels are folded into the batch and convolved with one fixed single-channel kernel.
    """
    batch, channels, height, width = x.shape
    weight = torch.full((1, 1, kernel_size, kernel_size), 1.0 / kernel_size**2, dtype=x.dtype, device=x.device)
    out = conv2d(x.reshape(batch * channels, 1, height, width), weight, stride=kernel_size)
    return out.reshape(batch, channels, out.shape[-2], out.shape[-1])


def dense_params(in_channels: int, out_channels: int, height: int, width: int) -> int:
    """Weights and biases of a fully connected layer from a (C_in, H, W) image to a (C_out, H, W) one."""
    inputs, outputs = in_channels * height * width, out_channels * height * width
    return inputs * outputs + outputs


def locally_connected_params(in_channels: int, out_channels: int, height: int, width: int, kernel_size: int) -> int:
    """A locally connected layer (a k x k window, untied weights) with "same" output size.

    Every output position has its own kernel: ``H * W`` times a convolution's weights.
    """
    return height * width * conv_params(in_channels, out_channels, kernel_size)


def conv_params(in_channels: int, out_channels: int, kernel_size: int) -> int:
    """A convolution's weights and biases: ``C_out * C_in * k * k + C_out``, whatever the image size."""
    return out_channels * in_channels * kernel_size**2 + out_channels


class LocallyConnected2d(nn.Module):
    """A convolution with untied weights: every output position has a kernel of its own.

    x: (B, C_in, H, W) -> (B, C_out, H, W) ("same" padding, stride 1, odd kernel_size).
    ``weight: (H * W, C_out, C_in * k * k)``, one flattened kernel per position: the same
    locality as a convolution, none of its weight sharing.
    """

    def __init__(self, in_channels: int, out_channels: int, height: int, width: int, kernel_size: int):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd for 'same' output, got {kernel_size}")
        self.in_channels, self.kernel_size = in_channels, kernel_size
        self.shape = (out_channels, height, width)
        fan_in = in_channels * kernel_size**2
        self.weight = nn.Parameter(torch.randn(height * width, out_channels, fan_in) / fan_in**0.5)
        self.bias = nn.Parameter(torch.zeros(height * width, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        expected = (self.in_channels, *self.shape[1:])
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"expected x of shape (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
        columns = F.unfold(x, self.kernel_size, padding=self.kernel_size // 2)  # (B, C_in*k*k, H*W)
        out = torch.einsum("bkl,lok->bol", columns, self.weight) + self.bias.T  # (B, C_out, H*W)
        return out.reshape(x.shape[0], *self.shape)


def permuted_input_weights(weight: torch.Tensor, permutation: torch.Tensor) -> torch.Tensor:
    """The first-layer weights that undo a permutation of the inputs.

    weight: (out, n), permutation: (n,) with ``x_shuffled = x[:, permutation]``. Returns
    ``W'`` with ``x_shuffled @ W'.T == x @ weight.T``: column j of ``W'`` must be the column
    of ``weight`` that multiplied the value now at position j, ``weight[:, permutation[j]]``.
    """
    return weight[:, permutation]


# --------------------------------------------------------------------------- going deeper


def receptive_field(
    kernel_sizes: Sequence[int], dilations: Sequence[int] | None = None, strides: Sequence[int] | None = None
) -> int:
    """How many inputs (along one axis) one output of a stack of convolutions depends on.

    ``r = 1 + sum_l d_l (k_l - 1) * prod_{m < l} s_m``: layer l widens the field by its
    kernel's span minus one, measured in input steps, which earlier strides have stretched.
    """
    n = len(kernel_sizes)
    dilations = [1] * n if dilations is None else list(dilations)
    strides = [1] * n if strides is None else list(strides)
    if not len(dilations) == len(strides) == n:
        raise ValueError(f"got {n} kernel sizes, {len(dilations)} dilations and {len(strides)} strides")
    field, jump = 1, 1
    for k, d, s in zip(kernel_sizes, dilations, strides):
        field += d * (k - 1) * jump
        jump *= s
    return field


def gradient_map(model: nn.Module, size: int, channels: int = 1) -> torch.Tensor:
    """``|d output[centre] / d input|`` of an image model: (size, size), summed over channels.

    Back-propagates from the centre output pixel (summed over output channels) of a random
    ``(1, channels, size, size)`` input. It runs on a copy whose ``nn.ReLU`` modules are
    replaced by the identity: a pointwise function does not change which inputs an output
    depends on, but a unit that happens to be off would hide the dependence.
    """
    probe = copy.deepcopy(model).eval()
    for module in list(probe.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(module, child_name, nn.Identity())
    x = torch.randn(1, channels, size, size, requires_grad=True)
    out = probe(x)
    out[0, :, out.shape[-2] // 2, out.shape[-1] // 2].sum().backward()
    return x.grad[0].abs().sum(dim=0)


def measured_receptive_field(model: nn.Module, size: int, channels: int = 1) -> int:
    """Receptive field along the height of an image model: the rows of :func:`gradient_map` that are not 0."""
    return int((gradient_map(model, size, channels).sum(dim=1) > 0).sum())


def conv_stack(depth: int, channels: int, kernel_size: int = 3, dilation_growth: int = 1) -> nn.Sequential:
    """``depth`` convolutions with "same" padding, each followed by ReLU: ``(B, C, H, W)`` -> same shape.

    With ``dilation_growth = 2`` layer l has dilation ``2 ** l``.
    """
    layers: list[nn.Module] = []
    for layer in range(depth):
        dilation = dilation_growth**layer
        layers += [nn.Conv2d(channels, channels, kernel_size, padding=dilation * (kernel_size // 2),
                             dilation=dilation), nn.ReLU()]
    return nn.Sequential(*layers)


@torch.no_grad()
def activation_stds(stack: nn.Sequential, x: torch.Tensor) -> list[float]:
    """Standard deviation of the activations after every ReLU of ``stack`` on input ``x``."""
    stds = []
    for layer in stack:
        x = layer(x)
        if isinstance(layer, nn.ReLU):
            stds.append(x.std().item())
    return stds


class PlainBlock(nn.Module):
    """Two 3x3 convolutions with batch norm (optional) and ReLU: ``(B, C, H, W)`` -> same shape."""

    def __init__(self, channels: int, batch_norm: bool = True):
        super().__init__()
        norm = nn.BatchNorm2d if batch_norm else (lambda c: nn.Identity())
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=not batch_norm)
        self.bn1 = norm(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=not batch_norm)
        self.bn2 = norm(channels)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """F(x): conv, batch norm, ReLU, conv, batch norm."""
        return self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.residual(x))


class ResidualBlock(PlainBlock):
    """A residual block (He et al., 2016): ``relu(x + F(x))``, ``(B, C, H, W)`` -> same shape.

    The block learns the change ``F(x)`` to its input; with ``F = 0`` it is the identity,
    so adding blocks cannot make the network harder to fit than a shallower one.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return residual_block(x, self)


def residual_block(x: torch.Tensor, block: PlainBlock) -> torch.Tensor:
    """The forward pass of a residual block from its layers: ``relu(x + F(x))``, ``F = block.residual``.

    x: (B, C, H, W) -> the same shape; ``block`` any :class:`PlainBlock` (its conv1, bn1,
    conv2, bn2 make F). The skip connection adds the block's input itself.
    """
    return torch.relu(x + block.residual(x))


class DeepConvNet(nn.Module):
    """A stem convolution, ``(depth - 2) // 2`` blocks, global average pooling and a linear layer.

    ``depth`` counts the weight layers (convolutions and the final linear one), as in the
    ResNet paper. x: (B, in_channels, H, W) -> logits (B, num_classes).
    """

    def __init__(
        self,
        depth: int,
        residual: bool,
        channels: int = 16,
        in_channels: int = 1,
        num_classes: int = 10,
        batch_norm: bool = True,
    ):
        super().__init__()
        if depth < 4 or depth % 2:
            raise ValueError(f"depth must be even and at least 4, got {depth}")
        block = ResidualBlock if residual else PlainBlock
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=not batch_norm),
            nn.BatchNorm2d(channels) if batch_norm else nn.Identity(),
            nn.ReLU(),
        )
        self.blocks = nn.Sequential(*[block(channels, batch_norm) for _ in range((depth - 2) // 2)])
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.stem(x))  # (B, C, H, W)
        return self.head(h.mean(dim=(-2, -1)))


# --------------------------------------------------------------------------- dense connections, U-Net


class DenseBlock(nn.Module):
    """A DenseNet block (Huang et al., 2017): every layer sees the concatenation of all before it.

    x: (B, C, H, W) -> (B, C + layers * growth_rate, H, W). Layer l maps the
    ``C + l * growth_rate`` channels so far to ``growth_rate`` new ones (batch norm, ReLU,
    3x3 convolution), and they are appended: features are reused, not recomputed.
    """

    def __init__(self, in_channels: int, growth_rate: int, num_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(
                nn.BatchNorm2d(in_channels + i * growth_rate),
                nn.ReLU(),
                nn.Conv2d(in_channels + i * growth_rate, growth_rate, 3, padding=1, bias=False),
            )
            for i in range(num_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dense_block_forward(x, self.layers)


def _double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels), nn.ReLU(),
    )


class UNet(nn.Module):
    """A two-level U-Net (Ronneberger et al., 2015): x: (B, C_in, H, W) -> logits (B, num_classes, H, W).

    The encoder halves the resolution twice; the decoder doubles it back. With ``skips``
    each decoder level also receives the encoder's features of the same resolution
    (concatenated), which carry the fine detail the bottleneck has lost. Without them the
    architecture is otherwise identical (the concatenated channels are zeros). H and W must
    be divisible by 4.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, channels: int = 16, skips: bool = True):
        super().__init__()
        self.skips = skips
        c = channels
        self.enc1, self.enc2 = _double_conv(in_channels, c), _double_conv(c, 2 * c)
        self.bottom = _double_conv(2 * c, 4 * c)
        self.up2 = nn.ConvTranspose2d(4 * c, 2 * c, 2, stride=2)
        self.dec2 = _double_conv(4 * c, 2 * c)
        self.up1 = nn.ConvTranspose2d(2 * c, c, 2, stride=2)
        self.dec1 = _double_conv(2 * c, c)
        self.out = nn.Conv2d(c, num_classes, 1)

    def _join(self, up: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return torch.cat([up, skip if self.skips else torch.zeros_like(skip)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"height and width must be divisible by 4, got {tuple(x.shape[-2:])}")
        e1 = self.enc1(x)  # (B, c, H, W)
        e2 = self.enc2(F.max_pool2d(e1, 2))  # (B, 2c, H/2, W/2)
        b = self.bottom(F.max_pool2d(e2, 2))  # (B, 4c, H/4, W/4)
        d2 = self.dec2(self._join(self.up2(b), e2))  # (B, 2c, H/2, W/2)
        d1 = self.dec1(self._join(self.up1(d2), e1))  # (B, c, H, W)
        return self.out(d1)


def iou(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """Intersection over union of two boolean masks ``(..., H, W)``, pooled over all pixels.

    |P and T| / |P or T|; 1.0 when both masks are empty (nothing to find, nothing found).
    """
    if predicted.shape != target.shape:
        raise ValueError(f"predicted and target must have the same shape (..., H, W); got "
                         f"{tuple(predicted.shape)} and {tuple(target.shape)}")
    predicted, target = predicted.bool(), target.bool()
    union = (predicted | target).sum().item()
    return 1.0 if union == 0 else (predicted & target).sum().item() / union


# --------------------------------------------------------------------------- MNIST-1D models


class Logistic(nn.Module):
    """Multinomial logistic regression: ``x: (B, 40)`` -> logits ``(B, 10)``."""

    def __init__(self, length: int = 40, num_classes: int = 10):
        super().__init__()
        self.linear = nn.Linear(length, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class MLP1d(nn.Module):
    """Two hidden ReLU layers: ``x: (B, 40)`` -> logits ``(B, 10)``. No notion of position."""

    def __init__(self, length: int = 40, hidden_size: int = 100, num_classes: int = 10):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(length, hidden_size), nn.ReLU(),
            nn.Linear(hidden_size, hidden_size), nn.ReLU(),
            nn.Linear(hidden_size, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvNet1d(nn.Module):
    """Three 1-D convolutions (stride 2) and a linear read-out: ``x: (B, 40)`` -> ``(B, 10)``.

    Local windows and shared weights: the inductive bias of a convolutional network.
    """

    def __init__(self, length: int = 40, channels: int = 25, num_classes: int = 10):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv1d(1, channels, 5, stride=2, padding=1), nn.ReLU(),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
        )
        n = length
        for kernel, pad in ((5, 1), (3, 1), (3, 1)):
            n = output_size(n, kernel, stride=2, padding=pad)
        self.readout = nn.Linear(channels * n, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.convs(x[:, None, :])  # (B, C, 5)
        return self.readout(h.flatten(1))


class GRUClassifier(nn.Module):
    """A GRU reads the 40 values in order; a linear layer reads all its hidden states.

    ``x: (B, 40)`` -> logits ``(B, 10)``. Sequential processing with shared weights over
    time: a recurrent network's inductive bias.
    """

    def __init__(self, length: int = 40, hidden_size: int = 6, num_classes: int = 10):
        super().__init__()
        self.gru = nn.GRU(1, hidden_size, batch_first=True)
        self.readout = nn.Linear(length * hidden_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states, _ = self.gru(x[:, :, None])  # (B, 40, hidden_size)
        return self.readout(states.flatten(1))


# --------------------------------------------------------------------------- exercises' references


def shuffled_mlp(model: MLP1d, permutation: torch.Tensor) -> MLP1d:
    """A new :class:`MLP1d` that gives on ``x[:, permutation]`` the logits ``model`` gives on ``x``.

    The identity behind the shuffled-positions experiment: permuting the inputs of a fully
    connected network is the same as permuting the columns of its first weight matrix
    (:func:`permuted_input_weights`). model: an ``MLP1d`` with ``length`` inputs,
    permutation: ``(length,)``. Every other parameter is copied unchanged; ``model`` itself
    is left as it was, and the new model shares no tensor with it.
    """
    first = model.net[0]
    if permutation.shape != (first.in_features,):
        raise ValueError(f"expected a permutation of shape ({first.in_features},) for a model with "
                         f"{first.in_features} inputs, got shape {tuple(permutation.shape)}")
    moved = copy.deepcopy(model)
    with torch.no_grad():
        moved.net[0].weight.copy_(permuted_input_weights(first.weight, permutation))
    return moved


def batch_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Batch normalization in training mode (Ioffe and Szegedy, 2015), ``x: (B, C, H, W)`` -> same shape.

    ``y[b, c, h, w] = weight[c] * (x[b, c, h, w] - mean_c) / sqrt(var_c + eps) + bias[c]``, with
    ``mean_c`` and the biased variance ``var_c`` of channel c taken over the batch and all
    positions (B, H, W). weight, bias: ``(C,)``. Equals
    ``F.batch_norm(x, None, None, weight, bias, training=True, eps=eps)``.
    """
    if x.dim() != 4 or weight.shape != (x.shape[1],) or bias.shape != (x.shape[1],):
        raise ValueError(f"expected x: (B, C, H, W), weight: (C,) and bias: (C,); got x {tuple(x.shape)}, "
                         f"weight {tuple(weight.shape)} and bias {tuple(bias.shape)}")
    mean = x.mean(dim=(0, 2, 3), keepdim=True)  # (1, C, 1, 1)
    var = (x - mean).square().mean(dim=(0, 2, 3), keepdim=True)  # biased: divided by B * H * W
    return (x - mean) / torch.sqrt(var + eps) * weight[:, None, None] + bias[:, None, None]


def dense_block_forward(x: torch.Tensor, layers: Sequence[nn.Module]) -> torch.Tensor:
    """The forward pass of a dense block (Huang et al., 2017), written out from its layers.

    x: (B, C, H, W); ``layers``: a :class:`DenseBlock`'s ``.layers``, layer l mapping
    ``C + l * k`` channels to ``k``. Layer l is fed the concatenation, along the channels,
    of x and the outputs of all layers before it; the result is the concatenation of x and
    every layer's output, ``(B, C + len(layers) * k, H, W)``. Equals ``DenseBlock.forward``.
    """
    if x.dim() != 4:
        raise ValueError(f"expected x: (B, C, H, W), got shape {tuple(x.shape)}")
    features = [x]
    for layer in layers:
        features.append(layer(torch.cat(features, dim=1)))
    return torch.cat(features, dim=1)


def he_std(shape: Sequence[int]) -> float:
    """The standard deviation of He initialization (He et al., 2015) for a weight of this shape.

    ``sqrt(2 / fan_in)``, where ``fan_in`` is the number of inputs one output sums: ``C_in * kH * kW``
    for a convolution's weight ``(C_out, C_in, kH, kW)``, ``in`` for a linear layer's ``(out, in)``.
    With it, a layer followed by a ReLU keeps the variance of the signal; it is the standard
    deviation ``nn.init.kaiming_normal_(w, nonlinearity="relu")`` draws with.
    """
    shape = tuple(shape)
    if len(shape) < 2 or any(int(n) < 1 for n in shape):
        raise ValueError(f"expected a weight shape (C_out, C_in, *kernel) or (out, in) of positive sizes, "
                         f"got {shape}")
    fan_in = 1
    for n in shape[1:]:
        fan_in *= int(n)
    return (2.0 / fan_in) ** 0.5
