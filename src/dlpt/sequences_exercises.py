"""Hidden tests of chapter 3's exercises, with the plausible mistakes each must catch.

Every checker runs the reader's function on cases chosen so that the formula and its
near-misses give different answers: shapes that are neither square nor divisible, float64
inputs, numerically hard inputs (scores and logits in the hundreds, where a hand-written
``exp`` overflows), inputs that must not be changed in place. The attack tests in
``tests/test_sequences_attacks.py`` hold the wrong solutions each one rejects.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dlpt import sequences
from dlpt.check import Exercise, Mismatch, call, check_cases, compare, describe, register

# ------------------------------------------------------------------- embed_one_hot


def _embed_off_by_one(tokens, weight):
    return sequences.embed_one_hot((tokens - 1) % weight.shape[0], weight)


def _embed_transposed(tokens, weight):
    return F.one_hot(tokens, weight.shape[1]).to(weight.dtype) @ weight.T


def _embed_bag_of_words(tokens, weight):
    return sequences.embed_one_hot(tokens, weight).sum(dim=-2)


def _embed_one_hot_only(tokens, weight):
    return F.one_hot(tokens, weight.shape[0]).to(weight.dtype)


_EMBED_MISTAKES = [
    (_embed_off_by_one, "every token got its neighbour's row: token t selects row t (indices start at 0)"),
    (_embed_transposed, "the weight is (V, D), one row per token: multiply one_hot (..., V) by weight, "
     "not by weight.T"),
    (_embed_bag_of_words, "the positions were summed: return one vector per token, shape (..., D)"),
    (_embed_one_hot_only, "these are the one-hot vectors themselves: multiply them by weight to get the "
     "embeddings (..., D)"),
]


def _check_embed(fn) -> int:
    g = torch.Generator().manual_seed(0)
    # Every case uses ids below D (so the transposed mistake runs and shows its hint), and two
    # leave out the vocabulary's last ids: F.one_hot(tokens) without num_classes is then too narrow.
    cases = [
        ("tokens (2, 3) that use only ids 0..3 of a vocabulary of V = 6, weight (6, 4)",
         (torch.tensor([[0, 1, 3], [2, 2, 0]]), torch.randn(6, 4, generator=g))),
        ("tokens (5,) from a vocabulary of V = 7, weight (7, 9)",
         (torch.tensor([6, 0, 1, 1, 4]), torch.randn(7, 9, generator=g))),
        ("tokens (2, 3, 2) that use only ids 0..3 of a vocabulary of V = 5, a float64 weight (5, 8)",
         (torch.randint(0, 4, (2, 3, 2), generator=g), torch.randn(5, 8, generator=g, dtype=torch.float64))),
        ("tokens (1, 4) that use only ids 0..5 of a vocabulary of V = 10, weight (10, 6)",
         (torch.tensor([[5, 0, 2, 5]]), torch.randn(10, 6, generator=g))),
    ]
    return check_cases(fn, sequences.embed_one_hot, cases, _EMBED_MISTAKES, what="the result")


register(Exercise("sequences.embed_one_hot", _check_embed, sequences.embed_one_hot, _EMBED_MISTAKES))

# ----------------------------------------------------------------------- lstm_step


def _lstm_gates(x, h, w_ih, w_hh, b_ih, b_hh):
    return x @ w_ih.T + b_ih + h @ w_hh.T + b_hh


def _lstm_order_ifog(x, h, c, w_ih, w_hh, b_ih, b_hh):
    i, f, o, g = _lstm_gates(x, h, w_ih, w_hh, b_ih, b_hh).chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def _lstm_no_input_gate(x, h, c, w_ih, w_hh, b_ih, b_hh):
    i, f, g, o = _lstm_gates(x, h, w_ih, w_hh, b_ih, b_hh).chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def _lstm_no_output_tanh(x, h, c, w_ih, w_hh, b_ih, b_hh):
    i, f, g, o = _lstm_gates(x, h, w_ih, w_hh, b_ih, b_hh).chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * c, c


def _lstm_no_hidden_bias(x, h, c, w_ih, w_hh, b_ih, b_hh):
    return sequences.lstm_step(x, h, c, w_ih, w_hh, b_ih, torch.zeros_like(b_hh))


def _lstm_sigmoid_candidate(x, h, c, w_ih, w_hh, b_ih, b_hh):
    i, f, g, o = _lstm_gates(x, h, w_ih, w_hh, b_ih, b_hh).chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.sigmoid(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def _lstm_h_from_old_cell(x, h, c, w_ih, w_hh, b_ih, b_hh):
    i, f, g, o = _lstm_gates(x, h, w_ih, w_hh, b_ih, b_hh).chunk(4, dim=1)
    h = torch.sigmoid(o) * torch.tanh(c)
    return h, torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)


def _lstm_swapped_outputs(x, h, c, w_ih, w_hh, b_ih, b_hh):
    h, c = sequences.lstm_step(x, h, c, w_ih, w_hh, b_ih, b_hh)
    return c, h


_LSTM_MISTAKES = [
    (_lstm_order_ifog, "the gates are in the wrong order: PyTorch's rows are input, forget, cell "
     "candidate (g), output: i, f, g, o = gates.chunk(4, dim=1)"),
    (_lstm_no_input_gate, "the input gate is missing: c' = f * c + i * g"),
    (_lstm_no_output_tanh, "h' squashes the cell state first: h' = o * tanh(c')"),
    (_lstm_no_hidden_bias, "bias_hh is missing: both biases are added"),
    (_lstm_sigmoid_candidate, "the candidate g goes through tanh (values in -1..1), not sigmoid: only "
     "the gates i, f, o are sigmoids"),
    (_lstm_h_from_old_cell, "h' was computed from the old cell state: update c first, then h' = o * tanh(c')"),
    (_lstm_swapped_outputs, "h and c are swapped: return (h', c') in that order"),
]


def _check_lstm_step(fn) -> int:
    g = torch.Generator().manual_seed(0)
    cases = []
    shapes = [(1, 2, 3, torch.float32, 1.0), (4, 5, 6, torch.float32, 1.0), (3, 5, 7, torch.float64, 1.0),
              (2, 3, 8, torch.float32, 40.0)]
    for batch, inputs, hidden, dtype, scale in shapes:
        x, h, c = (torch.randn(batch, n, generator=g, dtype=dtype) for n in (inputs, hidden, hidden))
        w_ih, w_hh = (scale * torch.randn(4 * hidden, n, generator=g, dtype=dtype) for n in (inputs, hidden))
        b_ih, b_hh = (torch.randn(4 * hidden, generator=g, dtype=dtype) for _ in range(2))
        kind = "float64 " if dtype == torch.float64 else ""
        hard = f"; the weights are scaled by {scale:g}, so most gates saturate" if scale != 1 else ""
        cases.append((f"{kind}x ({batch}, {inputs}), h and c ({batch}, {hidden}), weight_ih ({4 * hidden}, "
                      f"{inputs}), weight_hh ({4 * hidden}, {hidden}), biases ({4 * hidden},){hard}",
                      (x, h, c, w_ih, w_hh, b_ih, b_hh)))
    return check_cases(fn, sequences.lstm_step, cases, _LSTM_MISTAKES, what="(h, c)", atol=1e-5)


register(Exercise("sequences.lstm_step", _check_lstm_step, sequences.lstm_step, _LSTM_MISTAKES))

# ----------------------------------------------------------------------- attention


def _attention_unscaled(q, k, v, mask=None):
    return sequences.attention(q * math.sqrt(q.shape[-1]), k, v, mask)


def _attention_scaled_by_d(q, k, v, mask=None):
    return sequences.attention(q / math.sqrt(q.shape[-1]), k, v, mask)


def _attention_scaled_by_half_d(q, k, v, mask=None):
    d = q.shape[-1]
    return sequences.attention(q * math.sqrt(d) / (d**1 / 2), k, v, mask)


def _attention_divided_by_2d(q, k, v, mask=None):
    d = q.shape[-1]
    return sequences.attention(q * math.sqrt(d) / (2 * d), k, v, mask)


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
    (_attention_scaled_by_half_d, "the scores were divided by D / 2: D ** 1/2 means (D ** 1) / 2; "
     "write D ** 0.5 or math.sqrt(D)"),
    (_attention_divided_by_2d, "the scores were divided by 2 D: q @ k^T / D ** 1/2 means ((q @ k^T) / D) / 2; "
     "write / math.sqrt(D) or / D ** 0.5"),
    (_attention_softmax_over_queries, "the softmax ran over the queries (dim -2); each query's weights "
     "must sum to one over the keys (dim -1)"),
    (_attention_mask_after_softmax, "the mask was applied after the softmax, so the remaining weights "
     "no longer sum to one: set masked scores to -inf before the softmax"),
    (_attention_mask_inverted, "the mask is inverted: True means the query may attend to that key"),
]


def _signed_scores(values: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Scores of +-600 in one batch: a shift by the batch's largest score, or a mask applied after the
    softmax, or a masked score set to a finite -100, all give wrong (or nan) weights here."""
    query = torch.tensor([[[20.0], [-20.0]], [[20.0], [-20.0]]])  # (2, 2, 1)
    keys = torch.tensor([[[30.0], [29.0], [31.0]], [[30.0], [10.0], [8.0]]])  # (2, 3, 1)
    mask = torch.ones(2, 2, 3, dtype=torch.bool)
    mask[1, :, 0] = False  # the largest score when q > 0; the allowed ones lie below -100 when q < 0
    return query, keys, values, mask


