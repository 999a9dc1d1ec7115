"""Chapter 3, Sequences: embeddings, recurrent cells and attention, written out.

Each block follows one equation of the chapter and matches PyTorch's own module or
function, parameter layout included, so weights copy across and the tests can compare.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dlpt.runtime import device_of, pick_device, recurrent_device
from dlpt.train import evaluating, fit

__all__ = [
    "embed_one_hot",
    "RNNCell",
    "LSTMCell",
    "lstm_step",
    "attention",
    "greedy_decode",
    "CharVocab",
    "lm_windows",
    "WindowLM",
    "RecurrentLM",
    "next_char_losses",
    "sample",
    "PAD",
    "BOS",
    "EOS",
    "TokenVocab",
    "Seq2Seq",
    "seq2seq_loss",
    "fit_seq2seq",
    "translate",
    "accuracy_by_length",
    "closing_brackets",
    "clip_grad_norm",
    "content_addressing",
]


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
        return lstm_step(x, *state, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)


def lstm_step(
    x: torch.Tensor,
    h: torch.Tensor,
    c: torch.Tensor,
    weight_ih: torch.Tensor,
    weight_hh: torch.Tensor,
    bias_ih: torch.Tensor,
    bias_hh: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step with PyTorch's gate order (i, f, g, o): x (B, I), h and c (B, H) -> (h', c')."""
    gates = x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh  # (B, 4H)
    i, f, g, o = gates.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


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


# --------------------------------------------------------------------------- character language models


