"""Offline data sets, each a function returning tensors with a fixed train/test split.

Nothing here downloads: scikit-learn ships the digits and the breast-cancer table, and
MNIST-1D is generated procedurally by the ``mnist1d`` package. The same arguments always
give the same tensors.
"""

from __future__ import annotations

import ast
import datetime
import functools
import random
import sysconfig
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

__all__ = [
    "Split",
    "digits",
    "mnist1d",
    "breast_cancer",
    "shapes_segmentation",
    "train_val_split",
    "TextSplit",
    "docstrings",
    "DatePair",
    "dates",
    "digit_strings",
    "notes",
    "printed_digits",
    "DigitDomains",
    "digit_domains",
]


class Split(NamedTuple):
    """A data set split in two: ``x_train: (N, ...)``, ``y_train: (N,)``, and the test part."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def train(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x_train, y_train)``, the form ``dlpt.train.fit`` takes."""
        return self.x_train, self.y_train

    @property
    def test(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x_test, y_test)``."""
        return self.x_test, self.y_test


def _stratified_split(x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int) -> Split:
    from sklearn.model_selection import train_test_split

    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    as_x = functools.partial(torch.as_tensor, dtype=torch.float32)
    as_y = functools.partial(torch.as_tensor, dtype=torch.int64)
    return Split(as_x(x_tr), as_y(y_tr), as_x(x_te), as_y(y_te))


def digits(test_fraction: float = 0.2, seed: int = 0) -> Split:
    """scikit-learn's 1,797 handwritten digits: ``x: (N, 1, 8, 8)`` in [0, 1], ``y: (N,)`` in 0..9.

    The split is stratified by class and fixed by ``seed``.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]
    return _stratified_split(x, bunch.target, test_fraction, seed)


