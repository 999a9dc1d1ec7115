"""Hidden tests of chapter 2's exercises, with the plausible mistakes each must catch.

Each checker compares the reader's function with the worked solution in
:mod:`dlpt.convnets` on chosen inputs: non-square and non-divisible shapes, values where
the formula and its near-misses differ, inputs that must stay unchanged. When the answer
matches a known mistake on every case, the failure message names it.
"""

from __future__ import annotations

import copy
import functools
import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from dlpt import convnets
from dlpt.check import Exercise, Mismatch, call, check_cases, describe, register

# ------------------------------------------------------------------------- helpers


class _LibraryNotImplemented(Exception):
    """PyTorch's NotImplementedError ("... not implemented for 'Float'"), told apart from the stub's."""


_LibraryNotImplemented.__name__ = _LibraryNotImplemented.__qualname__ = "NotImplementedError"


def _guarded(fn: Callable) -> Callable:
    """``fn``, with a NotImplementedError that carries a message (PyTorch's, for an operation a
    dtype does not support) turned into an ordinary error: only the stub's bare
    ``raise NotImplementedError`` means "not attempted yet"."""

    @functools.wraps(fn)
    def guarded(*args):
        try:
            return fn(*args)
        except NotImplementedError as exc:
            if not str(exc):
                raise
            raise _LibraryNotImplemented(str(exc)).with_traceback(exc.__traceback__) from None

    return guarded


def _recording(fn: Callable, outputs: list) -> Callable:
    """``fn``, keeping every value it returns in ``outputs`` (to check their type afterwards)."""

    @functools.wraps(fn)
    def recorded(*args):
        out = fn(*args)
        outputs.append(out)
        return out

    return recorded


def _check(
    fn: Callable,
    solution: Callable,
    cases: Sequence[tuple[str, tuple]],
    mistakes: Sequence[tuple[Callable, str]] = (),
    crash_hints: Sequence[tuple[Callable, str]] = (),
    **options: Any,
) -> int:
    """check_cases, plus hints for mistakes that raise on some case.

    ``crash_hints``: plausible wrong answers that raise an exception on some of the inputs
    (so check_cases cannot match their outputs). When the reader's function raised on a case
    exactly the error such a mistake raises there, its hint is added to the message.
    """
    try:
        return check_cases(fn, solution, cases, mistakes, **options)
    except Mismatch as wrong:
        message = str(wrong)
        if "your function raised" in message:
            for crash, hint in crash_hints:
                for inputs, args in cases:
                    if f" on {inputs}" not in message:
                        continue
                    try:
                        crash(*args)
                    except Exception as exc:
                        if f"raised {type(exc).__name__}: {exc}" in message:
                            raise Mismatch(f"{message}. Hint: {hint}") from None
        raise


def _check_integers(fn: Callable, solution: Callable, cases: Sequence[tuple[str, tuple]],
                    mistakes: Sequence[tuple[Callable, str]], what: str) -> int:
    """check_cases for an answer that is a whole number: right values first, then an int type.

    A Python int, a NumPy integer or an integer 0-d tensor is accepted; a float, even 4.0,
    is not: a size or a count is used to index and to allocate.
    """
    outputs: list = []
    passed = check_cases(_recording(fn, outputs), solution, cases, mistakes, what=what)
    for (inputs, _), out in zip(cases, outputs):
        try:
            operator.index(out)
        except TypeError:
            raise Mismatch(f"on {inputs}, {what} has the right value but should be an int, got "
                           f"{describe(out)}; use integer arithmetic (//) or int(...)") from None
    return passed


def _state(module: nn.Module) -> tuple[bool, dict[str, torch.Tensor]]:
    return module.training, {k: v.detach().clone() for k, v in module.state_dict().items()}


def _changed_state(module: nn.Module, before: tuple[bool, dict[str, torch.Tensor]], name: str) -> str:
    """How the function changed ``module`` (called ``name``) since ``before``, or "" when it did not."""
    training, tensors = before
    if any(m.training != training for m in module.modules()):
        mode = "training" if not training else "evaluation"
        return f"switched {name} to {mode} mode; leave it in the mode it is given"
    after = module.state_dict()
    changed = [k for k, v in tensors.items() if k not in after or not torch.equal(after[k], v)]
    if changed:
        return (f"changed {', '.join(changed[:4])} of {name} in place; compute new tensors and leave "
                f"{name} as it is")
    return ""


