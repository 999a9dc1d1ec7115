import itertools
import math

import pytest
import torch

from dlpt import autoregressive as ar


def input_gradients(model, x: torch.Tensor, index) -> torch.Tensor:
    """d model(x)[index] / d x, for a float input x."""
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x)[index].sum(), x)
    return grad


def test_causal_mask_allows_the_past_and_the_present():
    mask = ar.causal_mask(5)
    assert mask.dtype == torch.bool and mask.shape == (5, 5)
    for t, s in itertools.product(range(5), range(5)):
        assert mask[t, s] == (s <= t)


@pytest.mark.parametrize("kernel_size, dilation", [(2, 1), (3, 1), (2, 4), (3, 2)])
def test_causal_conv1d_sees_exactly_its_past_window(kernel_size, dilation):
    torch.manual_seed(0)
    conv = ar.CausalConv1d(3, 4, kernel_size, dilation)
    t = 20
    grad = input_gradients(conv, torch.randn(1, 3, 32), (0, slice(None), t)).abs().sum(1)[0]  # (T,)
    reached = set(torch.nonzero(grad).flatten().tolist())
    assert reached == {t - i * dilation for i in range(kernel_size)}
    assert conv(torch.randn(2, 3, 32)).shape == (2, 4, 32)


def test_receptive_field_formula_equals_the_gradient_measurement():
    torch.manual_seed(0)
    dilations = [1, 2, 4, 8, 1, 2]
    stack = torch.nn.Sequential(*(ar.CausalConv1d(2, 2, 2, d) for d in dilations))
    grad = input_gradients(stack, torch.randn(1, 2, 64), (0, slice(None), 63)).abs().sum(1)[0]
    first = torch.nonzero(grad).min().item()
    assert 63 - first + 1 == ar.receptive_field(2, dilations) == 1 + 1 + 2 + 4 + 8 + 1 + 2
    assert ar.receptive_field(3, [1, 2]) == 7


def test_causal_conv1d_names_the_expected_shape():
    with pytest.raises(ValueError, match=r"\(B, C, T\) with C = 3, got \(2, 5, 10\)"):
        ar.CausalConv1d(3, 4, 2)(torch.randn(2, 5, 10))


def test_mu_law_round_trip_and_range():
    x = torch.linspace(-1, 1, 10001)
    q = ar.mu_law_encode(x)
    assert q.dtype == torch.int64 and q.min() == 0 and q.max() == 255
    assert torch.all(q[1:] >= q[:-1])  # monotone
    assert ar.mu_law_encode(torch.tensor([-1.0, 0.0, 1.0])).tolist() == [0, 128, 255]
    # decoding returns the level's value; the error is at most half a level, measured in companded space
    error = (ar.mu_law_decode(q) - x).abs()
    assert error[x.abs() < 0.01].max() < 5e-4  # fine levels near zero
    assert error.max() < 0.04  # coarse near +-1
    levels = torch.arange(256)
    assert torch.equal(ar.mu_law_encode(ar.mu_law_decode(levels)), levels)


def bin_centres(num_bins: int) -> torch.Tensor:
    return torch.linspace(-1, 1, num_bins)


@pytest.mark.parametrize("mean, log_scale", [(0.0, -2.0), (0.97, -4.0), (-1.3, -1.0), (0.2, -6.0)])
def test_logistic_bin_probabilities_sum_to_one(mean, log_scale):
    p = ar.logistic_bin_probability(bin_centres(256), torch.tensor(mean), torch.tensor(log_scale))
    assert torch.all(p >= 0)
    torch.testing.assert_close(p.sum(), torch.tensor(1.0))


