"""dlpt: the small shared package of *Deep Learning: Practice and Trends*.

Plumbing (``setup``, ``train``, ``plot``, ``check``, ``data``) and the building blocks
each chapter teaches, one module per chapter (``dlpt.practice``, ...).
"""

from dlpt import check, data, plot, practice, train
from dlpt.check import ClaimError, claim
from dlpt.runtime import current_seed, fastest, reseed, scale, scaled, setup, timer
from dlpt.show import show

__version__ = "0.1.0"

__all__ = [
    "setup",
    "reseed",
    "current_seed",
    "scale",
    "scaled",
    "timer",
    "fastest",
    "claim",
    "ClaimError",
    "show",
    "check",
    "data",
    "plot",
    "train",
    "practice",
]