def _check_with_modules(
    fn: Callable,
    solution: Callable,
    cases: Sequence[tuple[str, tuple]],
    mistakes: Sequence[tuple[Callable, str]],
    crash_hints: Sequence[tuple[Callable, str]] = (),
    *,
    module_name: str,
    **options: Any,
) -> int:
    """check_cases for exercises whose arguments include modules (a block, a list of layers).

    The reader's function gets the modules themselves. The expected output comes from float64
    copies made beforehand and the planted mistakes run on float32 copies, so that a function
    that changes a module (switches it to training mode, updates its statistics) cannot move
    the answer; such a change is reported, calling the module ``module_name``.
    ``crash_hints``: mistakes that raise on these inputs; when the reader's function raised
    the very same error on a case, the hint is added.
    """
    modules = {id(a): a for _, args in cases for a in args if isinstance(a, nn.Module)}
    before = {key: _state(m) for key, m in modules.items()}
    copies32 = {key: copy.deepcopy(m) for key, m in modules.items()}
    copies64 = {key: copy.deepcopy(m).double() for key, m in modules.items()}

    def swapped(args, copies):
        return [copies[id(a)] if id(a) in copies else a for a in args]

    @functools.wraps(solution)
    def reference(*args):
        with torch.no_grad():
            return solution(*swapped(args, copies64))

    def on_copies(wrong):
        def run(*args):
            with torch.no_grad():
                return wrong(*swapped(args, copies32))
        return run

    def module_changed() -> None:
        for inputs, args in cases:
            for a in args:
                change = _changed_state(a, before[id(a)], module_name) if isinstance(a, nn.Module) else ""
                if change:
                    raise Mismatch(f"on {inputs}, your function {change}")

    try:
        passed = _check(fn, reference, cases, [(on_copies(w), hint) for w, hint in mistakes],
                        [(on_copies(w), hint) for w, hint in crash_hints], **options)
    except Mismatch:
        module_changed()  # the cause, when a changed module made the answer wrong
        raise
    module_changed()
    return passed


def _random_batch_norms(module: nn.Module, g: torch.Generator) -> None:
    """Random statistics and affine parameters for every batch norm, so that no mistake hides behind them."""
    with torch.no_grad():
        for bn in module.modules():
            if isinstance(bn, nn.BatchNorm2d):
                bn.running_mean.normal_(0, 0.5, generator=g)
                bn.running_var.uniform_(0.5, 2.0, generator=g)
                bn.weight.uniform_(0.5, 1.5, generator=g)
                bn.bias.normal_(0, 0.5, generator=g)


def _seeded(make: Callable[[], nn.Module], seed: int) -> nn.Module:
    """A module built with torch's global generator seeded, which is restored afterwards."""
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        return make()
    finally:
        torch.set_rng_state(state)


# ------------------------------------------------------------------------- conv2d


def _conv_no_bias(x, weight, bias=None, stride=1, padding=0):
    return convnets.conv2d(x, weight, None, stride, padding)


def _conv_flipped(x, weight, bias=None, stride=1, padding=0):
    return convnets.conv2d(x, weight.flip(-1, -2), bias, stride, padding)


def _conv_kernel_transposed(x, weight, bias=None, stride=1, padding=0):
    c_out, c_in, k_h, k_w = weight.shape
    return convnets.conv2d(x, weight.transpose(-1, -2).reshape(c_out, c_in, k_h, k_w), bias, stride, padding)


def _conv_height_width_swapped(x, weight, bias=None, stride=1, padding=0):
    out = convnets.conv2d(x, weight, bias, stride, padding)
    return out.reshape(out.shape[0], out.shape[1], out.shape[3], out.shape[2])


def _conv_ignores_stride(x, weight, bias=None, stride=1, padding=0):
    return convnets.conv2d(x, weight, bias, 1, padding)


def _conv_channels_positions_mixed(x, weight, bias=None, stride=1, padding=0):
    out = convnets.conv2d(x, weight, bias, stride, padding)  # (B, C_out, H_out, W_out)
    return out.flatten(2).transpose(1, 2).reshape(out.shape)  # (B, L, C_out) read as (B, C_out, H, W)


_CONV_MISTAKES = [
    (_conv_no_bias, "the bias is missing: add bias[c] to every position of output channel c"),
    (_conv_flipped, "the kernel is flipped (a textbook convolution); deep learning's conv2d slides "
     "the kernel unflipped (cross-correlation), as F.unfold's patches line up with weight"),
    (_conv_kernel_transposed, "the kernel's rows and columns are swapped; flatten weight as "
     "weight.reshape(C_out, -1), in the same order F.unfold flattens a patch"),
    (_conv_height_width_swapped, "height and width of the output are swapped: the L columns of "
     "F.unfold run row by row, so reshape to (B, C_out, H_out, W_out)"),
    (_conv_ignores_stride, "the stride is ignored: pass stride to F.unfold"),
    (_conv_channels_positions_mixed, "channels and positions are mixed up: a product laid out as "
     "(B, L, C_out) must be transposed to (B, C_out, L) before the reshape"),
]