def test_mixture_log_prob_sums_to_one_over_all_bins_and_matches_the_components():
    torch.manual_seed(0)
    B, K, num_bins = 3, 4, 256
    logit_probs, means = torch.randn(B, K, 1), torch.rand(B, K, 1) * 2.4 - 1.2
    log_scales = torch.rand(B, K, 1) * -4 - 1
    x = bin_centres(num_bins)[None, :].expand(B, num_bins)  # every bin, for each of B rows
    expand = [t.expand(B, K, num_bins) for t in (logit_probs, means, log_scales)]
    log_p = ar.discretized_logistic_mixture_log_prob(x, *expand, num_bins=num_bins)
    assert log_p.shape == (B, num_bins)
    torch.testing.assert_close(log_p.exp().sum(1), torch.ones(B), atol=1e-4, rtol=0)
    direct = (torch.softmax(logit_probs, 1) * ar.logistic_bin_probability(x[:, None], *expand[1:])).sum(1)
    torch.testing.assert_close(log_p.exp(), direct, atol=1e-6, rtol=1e-4)


def test_mixture_log_prob_is_finite_far_in_the_tails_and_checks_shapes():
    x = torch.tensor([[-1.0, 0.0, 1.0]])
    params = torch.zeros(1, 1, 3)
    log_p = ar.discretized_logistic_mixture_log_prob(x, params, params + 0.0, params - 9.0)
    assert torch.all(torch.isfinite(log_p))
    with pytest.raises(ValueError, match="share a shape"):
        ar.discretized_logistic_mixture_log_prob(x, params, params, torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match=r"\(B, K, \.\.\.\) = \(1, K, 3\)"):
        ar.discretized_logistic_mixture_log_prob(x, *(torch.zeros(1, 2, 4),) * 3)


def test_masked_conv_masks_in_raster_order():
    a = ar.MaskedConv2d(1, 1, 3, "A").mask[0, 0]
    b = ar.MaskedConv2d(1, 1, 3, "B").mask[0, 0]
    assert a.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert b.tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]
    with pytest.raises(ValueError, match="mask_type"):
        ar.MaskedConv2d(1, 1, 3, "C")


def test_masked_conv_colour_groups_order_r_g_b_at_the_centre():
    a = ar.MaskedConv2d(3, 6, 3, "A", color_groups=3).mask[:, :, 1, 1]  # (out, in)
    b = ar.MaskedConv2d(3, 6, 3, "B", color_groups=3).mask[:, :, 1, 1]
    # outputs 0-1 are R, 2-3 G, 4-5 B; inputs 0, 1, 2 are R, G, B
    assert a.tolist() == [[0, 0, 0], [0, 0, 0], [1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 0]]
    assert b.tolist() == [[1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 0], [1, 1, 1], [1, 1, 1]]


def test_pixelcnn_output_depends_only_on_earlier_pixels():
    torch.manual_seed(0)
    model = ar.PixelCNN(channels=4, num_layers=3)
    for i, j in [(0, 0), (3, 4), (7, 7), (5, 0)]:
        grad = input_gradients(model, torch.rand(1, 1, 8, 8), (0, 0, i, j))[0, 0]
        later = torch.arange(64).view(8, 8) >= i * 8 + j
        assert torch.all(grad[later] == 0), (i, j)
    # the blind spot: with 3x3 type-B layers a pixel above and to the right is not reached
    grad = input_gradients(model, torch.rand(1, 1, 8, 8), (0, 0, 5, 2))[0, 0]
    assert grad[4, 1] != 0 and grad[2, 7] == 0


def test_pixelcnn_sample_makes_binary_images():
    torch.manual_seed(0)
    x = ar.PixelCNN(channels=4).sample(3, 4, 5, generator=torch.Generator().manual_seed(0))
    assert x.shape == (3, 1, 4, 5) and set(x.unique().tolist()) <= {0.0, 1.0}


def test_multiscale_model_is_a_normalized_distribution():
    torch.manual_seed(0)
    model = ar.MultiscalePixelModel(channels=4, num_layers=2)
    images = torch.tensor(list(itertools.product([0.0, 1.0], repeat=4))).view(16, 1, 2, 2)
    total = model.log_prob(images).exp().sum()
    torch.testing.assert_close(total, torch.tensor(1.0))
    with pytest.raises(ValueError, match="power of two"):
        model.log_prob(torch.zeros(1, 1, 6, 6))