class CharVocab:
    """Characters to integer ids and back; characters never seen in training map to "?"."""

    def __init__(self, text: str):
        self.chars = sorted(set(text) | {"?"})
        self.index = {ch: i for i, ch in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        """A string -> ids (len(text),) int64."""
        unknown = self.index["?"]
        return torch.tensor([self.index.get(ch, unknown) for ch in text], dtype=torch.int64)

    def decode(self, ids: torch.Tensor) -> str:
        """Ids (T,) -> a string."""
        return "".join(self.chars[i] for i in ids.tolist())


def lm_windows(ids: torch.Tensor, length: int) -> torch.Tensor:
    """Cut a long id sequence (N,) into non-overlapping rows (N // (length + 1), length + 1).

    Each row holds ``length`` inputs and, shifted by one, their ``length`` next characters.
    """
    rows = len(ids) // (length + 1)
    return ids[: rows * (length + 1)].reshape(rows, length + 1)


class WindowLM(nn.Module):
    """A fixed-window neural language model (Bengio et al., 2003).

    Reads the previous ``k`` characters, concatenates their embeddings and predicts the
    next one through a tanh hidden layer. ids (B, T) -> logits (B, T, V); the first k-1
    positions see a window padded with id 0.
    """

    def __init__(self, vocab_size: int, k: int = 5, embedding_dim: int = 16, hidden_size: int = 256):
        super().__init__()
        self.k = self.context = k
        self.embed = nn.Embedding(vocab_size, embedding_dim)
        self.hidden = nn.Linear(k * embedding_dim, hidden_size)
        self.out = nn.Linear(hidden_size, vocab_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        padded = F.pad(ids, (self.k - 1, 0))  # (B, T + k - 1)
        windows = padded.unfold(1, self.k, 1)  # (B, T, k): characters t-k+1 .. t
        e = self.embed(windows).flatten(2)  # (B, T, k * embedding_dim)
        return self.out(torch.tanh(self.hidden(e)))


class RecurrentLM(nn.Module):
    """A recurrent language model (Mikolov et al., 2010), here with a GRU cell.

    ``forward(ids (B, T), state (1, B, H) or None)`` returns logits (B, T, V) and keeps the
    final state (1, B, H) in ``self.last_state``: pass it as ``state`` with the next chunk
    of text to continue where this one ended.
    """

    def __init__(self, vocab_size: int, embedding_dim: int = 16, hidden_size: int = 128):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embedding_dim)
        self.rnn = nn.GRU(embedding_dim, hidden_size, batch_first=True)
        self.out = nn.Linear(hidden_size, vocab_size)
        self.last_state: torch.Tensor | None = None

    def forward(self, ids: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        h, self.last_state = self.rnn(self.embed(ids), state)  # (B, T, H), (1, B, H)
        return self.out(h)


@torch.no_grad()
def next_char_losses(model: nn.Module, ids: torch.Tensor, length: int = 256) -> torch.Tensor:
    """Cross-entropy, in bits, of predicting each character of ``ids`` (N,) from the ones before.

    The text is read in consecutive chunks of ``length``; a recurrent model carries its
    state from chunk to chunk, any other model (with a ``context`` attribute: how many
    characters it reads at most) is also fed the ``context - 1`` characters before each
    chunk. Returns (N - 1,) losses for characters 1..N-1, on the CPU. Runs on the model's
    device, in eval mode; the model's own mode is restored afterwards.
    """
    ids = ids.to(device_of(model))
    losses, state = [], None
    with evaluating(model):
        for start in range(0, len(ids) - 1, length):
            losses.append(_chunk_losses(model, ids, start, length, state))
            state = model.last_state if isinstance(model, RecurrentLM) else None
    return torch.cat(losses).cpu()


def _chunk_losses(model: nn.Module, ids: torch.Tensor, start: int, length: int,
                  state: torch.Tensor | None) -> torch.Tensor:
    """Bits for characters start+1 .. start+length of ids (N,), given everything before them."""
    y = ids[start + 1 : start + length + 1]  # (L,): the characters to predict
    x = ids[start : start + len(y)][None]  # (1, L): the characters before each of them
    if isinstance(model, RecurrentLM):
        logits = model(x, state)  # the state carries everything before the chunk
    else:  # a model with a bounded context needs the characters before the chunk too
        context = ids[max(0, start - model.context + 1) : start + len(y)][None]  # (1, <= context - 1 + L)
        logits = model(context)[:, -len(y) :]  # (1, L, V)
    return F.cross_entropy(logits[0], y, reduction="none") / math.log(2)


@torch.no_grad()
def sample(model: nn.Module, vocab: CharVocab, prompt: str, n: int, temperature: float = 0.8,
           generator: torch.Generator | None = None) -> str:
    """Continue ``prompt`` by ``n`` characters, sampling each from softmax(logits / temperature).

    A model with a bounded ``context`` (a window model, a causal convolution, a Transformer)
    re-reads its last ``context`` characters for every new one; a recurrent model reads the
    prompt once and then only each new character, carrying its state. Runs on the model's
    device, in eval mode; the model's own mode is restored afterwards. ``generator`` is a
    CPU generator: the draws happen on the CPU, so a seed gives the same text on any device.
    """
    ids = vocab.encode(prompt).to(device_of(model))  # (T0,)
    recurrent = isinstance(model, RecurrentLM)
    with evaluating(model):
        logits = model(ids[None])[0, -1]  # (V,): the next character's
        for _ in range(n):
            probs = torch.softmax(logits / temperature, -1).cpu()
            next_id = torch.multinomial(probs, 1, generator=generator).to(ids.device)  # (1,)
            ids = torch.cat([ids, next_id])
            if recurrent:
                logits = model(next_id[None], model.last_state)[0, -1]
            else:
                logits = model(ids[-model.context:][None])[0, -1]
    return vocab.decode(ids.cpu())


# --------------------------------------------------------------------------- sequence to sequence

PAD, BOS, EOS = 0, 1, 2  # padding, begin and end of a target sequence


class TokenVocab:
    """Characters to ids for sequence-to-sequence tasks, with ids 0, 1, 2 reserved for PAD, BOS, EOS."""

    def __init__(self, texts: list[str]):
        self.chars = ["<pad>", "<bos>", "<eos>", *sorted(set("".join(texts)))]
        self.index = {ch: i for i, ch in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def batch(self, texts: list[str], bos: bool = False, eos: bool = False) -> torch.Tensor:
        """Strings -> ids (B, T) padded with PAD, optionally framed by BOS and EOS."""
        if isinstance(texts, str):
            raise TypeError("batch takes a list of strings; for one string write vocab.batch([text])")
        for text in texts:
            unknown = sorted(set(text) - self.index.keys())
            if unknown:
                raise ValueError(f"{text!r} holds characters the vocabulary was not built with: {unknown}; "
                                 f"build the TokenVocab from texts that contain every character")
        rows = [[BOS] * bos + [self.index[ch] for ch in text] + [EOS] * eos for text in texts]
        out = torch.full((len(rows), max(map(len, rows))), PAD, dtype=torch.int64)
        for i, row in enumerate(rows):
            out[i, : len(row)] = torch.tensor(row)
        return out

    def decode(self, ids: torch.Tensor) -> str:
        """Ids (T,) -> a string, stopping at the first EOS and skipping PAD and BOS."""
        text = []
        for i in ids.tolist():
            if i == EOS:
                break
            if i > EOS:
                text.append(self.chars[i])
        return "".join(text)


class Seq2Seq(nn.Module):
    """A GRU encoder-decoder (Sutskever et al., 2014; Cho et al., 2014), with optional attention.

    src: (B, S) ids, PAD = 0 -> the encoder's states (B, S, H). Without attention the decoder
    starts from the encoder's last state and sees nothing else: the whole input must pass
    through one vector of size H (the bottleneck). With attention (Bahdanau et al., 2015) each
    decoder state h_t also reads a weighted average of all encoder states, the weights from
    dot-product scores with h_t as the query and padding masked (Luong et al., 2015's global
    attention), and the output layer sees [h_t; context_t]. The context is not fed back into
    the recurrence, so with teacher forcing every decoder step trains in one parallel call.
    """

    def __init__(self, vocab_size: int, hidden_size: int = 128, embedding_dim: int = 32,
                 use_attention: bool = False, bidirectional: bool = False):
        super().__init__()
        self.use_attention = use_attention
        H = hidden_size
        self.embed = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD)
        self.encoder = nn.GRU(embedding_dim, H, batch_first=True, bidirectional=bidirectional)
        self.bridge = nn.Linear(2 * H if bidirectional else H, H)  # encoder states -> the decoder's size
        self.decoder = nn.GRU(embedding_dim, H, batch_first=True)
        self.out = nn.Linear(2 * H if use_attention else H, vocab_size)

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """src (B, S) -> states (B, S, H), the initial decoder state (B, H), mask (B, S)."""
        mask = src != PAD
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(src), lengths, batch_first=True, enforce_sorted=False)
        states, _ = self.encoder(packed)
        states, _ = nn.utils.rnn.pad_packed_sequence(states, batch_first=True, total_length=src.shape[1])
        states = torch.tanh(self.bridge(states))  # (B, S, H)
        last = states[torch.arange(len(src)), lengths.to(src.device) - 1]  # (B, H)
        return states, last, mask

    def decode(self, tokens: torch.Tensor, h: torch.Tensor, states: torch.Tensor, mask: torch.Tensor):
        """Decoder steps for tokens (B, T) from state h (B, H).

        Returns logits (B, T, V), the last state (B, H) and attention weights (B, T, S) or None.
        """
        outputs, h = self.decoder(self.embed(tokens), h[None])  # (B, T, H), (1, B, H)
        weights = None
        if self.use_attention:
            context, weights = attention(outputs, states, states, mask[:, None, :])  # (B, T, H), (B, T, S)
            outputs = torch.cat([outputs, context], -1)
        return self.out(outputs), h[0], weights

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: src (B, S), tgt_in (B, T) starting with BOS -> logits (B, T, V)."""
        states, h, mask = self.encode(src)
        return self.decode(tgt_in, h, states, mask)[0]

    @torch.no_grad()
    def greedy(self, src: torch.Tensor, max_len: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Greedy decoding: src (B, S) -> ids (B, max_len) and attention weights (B, max_len, S) or None."""
        states, h, mask = self.encode(src)
        maps = []

        def step(token: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            logits, h, weights = self.decode(token[:, None], h, states, mask)
            if weights is not None:
                maps.append(weights[:, 0])
            return logits[:, 0], h

        ids = greedy_decode(step, h, len(src), max_len)
        return ids, (torch.stack(maps, 1) if maps else None)


def greedy_decode(step, state, batch_size: int, max_len: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Feed each step's most likely token back in, starting from BOS.

    step(token (B,), state) -> (logits (B, V), state). Returns the chosen ids (B, max_len),
    on ``device``: by default the state's device (the CPU if the state is not a tensor).
    """
    if device is None:
        device = state.device if isinstance(state, torch.Tensor) else "cpu"
    token = torch.full((batch_size,), BOS, dtype=torch.int64, device=device)
    chosen = []
    for _ in range(max_len):
        logits, state = step(token, state)
        token = logits.argmax(dim=-1)
        chosen.append(token)
    return torch.stack(chosen, dim=1)


def seq2seq_loss(model: Seq2Seq, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Teacher forcing: source (B, S), target (B, T) framed by BOS and EOS -> mean cross-entropy.

    The decoder is fed BOS, t1, t2, ... and scored on t1, t2, ..., EOS; padding is ignored.
    """
    source, target = batch
    logits = model(source, target[:, :-1])  # (B, T - 1, V)
    return F.cross_entropy(logits.flatten(0, 1), target[:, 1:].flatten(), ignore_index=PAD)


def fit_seq2seq(sources: list[str], targets: list[str], vocab: TokenVocab, *, steps: int,
                hidden_size: int = 64, lr: float = 1e-2, device: torch.device | str | None = None,
                desc: str = "seq2seq", **options) -> Seq2Seq:
    """A :class:`Seq2Seq` (``options``: use_attention, bidirectional, embedding_dim) trained for
    ``steps`` Adam steps with teacher forcing and gradient clipping at norm 1 on string pairs.

    ``device``: default the best available (:func:`dlpt.runtime.pick_device`); on MPS the
    model trains on the CPU (:func:`dlpt.runtime.recurrent_device` says why).
    """
    if len(sources) != len(targets):
        raise ValueError(f"{len(sources)} sources for {len(targets)} targets")
    device = recurrent_device(pick_device(device))
    model = Seq2Seq(len(vocab), hidden_size=hidden_size, **options).to(device)
    data = (vocab.batch(sources), vocab.batch(targets, bos=True, eos=True))
    fit(model, data, loss=seq2seq_loss, lr=lr, steps=steps, clip_grad_norm=1.0, desc=desc)
    return model


@torch.no_grad()
def translate(model: Seq2Seq, vocab: TokenVocab, sources: list[str], max_len: int,
              batch_size: int = 500) -> tuple[list[str], list[torch.Tensor] | None]:
    """Greedy decoding of strings -> the predicted strings and, with attention, one weight map
    (max_len, len(source)) per source on the CPU (else None). Runs on the model's device, in
    eval mode; the model's own mode is restored afterwards."""
    device = device_of(model)
    predictions, maps = [], []
    with evaluating(model):
        for start in range(0, len(sources), batch_size):
            chunk = sources[start:start + batch_size]
            ids, weights = model.greedy(vocab.batch(chunk).to(device), max_len)  # (B, max_len), (B, max_len, S)
            predictions += [vocab.decode(row) for row in ids]
            if weights is not None:
                maps += [w[:, :len(text)].cpu() for w, text in zip(weights, chunk)]
    return predictions, (maps if maps else None)


def accuracy_by_length(predictions: list[str], targets: list[str],
                       bins: list[tuple[int, int]]) -> dict[str, list[float]]:
    """Exact match and per-token accuracy (share of target positions predicted right) over the
    targets whose length lies in each bin ``(low, high)``, both ends included."""
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets")
    result: dict[str, list[float]] = {"exact match": [], "per-token": []}
    for low, high in bins:
        pairs = [(p, t) for p, t in zip(predictions, targets) if low <= len(t) <= high]
        if not pairs:
            raise ValueError(f"no target has a length in [{low}, {high}]")
        result["exact match"].append(sum(p == t for p, t in pairs) / len(pairs))
        tokens = [sum(a == b for a, b in zip(p, t)) / len(t) for p, t in pairs]
        result["per-token"].append(sum(tokens) / len(tokens))
    return result


# --------------------------------------------------------------------------- more blocks, written as exercises


def closing_brackets(text: str) -> list[tuple[int, int]]:
    """Every matched ``)`` of ``text`` as ``(i, i - j)``: its index and the distance back to its ``(`` at j.

    Brackets nest, so a ``)`` closes the most recent ``(`` that is still open (a stack of
    open positions, popped at each ``)``). A ``)`` with no open ``(`` before it is skipped,
    and so is a ``(`` that is never closed. The pairs come in the order of their ``)``.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    found, open_at = [], []
    for i, ch in enumerate(text):
        if ch == "(":
            open_at.append(i)
        elif ch == ")" and open_at:
            found.append((i, i - open_at.pop()))
    return found


def clip_grad_norm(grads: list[torch.Tensor], max_norm: float) -> list[torch.Tensor]:
    """Gradient clipping by the global norm (Pascanu et al., 2013), without changing ``grads``.

    grads: a list of tensors of any shapes. Their global norm is the norm of all their
    entries together, ``sqrt(sum_i ||g_i||^2)``. Returns new tensors ``g_i * min(1, max_norm
    / norm)``: unchanged when the norm is at most ``max_norm``, else all scaled by the same
    factor, so the whole gradient keeps its direction and gets the norm ``max_norm``.
    ``torch.nn.utils.clip_grad_norm_`` does the same in place on the parameters' ``.grad``.
    """
    if not isinstance(grads, (list, tuple)) or not all(isinstance(g, torch.Tensor) for g in grads):
        raise TypeError("grads must be a list of tensors")
    if not max_norm > 0:
        raise ValueError(f"max_norm must be positive, got {max_norm}")
    norm = math.sqrt(sum(float(torch.linalg.vector_norm(g)) ** 2 for g in grads))
    scale = max_norm / norm if norm > max_norm else 1.0
    return [g * scale for g in grads]


def content_addressing(
    query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, beta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Content-based addressing of a memory, as in neural Turing machines (Graves et al., 2014).

    ``weights = softmax(beta * cos(query, keys))`` over the N memory slots and ``read =
    weights @ values``. The cosine makes the lookup ignore the lengths of query and keys;
    ``beta >= 0`` sharpens it (0: a uniform average, large: nearly the best slot only).
    query: (D,) or (B, D), keys: (N, D), values: (N, Dv) -> (read (Dv,) or (B, Dv),
    weights (N,) or (B, N)).
    """
    if query.dim() not in (1, 2) or keys.dim() != 2 or query.shape[-1] != keys.shape[-1]:
        raise ValueError(f"expected query (D,) or (B, D) and keys (N, D), got {tuple(query.shape)} "
                         f"and {tuple(keys.shape)}")
    if values.dim() != 2 or values.shape[0] != keys.shape[0]:
        raise ValueError(f"expected values (N, Dv) with N = {keys.shape[0]} slots, got {tuple(values.shape)}")
    similarity = F.normalize(query, dim=-1) @ F.normalize(keys, dim=-1).T  # (..., N), in [-1, 1]
    weights = torch.softmax(beta * similarity, dim=-1)
    return weights @ values, weights