def printed_digits(n: int = 3000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Digits rendered from matplotlib's fonts: ``x: (n, 1, 8, 8)`` in [0, 1], ``y: (n,)`` in 0..9.

    Processed like scikit-learn's handwritten digits (:func:`digits`): each is a glyph of
    one of 12 fonts, randomly stretched, slanted, rotated, thickened and shifted, filled on
    a 32x32 grid with 1% of its pixels flipped, then reduced to 8x8 by counting the ink in
    each 4x4 block (0..16, divided by 16 here). The classes are balanced (n // 10 or one
    more each) and in random order; the same ``seed`` gives the same digits.
    """
    from dlpt import _printed_digits

    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 10)
    images = np.stack([_printed_digits.render(int(label), rng) for label in labels])
    x = torch.as_tensor(images / 16.0, dtype=torch.float32)[:, None]
    return x, torch.as_tensor(labels, dtype=torch.int64)


class DigitDomains(NamedTuple):
    """Two domains of 8x8 digits (images ``(N, 1, 8, 8)`` in [0, 1], labels ``(N,)``).

    ``source_x, source_y``: printed digits, labelled. ``target_x``: handwritten digits to
    adapt on, without their labels (``target_y`` is there to evaluate only). ``test_x,
    test_y``: other handwritten digits, for the final test.
    """

    source_x: torch.Tensor
    source_y: torch.Tensor
    target_x: torch.Tensor
    target_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


def digit_domains(n_source: int = 3000, seed: int = 0) -> DigitDomains:
    """Printed digits (:func:`printed_digits`) to learn from, scikit-learn's handwritten ones to adapt to.

    The 1,797 handwritten digits are split in half, stratified by class and fixed by
    ``seed``: 898 to adapt on (unlabelled as far as training goes) and 899 to test on.
    """
    source_x, source_y = printed_digits(n_source, seed=seed)
    target = digits(test_fraction=0.5, seed=seed)
    return DigitDomains(source_x, source_y, target.x_train, target.y_train, target.x_test, target.y_test)


def breast_cancer(test_fraction: float = 0.2, seed: int = 0) -> Split:
    """The Wisconsin diagnostic breast-cancer table (UCI): ``x: (N, 30)`` raw, ``y: (N,)`` in {0, 1}.

    569 tumours, 30 measured features on very different scales (not standardized here:
    that is the reader's job, on training statistics only); label 1 is benign. The split
    is stratified and fixed by ``seed``.
    """
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    return _stratified_split(bunch.data, bunch.target, test_fraction, seed)


@functools.lru_cache(maxsize=4)
def _mnist1d_arrays(seed: int) -> tuple[np.ndarray, ...]:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = seed
    state = np.random.get_state()  # make_dataset reseeds NumPy's global generator
    try:
        data = make_dataset(args)  # generated here; never get_dataset, which downloads
    finally:
        np.random.set_state(state)
    return data["x"], data["y"], data["x_test"], data["y_test"]


def mnist1d(seed: int = 42) -> Split:
    """MNIST-1D (Greydanus, 2020), generated offline: ``x: (N, 40)``, ``y: (N,)`` in 0..9.

    4,000 training and 1,000 test sequences made with the package's default arguments;
    ``seed`` 42 is the published data set.
    """
    x_tr, y_tr, x_te, y_te = _mnist1d_arrays(seed)
    return Split(
        torch.as_tensor(x_tr, dtype=torch.float32),
        torch.as_tensor(y_tr, dtype=torch.int64),
        torch.as_tensor(x_te, dtype=torch.float32),
        torch.as_tensor(y_te, dtype=torch.int64),
    )


def shapes_segmentation(n: int = 1200, size: int = 32, test_fraction: float = 0.25, seed: int = 0) -> Split:
    """A segmentation task generated offline: find the disc and the square in clutter.

    x: (N, 1, size, size) float images; y: (N, size, size) int64 masks, 1 on the pixels of
    the objects. Each image holds one disc and one axis-aligned square (random size, place
    and brightness) over a background of random strokes and noise as bright as the objects,
    so a pixel's class depends on the shape around it, not on its value alone.
    """
    g = torch.Generator().manual_seed(seed)
    rows = torch.arange(size).view(size, 1).float()
    cols = torch.arange(size).view(1, size).float()
    images, masks = torch.zeros(n, size, size), torch.zeros(n, size, size, dtype=torch.int64)

    def uniform(low: float, high: float) -> float:
        return low + (high - low) * torch.rand((), generator=g).item()

    for i in range(n):
        image = 0.3 * torch.rand(size, size, generator=g)
        for _ in range(6):  # clutter: thin strokes as bright as the objects
            r0, c0, angle = uniform(0, size), uniform(0, size), uniform(0, 3.1416)
            direction = torch.tensor([torch.cos(torch.tensor(angle)), torch.sin(torch.tensor(angle))])
            distance = ((rows - r0) * direction[1] - (cols - c0) * direction[0]).abs()
            along = ((rows - r0) * direction[0] + (cols - c0) * direction[1]).abs()
            image = torch.where((distance < 0.7) & (along < uniform(4, 12)), uniform(0.5, 1.0), image)
        radius = uniform(3, 7)
        r, c = uniform(radius, size - radius), uniform(radius, size - radius)
        disc = (rows - r) ** 2 + (cols - c) ** 2 <= radius**2
        side = int(uniform(5, 12))
        top, left = int(uniform(0, size - side)), int(uniform(0, size - side))
        square = torch.zeros(size, size, dtype=torch.bool)
        square[top : top + side, left : left + side] = True
        shapes = disc | square
        image = torch.where(shapes, uniform(0.5, 1.0), image)
        images[i], masks[i] = image + 0.1 * torch.randn(size, size, generator=g), shapes.long()
    n_test = round(test_fraction * n)
    return Split(images[n_test:, None], masks[n_test:], images[:n_test, None], masks[:n_test])


def train_val_split(
    x: torch.Tensor, y: torch.Tensor, val_fraction: float = 0.2, seed: int = 0
) -> Split:
    """Hold out a random ``val_fraction`` of ``(x: (N, ...), y: (N,))`` for validation.

    Returns a :class:`Split` whose "test" part is the validation set; fixed by ``seed``.
    """
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same first dimension, got {tuple(x.shape)} and {tuple(y.shape)}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must lie strictly between 0 and 1, got {val_fraction}")
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_val = max(1, round(val_fraction * len(x)))
    val, train = order[:n_val], order[n_val:]
    return Split(x[train], y[train], x[val], y[val])


# --------------------------------------------------------------------------- text and sequences


class TextSplit(NamedTuple):
    """A text corpus split into training, validation and test strings."""

    train: str
    val: str
    test: str


_SKIPPED_PARTS = {"test", "tests", "site-packages", "idlelib", "lib2to3", "turtledemo", "__pycache__"}


@functools.lru_cache(maxsize=1)
def _stdlib_docstrings() -> tuple[str, ...]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(
        p for p in root.rglob("*.py")
        if not any(part in _SKIPPED_PARTS or part.startswith("test_") for part in p.relative_to(root).parts)
    )
    documents = []
    for path in files:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 40:
                    documents.append(doc.encode("ascii", "replace").decode("ascii"))
    return tuple(documents)


def docstrings(max_chars: int = 1_000_000) -> TextSplit:
    """English text that needs no download: the docstrings of Python's standard library.

    Collected with ``ast`` from the running Python's own library (tests excluded), as ASCII
    (other characters become "?"), joined by blank lines. Every 20th docstring goes to
    validation, the next one to test, the rest to training, until ``max_chars`` characters
    of training text. The same Python version gives the same text; another version's
    library differs a little.
    """
    parts: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    size = 0
    for i, doc in enumerate(_stdlib_docstrings()):
        part = "val" if i % 20 == 0 else "test" if i % 20 == 1 else "train"
        parts[part].append(doc)
        size += len(doc) + 2 if part == "train" else 0
        if size >= max_chars:
            break
    return TextSplit(*("\n\n".join(parts[p]) for p in ("train", "val", "test")))


class DatePair(NamedTuple):
    """A date written by a human (source) and in ISO form (target), with their alignment.

    ``alignment[j]`` is the set of source positions that encode the field (year, month or
    day) that target character j belongs to; empty for the two dashes.
    """

    source: str
    target: str
    alignment: tuple[frozenset[int], ...]


# Each format is a list of pieces: a strftime directive naming a field, or literal text.
_DATE_FORMATS = [
    ["%d", " ", "%b", " ", "%Y"],            # 27 Nov 2026
    ["%A", ", ", "%B", " ", "%d", ", ", "%Y"],  # Friday, November 27, 2026
    ["%d", "/", "%m", "/", "%y"],            # 27/11/26
    ["%Y", ".", "%m", ".", "%d"],            # 2026.11.27
    ["%B", " ", "%d", " ", "%Y"],            # November 27 2026
    ["%d", " ", "%B", " ", "%Y"],            # 27 November 2026
    ["%a", " ", "%d", " ", "%b", " ", "%Y"],  # Fri 27 Nov 2026
    ["%d", ".", "%m", ".", "%Y"],            # 27.11.2026
]
_FIELD = {"%d": "day", "%m": "month", "%b": "month", "%B": "month", "%Y": "year", "%y": "year"}
_TARGET_FIELDS = ["year"] * 4 + [None] + ["month"] * 2 + [None] + ["day"] * 2


def dates(n: int, seed: int = 0) -> list[DatePair]:
    """``n`` dates between 1950 and 2049 in eight human formats, with their ISO forms.

    A translation-like task with a known answer to "which source characters produce this
    target character": the alignment of each :class:`DatePair`.
    """
    rng = random.Random(seed)
    start, days = datetime.date(1950, 1, 1), (datetime.date(2049, 12, 31) - datetime.date(1950, 1, 1)).days
    pairs = []
    for _ in range(n):
        date = start + datetime.timedelta(days=rng.randrange(days + 1))
        pieces = rng.choice(_DATE_FORMATS)
        source, spans = "", {"year": set(), "month": set(), "day": set()}
        for piece in pieces:
            text = date.strftime(piece) if piece.startswith("%") else piece
            if piece in _FIELD:
                spans[_FIELD[piece]].update(range(len(source), len(source) + len(text)))
            source += text
        alignment = tuple(frozenset(spans[f]) if f else frozenset() for f in _TARGET_FIELDS)
        pairs.append(DatePair(source, date.isoformat(), alignment))
    return pairs


def digit_strings(n: int, min_length: int = 5, max_length: int = 40, seed: int = 0) -> list[str]:
    """``n`` random strings of ``min_length`` to ``max_length`` decimal digits (lengths uniform).

    The variable-length task for the bottleneck experiment: copy a string (or its reverse),
    so a fixed-size state must carry the whole input before the first output digit.
    """
    if not 1 <= min_length <= max_length:
        raise ValueError(f"need 1 <= min_length <= max_length, got {min_length} and {max_length}")
    rng = random.Random(seed)
    return ["".join(rng.choice("0123456789") for _ in range(rng.randint(min_length, max_length)))
            for _ in range(n)]


def notes(n: int, length: int = 4000, sample_rate: int = 8000, seed: int = 0) -> torch.Tensor:
    """``n`` clips of synthesized plucked notes, (n, length) float32 in [-1, 1].

    Each clip holds notes of a pentatonic scale between 110 and 880 Hz, each with six
    harmonics of random strengths, a short attack and an exponential decay, and a little
    noise: audio with structure at several time scales (periods of 9 to 73 samples at
    8 kHz, notes of a few thousand), generated offline.
    """
    rng = np.random.default_rng(seed)
    scale = 110.0 * 2 ** (np.array([0, 2, 4, 7, 9]) / 12)  # A major pentatonic from A2
    pitches = np.concatenate([scale * 2**octave for octave in range(3)])
    t = np.arange(length) / sample_rate
    clips = np.zeros((n, length))
    for clip in clips:
        start = 0
        while start < length:
            duration = int(rng.integers(length // 4, length // 2 + 1))
            f0 = rng.choice(pitches)
            tau = t[: length - start]
            envelope = np.minimum(tau / rng.uniform(0.002, 0.01), 1.0) * np.exp(-tau / rng.uniform(0.05, 0.3))
            harmonics = rng.uniform(0, 1, 6) / np.arange(1, 7)
            phase = rng.uniform(0, 2 * np.pi, 6)
            note = sum(a * np.sin(2 * np.pi * f0 * (k + 1) * tau + p) for k, (a, p) in enumerate(zip(harmonics, phase)))
            clip[start:] += envelope * note / harmonics.sum()
            start += duration
        clip += rng.normal(0, 0.005, length)
    clips *= 0.9 / np.abs(clips).max(axis=1, keepdims=True)
    return torch.tensor(clips, dtype=torch.float32)


# ----------------------------------------------------------------------------------------
# Two artificial languages without parallel text (chapter 5, section 4)
# ----------------------------------------------------------------------------------------

_WORD_CLASSES = {"det": 5, "adj": 20, "noun": 42, "verb": 26, "adv": 11, "prep": 6}  # 110 words


class ArtificialLanguages(NamedTuple):
    """Two languages with the same vocabulary size V, and no sentence pairs to learn from.

    ``a``, ``b``: monolingual corpora, lists of 1-D int64 tensors of word ids in [0, V);
    the sentences of ``b`` come from *other* underlying sentences than those of ``a``.
    ``test_a``, ``test_b``: parallel sentences (``test_b[i]`` translates ``test_a[i]``),
    held out to evaluate a translation only. ``dictionary`` (V,): the secret bijection,
    the B word id of A word ``i``. ``words_a``, ``words_b``: the words as strings;
    ``word_class``: the class of A word ``i`` ("noun", "verb", ...).
    """

    a: list[torch.Tensor]
    b: list[torch.Tensor]
    test_a: list[torch.Tensor]
    test_b: list[torch.Tensor]
    dictionary: torch.Tensor
    words_a: list[str]
    words_b: list[str]
    word_class: list[str]


def _pseudo_words(n: int, consonants: str, vowels: str, rng: np.random.Generator) -> list[str]:
    words: list[str] = []
    while len(words) < n:
        syllables = rng.integers(2, 4)
        word = "".join(rng.choice(list(consonants)) + rng.choice(list(vowels)) for _ in range(syllables))
        if word not in words:
            words.append(word)
    return words


def artificial_languages(n_sentences: int = 20_000, n_test: int = 1000, reorder: bool = True,
                         seed: int = 0) -> ArtificialLanguages:
    """Language A from a small random grammar, language B = A through a secret dictionary.

    A sentence is ``DET [ADJ] NOUN VERB [DET [ADJ] NOUN] [ADV] [PREP DET [ADJ] NOUN]``:
    a subject, a verb, an optional object, adverb and prepositional phrase. Each word is
    chosen given its head (the verb given the subject noun, the object given the verb,
    an adjective given its noun, ...) from Zipf-like frequencies times random affinities
    drawn once per ``seed``, so every word has its own pattern of company. B renames
    every word through a random bijection; with ``reorder`` it also changes the word
    order locally: adjectives follow their noun, the object precedes the verb, and the
    preposition follows its noun phrase. ``n_sentences`` underlying sentences are drawn
    for each corpus (independently) and ``n_test`` for the parallel test set.
    """
    rng = np.random.default_rng(seed)
    names = list(_WORD_CLASSES)
    starts = np.cumsum([0] + list(_WORD_CLASSES.values()))
    ids = {c: np.arange(starts[i], starts[i + 1]) for i, c in enumerate(names)}
    V = int(starts[-1])

    def conditional(heads: int, cls: str) -> np.ndarray:
        """(heads, |cls|) cumulative distributions: Zipf-like frequencies times log-normal affinities."""
        n = len(ids[cls])
        zipf = 1.0 / (rng.permutation(n) + 2.0)
        p = zipf * np.exp(1.5 * rng.standard_normal((heads, n)))
        return np.cumsum(p / p.sum(1, keepdims=True), axis=1)

    noun_freq = conditional(1, "noun")
    tables = {"verb": conditional(len(ids["noun"]), "verb"), "object": conditional(len(ids["verb"]), "noun"),
              "adj": conditional(len(ids["noun"]), "adj"), "det": conditional(len(ids["noun"]), "det"),
              "adv": conditional(len(ids["verb"]), "adv"), "prep": conditional(len(ids["verb"]), "prep"),
              "pp_noun": conditional(len(ids["prep"]), "noun")}

    def draw(table: np.ndarray, heads: np.ndarray) -> np.ndarray:
        u = rng.random(len(heads))
        return np.minimum((table[heads] < u[:, None]).sum(1), table.shape[1] - 1)

    def corpus(n: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        subject = draw(noun_freq, np.zeros(n, dtype=int))
        verb = draw(tables["verb"], subject)
        obj = draw(tables["object"], verb)
        pp_prep = draw(tables["prep"], verb)
        pp_noun = draw(tables["pp_noun"], pp_prep)
        nouns = np.stack([subject, obj, pp_noun], 1)  # (n, 3) indices among the nouns
        dets = np.stack([draw(tables["det"], nouns[:, j]) for j in range(3)], 1)
        adjs = np.stack([draw(tables["adj"], nouns[:, j]) for j in range(3)], 1)
        has_adj = rng.random((n, 3)) < 0.4
        has_obj, has_adv, has_pp = rng.random(n) < 0.7, rng.random(n) < 0.3, rng.random(n) < 0.35
        adv = draw(tables["adv"], verb)
        words = {c: ids[c].tolist() for c in ids}
        dets, adjs, nouns, verb, adv, pp_prep = (x.tolist() for x in (dets, adjs, nouns, verb, adv, pp_prep))
        has_adj, has_obj, has_adv, has_pp = (x.tolist() for x in (has_adj, has_obj, has_adv, has_pp))
        out_a, out_b = [], []
        for i in range(n):
            phrases_a, phrases_b = [], []
            for j in range(3):
                adj = [words["adj"][adjs[i][j]]] if has_adj[i][j] else []
                det, noun = words["det"][dets[i][j]], words["noun"][nouns[i][j]]
                phrases_a.append([det, *adj, noun])
                phrases_b.append([det, noun, *adj] if reorder else [det, *adj, noun])
            v = [words["verb"][verb[i]]]
            obj_a, obj_b = (phrases_a[1], phrases_b[1]) if has_obj[i] else ([], [])
            tail = [words["adv"][adv[i]]] if has_adv[i] else []
            prep = [words["prep"][pp_prep[i]]] if has_pp[i] else []
            pp_a = prep + phrases_a[2] if has_pp[i] else []
            pp_b = (phrases_b[2] + prep if reorder else pp_a) if has_pp[i] else []
            out_a.append(phrases_a[0] + v + obj_a + tail + pp_a)
            out_b.append(phrases_b[0] + (obj_b + v if reorder else v + obj_b) + tail + pp_b)
        return ([torch.tensor(s, dtype=torch.int64) for s in out_a],
                [torch.tensor(s, dtype=torch.int64) for s in out_b])

    dictionary = torch.as_tensor(rng.permutation(V), dtype=torch.int64)
    a, _ = corpus(n_sentences)
    _, b = corpus(n_sentences)
    test_a, test_b = corpus(n_test)
    b, test_b = [dictionary[s] for s in b], [dictionary[s] for s in test_b]
    words_a = _pseudo_words(V, "ptkbdgmnlrs", "aeiou", rng)
    words_b = [""] * V
    for i, w in zip(dictionary.tolist(), _pseudo_words(V, "zvfhjwxcq", "aeuoy", rng)):
        words_b[i] = w
    word_class = [c for c in names for _ in ids[c]]
    return ArtificialLanguages(a, b, test_a, test_b, dictionary, words_a, words_b, word_class)


__all__ += ["ArtificialLanguages", "artificial_languages"]