def _check_conv2d(fn) -> int:
    fn = _guarded(fn)
    g = torch.Generator().manual_seed(0)
    shapes = [  # description, x, weight, bias?, stride, padding, dtype
        ("x (1, 1, 4, 4), weight (1, 1, 3, 3), bias (1,)", (1, 1, 4, 4), (1, 1, 3, 3), True, 1, 0, torch.float32),
        ("x (2, 3, 5, 7), weight (4, 3, 3, 2) (a rectangular kernel), bias (4,)", (2, 3, 5, 7), (4, 3, 3, 2),
         True, 1, 0, torch.float32),
        ("x (2, 2, 6, 9), weight (3, 2, 3, 3), bias (3,), stride 2, padding 1", (2, 2, 6, 9), (3, 2, 3, 3),
         True, 2, 1, torch.float32),
        ("x (2, 3, 7, 9), weight (2, 3, 2, 3), bias (2,), stride 2 (the windows do not fit exactly)",
         (2, 3, 7, 9), (2, 3, 2, 3), True, 2, 0, torch.float32),
        ("x (1, 2, 5, 8) float64, weight (3, 2, 3, 1) float64, bias None, stride 2, padding 2",
         (1, 2, 5, 8), (3, 2, 3, 1), False, 2, 2, torch.float64),
    ]
    cases = [
        (inputs, (torch.randn(x, generator=g, dtype=dtype), torch.randn(w, generator=g, dtype=dtype),
                  torch.randn(w[0], generator=g, dtype=dtype) if has_bias else None, stride, padding))
        for inputs, x, w, has_bias, stride, padding, dtype in shapes
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


def _size_one_inside(n, kernel_size, stride=1, padding=0, dilation=1):
    return (n + 2 * padding - dilation * (kernel_size - 1)) // stride


_SIZE_MISTAKES = [
    (_size_no_plus_one, "one too few: count the first position too (the formula ends in + 1)"),
    (_size_padding_once, "padding is added on both sides: 2 * padding"),
    (_size_ignores_dilation, "a dilated kernel spans dilation * (kernel_size - 1) + 1 inputs"),
    (_size_rounds_up, "a window that does not fit entirely is dropped: round down"),
    (_size_one_inside, "the - 1 and the + 1 do not cancel: the + 1 comes after the division, "
     "floor((n + 2p - d(k - 1) - 1) / s) + 1"),
]


def _check_output_size(fn) -> int:
    fn = _guarded(fn)
    cases = [(8, 3, 1, 0, 1), (10, 3, 1, 3, 1), (16, 3, 1, 0, 2), (10, 3, 2, 0, 1), (9, 3, 2, 0, 1),
             (32, 5, 2, 2, 1), (11, 3, 3, 1, 1), (12, 3, 4, 1, 1), (28, 4, 3, 1, 1), (40, 5, 2, 1, 1),
             (20, 3, 3, 2, 2)]
    described = [(f"n={n}, kernel_size={k}, stride={s}, padding={p}, dilation={d}", (n, k, s, p, d))
                 for n, k, s, p, d in cases]
    return _check_integers(fn, convnets.output_size, described, _SIZE_MISTAKES, what="the size")


register(Exercise("convnets.output_size", _check_output_size, convnets.output_size, _SIZE_MISTAKES))

# -------------------------------------------------------------------- conv_params


def _params_no_bias(in_channels, out_channels, kernel_size):
    return out_channels * in_channels * kernel_size**2


def _params_no_input_channels(in_channels, out_channels, kernel_size):
    return out_channels * kernel_size**2 + out_channels


def _params_bias_per_input(in_channels, out_channels, kernel_size):
    return out_channels * in_channels * kernel_size**2 + in_channels


def _params_kernel_not_squared(in_channels, out_channels, kernel_size):
    return out_channels * in_channels * kernel_size + out_channels


_PARAMS_MISTAKES = [
    (_params_no_bias, "each output channel also has one bias"),
    (_params_no_input_channels, "each kernel covers all C_in input channels: C_in * k * k weights"),
    (_params_bias_per_input, "there is one bias per output channel, not per input channel"),
    (_params_kernel_not_squared, "a square kernel of size k has k * k weights per input channel"),
]


def _check_conv_params(fn) -> int:
    fn = _guarded(fn)
    cases = [(f"in_channels={c_in}, out_channels={c_out}, kernel_size={k}", (c_in, c_out, k))
             for c_in, c_out, k in [(1, 1, 3), (3, 16, 3), (16, 32, 5), (64, 8, 1), (5, 7, 4)]]
    return _check_integers(fn, convnets.conv_params, cases, _PARAMS_MISTAKES, what="the count")


register(Exercise("convnets.conv_params", _check_conv_params, convnets.conv_params, _PARAMS_MISTAKES))

# ---------------------------------------------------------------------- avg_pool2d


def _pool_sum(x, kernel_size):
    return convnets.avg_pool2d(x, kernel_size) * kernel_size**2


def _pool_stride_one(x, kernel_size):
    batch, channels, height, width = x.shape
    weight = torch.full((1, 1, kernel_size, kernel_size), 1.0 / kernel_size**2, dtype=x.dtype)
    out = convnets.conv2d(x.reshape(batch * channels, 1, height, width), weight)
    return out.reshape(batch, channels, out.shape[-2], out.shape[-1])


def _pool_channels_summed(x, kernel_size):
    channels = x.shape[1]
    weight = torch.full((channels, channels, kernel_size, kernel_size), 1.0 / kernel_size**2, dtype=x.dtype)
    return convnets.conv2d(x, weight, stride=kernel_size)


def _pool_channels_averaged(x, kernel_size):
    return _pool_channels_summed(x, kernel_size) / x.shape[1]


_POOL_MISTAKES = [
    (_pool_sum, "the windows were summed, not averaged: the fixed kernel is 1 / k**2 everywhere"),
    (_pool_stride_one, "the windows overlap: pooling moves by a whole window, stride = kernel_size"),
    (_pool_channels_summed, "the channels were mixed: a kernel of shape (C, C, k, k) sums over all input "
     "channels; pool each channel on its own (fold the channels into the batch, or groups=C)"),
    (_pool_channels_averaged, "the channels were averaged together; pool each channel on its own "
     "(fold the channels into the batch, or groups=C)"),
]


def _check_avg_pool2d(fn) -> int:
    fn = _guarded(fn)
    g = torch.Generator().manual_seed(0)
    cases = [
        ("x (2, 3, 6, 8), kernel_size 2", (torch.randn(2, 3, 6, 8, generator=g), 2)),
        ("x (1, 2, 7, 10), kernel_size 3 (the last row and column do not fill a window)",
         (torch.randn(1, 2, 7, 10, generator=g), 3)),
        ("x (2, 4, 9, 5) float64, kernel_size 4", (torch.randn(2, 4, 9, 5, generator=g, dtype=torch.float64), 4)),
    ]
    return check_cases(fn, convnets.avg_pool2d, cases, _POOL_MISTAKES, what="the pooled image")


register(Exercise("convnets.avg_pool2d", _check_avg_pool2d, convnets.avg_pool2d, _POOL_MISTAKES))

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


def _derangement_like(n: int, g: torch.Generator) -> torch.Tensor:
    """A random permutation that is not its own inverse (so that it and its inverse differ)."""
    permutation = torch.randperm(n, generator=g)
    while torch.equal(permutation[permutation], torch.arange(n)):
        permutation = torch.randperm(n, generator=g)
    return permutation


def _check_permuted(fn) -> int:
    fn = _guarded(fn)
    g = torch.Generator().manual_seed(0)
    cases = []
    for out, n in ((3, 7), (5, 5), (100, 40)):
        weight = torch.randn(out, n, generator=g)
        cases.append((f"weight ({out}, {n}), a permutation of {n} positions", (weight, _derangement_like(n, g))))
    return _check(fn, convnets.permuted_input_weights, cases, _PERM_MISTAKES, _PERM_MISTAKES[1:2],
                  what="the new weights")


register(Exercise("convnets.permuted_input_weights", _check_permuted, convnets.permuted_input_weights,
                  _PERM_MISTAKES))

# -------------------------------------------------------------------- shuffled_mlp


def _shuffled_in_place(model, permutation):
    with torch.no_grad():
        model.net[0].weight.copy_(model.net[0].weight[:, permutation])
    return model


def _shuffled_inverse(model, permutation):
    moved = copy.deepcopy(model)
    with torch.no_grad():
        moved.net[0].weight.copy_(model.net[0].weight[:, torch.argsort(permutation)])
    return moved


def _shuffled_first_weight_only(model, permutation):
    first, last = model.net[0], model.net[-1]
    fresh = convnets.MLP1d(first.in_features, first.out_features, last.out_features)
    with torch.no_grad():
        fresh.net[0].weight.copy_(first.weight[:, permutation])
    return fresh


def _shuffled_not_permuted(model, permutation):
    return copy.deepcopy(model)


def _shuffled_shares_layers(model, permutation):
    moved = convnets.MLP1d(model.net[0].in_features, model.net[0].out_features, model.net[-1].out_features)
    moved.net[2], moved.net[4] = model.net[2], model.net[4]
    moved.net[0].weight = nn.Parameter(model.net[0].weight[:, permutation])
    moved.net[0].bias = model.net[0].bias
    return moved


_SHUFFLED_MISTAKES = [
    (_shuffled_in_place, "returned the model it was given"),
    (_shuffled_inverse, "the inverse permutation"),
    (_shuffled_first_weight_only, "differ from the original's"),
    (_shuffled_not_permuted, "the first weight is unchanged"),
    (_shuffled_shares_layers, "shares"),
]


def _mlp_cases() -> list[tuple[str, convnets.MLP1d, torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    cases = []
    for seed, (length, hidden, classes) in enumerate([(9, 12, 4), (40, 16, 10)]):
        model = _seeded(functools.partial(convnets.MLP1d, length, hidden, classes), seed)
        with torch.no_grad():  # biases large enough that forgetting one shows
            for layer in model.net[::2]:
                layer.bias.normal_(0, 0.5, generator=g)
        inputs = (f"an MLP1d(length={length}, hidden_size={hidden}, num_classes={classes}) and a "
                  f"permutation of its {length} inputs")
        cases.append((inputs, model, _derangement_like(length, g), torch.randn(6, length, generator=g)))
    return cases


def _storages(module: nn.Module) -> dict[int, str]:
    return {p.untyped_storage().data_ptr(): name for name, p in module.state_dict(keep_vars=True).items()}


def _close_tensors(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), atol=1e-6, rtol=1e-5))


def _check_shuffled_mlp(fn) -> int:
    fn = _guarded(fn)
    cases = _mlp_cases()
    news = []
    for inputs, model, permutation, _ in cases:
        before, permutation_before = _state(model), permutation.clone()
        try:
            new = call(fn, model, permutation, inputs=inputs)
        except Mismatch as wrong:
            if "size mismatch" not in str(wrong):
                raise
            raise Mismatch(f"{wrong}. Hint: the models of this check are not MLP1d() with its default sizes; "
                           "give the new model the sizes of `model`") from None
        if new is model:
            raise Mismatch(f"on {inputs}, your function returned the model it was given; return a new "
                           "MLP1d and leave the original unchanged")
        change = _changed_state(model, before, "the original model")
        if change:
            raise Mismatch(f"on {inputs}, your function {change}")
        if not torch.equal(permutation, permutation_before):
            raise Mismatch(f"on {inputs}, your function changed the permutation in place")
        if not isinstance(new, convnets.MLP1d):
            got = describe(new) if isinstance(new, torch.Tensor) or new is None else f"a {type(new).__name__}"
            raise Mismatch(f"on {inputs}, your function should return a new dlpt.convnets.MLP1d, got {got}")
        mine, theirs = _storages(model), _storages(new)
        shared = [name for ptr, name in theirs.items() if ptr in mine]
        if shared:
            raise Mismatch(f"on {inputs}, the new model shares {', '.join(shared)} with the original (the "
                           "same tensors): copy them, so that training one model cannot change the other")
        news.append(new)
    # What each returned model got wrong, case by case; a hint only for a mistake made on every case.
    diagnoses = []
    for (_, model, permutation, _), new in zip(cases, news):
        state, original = new.state_dict(), model.state_dict()
        if set(state) != set(original) or any(state[k].shape != original[k].shape for k in original):
            diagnoses.append(set())
            continue
        weight = original["net.0.weight"]
        found = {k for k in original if k != "net.0.weight" and not _close_tensors(state[k], original[k])}
        found = {f"other: {', '.join(sorted(found))}"} if found else set()
        if _close_tensors(state["net.0.weight"], weight[:, torch.argsort(permutation)]):
            found.add("inverse")
        if _close_tensors(state["net.0.weight"], weight):
            found.add("unchanged")
        diagnoses.append(found)
    hints = {
        "inverse": "that is the inverse permutation: column j of the new first weight must be "
                   "column permutation[j] of the old one",
        "unchanged": "the first weight is unchanged: the shuffled inputs meet the wrong columns",
    }
    always = set.intersection(*diagnoses) if diagnoses else set()
    others = [d for d in diagnoses if any(s.startswith("other: ") for s in d)]
    for (inputs, model, permutation, x), new, diagnosis in zip(cases, news, diagnoses):
        with torch.no_grad():
            expected = copy.deepcopy(model).double()(x.double())
            dtype = next(new.parameters()).dtype
            got = call(new, x[:, permutation].to(dtype),
                       inputs=f"{inputs}, when the model it returned is run on x[:, permutation] {tuple(x.shape)}")
        if got.shape != expected.shape or not torch.allclose(got.double(), expected, atol=1e-4, rtol=1e-4):
            shown = "" if got.shape != expected.shape else (
                f" (largest difference {(got.double() - expected).abs().max().item():.3g})")
            hint = next((hints[k] for k in ("inverse", "unchanged") if k in always), "")
            if not hint and len(others) == len(diagnoses):
                names = next(s for s in diagnosis if s.startswith("other: ")).removeprefix("other: ")
                hint = (f"these parameters of the new model differ from the original's: {names}; only the "
                        "first weight changes, every other parameter is copied unchanged")
            raise Mismatch(f"on {inputs}, the new model's logits on x[:, permutation] differ from the "
                           f"original's on x{shown}" + (f". Hint: {hint}" if hint else ""))
    return len(cases)


register(Exercise("convnets.shuffled_mlp", _check_shuffled_mlp, convnets.shuffled_mlp, _SHUFFLED_MISTAKES))

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


def _field_ignores_strides(kernel_sizes, dilations=None, strides=None):
    return convnets.receptive_field(kernel_sizes, dilations, None)


_FIELD_MISTAKES = [
    (_field_k_per_layer, "each layer adds k - 1 inputs, not k: one input of a window is already "
     "counted (the field of a single 3x3 layer is 3, of two is 5)"),
    (_field_ignores_dilation, "a dilated kernel spans d * (k - 1) + 1 inputs: multiply each layer's "
     "growth by its dilation"),
    (_field_own_stride, "a layer's own stride does not widen its own window; only the strides of the "
     "layers before it stretch its steps"),
    (_field_ignores_strides, "the strides are ignored: after a layer of stride s, one step of the next "
     "layer spans s inputs, so its growth is multiplied by the product of the earlier strides"),
]


def _check_receptive_field(fn) -> int:
    fn = _guarded(fn)
    cases = [([3], None, None), ([3, 3, 3], None, None), ([3, 3, 3, 3], [1, 2, 4, 8], None),
             ([2, 2, 2], [1, 2, 4], None), ([7, 3, 3], None, [2, 2, 1]), ([5, 3, 3], [1, 1, 2], [2, 1, 1]),
             ([3, 5, 3, 2], [1, 2, 1, 3], [1, 2, 3, 1])]
    described = [(f"kernel_sizes={k}, dilations={d}, strides={s}", (k, d, s)) for k, d, s in cases]
    return _check_integers(fn, convnets.receptive_field, described, _FIELD_MISTAKES, what="the receptive field")


register(Exercise("convnets.receptive_field", _check_receptive_field, convnets.receptive_field, _FIELD_MISTAKES))

# ------------------------------------------------------------------------- he_std


def _he_fan_out(shape):
    return math.sqrt(2 / math.prod((shape[0], *shape[2:])))


def _he_channels_only(shape):
    return math.sqrt(2 / shape[1])


def _he_variance(shape):
    return 2 / math.prod(shape[1:])


def _he_without_two(shape):
    return math.sqrt(1 / math.prod(shape[1:]))


def _he_all_weights(shape):
    return math.sqrt(2 / math.prod(shape))


_HE_MISTAKES = [
    (_he_fan_out, "that counts the outputs (fan_out = C_out * kH * kW); He's rule counts the inputs "
     "one output sums, fan_in = C_in * kH * kW"),
    (_he_channels_only, "one output sums a whole window of every input channel: fan_in = C_in * kH * kW, "
     "not C_in"),
    (_he_variance, "that is the variance 2 / fan_in; the standard deviation is its square root"),
    (_he_without_two, "sqrt(1 / fan_in) is the rule for symmetric activations; a ReLU zeroes half its "
     "inputs, so He's rule doubles the variance: sqrt(2 / fan_in)"),
    (_he_all_weights, "count the inputs of one output, not all the weights of the layer: leave out C_out"),
]


def _check_he_std(fn) -> int:
    fn = _guarded(fn)
    shapes = [((16, 3, 3, 3), "a 3x3 convolution from 3 to 16 channels"),
              ((8, 16, 5, 3), "a 5x3 convolution from 16 to 8 channels"),
              ((25, 1, 5), "a 1-d convolution of kernel 5 from 1 to 25 channels"),
              ((10, 40), "a linear layer from 40 to 10"),
              ((32, 64, 1, 1), "a 1x1 convolution from 64 to 32 channels")]
    cases = [(f"shape={shape} ({what})", (shape,)) for shape, what in shapes]
    return check_cases(fn, convnets.he_std, cases, _HE_MISTAKES, what="the standard deviation")


register(Exercise("convnets.he_std", _check_he_std, convnets.he_std, _HE_MISTAKES))

# --------------------------------------------------------------------- batch_norm


def _bn_affine(y, weight, bias):
    return y * weight[:, None, None] + bias[:, None, None]


def _bn_layer_norm(x, weight, bias, eps=1e-5):
    mean, var = x.mean(dim=(1, 2, 3), keepdim=True), x.var(dim=(1, 2, 3), correction=0, keepdim=True)
    return _bn_affine((x - mean) / torch.sqrt(var + eps), weight, bias)


def _bn_batch_only(x, weight, bias, eps=1e-5):
    mean, var = x.mean(dim=0, keepdim=True), x.var(dim=0, correction=0, keepdim=True)
    return _bn_affine((x - mean) / torch.sqrt(var + eps), weight, bias)


def _bn_stats(x):
    return x.mean(dim=(0, 2, 3), keepdim=True), x.var(dim=(0, 2, 3), correction=0, keepdim=True)


def _bn_unbiased(x, weight, bias, eps=1e-5):
    mean, var = x.mean(dim=(0, 2, 3), keepdim=True), x.var(dim=(0, 2, 3), keepdim=True)
    return _bn_affine((x - mean) / torch.sqrt(var + eps), weight, bias)


def _bn_eps_outside(x, weight, bias, eps=1e-5):
    mean, var = _bn_stats(x)
    return _bn_affine((x - mean) / (torch.sqrt(var) + eps), weight, bias)


def _bn_no_affine(x, weight, bias, eps=1e-5):
    mean, var = _bn_stats(x)
    return (x - mean) / torch.sqrt(var + eps)


def _bn_by_variance(x, weight, bias, eps=1e-5):
    mean, var = _bn_stats(x)
    return _bn_affine((x - mean) / (var + eps), weight, bias)


def _bn_std_for_variance(x, weight, bias, eps=1e-5):
    mean, var = _bn_stats(x)
    return _bn_affine((x - mean) / torch.sqrt(var.sqrt() + eps), weight, bias)


def _bn_fixed_eps(x, weight, bias, eps=1e-5):
    return convnets.batch_norm(x, weight, bias, 1e-5)


def _bn_mean_of_squares(x, weight, bias, eps=1e-5):
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = (x * x).mean(dim=(0, 2, 3), keepdim=True) - mean * mean
    return _bn_affine((x - mean) / torch.sqrt(var + eps), weight, bias)


_BN_MISTAKES = [
    (_bn_layer_norm, "the statistics were taken per example over (C, H, W) (that is layer "
     "normalization); batch norm takes them per channel, over the batch and all positions (B, H, W)"),
    (_bn_batch_only, "the statistics were taken over the batch alone, separately at every position; "
     "take them over the batch and all positions, dim=(0, 2, 3)"),
    (_bn_unbiased, "that is the unbiased variance (divided by N - 1); batch norm normalizes with the "
     "biased one, divided by N = B * H * W (correction=0)"),
    (_bn_eps_outside, "eps belongs inside the square root: sqrt(var + eps), not sqrt(var) + eps"),
    (_bn_no_affine, "the scale and shift are missing: multiply channel c by weight[c], then add bias[c]"),
    (_bn_by_variance, "divide by the standard deviation sqrt(var + eps), not by the variance"),
    (_bn_std_for_variance, "the square root is taken twice: divide by sqrt(var + eps), where var is "
     "the variance, not the standard deviation"),
    (_bn_fixed_eps, "use the eps that is passed in, not a fixed 1e-5"),
    (_bn_mean_of_squares, "the variance computed as mean(x**2) - mean(x)**2 loses its digits to rounding "
     "when the mean is large compared with the spread; subtract the mean first, then average the squares"),
]


def _check_batch_norm(fn) -> int:
    fn = _guarded(fn)
    g = torch.Generator().manual_seed(0)

    def channels(shape, spread, centre):
        x = torch.randn(shape, generator=g)
        return x * torch.tensor(spread)[:, None, None] + torch.tensor(centre)[:, None, None]

    def affine(c):
        return torch.randn(c, generator=g), torch.randn(c, generator=g)

    x1 = channels((4, 3, 5, 6), [0.5, 3.0, 0.01], [-2.0, 5.0, 0.3])
    x2 = channels((2, 5, 3, 4), [1.0, 2.0, 0.5, 4.0, 1.5], [0.0, -1.0, 3.0, 1.0, -4.0])
    x3 = channels((3, 2, 4, 7), [1.0, 0.0], [300.0, 0.7])
    x4 = torch.randn(2, 3, 3, 5, generator=g, dtype=torch.float64) * 2 + 1
    cases = [
        ("x (4, 3, 5, 6) whose channels have spreads 0.5, 3 and 0.01, weight (3,), bias (3,), eps=1e-5",
         (x1, *affine(3), 1e-5)),
        ("x (2, 5, 3, 4), weight (5,), bias (5,), eps=0.5", (x2, *affine(5), 0.5)),
        ("x (3, 2, 4, 7): a channel around 300 with spread 1 and a constant channel; weight (2,), "
         "bias (2,), eps left at its default", (x3, *affine(2))),
        ("x (2, 3, 3, 5) float64, weight (3,) and bias (3,) float64, eps=1e-3",
         (x4, *(t.double() for t in affine(3)), 1e-3)),
    ]
    return check_cases(fn, convnets.batch_norm, cases, _BN_MISTAKES, what="the output", atol=2e-4)


register(Exercise("convnets.batch_norm", _check_batch_norm, convnets.batch_norm, _BN_MISTAKES))

# ---------------------------------------------------------------- residual block


class LayersOnlyBlock(convnets.ResidualBlock):
    """A ResidualBlock whose own forward is switched off: the exercise computes it from its layers."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("in this check the block's own forward is switched off: compute the block from "
                           "its layers, block.conv1, block.bn1, block.conv2 and block.bn2 (or "
                           "block.residual(x) for F(x))")


residual_block = convnets.residual_block  # the worked solution


def _res_relu_before_add(x, block):
    return x + torch.relu(block.residual(x))


def _res_no_skip(x, block):
    return torch.relu(block.residual(x))


def _res_skip_after_first_conv(x, block):
    h = block.conv1(x)
    return torch.relu(h + block.bn2(block.conv2(torch.relu(block.bn1(h)))))


def _res_no_final_relu(x, block):
    return x + block.residual(x)


def _res_calls_block(x, block):
    return block(x)


_RES_MISTAKES = [
    (_res_no_skip, "the skip connection is missing: add the block's input x to F(x)"),
    (_res_relu_before_add, "the ReLU comes after the addition: relu(x + F(x)), not x + relu(F(x))"),
    (_res_no_final_relu, "the final ReLU is missing: relu(x + F(x))"),
    (_res_skip_after_first_conv, "the skip must carry the block's input x itself, not the first "
     "convolution's output"),
]


def _check_residual_block(fn) -> int:
    fn = _guarded(fn)
    g = torch.Generator().manual_seed(0)
    cases = []
    for seed, (channels, shape) in enumerate([(3, (2, 3, 5, 7)), (4, (1, 4, 6, 6))]):
        block = _seeded(functools.partial(LayersOnlyBlock, channels), seed)
        _random_batch_norms(block, g)
        block.eval()
        inputs = f"x {shape} and a ResidualBlock({channels}) in eval mode"
        cases.append((inputs, (torch.randn(shape, generator=g), block)))
    return _check_with_modules(fn, residual_block, cases, _RES_MISTAKES, module_name="the block",
                               what="the output", atol=1e-4)


register(Exercise("convnets.residual_block", _check_residual_block, residual_block,
                  [*_RES_MISTAKES, (_res_calls_block, "forward is switched off")]))

# ------------------------------------------------------------- dense_block_forward


def _dense_without_input(x, layers):
    return convnets.dense_block_forward(x, layers)[:, x.shape[1]:]


def _dense_last_only(x, layers):
    features = [x]
    for layer in layers:
        features.append(layer(torch.cat(features, dim=1)))
    return features[-1]


def _dense_input_and_last(x, layers):
    return torch.cat([x, _dense_last_only(x, layers)], dim=1)


def _dense_reversed(x, layers):
    features = [x]
    for layer in layers:
        features.append(layer(torch.cat(features, dim=1)))
    return torch.cat(features[::-1], dim=1)


def _dense_previous_only(x, layers):
    features, h = [x], x
    for layer in layers:
        h = layer(h)
        features.append(h)
    return torch.cat(features, dim=1)


def _dense_batch_dim(x, layers):
    features = [x]
    for layer in layers:
        features.append(layer(torch.cat(features, dim=0)))
    return torch.cat(features, dim=0)


def _dense_width_dim(x, layers):
    features = [x]
    for layer in layers:
        features.append(layer(torch.cat(features, dim=-1)))
    return torch.cat(features, dim=-1)


_DENSE_PREVIOUS_HINT = ("a layer got the wrong number of channels: layer l expects the C + l * growth_rate "
                        "channels of x and all earlier outputs concatenated along dim 1, not only the "
                        "previous layer's output")
_DENSE_DIM_HINT = "concatenate along the channels, dim=1 of (B, C, H, W)"

_DENSE_MISTAKES = [
    (_dense_without_input, "the block's output starts with its input: concatenate x and every layer's output"),
    (_dense_last_only, "return the concatenation of x and every layer's output, not the last layer's alone"),
    (_dense_input_and_last, "every layer's output is part of the result, not only the last one's: "
     "concatenate x and all the outputs"),
    (_dense_reversed, "keep the order: x first, then the layers' outputs in the order they were computed"),
]
_DENSE_CRASHES = [
    (_dense_previous_only, _DENSE_PREVIOUS_HINT),
    (_dense_batch_dim, _DENSE_DIM_HINT),
    (_dense_width_dim, _DENSE_DIM_HINT),
]


def _check_dense_block_forward(fn) -> int:
    fn = _guarded(fn)
    g = torch.Generator().manual_seed(0)
    cases = []
    sizes = [(3, 2, 3, (2, 3, 5, 6)), (4, 5, 2, (1, 4, 3, 7)), (1, 3, 4, (3, 1, 4, 4))]
    for seed, (c, k, n, shape) in enumerate(sizes):
        block = _seeded(functools.partial(convnets.DenseBlock, c, k, n), seed)
        _random_batch_norms(block, g)
        block.eval()
        inputs = (f"x {shape} and the layers of a DenseBlock(in_channels={c}, growth_rate={k}, num_layers={n}) "
                  "in eval mode")
        cases.append((inputs, (torch.randn(shape, generator=g), block.layers)))
    return _check_with_modules(fn, convnets.dense_block_forward, cases, _DENSE_MISTAKES, _DENSE_CRASHES,
                               module_name="the layers", what="the output", atol=1e-4)


register(Exercise("convnets.dense_block_forward", _check_dense_block_forward, convnets.dense_block_forward,
                  [*_DENSE_MISTAKES, (_dense_previous_only, "not only the previous layer's output"),
                   (_dense_batch_dim, "dim=1"), (_dense_width_dim, "dim=1")]))

# ----------------------------------------------------------------------------- iou


def _iou_sum_union(predicted, target):
    predicted, target = predicted.bool(), target.bool()
    return (predicted & target).sum().item() / max(1, predicted.sum().item() + target.sum().item())


def _iou_dice(predicted, target):
    predicted, target = predicted.bool(), target.bool()
    total = predicted.sum().item() + target.sum().item()
    return 1.0 if total == 0 else 2 * (predicted & target).sum().item() / total


def _iou_per_image(predicted, target):
    if predicted.dim() == 2:
        return convnets.iou(predicted, target)
    return sum(convnets.iou(p, t) for p, t in zip(predicted, target)) / len(predicted)


def _iou_empty_nan(predicted, target):
    predicted, target = predicted.bool(), target.bool()
    union = (predicted | target).sum().item()
    return float("nan") if union == 0 else (predicted & target).sum().item() / union


def _iou_empty_zero(predicted, target):
    predicted, target = predicted.bool(), target.bool()
    union = (predicted | target).sum().item()
    return 0.0 if union == 0 else (predicted & target).sum().item() / union


_IOU_MISTAKES = [
    (_iou_sum_union, "the union counts the overlap twice: |P or T| = |P| + |T| - |P and T|"),
    (_iou_dice, "that is the Dice coefficient, 2|P and T| / (|P| + |T|); IoU divides by the union"),
    (_iou_per_image, "the IoU was averaged image by image; pool the pixels of all images first"),
    (_iou_empty_nan, "two empty masks agree perfectly: return 1.0 when the union is empty"),
    (_iou_empty_zero, "two empty masks agree perfectly: return 1.0 when the union is empty, not 0"),
]


def _two_pixels() -> torch.Tensor:
    mask = torch.zeros(3, 5, dtype=torch.bool)
    mask[1, 2] = mask[2, 4] = True
    return mask


def _check_iou(fn) -> int:
    fn = _guarded(fn)
    g = torch.Generator().manual_seed(0)
    big = torch.zeros(2, 8, 8, dtype=torch.bool)
    big[0, 1:7, 1:7] = True  # a large object predicted well ...
    truth_big = big.clone()
    truth_big[0, 1:7, 6] = False
    big[1, 0, 0], truth_big[1, 0, 1] = True, True  # ... and a tiny one missed
    empty = torch.zeros(3, 5, dtype=torch.bool)
    cases = [
        ("predicted (2, 4, 5) and target (2, 4, 5) random boolean masks",
         (torch.rand(2, 4, 5, generator=g) > 0.5, torch.rand(2, 4, 5, generator=g) > 0.5)),
        ("two 8x8 images: a large object found well and a one-pixel object missed", (big, truth_big)),
        ("predicted (3, 5, 6) and target (3, 5, 6) float masks of 0.0 and 1.0",
         ((torch.rand(3, 5, 6, generator=g) > 0.4).float(), (torch.rand(3, 5, 6, generator=g) > 0.6).float())),
        ("two empty (3, 5) masks", (empty, empty.clone())),
        ("an empty prediction (3, 5) for a target with two pixels set", (empty.clone(), _two_pixels())),
        ("a prediction with two pixels set for an empty target (3, 5)", (_two_pixels(), empty.clone())),
        ("predicted (6, 7) and target (6, 7): one image without a batch dimension",
         (torch.rand(6, 7, generator=g) > 0.7, torch.rand(6, 7, generator=g) > 0.5)),
    ]
    return check_cases(fn, convnets.iou, cases, _IOU_MISTAKES, what="the IoU")


register(Exercise("convnets.iou", _check_iou, convnets.iou, _IOU_MISTAKES))
