import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlpt import convnets


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize(("c_in", "c_out"), [(1, 1), (3, 8)])
@pytest.mark.parametrize(
    ("kernel", "stride", "padding"), [((3, 3), 1, 0), ((3, 3), 2, 1), ((2, 5), 1, 2), ((1, 1), 3, 0)]
)
@pytest.mark.parametrize("use_bias", [True, False])
def test_conv2d_equals_pytorch(batch, c_in, c_out, kernel, stride, padding, use_bias):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, c_in, 9, 11, generator=g)
    weight = torch.randn(c_out, c_in, *kernel, generator=g)
    bias = torch.randn(c_out, generator=g) if use_bias else None
    torch.testing.assert_close(
        convnets.conv2d(x, weight, bias, stride, padding), F.conv2d(x, weight, bias, stride, padding)
    )


def test_conv2d_gradients_equal_pytorch():
    g = torch.Generator().manual_seed(0)  # float64: the comparison is about the maths, not rounding
    x = torch.randn(2, 3, 6, 6, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    ours = torch.autograd.grad(convnets.conv2d(x, w, padding=1).square().sum(), (x, w))
    theirs = torch.autograd.grad(F.conv2d(x, w, padding=1).square().sum(), (x, w))
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b)


def test_conv2d_refuses_bad_shapes_naming_them():
    with pytest.raises(ValueError, match=r"x: \(B, C_in, H, W\).*x \(3, 8, 8\)"):
        convnets.conv2d(torch.zeros(3, 8, 8), torch.zeros(1, 3, 3, 3))
    with pytest.raises(ValueError, match=r"x has 2 channels but weight expects C_in = 3"):
        convnets.conv2d(torch.zeros(1, 2, 8, 8), torch.zeros(1, 3, 3, 3))


@pytest.mark.parametrize("n", [5, 8, 13])
@pytest.mark.parametrize("kernel", [1, 3, 4])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("padding", [0, 1, 2])
@pytest.mark.parametrize("dilation", [1, 2])
def test_output_size_matches_a_real_convolution(n, kernel, stride, padding, dilation):
    span = dilation * (kernel - 1) + 1
    if n + 2 * padding < span:
        with pytest.raises(ValueError, match="does not fit"):
            convnets.output_size(n, kernel, stride, padding, dilation)
        return
    conv = nn.Conv1d(1, 1, kernel, stride=stride, padding=padding, dilation=dilation)
    assert convnets.output_size(n, kernel, stride, padding, dilation) == conv(torch.zeros(1, 1, n)).shape[-1]


def test_avg_pool2d_is_a_fixed_convolution_equal_to_pytorch():
    x = torch.randn(2, 3, 8, 6)
    torch.testing.assert_close(convnets.avg_pool2d(x, 2), F.avg_pool2d(x, 2))


def test_parameter_counts_match_pytorch_modules():
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    assert convnets.conv_params(3, 16, 5) == count(nn.Conv2d(3, 16, 5))
    assert convnets.dense_params(3, 4, 8, 8) == count(nn.Linear(3 * 64, 4 * 64))
    assert convnets.locally_connected_params(3, 4, 8, 8, 3) == 64 * count(nn.Conv2d(3, 4, 3))


@pytest.mark.parametrize("model", [convnets.Logistic, convnets.MLP1d, convnets.ConvNet1d, convnets.GRUClassifier])
def test_mnist1d_models_map_sequences_to_logits(model):
    assert model()(torch.randn(7, 40)).shape == (7, 10)


def test_mlp_ignores_order_but_the_convnet_does_not():
    """Permuting the inputs of an MLP is the same as permuting its first weights; not so for a CNN."""
    torch.manual_seed(0)
    perm = torch.randperm(40)
    x = torch.randn(5, 40)
    mlp = convnets.MLP1d()
    shuffled = convnets.MLP1d()
    shuffled.load_state_dict(mlp.state_dict())
    with torch.no_grad():
        shuffled.net[0].weight.copy_(convnets.permuted_input_weights(mlp.net[0].weight, perm))
    torch.testing.assert_close(shuffled(x[:, perm]), mlp(x))


def test_locally_connected_with_tied_weights_is_a_convolution():
    local = convnets.LocallyConnected2d(3, 4, 6, 5, kernel_size=3)
    kernel, bias = torch.randn(4, 3, 3, 3), torch.randn(4)
    with torch.no_grad():
        local.weight.copy_(kernel.reshape(4, -1).expand(30, 4, 27))
        local.bias.copy_(bias.expand(30, 4))
    x = torch.randn(2, 3, 6, 5)
    torch.testing.assert_close(local(x), F.conv2d(x, kernel, bias, padding=1))
    expected = convnets.locally_connected_params(3, 4, 6, 5, 3)
    assert sum(p.numel() for p in local.parameters()) == expected
    with pytest.raises(ValueError, match="odd"):
        convnets.LocallyConnected2d(3, 4, 6, 5, kernel_size=2)


@pytest.mark.parametrize(
    ("kernels", "dilations", "expected"),
    [([3], None, 3), ([3] * 4, None, 9), ([3] * 4, [1, 2, 4, 8], 31), ([5, 3], None, 7), ([3] * 3, [1, 2, 4], 15)],
)
def test_receptive_field_formula(kernels, dilations, expected):
    assert convnets.receptive_field(kernels, dilations) == expected


