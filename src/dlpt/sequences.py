"""Chapter 3, Sequences: embeddings, recurrent cells and attention, written out.

Each block follows one equation of the chapter and matches PyTorch's own module or
function, parameter layout included, so weights copy across and the tests can compare.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["embed_one_hot", "RNNCell", "LSTMCell", "attention"]


def embed_one_hot(tokens: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """An embedding as a matrix product: ``one_hot(tokens) @ weight``.

    tokens: (...) int64 in 0..V-1, weight: (V, D) -> (..., D). Equal to ``weight[tokens]``
    (what ``nn.Embedding`` does), which skips multiplying by all the zeros.
    """
    if tokens.dtype != torch.int64:
        raise TypeError(f"tokens must be int64 indices, got {tokens.dtype}")
    return F.one_hot(tokens, num_classes=weight.shape[0]).to(weight.dtype) @ weight


class RNNCell(nn.Module):
    """The vanilla recurrent cell: ``h' = tanh(W_ih x + b_ih + W_hh h + b_hh)``.

    x: (B, I), h: (B, H) -> h': (B, H). Parameters in ``torch.nn.RNNCell``'s layout:
    ``weight_ih (H, I)``, ``weight_hh (H, H)``, ``bias_ih (H,)``, ``bias_hh (H,)``.
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        bound = 1 / math.sqrt(hidden_size)  # PyTorch's initialization
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size).uniform_(-bound, bound))
        self.weight_hh = nn.Parameter(torch.empty(hidden_size, hidden_size).uniform_(-bound, bound))
        self.bias_ih = nn.Parameter(torch.empty(hidden_size).uniform_(-bound, bound))
        self.bias_hh = nn.Parameter(torch.empty(hidden_size).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x @ self.weight_ih.T + self.bias_ih + h @ self.weight_hh.T + self.bias_hh)


class LSTMCell(nn.Module):
    """The LSTM cell (Hochreiter & Schmidhuber, 1997) in ``torch.nn.LSTMCell``'s layout.

    x: (B, I), (h, c): (B, H) each -> (h', c'). ``weight_ih (4H, I)``, ``weight_hh (4H, H)``,
    ``bias_ih (4H,)``, ``bias_hh (4H,)``, the four row blocks in PyTorch's gate order: input
    gate i, forget gate f, candidate g, output gate o.

        i, f, o = sigmoid(.), g = tanh(.)   from  W_ih x + b_ih + W_hh h + b_hh
        c' = f * c + i * g                  the cell state: forget some, write some
        h' = o * tanh(c')                   the output: read some
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        bound = 1 / math.sqrt(hidden_size)
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size).uniform_(-bound, bound))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size).uniform_(-bound, bound))
        self.bias_ih = nn.Parameter(torch.empty(4 * hidden_size).uniform_(-bound, bound))
        self.bias_hh = nn.Parameter(torch.empty(4 * hidden_size).uniform_(-bound, bound))

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden_size)
            state = (zeros, zeros)
        h, c = state
        gates = x @ self.weight_ih.T + self.bias_ih + h @ self.weight_hh.T + self.bias_hh  # (B, 4H)
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


def attention(
    query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention: ``softmax(q k^T / sqrt(D)) v``.

    query: (..., Tq, D), keys: (..., Tk, D), values: (..., Tk, Dv), mask: boolean
    (..., Tq, Tk), True where attending is allowed -> (context (..., Tq, Dv), weights
    (..., Tq, Tk)). The weights of each query sum to one over the allowed keys; masked
    scores are set to -inf *before* the softmax, so they get exactly zero weight.
    """
    if query.shape[-1] != keys.shape[-1]:
        raise ValueError(f"query and keys need the same last dimension D, got {tuple(query.shape)} "
                         f"and {tuple(keys.shape)}")
    if keys.shape[-2] != values.shape[-2]:
        raise ValueError(f"keys and values need the same length Tk, got {tuple(keys.shape)} and "
                         f"{tuple(values.shape)}")
    scores = query @ keys.transpose(-2, -1) / math.sqrt(query.shape[-1])  # (..., Tq, Tk)
    if mask is not None:
        if mask.dtype != torch.bool:
            raise TypeError(f"mask must be boolean (True = may attend), got {mask.dtype}")
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ values, weights