def _check_attention(fn) -> int:
    g = torch.Generator().manual_seed(0)

    def rand(*shape):
        return torch.randn(*shape, generator=g)

    padding = (torch.arange(4) < torch.tensor([4, 2])[:, None])[:, None, :].expand(2, 3, 4)  # (B, Tq, Tk)
    banded = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1]], dtype=torch.bool)
    # Large scores, about 100: query and keys share a large component along a unit vector u, and the
    # keys' own parts are orthogonal to u, so the softmax still spreads its weight (the scores of one
    # query differ by about one) while exp(score) overflows float32.
    u = F.normalize(rand(2, 1, 6), dim=-1)
    noise = rand(2, 7, 6)
    noise = noise - (noise * u).sum(-1, keepdim=True) * u
    q_big, k_big = 15.65 * u + rand(2, 3, 6), 15.65 * u + noise
    long_padding = (torch.arange(7) < torch.tensor([7, 5])[:, None])[:, None, :].expand(2, 3, 7)
    cases = [
        ("query (3, 4), keys (5, 4), values (5, 2), no mask",
         (rand(3, 4), rand(5, 4), rand(5, 2))),
        ("query (2, 3, 8), keys (2, 4, 8), values (2, 4, 3), a boolean padding mask (2, 3, 4) for key lengths "
         "4 and 2", (rand(2, 3, 8), rand(2, 4, 8), rand(2, 4, 3), padding)),
        ("query (4, 5), keys (6, 5), values (6, 3), no mask", (rand(4, 5), rand(6, 5), rand(6, 3))),
        ("a 4-D batch: query (2, 3, 4, 6), keys (2, 3, 5, 6), values (2, 3, 5, 7), one boolean mask (4, 5) "
         "for every batch entry (it broadcasts)", (rand(2, 3, 4, 6), rand(2, 3, 5, 6), rand(2, 3, 5, 7), banded)),
        ("large scores (about 100, where exp overflows float32): query (2, 3, 6), keys (2, 7, 6), values (2, 7, 4), "
         "a boolean padding mask (2, 3, 7) for key lengths 7 and 5", (q_big, k_big, rand(2, 7, 4), long_padding)),
        ("scores in the hundreds of both signs (one query's near +600, another's near -600): query (2, 2, 1), "
         "keys (2, 3, 1), values (2, 3, 2), a boolean mask (2, 2, 3) that, in the second batch entry, hides the "
         "key with the largest score", _signed_scores(rand(2, 3, 2))),
    ]
    return check_cases(fn, sequences.attention, cases, _ATTENTION_MISTAKES, what="(context, weights)", atol=3e-5)


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
    ids = sequences.greedy_decode(step, state, batch_size, max_len)
    bos = torch.full((batch_size, 1), sequences.BOS, dtype=torch.int64)
    return torch.cat([bos, ids], dim=1)[:, :max_len]