def test_multiscale_sampling_counts_its_evaluations():
    torch.manual_seed(0)
    model = ar.MultiscalePixelModel(channels=4, num_layers=2)
    for size in [1, 2, 8, 32]:
        images, evaluations = model.sample(2, size)
        assert images.shape == (2, 1, size, size)
        assert evaluations == ar.multiscale_evaluations(size) == 1 + 3 * int(math.log2(size))
    assert ar.multiscale_evaluations(16, base=4) == 16 + 6
    with pytest.raises(ValueError, match="powers of two"):
        ar.multiscale_evaluations(12)


def test_wavenet_is_causal_and_window_sampling_equals_full_history():
    torch.manual_seed(0)
    model = ar.WaveNet(levels=16, channels=4, skip_channels=8, num_layers=4)
    assert model.receptive_field == 16
    x = torch.randint(0, 16, (1, 40))
    changed = x.clone()
    changed[0, 25] = (x[0, 25] + 1) % 16
    a, b = model(x), model(changed)
    assert torch.equal(a[..., :25], b[..., :25])  # the past does not see step 25
    assert not torch.equal(a[..., 25], b[..., 25])
    assert torch.equal(a[..., 25 + 16:], b[..., 25 + 16:])  # beyond the receptive field
    prompt = torch.randint(0, 16, (2, 20))
    windowed = model.generate(prompt, 30, window=True, generator=torch.Generator().manual_seed(1))
    full = model.generate(prompt, 30, window=False, generator=torch.Generator().manual_seed(1))
    assert torch.equal(windowed, full) and windowed.shape == (2, 50)


@pytest.mark.parametrize("model_class", [ar.TransformerLM, ar.CausalConvLM])
def test_language_models_are_causal(model_class):
    torch.manual_seed(0)
    model = model_class(20)
    model.eval()
    x = torch.randint(0, 20, (2, 30))
    changed = x.clone()
    changed[:, 12] = (x[:, 12] + 3) % 20
    a, b = model(x), model(changed)
    assert a.shape == (2, 30, 20)
    torch.testing.assert_close(a[:, :12], b[:, :12])
    assert not torch.allclose(a[:, 12], b[:, 12])


def test_causal_self_attention_weights_are_lower_triangular_and_sum_to_one():
    torch.manual_seed(0)
    layer = ar.CausalSelfAttention(16, num_heads=4)
    layer(torch.randn(2, 7, 16))
    w = layer.weights
    assert w.shape == (2, 4, 7, 7)
    assert torch.all(w.triu(1) == 0)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, 7))
    with pytest.raises(ValueError, match="divisible"):
        ar.CausalSelfAttention(10, num_heads=4)


def test_sinusoidal_positions():
    p = ar.sinusoidal_positions(50, 8)
    assert p.shape == (50, 8)
    assert torch.equal(p[0], torch.tensor([0.0, 1.0] * 4))
    torch.testing.assert_close(p[:, 0], torch.sin(torch.arange(50.0)))


def test_chunked_evaluation_equals_one_pass_for_bounded_context_models():
    from dlpt import sequences

    torch.manual_seed(0)
    ids = torch.randint(0, 9, (90,))
    conv = ar.CausalConvLM(9, channels=8, num_layers=3)  # sees 8 characters
    transformer = ar.TransformerLM(9, embed_dim=16, num_heads=2, num_layers=1, context=200)  # sees everything here
    for model in (conv, transformer):
        model.eval()
        chunked = sequences.next_char_losses(model, ids, length=16)
        direct = torch.nn.functional.cross_entropy(model(ids[None, :-1])[0], ids[1:], reduction="none") / math.log(2)
        torch.testing.assert_close(chunked, direct, atol=1e-5, rtol=1e-5)


