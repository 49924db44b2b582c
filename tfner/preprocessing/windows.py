"""Long texts: split at punctuation into model-sized windows, and stitch predictions back.

A model has a maximum length (BERT: 512 positions, less [CLS]/[SEP]; the padding length picked from
the training lengths, e.g. mean + 3 sigma). Longer texts are cut into windows that end at sentence
punctuation where possible; the predictions are stitched so there is exactly one output per input
character.

Window rule (``overlap=0``): greedy from the left; each window ends just after the *last*
punctuation mark inside its ``max_length`` characters; when the window holds no punctuation it is
cut hard at ``max_length``. The windows tile the text: every character is in exactly one window.

Overlapping windows (``overlap > 0``, for prediction, so a character near a cut still sees context
on both sides): first the text is tiled as above into *cores* of at most
``max_length - 2 * overlap`` characters; then every cut ``c`` between two cores is widened into an
overlap ``[c - m, c + m)`` shared by both neighbouring windows, with ``m = min(overlap, c,
length - c)`` (symmetric, so it never runs past the text), so a window is its core plus at most
``overlap`` characters on each side, at most ``max_length`` in all.

Stitching (:func:`stitch`): each character is taken from the window in which it is most central:
the overlap of two consecutive windows is split at its midpoint (rounded down). For windows from
:func:`window_spans` the midpoint is exactly the cut between cores, so each window contributes its
core, and every character is predicted with at least ``m`` characters of context beyond it on
both sides (none of the kept outputs lies in an overlap margin). Non-overlapping windows (the
``overlap=0`` tiling) stitch by plain concatenation.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from tfner.data.example import TaggedSentence

logger = logging.getLogger("tfner.preprocessing")

DEFAULT_PUNCTUATION = "。！？；，"


def window_spans(length_or_chars, max_length, punctuation=DEFAULT_PUNCTUATION, overlap=0) -> list:
    """Cuts a text into windows of at most ``max_length`` characters.

    Args:
        length_or_chars: the text (``str`` or list of characters), or just its length (then there
            is no punctuation to cut at and windows are cut hard).
        max_length: the longest window, >= 1.
        punctuation: characters a window may end after (it ends after the last one it holds).
        overlap: characters of context added on each side of every window's core (see the module
            docstring); ``max_length - 2 * overlap`` must be >= 1.

    Returns:
        ``[(start, end), ...]``, end exclusive, in order; ``[]`` for an empty text; one window
        ``(0, length)`` when the text fits. With ``overlap=0`` the windows tile the text.

    Example:
    >>> window_spans("一二。三四五六。七", 5)
    [(0, 3), (3, 8), (8, 9)]
    >>> window_spans(7, 3)
    [(0, 3), (3, 6), (6, 7)]
    """
    if isinstance(length_or_chars, (int, np.integer)):
        length, chars = int(length_or_chars), None
    else:
        chars = length_or_chars
        length = len(chars)
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0, got {overlap}")
    core_length = max_length - 2 * overlap
    if core_length < 1:
        raise ValueError(
            f"overlap {overlap} leaves no core in windows of {max_length} (need max_length > 2 * overlap)"
        )
    if length == 0:
        return []
    if length <= max_length:
        return [(0, length)]

    is_break = None
    if chars is not None:
        punctuation = set(punctuation)
        is_break = [char in punctuation for char in chars]

    cores = []
    start = 0
    while start < length:
        limit = start + core_length
        if limit >= length:
            cores.append((start, length))
            break
        end = limit
        if is_break is not None:
            for position in range(limit - 1, start - 1, -1):
                if is_break[position]:
                    end = position + 1
                    break
        cores.append((start, end))
        start = end
    if overlap == 0:
        return cores

    def margin(cut):
        return min(overlap, cut, length - cut)

    return [(start - margin(start), end + margin(end)) for start, end in cores]


def stitch(window_tags, spans, length) -> list:
    """Joins per-window outputs into exactly one output per original character.

    Args:
        window_tags: one sequence per window, each as long as its span (extra trailing entries,
            e.g. padding, are ignored; fewer raise ``ValueError``).
        spans: the windows, ``[(start, end), ...]`` in text order, as returned by
            :func:`window_spans`.
        length: the text's length.

    Returns:
        A list of ``length`` outputs; where two consecutive windows overlap, the overlap is split at
        its midpoint (rounded down): the first half comes from the earlier window, the rest from the
        later one (see the module docstring).

    Example:
    >>> spans = window_spans("ab。cd", 3)
    >>> stitch([["x", "y", "z"], ["u", "v"]], spans, 5)
    ['x', 'y', 'z', 'u', 'v']
    >>> spans = window_spans("abcdefgh", 6, overlap=1)
    >>> spans
    [(0, 5), (3, 8)]
    >>> "".join(stitch([list("ABCDE"), list("defgh")], spans, 8))
    'ABCDefgh'
    """
    if len(window_tags) != len(spans):
        raise ValueError(f"{len(window_tags)} window outputs for {len(spans)} windows")
    length = int(length)
    if length == 0:
        if spans:
            raise ValueError(f"{len(spans)} windows for an empty text")
        return []
    if not spans:
        raise ValueError(f"no windows for a text of {length} characters")
    for index, (start, end) in enumerate(spans):
        if not 0 <= start < end <= length:
            raise ValueError(f"window {index} {(start, end)} is not inside a text of {length}")
        if len(window_tags[index]) < end - start:
            raise ValueError(
                f"window {index} {(start, end)} has {len(window_tags[index])} outputs for "
                f"{end - start} characters"
            )
    # boundaries[i]: first character taken from window i.
    boundaries = [0]
    for index in range(1, len(spans)):
        boundaries.append((spans[index][0] + spans[index - 1][1]) // 2)
    boundaries.append(length)
    out = []
    for index, (start, end) in enumerate(spans):
        first, last = boundaries[index], boundaries[index + 1]
        if last < first:
            raise ValueError(f"windows {index - 1} and {index} are not in text order: {spans[index - 1:index + 1]}")
        if first < start or last > end:
            missing = first if first < start else end
            raise ValueError(
                f"character {missing} of {length} is in no window (window {index} is {(start, end)})"
            )
        out.extend(window_tags[index][first - start : last - start])
    return out


def _continues_entity(tag) -> bool:
    """True for a tag that continues an entity (``I-``, ``M-``, ``E-`` or bare ``I``/``M``/``E``)."""
    if not tag or tag == "O":
        return False
    return tag[0] in "IME" and (len(tag) == 1 or tag[1] in "-_")


def split_long_sentences(
    sentences,
    max_length,
    punctuation=DEFAULT_PUNCTUATION,
    repair=True,
) -> tuple:
    """Splits training sentences longer than ``max_length`` at punctuation (see :func:`window_spans`).

    Tags and every feature layer are split alongside the characters. A piece keeps its sentence's
    ``source``. Entities cut by a split point (the first tag of a piece continues an entity) are
    counted and logged as a warning. With ``repair=True`` (default) the piece's first tag is
    turned into the entity's begin form (``I-X``/``M-X`` -> ``B-X``, ``E-X`` -> ``S-X``), so a
    constrained CRF does not see an impossible gold path; with ``False`` it is left as it is.

    Args:
        sentences: list of ``TaggedSentence``.
        max_length: the longest piece.
        punctuation: characters a piece may end after.
        repair: rewrite a piece's first tag when it continues a cut entity (see above).

    Returns:
        ``(pieces, n_split)``: the new list (short sentences unchanged, in order) and how many
        sentences were split.

    Example:
    >>> s = TaggedSentence(list("王明来了。他走了"), ["B-PER", "I-PER", "O", "O", "O", "O", "O", "O"])
    >>> pieces, n_split = split_long_sentences([s], 6)
    >>> [p.text for p in pieces], n_split
    (['王明来了。', '他走了'], 1)
    """
    pieces = []
    n_split = 0
    n_pieces = 0
    crossing = 0
    first_crossing = None
    for sentence in sentences:
        if len(sentence) <= max_length:
            pieces.append(sentence)
            continue
        spans = window_spans(sentence.chars, max_length, punctuation)
        n_split += 1
        n_pieces += len(spans)
        for start, end in spans:
            tags = list(sentence.tags[start:end]) if sentence.tags else []
            if start > 0 and tags and _continues_entity(tags[0]):
                crossing += 1
                if first_crossing is None:
                    first_crossing = f"{sentence.source or '<sentence>'} at character {start}"
                if repair:
                    tags[0] = ("S" if tags[0][0] == "E" else "B") + tags[0][1:]
            pieces.append(
                TaggedSentence(
                    chars=list(sentence.chars[start:end]),
                    tags=tags,
                    features={name: list(values[start:end]) for name, values in sentence.features.items()},
                    source=sentence.source,
                )
            )
    if n_split:
        logger.info(
            "Split %d of %d sentences longer than %d characters into %d pieces",
            n_split,
            len(sentences),
            max_length,
            n_pieces,
        )
    if crossing:
        logger.warning(
            "%d entities cross a split point (%s); first: %s",
            crossing,
            "the piece's first tag made a begin tag" if repair else "kept as is",
            first_crossing,
        )
    return pieces, n_split


def length_stats(lengths) -> dict:
    """Summary of sentence lengths: count, mean, std (population), min, median, p95, p99, max.

    Example:
    >>> length_stats([1, 2, 3])["mean"]
    2.0
    """
    lengths = np.asarray(lengths, dtype=np.float64).reshape(-1)
    if lengths.size == 0:
        raise ValueError("no lengths")
    return {
        "count": int(lengths.size),
        "mean": float(lengths.mean()),
        "std": float(lengths.std()),
        "min": int(lengths.min()),
        "median": float(np.median(lengths)),
        "p95": float(np.percentile(lengths, 95)),
        "p99": float(np.percentile(lengths, 99)),
        "max": int(lengths.max()),
    }


def max_length_from_lengths(lengths, sigmas=3.0, multiple=10, maximum=None) -> int:
    """Padding length from the length distribution: mean + ``sigmas`` * std, rounded up.

    Rounded up to a multiple of ``multiple`` (default 10: the study report's 292 -> 300, and at most
    9 extra positions); the population std (``ddof=0``) is used. Never below 1 or above
    ``maximum`` (e.g. 510 for BERT with [CLS] and [SEP]) when given.

    Args:
        lengths: sentence lengths.
        sigmas: how many standard deviations above the mean.
        multiple: round up to a multiple of this (1: no rounding).
        maximum: optional cap.

    Example:
    >>> max_length_from_lengths([10, 20, 30], sigmas=0)
    20
    """
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    stats = length_stats(lengths)
    target = stats["mean"] + sigmas * stats["std"]
    result = max(1, int(math.ceil(round(target, 9) / multiple)) * multiple)
    if maximum is not None:
        result = min(result, int(maximum))
    return result