def _greedy_time_major(step, state, batch_size, max_len):
    return sequences.greedy_decode(step, state, batch_size, max_len).T


_GREEDY_MISTAKES = [
    (_greedy_always_bos, "every step was fed BOS: feed back the token just chosen"),
    (_greedy_state_not_carried, "the state returned by step was dropped: pass it to the next step"),
    (_greedy_keeps_bos, "BOS is the first input, not an output: return the max_len tokens chosen"),
    (_greedy_time_major, "the result is (max_len, B): stack the chosen tokens along dim 1 to get (B, max_len)"),
]


class _ToyStep:
    """A stand-in decoder over 7 tokens whose choice depends on the token fed in and on the state.

    The state is a tensor (B,), or with ``pair`` a tuple of two; ``offset`` is added to every
    logit (a softmax does not change, a hand-written exp overflows). The best logit beats the
    others by about one, so sampling instead of the argmax shows.
    """

    def __init__(self, batch_size: int, offset: float = 0.0, pair: bool = False):
        self.batch_size, self.offset, self.pair = batch_size, offset, pair

    def __call__(self, token, state):
        if not isinstance(token, torch.Tensor) or token.dtype != torch.int64 or token.shape != (self.batch_size,):
            raise ValueError(f"step expects the current tokens as an int64 tensor of shape ({self.batch_size},), "
                             f"got {describe(token)}")
        if self.pair:
            s, t = state
            choice, state = (3 * token + s + 2 * t) % 7, (s + 1, t + token)
        else:
            choice, state = (3 * token + state) % 7, state + token + 1
        logits = self.offset + F.one_hot(choice, 7).float() + 0.01 * torch.arange(7.0)
        return logits, state


