"""Hidden tests of chapter 3's exercises, with the plausible mistakes each must catch."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from dlpt import sequences
from dlpt.check import Exercise, check_cases, register

# ------------------------------------------------------------------- embed_one_hot


def _embed_off_by_one(tokens, weight):
    return sequences.embed_one_hot((tokens - 1) % weight.shape[0], weight)


def _embed_transposed(tokens, weight):
    return F.one_hot(tokens, weight.shape[1]).to(weight.dtype) @ weight.T


def _embed_bag_of_words(tokens, weight):
    return sequences.embed_one_hot(tokens, weight).sum(dim=-2)


_EMBED_MISTAKES = [
    (_embed_off_by_one, "every token got its neighbour's row: token t selects row t (indices start at 0)"),
    (_embed_transposed, "the weight is (V, D), one row per token: multiply one_hot (..., V) by weight, "
     "not by weight.T"),
    (_embed_bag_of_words, "the positions were summed: return one vector per token, shape (..., D)"),
]


def _check_embed(fn) -> int:
    g = torch.Generator().manual_seed(0)
    cases = [
        ("tokens (2, 3) from a vocabulary of 4, weight (4, 4)",
         (torch.tensor([[0, 1, 3], [2, 2, 0]]), torch.randn(4, 4, generator=g))),
        ("tokens (5,) from a vocabulary of 7, weight (7, 9)",
         (torch.tensor([6, 0, 1, 1, 4]), torch.randn(7, 9, generator=g))),
    ]
    return check_cases(fn, sequences.embed_one_hot, cases, _EMBED_MISTAKES, what="the embeddings")


register(Exercise("sequences.embed_one_hot", _check_embed, sequences.embed_one_hot, _EMBED_MISTAKES))

# ----------------------------------------------------------------------- lstm_step


def _lstm_order_ifog(x, h, c, w_ih, w_hh, b_ih, b_hh):
    gates = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
    i, f, o, g = gates.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def _lstm_no_input_gate(x, h, c, w_ih, w_hh, b_ih, b_hh):
    gates = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
    i, f, g, o = gates.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def _lstm_no_output_tanh(x, h, c, w_ih, w_hh, b_ih, b_hh):
    gates = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
    i, f, g, o = gates.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * c, c


def _lstm_no_hidden_bias(x, h, c, w_ih, w_hh, b_ih, b_hh):
    return sequences.lstm_step(x, h, c, w_ih, w_hh, b_ih, torch.zeros_like(b_hh))


_LSTM_MISTAKES = [
    (_lstm_order_ifog, "the gates are in the wrong order: PyTorch's rows are input, forget, cell "
     "candidate (g), output: i, f, g, o = gates.chunk(4, dim=1)"),
    (_lstm_no_input_gate, "the input gate is missing: c' = f * c + i * g"),
    (_lstm_no_output_tanh, "h' squashes the cell state first: h' = o * tanh(c')"),
    (_lstm_no_hidden_bias, "bias_hh is missing: both biases are added"),
]


def _check_lstm_step(fn) -> int:
    g = torch.Generator().manual_seed(0)
    cases = []
    for batch, inputs, hidden in ((1, 2, 3), (4, 5, 6)):
        args = (torch.randn(batch, inputs, generator=g), torch.randn(batch, hidden, generator=g),
                torch.randn(batch, hidden, generator=g), torch.randn(4 * hidden, inputs, generator=g),
                torch.randn(4 * hidden, hidden, generator=g), torch.randn(4 * hidden, generator=g),
                torch.randn(4 * hidden, generator=g))
        cases.append((f"x ({batch}, {inputs}), h and c ({batch}, {hidden}), weight_ih ({4 * hidden}, "
                      f"{inputs}), weight_hh ({4 * hidden}, {hidden}), biases ({4 * hidden},)", args))
    return check_cases(fn, sequences.lstm_step, cases, _LSTM_MISTAKES, what="(h, c)", atol=1e-5)


register(Exercise("sequences.lstm_step", _check_lstm_step, sequences.lstm_step, _LSTM_MISTAKES))

# ----------------------------------------------------------------------- attention


def _attention_unscaled(q, k, v, mask=None):
    return sequences.attention(q * math.sqrt(q.shape[-1]), k, v, mask)


def _attention_scaled_by_d(q, k, v, mask=None):
    return sequences.attention(q / math.sqrt(q.shape[-1]), k, v, mask)


def _attention_mask_after_softmax(q, k, v, mask=None):
    _, weights = sequences.attention(q, k, v)
    if mask is not None:
        weights = weights * mask
    return weights @ v, weights


def _attention_mask_inverted(q, k, v, mask=None):
    return sequences.attention(q, k, v, None if mask is None else ~mask)


def _attention_softmax_over_queries(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-2)
    return weights @ v, weights


_ATTENTION_MISTAKES = [
    (_attention_unscaled, "the scores are not scaled: divide q k^T by sqrt(D)"),
    (_attention_scaled_by_d, "divide the scores by sqrt(D), not by D"),
    (_attention_softmax_over_queries, "the softmax ran over the queries (dim -2); each query's weights "
     "must sum to one over the keys (dim -1)"),
    (_attention_mask_after_softmax, "the mask was applied after the softmax, so the remaining weights "
     "no longer sum to one: set masked scores to -inf before the softmax"),
    (_attention_mask_inverted, "the mask is inverted: True means the query may attend to that key"),
]


def _check_attention(fn) -> int:
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([4, 2])
    padding = (torch.arange(4) < lengths[:, None])[:, None, :].expand(2, 3, 4)  # (B, Tq, Tk)
    cases = [
        ("query (3, 4), keys (5, 4), values (5, 2), no mask",
         (torch.randn(3, 4, generator=g), torch.randn(5, 4, generator=g), torch.randn(5, 2, generator=g))),
        ("query (2, 3, 8), keys (2, 4, 8), values (2, 4, 3), a padding mask (2, 3, 4) for key lengths 4 and 2",
         (torch.randn(2, 3, 8, generator=g), torch.randn(2, 4, 8, generator=g), torch.randn(2, 4, 3, generator=g),
          padding)),
    ]
    return check_cases(fn, sequences.attention, cases, _ATTENTION_MISTAKES, what="(context, weights)", atol=1e-5)


register(Exercise("sequences.attention", _check_attention, sequences.attention, _ATTENTION_MISTAKES))

# ------------------------------------------------------------------- greedy decoding


def _greedy_always_bos(step, state, batch_size, max_len):
    token = torch.full((batch_size,), sequences.BOS, dtype=torch.int64)
    chosen = []
    for _ in range(max_len):
        logits, state = step(token, state)
        chosen.append(logits.argmax(dim=-1))
    return torch.stack(chosen, dim=1)


def _greedy_state_not_carried(step, state, batch_size, max_len):
    return sequences.greedy_decode(lambda token, _: (step(token, state)[0], state), state, batch_size, max_len)


def _greedy_keeps_bos(step, state, batch_size, max_len):
    ids = sequences.greedy_decode(step, state, batch_size, max_len - 1)
    return torch.cat([torch.full((batch_size, 1), sequences.BOS, dtype=torch.int64), ids], dim=1)


_GREEDY_MISTAKES = [
    (_greedy_always_bos, "every step was fed BOS: feed back the token just chosen"),
    (_greedy_state_not_carried, "the state returned by step was dropped: pass it to the next step"),
    (_greedy_keeps_bos, "BOS is the first input, not an output: return the max_len tokens chosen"),
]


def _toy_step(token: torch.Tensor, state: torch.Tensor):
    """A stand-in decoder with 7 tokens whose choice depends on the token fed in and on the state."""
    choice = (3 * token + state) % 7
    logits = 5.0 * F.one_hot(choice, 7).float() + 0.01 * torch.arange(7.0)
    return logits, state + token + 1


def _check_greedy(fn) -> int:
    cases = [
        ("a toy step function, batch of 1, state [0], max_len 5", (_toy_step, torch.tensor([0]), 1, 5)),
        ("a toy step function, batch of 3, states [0, 2, 5], max_len 8", (_toy_step, torch.tensor([0, 2, 5]), 3, 8)),
    ]
    return check_cases(fn, sequences.greedy_decode, cases, _GREEDY_MISTAKES, what="the chosen ids")


register(Exercise("sequences.greedy_decode", _check_greedy, sequences.greedy_decode, _GREEDY_MISTAKES))
