"""Plots every chapter uses: learning curves, image grids, labelled heatmaps."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from dlpt.runtime import in_notebook
from dlpt.train import History

__all__ = ["curves", "image_grid", "heatmap", "audio", "explore"]


def _xy(run) -> tuple[np.ndarray, np.ndarray]:
    """x and y of one run: a History (its loss), (step, value) pairs, or plain values."""
    if isinstance(run, History):
        run = run.loss
    values = np.asarray(run.detach().cpu() if isinstance(run, torch.Tensor) else run, dtype=float)
    if values.ndim == 2 and values.shape[1] == 2:
        return values[:, 0], values[:, 1]
    if values.ndim != 1:
        raise ValueError(f"a run must be values (T,) or (step, value) pairs (T, 2); got shape {values.shape}")
    return np.arange(1, len(values) + 1), values


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(y) < window:
        return y
    kernel = np.ones(window) / window
    return np.convolve(y, kernel, mode="valid")


def curves(
    runs: Mapping[str, object],
    *,
    ylabel: str = "loss",
    xlabel: str = "step",
    log: bool = False,
    smooth: int = 1,
    title: str | None = None,
    ax: plt.Axes | None = None,
) -> plt.Axes:
    """Several learning curves on one axis, one line per named run.

    runs: ``{label: run}`` where a run is a :class:`~dlpt.train.History` (its step losses),
        a sequence of values ``(T,)``, or ``(step, value)`` pairs ``(T, 2)``.
    log: logarithmic y axis. smooth: moving-average window in points (1 = raw).
    """
    if not runs:
        raise ValueError("runs is empty: give at least one {label: values}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    for label, run in runs.items():
        x, y = _xy(run)
        y_s = _smooth(y, smooth)
        ax.plot(x[len(x) - len(y_s):], y_s, label=str(label))
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return ax


def image_grid(
    images: torch.Tensor | np.ndarray,
    *,
    titles: Sequence[str] | None = None,
    ncols: int = 8,
    cmap: str = "gray",
    size: float = 1.2,
) -> plt.Figure:
    """Show images ``(N, H, W)``, ``(N, 1, H, W)`` or ``(N, 3, H, W)`` in a grid, with optional titles."""
    images = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if images.ndim == 4 and images.shape[1] in (1, 3):
        images = images[:, 0] if images.shape[1] == 1 else images.transpose(0, 2, 3, 1)
    elif images.ndim != 3:
        raise ValueError(f"images must be (N, H, W), (N, 1, H, W) or (N, 3, H, W); got shape {images.shape}")
    n = len(images)
    if titles is not None and len(titles) != n:
        raise ValueError(f"got {len(titles)} titles for {n} images")
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows * 1.15), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i], cmap=cmap)
            if titles is not None:
                ax.set_title(str(titles[i]), fontsize=8)
    fig.tight_layout()
    return fig


def heatmap(
    matrix: torch.Tensor | np.ndarray,
    *,
    row_labels: Sequence[object] | None = None,
    col_labels: Sequence[object] | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    title: str | None = None,
    annotate: bool = True,
    fmt: str = "{:.2f}",
    cmap: str = "viridis",
    ax: plt.Axes | None = None,
) -> plt.Axes:
    """A labelled heatmap of ``matrix: (R, C)``, values written in the cells when ``annotate``."""
    matrix = matrix.detach().cpu().numpy() if isinstance(matrix, torch.Tensor) else np.asarray(matrix)
    if matrix.ndim != 2:
        raise ValueError(f"matrix must be 2-D (R, C); got shape {matrix.shape}")
    rows, cols = matrix.shape
    for labels, n, what in ((row_labels, rows, "row_labels"), (col_labels, cols, "col_labels")):
        if labels is not None and len(labels) != n:
            raise ValueError(f"{what} has {len(labels)} entries for {n} {what[:3]}s of the matrix")
    if ax is None:
        _, ax = plt.subplots(figsize=(0.6 * cols + 2, 0.45 * rows + 1.5))
    image = ax.imshow(matrix, cmap=cmap, aspect="auto")
    ax.figure.colorbar(image, ax=ax)
    ax.set_xticks(range(cols), [str(c) for c in col_labels] if col_labels is not None else range(cols))
    ax.set_yticks(range(rows), [str(r) for r in row_labels] if row_labels is not None else range(rows))
    if annotate:
        middle = np.nanmean(matrix)
        for r in range(rows):
            for c in range(cols):
                value = matrix[r, c]
                ax.text(c, r, fmt.format(value), ha="center", va="center", fontsize=8,
                        color="black" if value > middle else "white")
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return ax


def audio(waveforms: torch.Tensor | np.ndarray, sample_rate: int, *, titles: Sequence[str] | None = None,
          seconds: float | None = None) -> None:
    """Plot waveforms (T,) or (N, T) in [-1, 1], one row each, with a player under each.

    The figure shows in any run; the players (IPython's Audio, the sound embedded in the
    page) appear where IPython is available, so the static book can play them offline.
    ``seconds`` limits the plotted span (the player gets the whole clip).
    """
    clips = waveforms.detach().cpu().numpy() if isinstance(waveforms, torch.Tensor) else np.asarray(waveforms)
    clips = clips[None] if clips.ndim == 1 else clips
    if clips.ndim != 2:
        raise ValueError(f"waveforms must be (T,) or (N, T); got shape {clips.shape}")
    if titles is not None and len(titles) != len(clips):
        raise ValueError(f"{len(titles)} titles for {len(clips)} waveforms")
    shown = clips.shape[1] if seconds is None else min(clips.shape[1], int(seconds * sample_rate))
    fig, axes = plt.subplots(len(clips), 1, figsize=(10, 1.6 * len(clips)), squeeze=False, sharex=True)
    for i, (ax, clip) in enumerate(zip(axes[:, 0], clips)):
        ax.plot(np.arange(shown) / sample_rate, clip[:shown], lw=0.6)
        ax.set(ylim=(-1, 1), title=titles[i] if titles else None)
    axes[-1, 0].set_xlabel("seconds")
    plt.tight_layout()
    plt.show()
    try:
        from IPython.display import Audio, display
    except ImportError:
        return
    for clip in clips:
        display(Audio(clip, rate=sample_rate, normalize=False))


def explore(draw: Callable[..., None], choices: Mapping[str, Sequence], start: Mapping[str, object]) -> None:
    """Show ``draw(**start)``, then sliders that redraw it for other choices.

    draw: makes one matplotlib figure from keyword arguments, e.g. ``draw(lr=0.01)``.
    choices: ``{name: options}``, the values each slider steps through.
    start: ``{name: value}``, the values drawn first; each must be one of its options.

    The figure for ``start`` is always shown as a plain image, so the static book and a
    run without Jupyter show it; in a live notebook with ipywidgets, sliders follow and
    each change redraws the figure below them.
    """
    for name, options in choices.items():
        if name not in start or start[name] not in list(options):
            raise ValueError(f"start[{name!r}] must be one of the options {list(options)}, got {start.get(name)!r}")
    draw(**start)
    plt.show()
    if not in_notebook():
        return
    try:
        import ipywidgets as widgets
        from IPython.display import display
    except ImportError:
        return
    sliders = {name: widgets.SelectionSlider(options=list(options), value=start[name], description=name)
               for name, options in choices.items()}
    output = widgets.Output()

    def redraw(_change) -> None:
        with output:
            output.clear_output(wait=True)
            draw(**{name: slider.value for name, slider in sliders.items()})
            plt.show()

    for slider in sliders.values():
        slider.observe(redraw, names="value")
    display(widgets.VBox([widgets.HTML("<i>Move a slider to redraw the figure:</i>"), *sliders.values(), output]))
