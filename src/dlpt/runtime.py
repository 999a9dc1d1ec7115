"""Device choice, seeding, the global scale knob and a timer.

Every notebook starts with ``dlpt.setup(seed=0)``. Two environment variables let a
reader change a run without editing the notebook:

- ``DLPT_SCALE`` (default 1): multiplies training lengths passed through :func:`scaled`,
  so a reader with a GPU can train longer.
- ``DLPT_SEED``: replaces the seed a notebook asks for, so anyone can check that the
  notebook's claims hold for another seed too.
- ``DLPT_THREADS`` (default 1): how many CPU threads torch uses for one operation. The
  book's models are small, so a second thread buys little, and on a laptop whose other
  core is busy torch's threads wait for each other: a batched layer measured 180 times
  slower with two threads than with one while another process was running.
"""

from __future__ import annotations

import os
import random
import sys
import time

import numpy as np
import torch

__all__ = ["setup", "reseed", "current_seed", "pick_device", "device_of", "recurrent_device", "seed_everything",
           "scale", "scaled", "threads", "in_notebook", "Timer", "timer", "fastest"]


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """Return ``device`` if given, else the best available: cuda, then mps, then cpu."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def device_of(model: torch.nn.Module) -> torch.device:
    """The device of a model's parameters (the CPU for a model without any).

    The one place the book looks a model's device up: helpers that evaluate, decode or
    sample run where the model is, so a model moved to a GPU stays there.
    """
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def recurrent_device(device: str | torch.device) -> torch.device:
    """Where a GRU or LSTM with packed sequences should run: ``device``, except on MPS.

    PyTorch's recurrent layers and packed sequences have open correctness issues on Apple's
    MPS backend; there the model runs on the CPU instead, and one line says why.
    """
    device = torch.device(device)
    if device.type != "mps":
        return device
    print("dlpt: recurrent layers and packed sequences have open correctness issues on MPS; "
          "this model runs on the CPU")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's (CPU and CUDA) random generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds CUDA too


def _setting(name: str, default: str, kind: type, valid, meaning: str):
    """The environment variable ``name`` read as ``kind``; a clear error if it is not ``meaning``."""
    raw = os.environ.get(name, default)
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not valid(value):
        raise ValueError(f"{name} must be {meaning}, got {raw!r}")
    return value


def scale() -> float:
    """The global scale knob: the float in ``DLPT_SCALE`` (default 1.0, must be > 0)."""
    return _setting("DLPT_SCALE", "1", float, lambda v: v > 0, "a positive number")


def threads() -> int:
    """CPU threads per operation: the integer in ``DLPT_THREADS`` (default 1, must be >= 1)."""
    return _setting("DLPT_THREADS", "1", int, lambda v: v >= 1, "a whole number of threads, at least 1")


def scaled(n: int) -> int:
    """``n`` training steps (or epochs) multiplied by ``DLPT_SCALE``, at least 1."""
    return max(1, round(n * scale()))


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where widgets and tqdm's notebook bar can render)."""
    ipython = sys.modules.get("IPython")
    try:
        return ipython is not None and type(ipython.get_ipython()).__name__ == "ZMQInteractiveShell"
    except Exception:
        return False


_seed = 0  # the seed setup() chose, for reseed()


def current_seed() -> int:
    """The seed :func:`setup` chose (``DLPT_SEED`` if set): derive every other seed from it.

    A data split or a generator seeded with a constant would stay the same whatever
    ``DLPT_SEED`` says; seeded with ``current_seed()`` it follows the notebook's seed.
    """
    return _seed


def reseed() -> int:
    """Restart every random generator from the notebook's seed, the one :func:`setup` chose.

    Call it before each of two models that are compared, so both start from the same state
    (same initial weights where shapes agree, same batch order); ``DLPT_SEED`` still changes
    it, unlike a hard-coded ``torch.manual_seed(0)``. Returns the seed.
    """
    seed_everything(_seed)
    return _seed


def setup(seed: int = 0, device: str | torch.device | None = None) -> torch.device:
    """Seed everything, set the CPU threads and choose the device; print one line saying so.

    ``DLPT_SEED`` in the environment overrides ``seed``; ``DLPT_THREADS`` sets torch's
    threads per operation (default 1, see the module's docstring). Returns the device.
    """
    seed = _setting("DLPT_SEED", str(seed), int, lambda v: True, "a whole number such as 3")
    global _seed
    _seed = seed
    seed_everything(seed)
    torch.set_num_threads(threads())
    chosen = pick_device(device)
    note = f", DLPT_SCALE={scale():g}" if scale() != 1 else ""
    plural = "s" if threads() > 1 else ""
    print(f"dlpt: device={chosen}, seed={seed}, torch {torch.__version__}, {threads()} CPU thread{plural}{note}")
    return chosen


def _synchronize() -> None:
    # GPU work is asynchronous: wait for it, or the timer measures only the launch.
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        torch.mps.synchronize()


class Timer:
    """Wall-clock seconds of a ``with`` block: ``with timer() as t: ...`` then ``t.seconds``."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __enter__(self) -> Timer:
        _synchronize()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        _synchronize()
        self.seconds = time.perf_counter() - self._start


timer = Timer


def fastest(fn, repeats: int = 3) -> float:
    """Seconds of the fastest of ``repeats`` calls of ``fn()``, after one warm-up call.

    The warm-up absorbs one-time costs (kernel selection, allocation); the minimum is the
    run least disturbed by whatever else the machine is doing.
    """
    fn()
    times = []
    for _ in range(repeats):
        with timer() as t:
            fn()
        times.append(t.seconds)
    return min(times)
