import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlpt import sequences


def test_embedding_as_one_hot_product_equals_lookup():
    weight = torch.randn(11, 4)
    tokens = torch.tensor([[0, 3, 10], [5, 5, 1]])
    torch.testing.assert_close(sequences.embed_one_hot(tokens, weight), nn.functional.embedding(tokens, weight))
    with pytest.raises(TypeError, match="int64"):
        sequences.embed_one_hot(tokens.float(), weight)


def test_rnn_cell_equals_pytorch_with_copied_weights():
    ours, theirs = sequences.RNNCell(3, 5), nn.RNNCell(3, 5)
    theirs.load_state_dict(ours.state_dict())
    x, h = torch.randn(4, 3), torch.randn(4, 5)
    torch.testing.assert_close(ours(x, h), theirs(x, h))


def test_lstm_cell_equals_pytorch_with_copied_weights_over_a_sequence():
    torch.manual_seed(0)
    ours, theirs = sequences.LSTMCell(3, 6), nn.LSTMCell(3, 6)
    theirs.load_state_dict(ours.state_dict())  # same names, same shapes, same gate order
    state_ours = state_theirs = None
    for x in torch.randn(5, 2, 3):
        state_ours = ours(x, state_ours)
        state_theirs = theirs(x, state_theirs)
        for a, b in zip(state_ours, state_theirs):
            torch.testing.assert_close(a, b)


def test_lstm_forget_gate_keeps_the_cell_state():
    """With the forget gate saturated open and the input gate shut, c passes unchanged."""
    cell = sequences.LSTMCell(2, 3)
    with torch.no_grad():
        cell.weight_ih.zero_()
        cell.weight_hh.zero_()
        cell.bias_hh.zero_()
        cell.bias_ih.copy_(torch.cat([torch.full((3,), -50.0), torch.full((3,), 50.0), torch.zeros(6)]))
    c = torch.randn(4, 3)
    _, c_next = cell(torch.randn(4, 2), (torch.zeros(4, 3), c))
    torch.testing.assert_close(c_next, c)


@pytest.mark.parametrize("batch_shape", [(), (2,), (2, 3)])
def test_attention_equals_pytorch(batch_shape):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(*batch_shape, 4, 8, generator=g)
    k = torch.randn(*batch_shape, 6, 8, generator=g)
    v = torch.randn(*batch_shape, 6, 5, generator=g)
    context, weights = sequences.attention(q, k, v)
    torch.testing.assert_close(context, F.scaled_dot_product_attention(q, k, v))
    torch.testing.assert_close(weights.sum(-1), torch.ones(*batch_shape, 4))


def test_attention_with_a_padding_mask_equals_pytorch_and_ignores_padding():
    g = torch.Generator().manual_seed(1)
    q, k, v = torch.randn(2, 3, 4, generator=g), torch.randn(2, 5, 4, generator=g), torch.randn(2, 5, 2, generator=g)
    lengths = torch.tensor([5, 2])
    mask = (torch.arange(5) < lengths[:, None])[:, None, :].expand(2, 3, 5)  # (B, Tq, Tk)
    context, weights = sequences.attention(q, k, v, mask)
    torch.testing.assert_close(context, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    assert torch.all(weights[1, :, 2:] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3))
    v_changed = v.clone()
    v_changed[1, 2:] = 100.0  # what sits in the padding cannot matter
    torch.testing.assert_close(sequences.attention(q, k, v_changed, mask)[0], context)


def test_attention_refuses_bad_shapes_and_masks():
    with pytest.raises(ValueError, match="same last dimension"):
        sequences.attention(torch.zeros(3, 4), torch.zeros(5, 3), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="same length Tk"):
        sequences.attention(torch.zeros(3, 4), torch.zeros(5, 4), torch.zeros(6, 2))
    with pytest.raises(TypeError, match="boolean"):
        sequences.attention(torch.zeros(3, 4), torch.zeros(5, 4), torch.zeros(5, 2), torch.ones(3, 5))