def _check_greedy(fn) -> int:
    cases = [
        ("a toy step function, batch of 1, state [0], max_len 5", (_ToyStep(1), torch.tensor([0]), 1, 5)),
        ("a toy step function, batch of 3, states [0, 2, 5], max_len 8",
         (_ToyStep(3), torch.tensor([0, 2, 5]), 3, 8)),
        ("a toy step function whose state is a tuple (s, t) of two tensors (3,), batch of 3, max_len 6",
         (_ToyStep(3, pair=True), (torch.tensor([1, 0, 4]), torch.tensor([0, 3, 3])), 3, 6)),
        ("a toy step function with large logits (about 100), batch of 2, states [1, 6], max_len 7",
         (_ToyStep(2, offset=100.0), torch.tensor([1, 6]), 2, 7)),
        ("a toy step function, batch of 4, states [0, 1, 2, 3], max_len 1",
         (_ToyStep(4), torch.tensor([0, 1, 2, 3]), 4, 1)),
    ]
    return check_cases(fn, sequences.greedy_decode, cases, _GREEDY_MISTAKES, what="the result")


register(Exercise("sequences.greedy_decode", _check_greedy, sequences.greedy_decode, _GREEDY_MISTAKES))

# ---------------------------------------------------------------- closing_brackets


def _brackets_no_stack(text):
    found, last_open = [], None
    for i, ch in enumerate(text):
        if ch == "(":
            last_open = i
        elif ch == ")" and last_open is not None:
            found.append((i, i - last_open))
    return found