def test_transformer_is_causal_by_gradients():
    torch.manual_seed(0)
    model = ar.TransformerLM(11, embed_dim=16, num_heads=2, num_layers=2)
    embedded = {}
    hook = model.embed.register_forward_hook(lambda module, inputs, output: embedded.update(e=output))
    logits = model(torch.randint(0, 11, (1, 12)))
    hook.remove()
    sensitivity = torch.stack([
        torch.autograd.grad(logits[0, t].sum(), embedded["e"], retain_graph=True)[0][0].norm(dim=-1)
        for t in range(12)
    ])  # (output t, input s)
    mask = ar.causal_mask(12)
    assert torch.all(sensitivity[~mask] == 0) and torch.all(sensitivity[mask] > 0)


@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_masked_conv2d_is_causal_by_gradients(mask_type):
    torch.manual_seed(0)
    layer = ar.MaskedConv2d(2, 3, 5, mask_type)
    grad = input_gradients(layer, torch.randn(1, 2, 9, 9), (0, slice(None), 4, 4)).abs().sum(1)[0]  # (9, 9)
    order = torch.arange(81).view(9, 9)
    assert torch.all(grad[order > 4 * 9 + 4] == 0)  # nothing later in raster order
    assert (grad[4, 4] != 0) == (mask_type == "B")  # the centre: hidden by A, shown by B
    assert torch.all(grad[2:4, 2:7] != 0) and torch.all(grad[4, 2:4] != 0)  # the whole earlier window


def test_stack_masks_of_the_gated_pixelcnn():
    assert ar.vertical_stack_mask(3, first=True).tolist() == [[1, 1, 1], [0, 0, 0], [0, 0, 0]]
    assert ar.vertical_stack_mask(3, first=False).tolist() == [[1, 1, 1], [1, 1, 1], [0, 0, 0]]
    assert ar.horizontal_stack_mask(5, first=True).tolist() == [[1, 1, 0, 0, 0]]
    assert ar.horizontal_stack_mask(5, first=False).tolist() == [[1, 1, 1, 0, 0]]
    with pytest.raises(ValueError, match="odd"):
        ar.vertical_stack_mask(4, first=True)


@pytest.mark.parametrize("num_layers", [1, 2, 4])
def test_gated_pixelcnn_sees_every_earlier_pixel_in_its_window_and_nothing_later(num_layers):
    torch.manual_seed(0)
    model = ar.GatedPixelCNN(channels=4, num_layers=num_layers)
    size, (i, j) = 12, (6, 5)
    reached = input_gradients(model, torch.rand(1, 1, size, size), (0, 0, i, j))[0, 0] != 0
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    earlier = (rows < i) | ((rows == i) & (cols < j))
    window = (rows >= i - num_layers) & ((cols - j).abs() <= num_layers)
    assert not (reached & ~earlier).any()  # causal
    assert reached[earlier & window].all()  # no blind spot: every earlier pixel in the window
    assert not (reached & ~window).any()


def test_gated_pixelcnn_and_sample_pixels_make_binary_images_on_the_models_device():
    torch.manual_seed(0)
    model = ar.GatedPixelCNN(channels=4, num_layers=2)
    x = model.sample(2, 3, 4, generator=torch.Generator().manual_seed(1))
    again = ar.sample_pixels(model, 2, 3, 4, generator=torch.Generator().manual_seed(1))
    assert x.shape == (2, 1, 3, 4) and set(x.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(x, again)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\) with C = 1"):
        model(torch.rand(2, 3, 4, 4))


def test_wavenet_refuses_levels_out_of_range_and_float_input():
    model = ar.WaveNet(levels=16, channels=4, skip_channels=8, num_layers=2)
    with pytest.raises(ValueError, match="levels must lie in 0..15"):
        model(torch.tensor([[0, 3, 16]]))
    with pytest.raises(ValueError, match="int64 levels of shape"):
        model(torch.rand(1, 5))


def test_attention_layer_and_positions_refuse_bad_shapes():
    with pytest.raises(ValueError, match=r"expected x of shape \(B, T, 16\)"):
        ar.CausalSelfAttention(16, num_heads=4)(torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match="even"):
        ar.sinusoidal_positions(4, 7)
