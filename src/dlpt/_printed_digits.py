"""Digits rendered from the fonts matplotlib ships, processed like scikit-learn's digits.

scikit-learn's handwritten digits (the UCI "optdigits") were scanned, fitted into a 32x32
binary bitmap, and reduced to 8x8 by counting the ink pixels in each 4x4 block (values
0-16). :func:`render` does the same to printed digits: a glyph outline from a font file,
randomly rotated, sheared, stretched, thickened and shifted, filled on a 32x32 grid, with
a few pixels flipped as scanning noise, then block-summed. Only files inside matplotlib's
own data folder are read: nothing is downloaded.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.font_manager import FontProperties
from matplotlib.path import Path as Outline
from matplotlib.textpath import TextPath
from matplotlib.transforms import Affine2D

FONTS = (  # regular, bold and slanted; sans, serif, monospace, STIX and Computer Modern
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
    "cmr10.ttf",
    "cmss10.ttf",
)
SIZE = 32  # the bitmap's side, before 4x4 block sums give 8x8
_CENTRES = np.stack(np.meshgrid(np.arange(SIZE), np.arange(SIZE), indexing="xy"), -1).reshape(-1, 2) + 0.5


@cache
def _glyph(font: str, digit: int):
    """The outline of ``digit`` in ``font``, centred on its bounding box (a matplotlib Path)."""
    file = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / font
    path = TextPath((0, 0), str(digit), size=10, prop=FontProperties(fname=str(file)))
    low, high = path.vertices.min(0), path.vertices.max(0)
    return path.transformed(Affine2D().translate(*(-(low + high) / 2)))


def _fill(path) -> np.ndarray:
    """(32, 32) bool: pixel centres inside the outline; a hole (inside an inner contour) is not."""
    inside = np.zeros(SIZE * SIZE, dtype=bool)
    for contour in path.to_polygons(closed_only=True):
        inside ^= Outline(contour).contains_points(_CENTRES)  # even-odd: holes cancel
    return inside.reshape(SIZE, SIZE)


def _thicken(ink: np.ndarray) -> np.ndarray:
    """Grow the strokes by one pixel in the four directions."""
    grown = ink.copy()
    grown[1:] |= ink[:-1]
    grown[:-1] |= ink[1:]
    grown[:, 1:] |= ink[:, :-1]
    grown[:, :-1] |= ink[:, 1:]
    return grown


def render(digit: int, rng: np.random.Generator) -> np.ndarray:
    """One printed ``digit`` as an (8, 8) array of ink counts 0..16, its variation drawn from ``rng``."""
    font = FONTS[rng.integers(len(FONTS))]
    distort = (
        Affine2D()
        .scale(rng.uniform(0.8, 1.2), 1.0)  # narrower or wider
        .skew_deg(rng.uniform(-15, 15), 0)  # slant
        .rotate_deg(rng.uniform(-12, 12))
    )
    outline = _glyph(font, digit).transformed(distort)
    low, high = outline.vertices.min(0), outline.vertices.max(0)
    # Fit into the bitmap like the scanned digits: the longer side spans 26-31 pixels.
    scale = rng.uniform(26, 31) / max(high - low)
    shift = rng.uniform(-1.5, 1.5, size=2)
    centre = SIZE / 2 - scale * (low + high) / 2 + shift
    place = Affine2D().scale(scale, -scale).translate(centre[0], SIZE - centre[1])  # rows run down
    ink = _fill(outline.transformed(place))
    for _ in range(rng.choice(3, p=[0.3, 0.5, 0.2])):  # pen width: as drawn, +1 or +2 pixels
        ink = _thicken(ink)
    ink ^= rng.random((SIZE, SIZE)) < 0.01  # scanning noise: 1% of the pixels flipped
    return ink.reshape(8, 4, 8, 4).sum(axis=(1, 3))