def _brackets_unmatched_counted(text):
    found, open_at = [], []
    for i, ch in enumerate(text):
        if ch == "(":
            open_at.append(i)
        elif ch == ")":
            found.append((i, i - (open_at.pop() if open_at else -1)))
    return found


def _brackets_off_by_one(text):
    return [(i, d + 1) for i, d in sequences.closing_brackets(text)]


def _brackets_first_open(text):
    found, open_at = [], []
    for i, ch in enumerate(text):
        if ch == "(":
            open_at.append(i)
        elif ch == ")" and open_at:
            found.append((i, i - open_at[0]))
    return found


def _brackets_oldest_open(text):
    found, open_at = [], []
    for i, ch in enumerate(text):
        if ch == "(":
            open_at.append(i)
        elif ch == ")" and open_at:
            found.append((i, i - open_at.pop(0)))
    return found


_BRACKETS_MISTAKES = [
    (_brackets_no_stack, "each ')' was matched with the most recent '(' even when that one was already "
     "closed: keep a stack of the open positions and pop the one a ')' closes"),
    (_brackets_unmatched_counted, "a ')' with no open '(' before it has no match: skip it"),
    (_brackets_off_by_one, "the distances are one too large: a ')' at i that closes the '(' at j is at "
     "distance i - j, so '()' gives 1"),
    (_brackets_first_open, "each ')' was matched with the first '(' of the text: keep a stack of the open "
     "positions and pop the most recent one"),
    (_brackets_oldest_open, "each ')' closed the oldest open '(' (a queue); brackets nest, so it closes the "
     "most recent one: pop from the end of the stack, open_at.pop()"),
]