@pytest.mark.parametrize(("depth", "growth"), [(1, 1), (3, 1), (5, 1), (3, 2), (4, 2)])
def test_receptive_field_matches_a_gradient_measurement(depth, growth):
    torch.manual_seed(0)
    stack = convnets.conv_stack(depth, channels=2, dilation_growth=growth)
    stack.insert(0, nn.Conv2d(1, 2, 1))  # a 1x1 stem: one input channel, field unchanged
    expected = convnets.receptive_field([3] * depth, [growth**layer for layer in range(depth)])
    assert convnets.measured_receptive_field(stack, size=2 * expected + 1) == expected


def test_receptive_field_with_strides_matches_a_real_network():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 5, stride=2), nn.Conv2d(2, 2, 3, stride=1), nn.Conv2d(2, 2, 3, stride=1))
    expected = convnets.receptive_field([5, 3, 3], strides=[2, 1, 1])
    assert expected == 13
    assert convnets.measured_receptive_field(net, size=41) == expected
    with pytest.raises(ValueError, match="3 kernel sizes, 2 dilations"):
        convnets.receptive_field([3, 3, 3], [1, 2])


def test_activation_stds_has_one_entry_per_relu():
    stack = convnets.conv_stack(4, channels=3)
    assert len(convnets.activation_stds(stack, torch.randn(2, 3, 8, 8))) == 4


def test_residual_block_is_the_identity_plus_a_change():
    block = convnets.ResidualBlock(3).eval()
    x = torch.rand(2, 3, 5, 5)  # non-negative, so relu(x + 0) == x
    with torch.no_grad():
        block.bn2.weight.zero_()  # F(x) = 0
        block.bn2.bias.zero_()
        torch.testing.assert_close(block(x), x)
        plain = convnets.PlainBlock(3).eval()
        plain.load_state_dict(block.state_dict())
        assert plain(x).abs().max() == 0  # the plain block without its skip outputs relu(0)


@pytest.mark.parametrize("residual", [True, False])
def test_deep_conv_net_shapes_and_depth(residual):
    net = convnets.DeepConvNet(8, residual=residual)
    assert net(torch.randn(3, 1, 8, 8)).shape == (3, 10)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) + 1 == 8  # depth counts the convolutions and the linear head
    with pytest.raises(ValueError, match="even"):
        convnets.DeepConvNet(7, residual=residual)


def test_dense_block_concatenates_and_keeps_its_input():
    block = convnets.DenseBlock(5, growth_rate=3, num_layers=4)
    x = torch.randn(2, 5, 6, 6)
    out = block(x)
    assert out.shape == (2, 5 + 4 * 3, 6, 6)
    torch.testing.assert_close(out[:, :5], x)  # the input passes through untouched
    assert [layer[2].in_channels for layer in block.layers] == [5, 8, 11, 14]


@pytest.mark.parametrize("skips", [True, False])
def test_unet_maps_an_image_to_per_pixel_logits(skips):
    net = convnets.UNet(in_channels=1, num_classes=3, channels=4, skips=skips)
    assert net(torch.randn(2, 1, 16, 12)).shape == (2, 3, 16, 12)
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.randn(1, 1, 10, 10))


def test_unet_without_skips_ignores_the_encoder_features_at_full_resolution():
    """Without skips, the output depends on the input only through the bottleneck."""
    torch.manual_seed(0)
    net = convnets.UNet(channels=4, skips=False).eval()
    x = torch.randn(1, 1, 16, 16)
    captured = {}
    net.enc1.register_forward_hook(lambda m, i, o: captured.setdefault("e1", o))
    net(x)
    e1 = captured["e1"]
    joined = net._join(net.up1(torch.zeros(1, 8, 8, 8)), e1)
    assert joined[:, 4:].abs().sum() == 0
    assert convnets.UNet(channels=4, skips=True)._join(torch.zeros(1, 4, 16, 16), e1)[:, 4:].equal(e1)


def test_iou():
    a = torch.tensor([[1, 1, 0, 0]], dtype=torch.bool)
    b = torch.tensor([[0, 1, 1, 0]], dtype=torch.bool)
    assert convnets.iou(a, b) == pytest.approx(1 / 3)
    assert convnets.iou(a, a) == 1.0
    assert convnets.iou(torch.zeros(2, 2), torch.zeros(2, 2)) == 1.0


def test_iou_refuses_masks_of_different_shapes():
    with pytest.raises(ValueError, match=r"same shape \(\.\.\., H, W\); got \(2, 4, 4\) and \(4, 4\)"):
        convnets.iou(torch.zeros(2, 4, 4, dtype=torch.bool), torch.zeros(4, 4, dtype=torch.bool))


def test_locally_connected_layer_names_the_shape_it_expects():
    layer = convnets.LocallyConnected2d(3, 4, 6, 6, 3)
    with pytest.raises(ValueError, match=r"expected x of shape \(B, 3, 6, 6\), got \(1, 3, 5, 6\)"):
        layer(torch.randn(1, 3, 5, 6))
