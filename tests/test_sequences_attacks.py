"""Chapter 3's checkers under attack: plausible wrong solutions a learner writes, each rejected
(with the expected words in the message), and correct variants (float64, loops, NumPy, other
formulations), each accepted. Also unit tests of the blocks added for the new exercises."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlpt import check, sequences
from dlpt import sequences_exercises as ex
from dlpt.check import ExerciseFailed

BOS = sequences.BOS


def rejected(name: str, fn, timeout: float = 5.0) -> str:
    with pytest.raises(ExerciseFailed) as info:
        check.exercise(name, fn, timeout=timeout)
    return str(info.value)


def accepted(name: str, fn, capsys) -> None:
    check.exercise(name, fn)
    assert capsys.readouterr().out.startswith(f"✓ {name}: all ")


# --------------------------------------------------------------------------- embed_one_hot


def embed_no_num_classes(tokens, weight):
    return F.one_hot(tokens).to(weight.dtype) @ weight


def embed_num_classes_from_max(tokens, weight):
    return F.one_hot(tokens, int(tokens.max()) + 1).to(weight.dtype) @ weight


def embed_float32_cast(tokens, weight):
    return F.one_hot(tokens, weight.shape[0]).float() @ weight


def embed_no_cast(tokens, weight):
    return F.one_hot(tokens, weight.shape[0]) @ weight


def embed_flattened(tokens, weight):
    return F.one_hot(tokens.flatten(), weight.shape[0]).to(weight.dtype) @ weight


def embed_transposed_lookup(tokens, weight):
    return weight.T[tokens]


def embed_num_classes_d(tokens, weight):
    return F.one_hot(tokens, weight.shape[1]).to(weight.dtype) @ weight


def embed_negative_index(tokens, weight):
    return weight[tokens - 1]


def embed_lookup_summed(tokens, weight):
    return weight[tokens].sum(-2)


def embed_eye_float32(tokens, weight):
    return torch.eye(weight.shape[0])[tokens] @ weight


def embed_output_transposed(tokens, weight):
    return (F.one_hot(tokens, weight.shape[0]).to(weight.dtype) @ weight).transpose(-1, -2)


def embed_squeezed(tokens, weight):
    return weight[tokens].squeeze()


EMBED_WRONG = [
    (embed_squeezed, "tokens (1, 4)"),
    (embed_no_num_classes, "only ids 0..3"),
    (embed_num_classes_from_max, "raised RuntimeError"),
    (embed_float32_cast, "float64 weight"),
    (embed_no_cast, "raised RuntimeError"),
    (embed_flattened, "should have shape (2, 3, 4)"),
    (embed_transposed_lookup, "should have shape"),
    (embed_num_classes_d, "raised RuntimeError"),
    (embed_negative_index, "its neighbour's row"),
    (embed_lookup_summed, "the positions were summed"),
    (embed_eye_float32, "float64 weight"),
    (embed_output_transposed, "should have shape (2, 3, 4)"),
]


def embed_lookup(tokens, weight):
    return weight[tokens]


def embed_functional(tokens, weight):
    return F.embedding(tokens, weight)


def embed_float64(tokens, weight):
    return F.one_hot(tokens, len(weight)).double() @ weight.double()


def embed_loop(tokens, weight):
    rows = [weight[t] for t in tokens.flatten().tolist()]
    return torch.stack(rows).reshape(*tokens.shape, weight.shape[1])


def embed_numpy(tokens, weight):
    return torch.from_numpy(np.eye(weight.shape[0])[tokens.numpy()] @ weight.numpy())


def embed_eye_typed(tokens, weight):
    return torch.eye(weight.shape[0], dtype=weight.dtype)[tokens] @ weight


def embed_index_select(tokens, weight):
    return weight.index_select(0, tokens.reshape(-1)).view(*tokens.shape, -1)


EMBED_RIGHT = [embed_lookup, embed_functional, embed_float64, embed_loop, embed_numpy, embed_eye_typed,
               embed_index_select]

# --------------------------------------------------------------------------- lstm_step


def _gates(x, h, w_ih, w_hh, b_ih, b_hh):
    return x @ w_ih.T + b_ih + h @ w_hh.T + b_hh


def lstm_chunk_dim0(x, h, c, w_ih, w_hh, b_ih, b_hh):
    i, f, g, o = _gates(x, h, w_ih, w_hh, b_ih, b_hh).chunk(4, dim=0)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def lstm_sigmoid_g(x, h, c, w_ih, w_hh, b_ih, b_hh):
    i, f, g, o = _gates(x, h, w_ih, w_hh, b_ih, b_hh).chunk(4, dim=1)
    c = f.sigmoid() * c + i.sigmoid() * g.sigmoid()
    return o.sigmoid() * c.tanh(), c


def lstm_h_before_c(x, h, c, w_ih, w_hh, b_ih, b_hh):
    i, f, g, o = _gates(x, h, w_ih, w_hh, b_ih, b_hh).chunk(4, dim=1)
    h = o.sigmoid() * c.tanh()
    c = f.sigmoid() * c + i.sigmoid() * g.tanh()
    return h, c


def lstm_interleaved(x, h, c, w_ih, w_hh, b_ih, b_hh):
    gates = _gates(x, h, w_ih, w_hh, b_ih, b_hh)
    i, f, g, o = gates.view(len(x), -1, 4).unbind(-1)
    c = f.sigmoid() * c + i.sigmoid() * g.tanh()
    return o.sigmoid() * c.tanh(), c


def lstm_tanh_output_gate(x, h, c, w_ih, w_hh, b_ih, b_hh):
    i, f, g, o = _gates(x, h, w_ih, w_hh, b_ih, b_hh).chunk(4, dim=1)
    c = f.sigmoid() * c + i.sigmoid() * g.tanh()
    return o.tanh() * c.tanh(), c


def lstm_order_figo(x, h, c, w_ih, w_hh, b_ih, b_hh):
    f, i, g, o = _gates(x, h, w_ih, w_hh, b_ih, b_hh).chunk(4, dim=1)
    c = f.sigmoid() * c + i.sigmoid() * g.tanh()
    return o.sigmoid() * c.tanh(), c


def lstm_no_transpose(x, h, c, w_ih, w_hh, b_ih, b_hh):
    i, f, g, o = (x @ w_ih + b_ih + h @ w_hh + b_hh).chunk(4, dim=1)
    c = f.sigmoid() * c + i.sigmoid() * g.tanh()
    return o.sigmoid() * c.tanh(), c


def lstm_float32_buffer(x, h, c, w_ih, w_hh, b_ih, b_hh):
    gates = torch.zeros(len(x), w_ih.shape[0])
    gates += x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
    i, f, g, o = gates.chunk(4, dim=1)
    c = f.sigmoid() * c + i.sigmoid() * g.tanh()
    return o.sigmoid() * c.tanh(), c


def lstm_hand_tanh(x, h, c, w_ih, w_hh, b_ih, b_hh):
    def tanh(z):
        return (torch.exp(z) - torch.exp(-z)) / (torch.exp(z) + torch.exp(-z))

    i, f, g, o = _gates(x, h, w_ih, w_hh, b_ih, b_hh).chunk(4, dim=1)
    c = f.sigmoid() * c + i.sigmoid() * tanh(g)
    return o.sigmoid() * tanh(c), c


def lstm_one_bias_twice(x, h, c, w_ih, w_hh, b_ih, b_hh):
    return sequences.lstm_step(x, h, c, w_ih, w_hh, b_ih, b_ih)


def lstm_swapped(x, h, c, w_ih, w_hh, b_ih, b_hh):
    h, c = sequences.lstm_step(x, h, c, w_ih, w_hh, b_ih, b_hh)
    return c, h


def lstm_forget_old_cell(x, h, c, w_ih, w_hh, b_ih, b_hh):
    i, f, g, o = _gates(x, h, w_ih, w_hh, b_ih, b_hh).chunk(4, dim=1)
    c = f.sigmoid() + i.sigmoid() * g.tanh()
    return o.sigmoid() * c.tanh(), c


def lstm_cell_in_place(x, h, c, w_ih, w_hh, b_ih, b_hh):
    i, f, g, o = _gates(x, h, w_ih, w_hh, b_ih, b_hh).chunk(4, dim=1)
    c *= f.sigmoid()
    c += i.sigmoid() * g.tanh()
    return o.sigmoid() * c.tanh(), c


LSTM_WRONG = [
    (lstm_cell_in_place, "changed its input `c` in place"),
    (lstm_chunk_dim0, "raised"),
    (lstm_sigmoid_g, "not sigmoid"),
    (lstm_h_before_c, "from the old cell state"),
    (lstm_interleaved, "is wrong"),
    (lstm_tanh_output_gate, "is wrong"),
    (lstm_order_figo, "is wrong"),
    (lstm_no_transpose, "raised RuntimeError"),
    (lstm_hand_tanh, "non-finite"),
    (lstm_one_bias_twice, "is wrong"),
    (lstm_swapped, "h and c are swapped"),
    (lstm_forget_old_cell, "is wrong"),
]


def lstm_linear_split(x, h, c, w_ih, w_hh, b_ih, b_hh):
    gates = F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)
    i, f, g, o = gates.split(h.shape[1], dim=1)
    c = f.sigmoid() * c + i.sigmoid() * g.tanh()
    return o.sigmoid() * c.tanh(), c


def lstm_float64(x, h, c, w_ih, w_hh, b_ih, b_hh):
    return sequences.lstm_step(*(t.double() for t in (x, h, c, w_ih, w_hh, b_ih, b_hh)))


def lstm_hand_sigmoid(x, h, c, w_ih, w_hh, b_ih, b_hh):
    def sigmoid(z):
        return 1 / (1 + torch.exp(-z))

    i, f, g, o = _gates(x, h, w_ih, w_hh, b_ih, b_hh).chunk(4, dim=1)
    c = sigmoid(f) * c + sigmoid(i) * torch.tanh(g)
    return sigmoid(o) * torch.tanh(c), c


def lstm_loop(x, h, c, w_ih, w_hh, b_ih, b_hh):
    H = h.shape[1]
    hs, cs = [], []
    for b in range(len(x)):
        z = w_ih @ x[b] + b_ih + w_hh @ h[b] + b_hh
        i, f, g, o = z[:H].sigmoid(), z[H:2 * H].sigmoid(), z[2 * H:3 * H].tanh(), z[3 * H:].sigmoid()
        cb = f * c[b] + i * g
        hs.append(o * cb.tanh())
        cs.append(cb)
    return torch.stack(hs), torch.stack(cs)


def lstm_numpy(x, h, c, w_ih, w_hh, b_ih, b_hh):
    x, h, c, w_ih, w_hh, b_ih, b_hh = (t.numpy() for t in (x, h, c, w_ih, w_hh, b_ih, b_hh))
    z = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
    i, f, g, o = np.split(z, 4, axis=1)
    sig = 1 / (1 + np.exp(-np.clip(np.stack([i, f, o]), -80, 80)))
    c = sig[1] * c + sig[0] * np.tanh(g)
    return torch.from_numpy(sig[2] * np.tanh(c)), torch.from_numpy(c)


def lstm_pytorch_cell(x, h, c, w_ih, w_hh, b_ih, b_hh):
    cell = torch.nn.LSTMCell(x.shape[1], h.shape[1]).to(x.dtype)
    with torch.no_grad():
        for name, value in dict(weight_ih=w_ih, weight_hh=w_hh, bias_ih=b_ih, bias_hh=b_hh).items():
            getattr(cell, name).copy_(value)
        return cell(x, (h, c))


# A float32 buffer filled from float64 inputs (the in-place add casts down) is as accurate as float32: accepted.
LSTM_RIGHT = [lstm_linear_split, lstm_float64, lstm_hand_sigmoid, lstm_loop, lstm_numpy, lstm_pytorch_cell,
              lstm_float32_buffer]

# --------------------------------------------------------------------------- attention


def _scores(q, k):
    return q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])


def _finish(scores, v):
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


def att_naive_exp(q, k, v, mask=None):
    s = _scores(q, k)
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    w = torch.exp(s)
    w = w / w.sum(-1, keepdim=True)
    return w @ v, w


def att_mask_assumed_b_tk(q, k, v, mask=None):
    s = _scores(q, k)
    if mask is not None:
        s = s.masked_fill(~mask[..., None, :], float("-inf"))
    return _finish(s, v)


def att_boolean_index(q, k, v, mask=None):
    s = _scores(q, k)
    if mask is not None:
        s[~mask] = float("-inf")
    return _finish(s, v)


def att_float_mask_arithmetic(q, k, v, mask=None):
    s = _scores(q, k)
    if mask is not None:
        s = s + (1 - mask) * -1e9
    return _finish(s, v)


def att_transpose_1_2(q, k, v, mask=None):
    s = q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return _finish(s, v)


def att_bmm(q, k, v, mask=None):
    s = torch.bmm(q, k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    w = torch.softmax(s, -1)
    return torch.bmm(w, v), w


def att_half_d(q, k, v, mask=None):
    scale = q.shape[-1] ** 1/2
    s = q @ k.transpose(-2, -1) / scale
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return _finish(s, v)


def att_half_d_inline(q, k, v, mask=None):
    s = q @ k.transpose(-2, -1) / q.shape[-1] ** 1/2
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return _finish(s, v)


def att_scaled_by_tk(q, k, v, mask=None):
    s = q @ k.transpose(-2, -1) / math.sqrt(k.shape[-2])
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return _finish(s, v)


def att_scaled_by_dv(q, k, v, mask=None):
    s = q @ k.transpose(-2, -1) / math.sqrt(v.shape[-1])
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return _finish(s, v)


def att_query_scaled_in_place(q, k, v, mask=None):
    q /= math.sqrt(q.shape[-1])
    return sequences.attention(q * math.sqrt(q.shape[-1]), k, v, mask)


def att_keys_transposed_in_place(q, k, v, mask=None):
    kt = k.transpose_(-2, -1)
    s = q @ kt / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return _finish(s, v)


def att_masked_scores_zero(q, k, v, mask=None):
    s = _scores(q, k)
    if mask is not None:
        s = s.masked_fill(~mask, 0.0)
    return _finish(s, v)


def att_context_only(q, k, v, mask=None):
    return sequences.attention(q, k, v, mask)[0]


def att_swapped_outputs(q, k, v, mask=None):
    context, weights = sequences.attention(q, k, v, mask)
    return weights, context


def att_weights_times_keys(q, k, v, mask=None):
    _, weights = sequences.attention(q, k, v, mask)
    return weights @ k, weights


def att_softmax_dim1(q, k, v, mask=None):
    s = _scores(q, k)
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    w = F.softmax(s, dim=1)
    return w @ v, w


def att_softmax_over_queries(q, k, v, mask=None):
    s = _scores(q, k)
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    w = s.softmax(-2)
    return w @ v, w


def att_scores_times_mask(q, k, v, mask=None):
    s = _scores(q, k)
    if mask is not None:
        s = s * mask
    return _finish(s, v)


ATTENTION_WRONG = [
    (att_naive_exp, "non-finite"),
    (att_mask_assumed_b_tk, "raised RuntimeError"),
    (att_boolean_index, "raised IndexError"),
    (att_float_mask_arithmetic, "boolean padding mask"),
    (att_transpose_1_2, "raised IndexError"),
    (att_bmm, "raised RuntimeError"),
    (att_half_d, "D ** 1/2 means (D ** 1) / 2"),
    (att_half_d_inline, "D ** 1/2 means ((q @ k^T) / D) / 2"),
    (att_scaled_by_tk, "is wrong"),
    (att_scaled_by_dv, "is wrong"),
    (att_query_scaled_in_place, "changed its input `query` in place"),
    (att_keys_transposed_in_place, "changed its input `keys` in place"),
    (att_masked_scores_zero, "is wrong"),
    (att_context_only, "should be a tuple of 2 values"),
    (att_swapped_outputs, "should have shape"),
    (att_weights_times_keys, "should have shape"),
    (att_softmax_dim1, "on query (2, 3, 8)"),
    (att_softmax_over_queries, "the softmax ran over the queries"),
    (att_scores_times_mask, "is wrong"),
]


def att_minus_1e9(q, k, v, mask=None):
    s = (q / math.sqrt(q.shape[-1])) @ k.mT
    if mask is not None:
        s = s.masked_fill(mask.logical_not(), -1e9)
    return _finish(s, v)


def att_renormalized(q, k, v, mask=None):
    w = torch.softmax(_scores(q, k), -1)
    if mask is not None:
        w = w * mask
        w = w / w.sum(-1, keepdim=True)
    return w @ v, w


def att_stable_exp(q, k, v, mask=None):
    s = _scores(q, k)
    if mask is not None:
        s = torch.where(mask, s, torch.tensor(float("-inf")))
    w = torch.exp(s - s.amax(-1, keepdim=True))
    w = w / w.sum(-1, keepdim=True)
    return torch.einsum("...qk,...kd->...qd", w, v), w


def att_float64(q, k, v, mask=None):
    return sequences.attention(q.double(), k.double(), v.double(), mask)


def att_loop_over_queries(q, k, v, mask=None):
    contexts, weights = [], []
    for t in range(q.shape[-2]):
        s = (k @ q[..., t, :, None])[..., 0] / q.shape[-1] ** 0.5  # (..., Tk)
        if mask is not None:
            s = s.masked_fill(~mask[..., t, :], float("-inf"))
        w = s.softmax(-1)
        weights.append(w)
        contexts.append((w[..., None] * v).sum(-2))
    return torch.stack(contexts, -2), torch.stack(weights, -2)


def att_numpy(q, k, v, mask=None):
    q, k, v = q.numpy(), k.numpy(), v.numpy()
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if mask is not None:
        s = np.where(mask.numpy(), s, -np.inf)
    s = s - s.max(-1, keepdims=True)
    w = np.exp(s) / np.exp(s).sum(-1, keepdims=True)
    return torch.from_numpy(w @ v), torch.from_numpy(w)


def att_log_mask(q, k, v, mask=None):
    s = _scores(q, k)
    if mask is not None:
        s = s + torch.log(mask.to(s.dtype))
    return _finish(s, v)


ATTENTION_RIGHT = [att_log_mask, att_minus_1e9, att_stable_exp, att_float64, att_loop_over_queries,
                   att_numpy]

# --------------------------------------------------------------------------- greedy decoding


def greedy_argmax_dim0(step, state, batch_size, max_len):
    token, chosen = torch.full((batch_size,), BOS), []
    for _ in range(max_len):
        logits, state = step(token, state)
        token = logits.argmax(dim=0)
        chosen.append(token)
    return torch.stack(chosen, 1)


def greedy_returns_logits(step, state, batch_size, max_len):
    token, outputs = torch.full((batch_size,), BOS), []
    for _ in range(max_len):
        logits, state = step(token, state)
        token = logits.argmax(-1)
        outputs.append(logits)
    return torch.stack(outputs, 1)


def greedy_bos_first(step, state, batch_size, max_len):
    token = torch.full((batch_size,), BOS)
    chosen = [token]
    for _ in range(max_len):
        logits, state = step(token, state)
        token = logits.argmax(-1)
        chosen.append(token)
    return torch.stack(chosen, 1)


def greedy_list(step, state, batch_size, max_len):
    token, chosen = torch.full((batch_size,), BOS), []
    for _ in range(max_len):
        logits, state = step(token, state)
        token = logits.argmax(-1)
        chosen.append(token)
    return chosen


def greedy_state_dropped(step, state, batch_size, max_len):
    token, chosen = torch.full((batch_size,), BOS), []
    for _ in range(max_len):
        logits, _ = step(token, state)
        token = logits.argmax(-1)
        chosen.append(token)
    return torch.stack(chosen, 1)


def greedy_time_major(step, state, batch_size, max_len):
    token, chosen = torch.full((batch_size,), BOS), []
    for _ in range(max_len):
        logits, state = step(token, state)
        token = logits.argmax(-1)
        chosen.append(token)
    return torch.stack(chosen)


def greedy_sampling(step, state, batch_size, max_len):
    token, chosen = torch.full((batch_size,), BOS), []
    for _ in range(max_len):
        logits, state = step(token, state)
        token = torch.multinomial(logits.softmax(-1), 1)[:, 0]
        chosen.append(token)
    return torch.stack(chosen, 1)


def greedy_starts_with_pad(step, state, batch_size, max_len):
    token, chosen = torch.zeros(batch_size, dtype=torch.int64), []
    for _ in range(max_len):
        logits, state = step(token, state)
        token = logits.argmax(-1)
        chosen.append(token)
    return torch.stack(chosen, 1)


def greedy_float_tokens(step, state, batch_size, max_len):
    token, chosen = torch.ones(batch_size) * BOS, []
    for _ in range(max_len):
        logits, state = step(token, state)
        token = logits.argmax(-1)
        chosen.append(token)
    return torch.stack(chosen, 1)


def greedy_float_buffer(step, state, batch_size, max_len):
    out, token = torch.zeros(batch_size, max_len), torch.full((batch_size,), BOS)
    for t in range(max_len):
        logits, state = step(token, state)
        token = logits.argmax(-1)
        out[:, t] = token
    return out


def greedy_naive_softmax(step, state, batch_size, max_len):
    token, chosen = torch.full((batch_size,), BOS), []
    for _ in range(max_len):
        logits, state = step(token, state)
        p = logits.exp() / logits.exp().sum(-1, keepdim=True)
        token = p.argmax(-1)
        chosen.append(token)
    return torch.stack(chosen, 1)


def greedy_state_device(step, state, batch_size, max_len):
    token, chosen = torch.full((batch_size,), BOS, device=state.device), []
    for _ in range(max_len):
        logits, state = step(token, state)
        token = logits.argmax(-1)
        chosen.append(token)
    return torch.stack(chosen, 1)


def greedy_one_step_short(step, state, batch_size, max_len):
    token, chosen = torch.full((batch_size,), BOS), []
    for _ in range(max_len - 1):
        logits, state = step(token, state)
        token = logits.argmax(-1)
        chosen.append(token)
    return torch.stack(chosen, 1)


GREEDY_WRONG = [
    (greedy_argmax_dim0, "step expects the current tokens"),
    (greedy_returns_logits, "should have shape"),
    (greedy_bos_first, "should have shape"),
    (greedy_list, "should be a torch tensor"),
    (greedy_state_dropped, "the state returned by step was dropped"),
    (greedy_time_major, "stack the chosen tokens along dim 1"),
    (greedy_sampling, "is wrong"),
    (greedy_starts_with_pad, "is wrong"),
    (greedy_float_tokens, "int64"),
    (greedy_float_buffer, "should have dtype torch.int64"),
    (greedy_naive_softmax, "large logits"),
    (greedy_state_device, "raised AttributeError"),
    (greedy_one_step_short, "max_len 1"),
]


def greedy_prealloc(step, state, batch_size, max_len):
    out = torch.empty(batch_size, max_len, dtype=torch.long)
    token = torch.full((batch_size,), BOS, dtype=torch.long)
    for t in range(max_len):
        logits, state = step(token, state)
        token = logits.max(dim=-1).indices
        out[:, t] = token
    return out


def greedy_softmax_then_argmax(step, state, batch_size, max_len):
    token, chosen = torch.tensor([BOS] * batch_size), []
    for _ in range(max_len):
        logits, state = step(token, state)
        token = torch.softmax(logits.double(), -1).argmax(-1)
        chosen.append(token[:, None])
    return torch.cat(chosen, 1)


def greedy_numpy_argmax(step, state, batch_size, max_len):
    token, rows = torch.full((batch_size,), BOS), []
    for _ in range(max_len):
        logits, state = step(token, state)
        token = torch.from_numpy(np.argmax(logits.numpy(), axis=-1).astype(np.int64))
        rows.append(token.tolist())
    return torch.tensor(rows).T


GREEDY_RIGHT = [sequences.greedy_decode, greedy_prealloc, greedy_softmax_then_argmax, greedy_numpy_argmax]

# --------------------------------------------------------------------------- closing_brackets


def brackets_pop_on_empty(text):
    found, stack = [], []
    for i, ch in enumerate(text):
        if ch == "(":
            stack.append(i)
        elif ch == ")":
            found.append((i, i - stack.pop()))
    return found


def brackets_unmatched_zero(text):
    found, stack = [], []
    for i, ch in enumerate(text):
        if ch == "(":
            stack.append(i)
        elif ch == ")":
            found.append((i, i - stack.pop() if stack else 0))
    return found


def brackets_minus_one(text):
    return [(i, d - 1) for i, d in sequences.closing_brackets(text)]


def brackets_open_index(text):
    return [(i - d, d) for i, d in sequences.closing_brackets(text)]


def brackets_distances_only(text):
    return [d for _, d in sequences.closing_brackets(text)]


def brackets_generator(text):
    stack = []
    for i, ch in enumerate(text):
        if ch == "(":
            stack.append(i)
        elif ch == ")" and stack:
            yield i, i - stack.pop()


def brackets_dict(text):
    return dict(sequences.closing_brackets(text))


def brackets_sorted_by_distance(text):
    return sorted(sequences.closing_brackets(text), key=lambda pair: pair[1])


def brackets_float_distance(text):
    return [(i, float(d)) for i, d in sequences.closing_brackets(text)]


def brackets_depth_counter(text):
    found, depth, last = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth, last = depth + 1, i
        elif ch == ")" and depth:
            depth -= 1
            found.append((i, i - last))
    return found


def brackets_opening_order(text):
    pairs, stack = [], []
    for i, ch in enumerate(text):
        if ch == "(":
            stack.append(i)
        elif ch == ")" and stack:
            j = stack.pop()
            pairs.append((j, i))
    return [(i, i - j) for j, i in sorted(pairs)]


def brackets_first_open(text):
    found, stack = [], []
    for i, ch in enumerate(text):
        if ch == "(":
            stack.append(i)
        elif ch == ")" and stack:
            found.append((i, i - stack[0]))
    return found


def brackets_queue(text):
    found, stack = [], []
    for i, ch in enumerate(text):
        if ch == "(":
            stack.append(i)
        elif ch == ")" and stack:
            found.append((i, i - stack.pop(0)))
    return found


def brackets_both_kinds(text):
    found, stack = [], []
    for i, ch in enumerate(text):
        if ch in "([":
            stack.append(i)
        elif ch in ")]" and stack:
            found.append((i, i - stack.pop()))
    return found


def brackets_rfind(text):
    found = []
    for i, ch in enumerate(text):
        j = text.rfind("(", 0, i)
        if ch == ")" and j >= 0:
            found.append((i, i - j))
    return found


BRACKETS_WRONG = [
    (brackets_rfind, "keep a stack of the open positions and pop the one a ')' closes"),
    (brackets_pop_on_empty, "raised IndexError"),
    (brackets_unmatched_zero, "an entry for index 0, but that character is not a ')' closing an open '('"),
    (brackets_minus_one, "is wrong"),
    (brackets_open_index, "is wrong"),
    (brackets_distances_only, "should be a pair (index, distance)"),
    (brackets_generator, "should be a list of (index, distance) pairs"),
    (brackets_dict, "should be a list of (index, distance) pairs"),
    (brackets_sorted_by_distance, "is wrong"),
    (brackets_float_distance, "two ints"),
    (brackets_depth_counter, "the ')' at index 16 has distance 11, expected 15"),
    (brackets_opening_order, "is wrong"),
    (brackets_first_open, "the first '(' of the text"),
    (brackets_queue, "a queue"),
]


def brackets_numpy_ints(text):
    return [(np.int64(i), np.int64(d)) for i, d in sequences.closing_brackets(text)]


def brackets_lists(text):
    return [[i, d] for i, d in sequences.closing_brackets(text)]


def brackets_tuple(text):
    return tuple(sequences.closing_brackets(text))


def brackets_recursive(text):
    found = []

    def read(i, opened):  # reads from i; returns where the bracket opened at `opened` closes
        while i < len(text):
            if text[i] == "(":
                i = read(i + 1, i)
            elif text[i] == ")" and opened is not None:
                found.append((i, i - opened))
                return i + 1
            else:
                i += 1
        return i

    read(0, None)
    return sorted(found)


def brackets_tensor_pairs(text):
    pairs = sequences.closing_brackets(text)
    return [tuple(row) for row in torch.tensor(pairs, dtype=torch.int64).reshape(-1, 2)]


BRACKETS_RIGHT = [sequences.closing_brackets, brackets_numpy_ints, brackets_lists, brackets_tuple,
                  brackets_recursive, brackets_tensor_pairs]

# --------------------------------------------------------------------------- clip_grad_norm


def _norm(grads):
    return torch.sqrt(sum((g**2).sum() for g in grads))


def clip_each(grads, max_norm):
    out = []
    for g in grads:
        n = g.norm()
        out.append(g * max_norm / n if n > max_norm else g.clone())
    return out


def clip_always(grads, max_norm):
    return [g * max_norm / _norm(grads) for g in grads]


def clip_clamp(grads, max_norm):
    return [g.clamp(-max_norm, max_norm) for g in grads]


def clip_in_place(grads, max_norm):
    n = _norm(grads)
    if n > max_norm:
        for g in grads:
            g.mul_(max_norm / n)
    return grads


def clip_list_entries_replaced(grads, max_norm):
    n = _norm(grads)
    for i in range(len(grads)):
        grads[i] = grads[i] * min(1.0, max_norm / float(n)) if n > 0 else grads[i]
    return grads


def clip_sum_of_norms(grads, max_norm):
    n = sum(g.norm() for g in grads)
    return [g * min(1.0, max_norm / float(n)) if n > 0 else g.clone() for g in grads]


def clip_squared(grads, max_norm):
    n = sum((g**2).sum() for g in grads)
    return [g * min(1.0, max_norm / float(n)) if n > 0 else g.clone() for g in grads]


def clip_returns_norm(grads, max_norm):
    return _norm(grads)


def clip_torch_on_plain_tensors(grads, max_norm):
    grads = [g.clone() for g in grads]
    torch.nn.utils.clip_grad_norm_(grads, max_norm)  # plain tensors have no .grad: nothing is clipped
    return grads


def clip_flat(grads, max_norm):
    flat = torch.cat([g.flatten() for g in grads])
    return flat * min(1.0, max_norm / float(flat.norm())) if flat.norm() > 0 else flat


def clip_stack(grads, max_norm):
    n = torch.stack(grads).norm()
    return [g * min(1.0, max_norm / float(n)) for g in grads]


def clip_rms(grads, max_norm):
    flat = torch.cat([g.flatten() for g in grads])
    n = float(flat.pow(2).mean().sqrt())
    return [g * (max_norm / n if n > max_norm else 1.0) for g in grads]


def clip_l1(grads, max_norm):
    n = float(sum(g.abs().sum() for g in grads))
    return [g * (max_norm / n if n > max_norm else 1.0) for g in grads]


def clip_first_only(grads, max_norm):
    n = float(grads[0].norm())
    return [g * (max_norm / n if n > max_norm else 1.0) for g in grads]


def clip_divide_by_zero(grads, max_norm):
    scale = min(1.0, max_norm / float(_norm(grads)))
    return [g * scale for g in grads]


CLIP_WRONG = [
    (clip_each, "each tensor was clipped by its own norm"),
    (clip_always, "were scaled up"),
    (clip_clamp, "clamped one by one"),
    (clip_in_place, "changed its input `grads` in place"),
    (clip_list_entries_replaced, "changed its input `grads` in place"),
    (clip_sum_of_norms, "not the sum of the tensors' norms"),
    (clip_squared, "the sum of squares alone"),
    (clip_returns_norm, "should be a list of 3 tensors"),
    (clip_torch_on_plain_tensors, "is wrong"),
    (clip_flat, "should be a list of 3 tensors"),
    (clip_stack, "raised RuntimeError"),
    (clip_rms, "is wrong"),
    (clip_l1, "is wrong"),
    (clip_first_only, "is wrong"),
    (clip_divide_by_zero, "all-zero gradients"),
]


def clip_torch(grads, max_norm):
    params = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    torch.nn.utils.clip_grad_norm_(params, max_norm)
    return [p.grad for p in params]


def clip_float64(grads, max_norm):
    n = math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads))
    return [g.double() * (max_norm / n if n > max_norm else 1.0) for g in grads]


def clip_loop(grads, max_norm):
    total = 0.0
    for g in grads:
        for value in g.flatten().tolist():
            total += value * value
    n = total**0.5
    return tuple(g * (max_norm / n) if n > max_norm else g.clone() for g in grads)


def clip_numpy(grads, max_norm):
    arrays = [g.numpy() for g in grads]
    n = np.sqrt(sum(np.sum(a.astype(np.float64) ** 2) for a in arrays))
    scale = min(1.0, max_norm / n) if n > 0 else 1.0
    return [torch.from_numpy(np.asarray(a * scale)) for a in arrays]


def clip_returns_inputs_when_small(grads, max_norm):
    n = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    if n <= max_norm:
        return grads
    return [g * (max_norm / n) for g in grads]


CLIP_RIGHT = [sequences.clip_grad_norm, clip_torch, clip_float64, clip_loop, clip_numpy]

# --------------------------------------------------------------------------- content_addressing


def _cos(q, k):
    return F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).T


def content_dot(query, keys, values, beta):
    w = torch.softmax(beta * (query @ keys.T), -1)
    return w @ values, w


def content_keys_only(query, keys, values, beta):
    w = torch.softmax(beta * query @ (keys / keys.norm(dim=-1, keepdim=True)).T, -1)
    return w @ values, w


def content_beta_after(query, keys, values, beta):
    w = beta * torch.softmax(_cos(query, keys), -1)
    return w @ values, w


def content_softmax_dim0(query, keys, values, beta):
    w = torch.softmax(beta * _cos(query, keys), dim=0)
    return w @ values, w


def content_keys_normalized_in_place(query, keys, values, beta):
    keys /= keys.norm(dim=-1, keepdim=True)
    w = torch.softmax(beta * F.normalize(query, dim=-1) @ keys.T, -1)
    return w @ values, w


def content_divided_by_beta(query, keys, values, beta):
    w = torch.softmax(_cos(query, keys) / beta, -1)
    return w @ values, w


def content_cosine_no_unsqueeze(query, keys, values, beta):
    w = torch.softmax(beta * F.cosine_similarity(query, keys, dim=-1), -1)
    return w @ values, w


def content_normalize_default_dim(query, keys, values, beta):
    w = torch.softmax(beta * F.normalize(query) @ F.normalize(keys).T, -1)
    return w @ values, w


def content_values_normalized(query, keys, values, beta):
    w = torch.softmax(beta * _cos(query, keys), -1)
    return w @ F.normalize(values, dim=-1), w


def content_swapped(query, keys, values, beta):
    read, w = sequences.content_addressing(query, keys, values, beta)
    return w, read


def content_euclidean(query, keys, values, beta):
    d = torch.cdist(query.reshape(-1, query.shape[-1]), keys).reshape(*query.shape[:-1], -1)
    w = torch.softmax(-beta * d, -1)
    return w @ values, w


def content_naive_exp(query, keys, values, beta):
    e = torch.exp(beta * _cos(query, keys))
    w = e / e.sum(-1, keepdim=True)
    return w @ values, w


def content_keys_normalized_over_slots(query, keys, values, beta):
    w = torch.softmax(beta * F.normalize(query, dim=-1) @ F.normalize(keys, dim=0).T, -1)
    return w @ values, w


def content_reads_keys(query, keys, values, beta):
    w = torch.softmax(beta * _cos(query, keys), -1)
    return w @ keys, w


def content_sqrt_d(query, keys, values, beta):
    w = torch.softmax(beta * _cos(query, keys) / math.sqrt(query.shape[-1]), -1)
    return w @ values, w


def content_one_norm_for_the_batch(query, keys, values, beta):
    w = torch.softmax(beta * (query / query.norm()) @ F.normalize(keys, dim=-1).T, -1)
    return w @ values, w


CONTENT_WRONG = [
    (content_one_norm_for_the_batch, "query (4, 5)"),
    (content_dot, "raw dot products"),
    (content_keys_only, "only the keys were normalized"),
    (content_beta_after, "after it, the weights no longer sum to one"),
    (content_softmax_dim0, "the softmax ran over the wrong dimension"),
    (content_keys_normalized_in_place, "changed its input `keys` in place"),
    (content_divided_by_beta, "do not divide"),
    (content_cosine_no_unsqueeze, "query (4, 5)"),
    (content_normalize_default_dim, "raised IndexError"),
    (content_values_normalized, "is wrong"),
    (content_swapped, "should have shape"),
    (content_euclidean, "is wrong"),
    (content_naive_exp, "non-finite"),
    (content_keys_normalized_over_slots, "is wrong"),
    (content_reads_keys, "should have shape"),
    (content_sqrt_d, "no 1 / sqrt(D) here"),
]


def content_cosine_similarity(query, keys, values, beta):
    w = torch.softmax(beta * F.cosine_similarity(query.unsqueeze(-2), keys, dim=-1), dim=-1)
    return w @ values, w


def content_float64(query, keys, values, beta):
    return sequences.content_addressing(query.double(), keys.double(), values.double(), beta)


def content_loops(query, keys, values, beta):
    queries = query.reshape(-1, query.shape[-1])
    reads, weights = [], []
    for q in queries:
        scores = torch.stack([beta * (q @ k) / (q.norm() * k.norm()) for k in keys])
        w = torch.softmax(scores, 0)
        weights.append(w)
        reads.append(sum(w[s] * values[s] for s in range(len(keys))))
    read, w = torch.stack(reads), torch.stack(weights)
    return (read[0], w[0]) if query.dim() == 1 else (read, w)


def content_numpy(query, keys, values, beta):
    q, k, v = query.numpy(), keys.numpy(), values.numpy()
    cos = (q / np.linalg.norm(q, axis=-1, keepdims=True)) @ (k / np.linalg.norm(k, axis=-1, keepdims=True)).T
    s = beta * cos
    w = np.exp(s - s.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    return torch.from_numpy(w @ v), torch.from_numpy(w)


def content_via_attention(query, keys, values, beta):
    d = query.shape[-1]
    q = beta * math.sqrt(d) * F.normalize(query, dim=-1)
    read, w = sequences.attention(q.reshape(-1, d), F.normalize(keys, dim=-1), values)
    return (read[0], w[0]) if query.dim() == 1 else (read, w)


CONTENT_RIGHT = [sequences.content_addressing, content_cosine_similarity, content_float64, content_loops,
                 content_numpy, content_via_attention]

# --------------------------------------------------------------------------- the tests

WRONG = {
    "sequences.embed_one_hot": EMBED_WRONG,
    "sequences.lstm_step": LSTM_WRONG,
    "sequences.attention": ATTENTION_WRONG,
    "sequences.greedy_decode": GREEDY_WRONG,
    "sequences.closing_brackets": BRACKETS_WRONG,
    "sequences.clip_grad_norm": CLIP_WRONG,
    "sequences.content_addressing": CONTENT_WRONG,
}
RIGHT = {
    "sequences.embed_one_hot": EMBED_RIGHT,
    "sequences.lstm_step": LSTM_RIGHT,
    "sequences.attention": ATTENTION_RIGHT,
    "sequences.greedy_decode": GREEDY_RIGHT,
    "sequences.closing_brackets": BRACKETS_RIGHT,
    "sequences.clip_grad_norm": CLIP_RIGHT,
    "sequences.content_addressing": CONTENT_RIGHT,
}


@pytest.mark.parametrize(("name", "fn", "words"),
                         [(name, fn, words) for name, attacks in WRONG.items() for fn, words in attacks],
                         ids=[f"{name}-{fn.__name__}" for name, attacks in WRONG.items() for fn, _ in attacks])
def test_wrong_solution_is_rejected(name, fn, words):
    assert words in rejected(name, fn)


@pytest.mark.parametrize(("name", "fn"), [(name, fn) for name, fns in RIGHT.items() for fn in fns],
                         ids=[f"{name}-{fn.__name__}" for name, fns in RIGHT.items() for fn in fns])
def test_correct_variant_is_accepted(name, fn, capsys):
    accepted(name, fn, capsys)


def test_every_exercise_has_five_attacks_and_three_correct_variants():
    assert set(WRONG) == set(RIGHT) == {name for name in check.registry("sequences") if name.startswith("sequences.")}
    for name in WRONG:
        assert len(WRONG[name]) >= 5 and len(RIGHT[name]) >= 3, name
        assert len(check.registry()[name].mistakes) >= 4, name


# A hint names a mistake only when the answer equals that mistake on every case.


def test_no_hint_when_attention_is_unscaled_on_one_case_only():
    def partly_unscaled(q, k, v, mask=None):
        if q.dim() == 2 and q.shape[-1] == 4:
            return ex._attention_unscaled(q, k, v, mask)
        return sequences.attention(q, k, v, mask)

    message = rejected("sequences.attention", partly_unscaled)
    assert "is wrong" in message and "Hint" not in message


def test_no_hint_when_brackets_match_a_mistake_on_some_cases_only():
    def partly_off(text):
        return ex._brackets_off_by_one(text) if len(text) < 10 else sequences.closing_brackets(text)

    message = rejected("sequences.closing_brackets", partly_off)
    assert "is wrong" in message and "Hint" not in message


def test_no_hint_when_clipping_matches_a_mistake_on_some_cases_only():
    def partly_each(grads, max_norm):
        return ex._clip_each(grads, max_norm) if len(grads) == 3 else sequences.clip_grad_norm(grads, max_norm)

    message = rejected("sequences.clip_grad_norm", partly_each)
    assert "is wrong" in message and "Hint" not in message


def test_a_loop_that_swallows_exceptions_does_not_hang_the_check():
    def stubborn(text):
        while True:
            try:
                raise ValueError("not yet")
            except Exception:
                continue

    assert "did not return within" in rejected("sequences.closing_brackets", stubborn, timeout=0.5)


def test_the_embedding_cases_leave_out_the_last_ids():
    # F.one_hot(tokens) without num_classes is caught only by a case whose tokens miss id V-1.
    message = rejected("sequences.embed_one_hot", embed_no_num_classes)
    assert "tokens (2, 3) that use only ids 0..3 of a vocabulary of V = 6" in message


# --------------------------------------------------------------------------- the new blocks


@pytest.mark.parametrize(("text", "expected"), [
    ("f(x)", [(3, 2)]),
    ("g(a, (b) * c)", [(7, 2), (12, 11)]),
    (")(a)(", [(3, 2)]),
    ("((()))", [(3, 1), (4, 3), (5, 5)]),
    ("", []),
    ("no brackets", []),
])
def test_closing_brackets(text, expected):
    assert sequences.closing_brackets(text) == expected


def test_closing_brackets_wants_a_string():
    with pytest.raises(TypeError, match="str"):
        sequences.closing_brackets(["(", ")"])


def test_clip_grad_norm_matches_pytorch_and_leaves_its_inputs_alone():
    torch.manual_seed(0)
    grads = [3 * torch.randn(4, 3), torch.randn(5), torch.randn(())]
    before = [g.clone() for g in grads]
    clipped = sequences.clip_grad_norm(grads, 1.5)
    params = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    norm = torch.nn.utils.clip_grad_norm_(params, 1.5)
    assert norm > 1.5
    for ours, p in zip(clipped, params):
        torch.testing.assert_close(ours, p.grad, rtol=1e-5, atol=1e-6)
    assert math.isclose(math.sqrt(sum(float((c**2).sum()) for c in clipped)), 1.5, rel_tol=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(grads, before))


def test_clip_grad_norm_keeps_small_and_zero_gradients():
    small = [torch.full((2, 2), 0.1), torch.zeros(3)]
    for ours, theirs in zip(sequences.clip_grad_norm(small, 1.0), small):
        assert torch.equal(ours, theirs) and ours is not theirs
    assert all(torch.equal(c, torch.zeros(3)) for c in sequences.clip_grad_norm([torch.zeros(3)], 1.0))
    assert sequences.clip_grad_norm([], 1.0) == []


def test_clip_grad_norm_rejects_bad_input():
    with pytest.raises(ValueError, match="max_norm"):
        sequences.clip_grad_norm([torch.ones(2)], 0.0)
    with pytest.raises(TypeError, match="list of tensors"):
        sequences.clip_grad_norm(torch.ones(2), 1.0)


def test_content_addressing_is_a_softmax_over_cosines():
    torch.manual_seed(0)
    query, keys, values = torch.randn(3, 5), torch.randn(6, 5) * torch.arange(1.0, 7.0)[:, None], torch.randn(6, 2)
    read, weights = sequences.content_addressing(query, keys, values, 4.0)
    cos = F.cosine_similarity(query[:, None, :], keys[None], dim=-1)
    torch.testing.assert_close(weights, torch.softmax(4.0 * cos, -1))
    torch.testing.assert_close(read, weights @ values)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3))
    one_read, one_weights = sequences.content_addressing(query[1], keys, values, 4.0)
    assert one_read.shape == (2,) and one_weights.shape == (6,)
    torch.testing.assert_close(one_weights, weights[1])
    # Lengths do not matter, beta = 0 averages every slot, a large beta reads the best slot.
    torch.testing.assert_close(sequences.content_addressing(7 * query, keys / 3, values, 4.0)[1], weights)
    torch.testing.assert_close(sequences.content_addressing(query, keys, values, 0.0)[0],
                               values.mean(0).expand(3, 2))
    sharp, _ = sequences.content_addressing(query, keys, values, 1e4)
    torch.testing.assert_close(sharp, values[cos.argmax(-1)])


def test_content_addressing_names_the_expected_shapes():
    with pytest.raises(ValueError, match=r"query \(D,\) or \(B, D\)"):
        sequences.content_addressing(torch.randn(2, 3, 4), torch.randn(5, 4), torch.randn(5, 2), 1.0)
    with pytest.raises(ValueError, match=r"query \(D,\) or \(B, D\)"):
        sequences.content_addressing(torch.randn(4), torch.randn(5, 3), torch.randn(5, 2), 1.0)
    with pytest.raises(ValueError, match=r"values \(N, Dv\) with N = 5"):
        sequences.content_addressing(torch.randn(4), torch.randn(5, 4), torch.randn(6, 2), 1.0)


def test_attention_masked_after_the_softmax_then_renormalized_fails_on_large_masked_scores():
    # Right in exact arithmetic, but a masked key scoring 600 takes all of float32's weight first.
    with pytest.raises(ExerciseFailed, match="non-finite"):
        check.exercise("sequences.attention", att_renormalized)


def test_clip_grad_norm_must_return_new_tensors_even_when_nothing_is_clipped():
    with pytest.raises(ExerciseFailed, match="shares a tensor with the input list"):
        check.exercise("sequences.clip_grad_norm", clip_returns_inputs_when_small)


def test_closing_brackets_count_parentheses_only():
    def one_stack_for_all_brackets(text):
        found, opened = [], []
        for i, ch in enumerate(text):
            if ch in "([{":
                opened.append(i)
            elif ch in ")]}" and opened:
                j = opened.pop()
                if ch == ")":
                    found.append((i, i - j))
        return found

    with pytest.raises(ExerciseFailed, match="the result is wrong"):
        check.exercise("sequences.closing_brackets", one_stack_for_all_brackets)