def _random_brackets(n: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    return "".join(rng.choice(list("ab c(((())))"), size=n))


_BRACKET_TEXTS = [
    "f(x)",
    "g(a, (b + c) * d) + h(e)",
    ")) a (b) (",
    "no brackets here",
    "((())) ()",
    "Return (x (or y)) if x) is set, (else z.",
    "f(a[0]) + g({b: 1}) [(c)] (x]y) {z(w}v)",  # only ( and ) count: [ ] { } are other characters
    _random_brackets(300, seed=0),
]


def _pairs_of(value: Any, inputs: str) -> list[tuple[int, int]]:
    """The reader's result as a list of int pairs, or a Mismatch that says what kind of value is wanted."""
    if not isinstance(value, (list, tuple)):
        raise Mismatch(f"on {inputs}, the result should be a list of (index, distance) pairs, got "
                       f"{describe(value)}")
    pairs = []
    for k, item in enumerate(value):
        try:
            first, second = item
            pair = (_as_int(first), _as_int(second))
        except (TypeError, ValueError):
            raise Mismatch(f"on {inputs}, entry {k} of the result should be a pair (index, distance) of two "
                           f"ints, got {describe(item)}") from None
        pairs.append(pair)
    return pairs


def _as_int(value: Any) -> int:
    if isinstance(value, torch.Tensor) and value.dim() == 0 and not value.is_floating_point():
        value = value.item()
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    raise TypeError("not an int")


def _show_pairs(pairs: list[tuple[int, int]]) -> str:
    return str(pairs) if len(pairs) <= 8 else f"{len(pairs)} pairs, starting {pairs[:4]}"


def _first_difference(got: list, expected: list) -> str:
    """Where the reader's pairs first differ from the answer, in terms of the text's ')'s."""
    got_at, expected_at = dict(got), dict(expected)
    for i, d in got:
        if i not in expected_at:
            return f"there is an entry for index {i}, but that character is not a ')' closing an open '('"
        if d != expected_at[i]:
            return f"the ')' at index {i} has distance {d}, expected {expected_at[i]}"
    for i, d in expected:
        if i not in got_at:
            return f"the ')' at index {i} (distance {d}) is missing"
    if len(got) != len(expected):
        return "some entries appear more than once"
    return "the pairs are not in the order of their ')'"


def _known(fn_outputs: list, mistakes: Sequence[tuple[Callable, str]], cases: list, same) -> list[tuple[list, str]]:
    """The mistakes whose outputs equal the reader's on every case: (their outputs, hint) pairs."""
    known = []
    for wrong, hint in mistakes:
        try:
            outputs = [wrong(*args) for _, args in cases]
        except Exception:  # this mistake crashes on some case: it cannot be what the reader did
            continue
        if all(same(got, w) for got, w in zip(fn_outputs, outputs)):
            known.append((outputs, hint))
    return known


def _check_brackets(fn) -> int:
    cases = []
    for text in _BRACKET_TEXTS:
        shown = repr(text) if len(text) <= 50 else f"a random text of {len(text)} characters: {text[:30]!r}..."
        cases.append((f"text {shown}", (text,)))
    outputs = [_pairs_of(call(fn, *args, inputs=inputs), inputs) for inputs, args in cases]
    known = _known(outputs, _BRACKETS_MISTAKES, cases, lambda a, b: a == [tuple(p) for p in b])
    for (inputs, (text,)), got in zip(cases, outputs):
        expected = sequences.closing_brackets(text)
        if got != expected:
            hint = f". Hint: {known[0][1]}" if known else ""
            raise Mismatch(f"on {inputs}, the result is wrong: expected {_show_pairs(expected)}, got "
                           f"{_show_pairs(got)} ({_first_difference(got, expected)}){hint}")
    return len(cases)


register(Exercise("sequences.closing_brackets", _check_brackets, sequences.closing_brackets, _BRACKETS_MISTAKES))

# ---------------------------------------------------------------- clip_grad_norm


def _global_norm(grads):
    return torch.sqrt(sum((g.double() ** 2).sum() for g in grads))


def _clip_each(grads, max_norm):
    return [g * torch.clamp(max_norm / g.norm(), max=1.0) for g in grads]


def _clip_scales_up(grads, max_norm):
    norm = _global_norm(grads)
    return [g * (max_norm / norm).to(g.dtype) for g in grads]


def _clip_elementwise(grads, max_norm):
    return [g.clamp(-max_norm, max_norm) for g in grads]


def _clip_sum_of_norms(grads, max_norm):
    norm = sum(g.norm() for g in grads)
    return [g * torch.clamp(max_norm / norm, max=1.0) for g in grads]


def _clip_squared_norm(grads, max_norm):
    norm = _global_norm(grads) ** 2
    return [g * torch.clamp(max_norm / norm, max=1.0).to(g.dtype) for g in grads]


_CLIP_MISTAKES = [
    (_clip_each, "each tensor was clipped by its own norm; clipping uses the global norm of all the "
     "gradients together, sqrt(sum of every squared entry), and scales them all by one factor"),
    (_clip_scales_up, "gradients whose global norm is already below max_norm were scaled up; they must "
     "come back unchanged: scale by min(1, max_norm / norm)"),
    (_clip_elementwise, "the entries were clamped one by one, which changes the gradient's direction; "
     "rescale all the tensors by max_norm / norm instead"),
    (_clip_sum_of_norms, "the global norm is not the sum of the tensors' norms: it is "
     "sqrt(sum_i ||g_i||^2), the norm of all the entries together"),
    (_clip_squared_norm, "the global norm is the square root of the sum of squares; the sum of squares "
     "alone was used"),
]


def _grads(g: torch.Generator, shapes, scale=1.0, dtype=torch.float32) -> list[torch.Tensor]:
    return [scale * torch.randn(shape, generator=g, dtype=dtype) for shape in shapes]


def _rescaled(grads: list[torch.Tensor], norms: Sequence[float]) -> list[torch.Tensor]:
    return [t * (n / t.norm()) for t, n in zip(grads, norms)]


def _check_clip(fn) -> int:
    g = torch.Generator().manual_seed(0)
    cases = [
        ("three gradients (4, 3), (3,), (2, 2, 2), each of norm 0.8 (global norm 1.39), max_norm 1.0",
         (_rescaled(_grads(g, [(4, 3), (3,), (2, 2, 2)]), [0.8, 0.8, 0.8]), 1.0)),
        ("two gradients (5,), (2, 3) of global norm 0.5, below max_norm 2 (an int)",
         (_rescaled(_grads(g, [(5,), (2, 3)]), [0.3, 0.4]), 2)),
        ("exploding gradients (5, 7), (7,) and a 0-d one, entries of about 1e6, max_norm 5.0",
         (_grads(g, [(5, 7), (7,), ()], scale=1e6), 5.0)),
        ("all-zero gradients (3, 3), (3,), max_norm 1.0",
         ([torch.zeros(3, 3), torch.zeros(3)], 1.0)),
        ("float64 gradients (6, 2), (4,) of norms 3 and 0.1, max_norm 0.5",
         (_rescaled(_grads(g, [(6, 2), (4,)], dtype=torch.float64), [3.0, 0.1]), 0.5)),
    ]
    outputs = []
    for inputs, (grads, max_norm) in cases:
        given = [t.clone() for t in grads]
        got = call(fn, given, max_norm, inputs=inputs)
        if len(given) != len(grads) or any(a.shape != b.shape or not torch.equal(a, b)
                                           for a, b in zip(given, grads)):
            raise Mismatch(f"on {inputs}, your function changed its input `grads` in place; leave the list and "
                           "its tensors as they are and return a new list of new tensors (g * scale, not "
                           "g.mul_(scale) or grads[i] = ...)")
        if not isinstance(got, (list, tuple)) or not all(isinstance(t, torch.Tensor) for t in got):
            raise Mismatch(f"on {inputs}, the result should be a list of {len(grads)} tensors, one per "
                           f"gradient, got {describe(got)}")
        if len(got) != len(grads):
            raise Mismatch(f"on {inputs}, the result should hold {len(grads)} tensors, one per gradient, "
                           f"got {len(got)}")
        if any(t is g or t.data_ptr() == g.data_ptr() for t, g in zip(got, given) if t.numel()):
            raise Mismatch(f"on {inputs}, the result shares a tensor with the input list: return new tensors "
                           "(g * scale, or g.clone() when nothing is clipped), so that changing the result "
                           "cannot change the gradients")
        outputs.append(list(got))

    def same(a, b):
        return len(a) == len(b) and all(x.shape == y.shape and torch.allclose(
            x.double(), y.double(), atol=1e-5, rtol=1e-4, equal_nan=True) for x, y in zip(a, b))

    known = _known(outputs, _CLIP_MISTAKES, cases, same)
    for k, ((inputs, (grads, max_norm)), got) in enumerate(zip(cases, outputs)):
        expected = sequences.clip_grad_norm([t.double() for t in grads], max_norm)
        for i, (have, want) in enumerate(zip(got, expected)):
            compare(have, want, inputs=inputs, what=f"gradient {i} of the result",
                    mistakes=[(wrong[k][i], hint) for wrong, hint in known])
    return len(cases)


register(Exercise("sequences.clip_grad_norm", _check_clip, sequences.clip_grad_norm, _CLIP_MISTAKES))

# ---------------------------------------------------------------- content_addressing


def _content_dot(query, keys, values, beta):
    weights = torch.softmax(beta * query @ keys.T, dim=-1)
    return weights @ values, weights


def _content_keys_only(query, keys, values, beta):
    weights = torch.softmax(beta * query @ F.normalize(keys, dim=-1).T, dim=-1)
    return weights @ values, weights


def _content_beta_after_softmax(query, keys, values, beta):
    weights = beta * torch.softmax(F.normalize(query, dim=-1) @ F.normalize(keys, dim=-1).T, dim=-1)
    return weights @ values, weights


def _content_softmax_first_dim(query, keys, values, beta):
    weights = torch.softmax(beta * F.normalize(query, dim=-1) @ F.normalize(keys, dim=-1).T, dim=0)
    return weights @ values, weights


def _content_divided_by_beta(query, keys, values, beta):
    weights = torch.softmax(F.normalize(query, dim=-1) @ F.normalize(keys, dim=-1).T / beta, dim=-1)
    return weights @ values, weights


def _content_scaled_by_sqrt_d(query, keys, values, beta):
    return sequences.content_addressing(query, keys, values, beta / math.sqrt(query.shape[-1]))


_CONTENT_MISTAKES = [
    (_content_dot, "the scores are raw dot products; content addressing uses the cosine similarity, "
     "q . k / (|q| |k|): normalize the query and the keys"),
    (_content_keys_only, "only the keys were normalized: the cosine divides by the query's length too"),
    (_content_beta_after_softmax, "beta multiplies the similarities before the softmax; after it, the "
     "weights no longer sum to one"),
    (_content_softmax_first_dim, "the softmax ran over the wrong dimension: each query's weights must sum to "
     "one over the N memory slots (dim -1)"),
    (_content_divided_by_beta, "beta sharpens the weights: multiply the similarities by beta, do not divide"),
    (_content_scaled_by_sqrt_d, "there is no 1 / sqrt(D) here: cosine similarities already lie in [-1, 1]"),
]


def _check_content(fn) -> int:
    g = torch.Generator().manual_seed(0)

    def rand(*shape, dtype=torch.float32):
        return torch.randn(*shape, generator=g, dtype=dtype)

    def uneven(keys):  # rows of lengths 0.3 to 4, so that the dot product and the cosine rank keys differently
        return keys * torch.linspace(0.3, 4.0, len(keys), dtype=keys.dtype)[torch.randperm(len(keys), generator=g)][
            :, None]

    sharp_keys = uneven(rand(10, 8))
    cases = [
        ("query (5,) of length 3, keys (6, 5) of lengths 0.3 to 4, values (6, 3), beta 2.0",
         (3 * F.normalize(rand(5), dim=-1), uneven(rand(6, 5)), rand(6, 3), 2.0)),
        ("query (4, 5), keys (6, 5) of lengths 0.3 to 4, values (6, 3), beta 5.0",
         (2.5 * rand(4, 5), uneven(rand(6, 5)), rand(6, 3), 5.0)),
        ("float64 query (3, 7), keys (3, 7), values (3, 2), beta 1.0",
         (rand(3, 7, dtype=torch.float64), uneven(rand(3, 7, dtype=torch.float64)), rand(3, 2, dtype=torch.float64),
          1.0)),
        ("a sharp lookup, beta 150.0 (exp(150) overflows float32): query (2, 8), each close to one of the keys "
         "(10, 8), values (10, 4)", (sharp_keys[[3, 7]] + 0.1 * rand(2, 8), sharp_keys, rand(10, 4), 150.0)),
        ("query (4,), keys (5, 4), values (5, 1): one number per slot, beta 3.0",
         (rand(4), uneven(rand(5, 4)), rand(5, 1), 3.0)),
        ("query (2, 3), a memory of one slot: keys (1, 3), values (1, 2), beta 1.0",
         (rand(2, 3), rand(1, 3), rand(1, 2), 1.0)),
    ]
    return check_cases(fn, sequences.content_addressing, cases, _CONTENT_MISTAKES, what="(read, weights)")


register(Exercise("sequences.content_addressing", _check_content, sequences.content_addressing, _CONTENT_MISTAKES))
