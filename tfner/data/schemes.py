"""Tag schemes: reading entity spans from tags, writing tags from spans, converting and repairing.

A tag is ``"O"`` or ``"<prefix>-<TYPE>"`` (the type is everything after the first ``-``, so
Weibo's ``B-PER.NAM`` has type ``PER.NAM``). Supported schemes and their prefixes:

| scheme | prefixes | single-character entity | longer entity |
| --- | --- | --- | --- |
| ``BIO`` (alias ``IOB2``) | B, I | ``B`` | ``B I ... I`` |
| ``BIOES`` (alias ``IOBES``) | B, I, E, S | ``S`` | ``B I ... I E`` |
| ``BMES`` | B, M, E, S | ``S`` | ``B M ... M E`` |
| ``BIOS`` (CLUENER) | B, I, S | ``S`` | ``B I ... I`` |

Reading is lenient and identical for every scheme: it is the conlleval reading that
``seqeval``'s default mode uses, with ``M`` read as ``I``. An entity starts at ``B``/``S``, at an
``I``/``E`` that follows ``O``, an ``E``/``S`` or another type, and it ends before ``B``/``S``/``O``,
after ``E``/``S``, or where the type changes. So an orphan ``I-X`` starts an entity, a ``B-X`` not
closed by ``E-X`` is still an entity in BIOES, and an ``E-X`` after ``O`` is a one-character entity.
Writing (:func:`tags_from_spans`) always produces the strict form of the scheme, so
``tags_from_spans(spans_from_tags(tags))`` is the repair of ``tags`` that leaves every entity as
the lenient reading saw it.
"""

from __future__ import annotations

import functools
import pathlib

import numpy as np

OUTSIDE = "O"

# Prefixes of each scheme, in the order LabelVocabulary lists them for one type.
_SCHEME_PREFIXES = {
    "BIO": ("B", "I"),
    "BIOES": ("B", "I", "E", "S"),
    "BMES": ("B", "M", "E", "S"),
    "BIOS": ("B", "I", "S"),
}
_ALIASES = {"IOB2": "BIO", "IOBES": "BIOES"}
# Role of each prefix in the lenient reading (M is an inside tag).
_ROLE = {"B": "B", "I": "I", "M": "I", "E": "E", "S": "S"}

SCHEMES = tuple(_SCHEME_PREFIXES)


def normalize_scheme(scheme: str) -> str:
    """Returns the canonical name of a scheme (``"bio"`` -> ``"BIO"``, ``"IOBES"`` -> ``"BIOES"``).

    Args:
        scheme: a scheme name, case-insensitive.

    Example:
    >>> normalize_scheme("iobes")
    'BIOES'
    """
    if not isinstance(scheme, str):
        raise ValueError(f"scheme must be a string, got {scheme!r}")
    name = scheme.upper()
    name = _ALIASES.get(name, name)
    if name not in _SCHEME_PREFIXES:
        raise ValueError(
            f"unknown tag scheme {scheme!r}; expected one of {', '.join(SCHEMES)} "
            f"(aliases: {', '.join(_ALIASES)})"
        )
    return name


def scheme_prefixes(scheme: str) -> tuple:
    """Returns the entity prefixes of a scheme.

    Example:
    >>> scheme_prefixes("BIOS")
    ('B', 'I', 'S')
    """
    return _SCHEME_PREFIXES[normalize_scheme(scheme)]


@functools.lru_cache(maxsize=65536)
def _parse_tag(tag, scheme):
    """(role, type) of a tag, role in B/I/E/S/O; None when the tag is invalid in `scheme`."""
    if tag == OUTSIDE:
        return ("O", "")
    if not isinstance(tag, str):
        return None
    prefix, dash, type_ = tag.partition("-")
    if not dash or not type_ or type_ != type_.strip() or prefix not in _SCHEME_PREFIXES[scheme]:
        return None
    return (_ROLE[prefix], type_)


def _tag_problem(tag, scheme):
    if not isinstance(tag, str):
        return f"tag {tag!r} is not a string"
    if not tag.strip():
        return "empty tag"
    prefix, dash, type_ = tag.partition("-")
    allowed = ", ".join(p + "-" for p in _SCHEME_PREFIXES[scheme])
    if not dash:
        return f"tag {tag!r} is neither 'O' nor '<prefix>-<TYPE>' (scheme {scheme}: O, {allowed})"
    if prefix not in _SCHEME_PREFIXES[scheme]:
        return f"tag {tag!r} has prefix {prefix!r}, unknown in scheme {scheme} (O, {allowed})"
    return f"tag {tag!r} has an empty or space-padded entity type"


def parse_tag(tag: str, scheme: str = "BIO", where: str | None = None) -> tuple:
    """Splits a tag into (prefix role, type); ``"O"`` gives ``("O", "")``; ``M`` gives role ``"I"``.

    Args:
        tag: the tag.
        scheme: the scheme the tag must belong to.
        where: location for the error message, e.g. ``"train.txt:12"``.

    Example:
    >>> parse_tag("M-LOC", "BMES")
    ('I', 'LOC')
    """
    scheme = normalize_scheme(scheme)
    parsed = _parse_tag(tag, scheme) if isinstance(tag, str) else None
    if parsed is None:
        raise ValueError(f"{where or '<tags>'}: {_tag_problem(tag, scheme)}")
    return parsed


def is_valid_tag(tag: str, scheme: str = "BIO") -> bool:
    """Whether ``tag`` is ``"O"`` or a well-formed tag of ``scheme``.

    Example:
    >>> is_valid_tag("S-PER", "BIO"), is_valid_tag("S-PER", "BIOS")
    (False, True)
    """
    return isinstance(tag, str) and _parse_tag(tag, normalize_scheme(scheme)) is not None


def validate_scheme(tags, scheme: str = "BIO", where: str | None = None) -> None:
    """Checks that every tag is ``"O"`` or ``<prefix>-<TYPE>`` with a prefix of ``scheme``.

    Only the tag vocabulary is checked; transitions (an orphan ``I-``) are read leniently and
    repaired by :func:`repair_tags`.

    Args:
        tags: a sequence of tags.
        scheme: scheme name.
        where: location used in the error message (``"path:line"``).

    Raises:
        ValueError: ``"<where>: ... (position i)"`` for an empty tag or an unknown prefix.

    Example:
    >>> validate_scheme(["B-PER", "I-PER", "O"], "BIO", "example:1")
    """
    scheme = normalize_scheme(scheme)
    for i, tag in enumerate(tags):
        if not isinstance(tag, str) or _parse_tag(tag, scheme) is None:
            raise ValueError(f"{where or '<tags>'}: {_tag_problem(tag, scheme)} (position {i})")


def spans_from_tags(tags, scheme: str = "BIO") -> list:
    """Reads entities from tags with the lenient conlleval/seqeval reading (see module docstring).

    Args:
        tags: a sequence of tags.
        scheme: the scheme of ``tags``; a tag outside it raises ``ValueError``.

    Returns:
        A list of ``(type, start, end)`` with ``end`` exclusive, in order of position.

    Example:
    >>> spans_from_tags(["B-PER", "I-PER", "O", "I-LOC", "B-LOC"])
    [('PER', 0, 2), ('LOC', 3, 4), ('LOC', 4, 5)]
    >>> spans_from_tags(["B-ORG", "E-ORG", "S-PER"], "BIOES")
    [('ORG', 0, 2), ('PER', 2, 3)]
    """
    scheme = normalize_scheme(scheme)
    spans = []
    prev_role, prev_type = "O", ""
    begin = 0
    n = len(tags)
    for i in range(n + 1):
        if i < n:
            tag = tags[i]
            parsed = _parse_tag(tag, scheme) if isinstance(tag, str) else None
            if parsed is None:
                raise ValueError(f"<tags>: {_tag_problem(tag, scheme)} (position {i})")
            role, type_ = parsed
        else:
            role, type_ = "O", ""
        if prev_role != "O" and (
            prev_role in "ES" or role in "BSO" or prev_type != type_
        ):
            spans.append((prev_type, begin, i))
        if role != "O" and (
            role in "BS" or prev_role in "ESO" or prev_type != type_
        ):
            begin = i
        prev_role, prev_type = role, type_
    return spans


def tags_from_spans(spans, length: int, scheme: str = "BIO") -> list:
    """Writes the strict tags of ``scheme`` for non-overlapping spans.

    Args:
        spans: iterable of ``(type, start, end)``, ``end`` exclusive.
        length: number of characters.
        scheme: output scheme.

    Returns:
        A list of ``length`` tags.

    Raises:
        ValueError: a span out of range, empty, or overlapping another.

    Example:
    >>> tags_from_spans([("PER", 0, 3), ("LOC", 4, 5)], 5, "BMES")
    ['B-PER', 'M-PER', 'E-PER', 'O', 'S-LOC']
    """
    scheme = normalize_scheme(scheme)
    prefixes = _SCHEME_PREFIXES[scheme]
    inside = "M" if "M" in prefixes else "I"
    has_end = "E" in prefixes
    has_single = "S" in prefixes
    tags = [OUTSIDE] * length
    last_end, last_span = 0, None
    for span in sorted(spans, key=lambda s: (s[1], s[2])):
        type_, start, end = span
        if not isinstance(type_, str) or not type_ or type_ != type_.strip():
            raise ValueError(f"span {span!r}: the entity type must be a non-empty string")
        if not 0 <= start < end <= length:
            raise ValueError(f"span {span!r} is empty or outside a sequence of length {length}")
        if last_span is not None and start < last_end:
            raise ValueError(f"spans {last_span!r} and {span!r} overlap")
        if end - start == 1 and has_single:
            tags[start] = "S-" + type_
        else:
            tags[start] = "B-" + type_
            for i in range(start + 1, end):
                tags[i] = inside + "-" + type_
            if has_end and end - start > 1:
                tags[end - 1] = "E-" + type_
        last_end, last_span = end, span
    return tags


def convert_tags(tags, source: str, target: str) -> list:
    """Converts tags between schemes through their entities (lenient reading, strict writing).

    Args:
        tags: tags in the ``source`` scheme.
        source: scheme of ``tags``.
        target: wanted scheme.

    Example:
    >>> convert_tags(["B-PER", "I-PER", "O", "B-LOC"], "BIO", "BIOES")
    ['B-PER', 'E-PER', 'O', 'S-LOC']
    """
    return tags_from_spans(spans_from_tags(tags, source), len(tags), target)


def repair_bio(tags) -> tuple:
    """Turns every orphan ``I-X`` (not right after ``B-X`` or ``I-X``) into ``B-X``.

    This is exactly how the lenient reading treats an orphan, so entities are unchanged.

    Args:
        tags: BIO tags.

    Returns:
        ``(repaired_tags, number_of_repaired_tags)``.

    Example:
    >>> repair_bio(["O", "I-PER", "I-PER", "I-LOC"])
    (['O', 'B-PER', 'I-PER', 'B-LOC'], 2)
    """
    out = list(tags)
    validate_scheme(out, "BIO")
    repaired = 0
    prev = OUTSIDE
    for i, tag in enumerate(tags):
        if tag.startswith("I-") and (prev == OUTSIDE or prev[2:] != tag[2:]):
            out[i] = "B-" + tag[2:]
            repaired += 1
        prev = tag
    return out, repaired


def repair_tags(tags, scheme: str = "BIO") -> tuple:
    """Rewrites tags into the strict form of their scheme, keeping the lenient reading's entities.

    For BIO this is :func:`repair_bio`; for the other schemes it also turns e.g. a lone ``B-X``
    into ``S-X`` (BIOES) and an ``I-X`` after ``O`` into ``B-X``.

    Args:
        tags: tags in ``scheme``.
        scheme: scheme name.

    Returns:
        ``(repaired_tags, number_of_changed_tags)``.

    Example:
    >>> repair_tags(["B-PER", "O", "I-LOC", "E-LOC"], "BIOES")
    (['S-PER', 'O', 'B-LOC', 'E-LOC'], 2)
    """
    scheme = normalize_scheme(scheme)
    if scheme == "BIO":
        return repair_bio(tags)
    fixed = tags_from_spans(spans_from_tags(tags, scheme), len(tags), scheme)
    return fixed, sum(a != b for a, b in zip(fixed, tags))


def infer_scheme(labels) -> str:
    """Guesses the scheme of a label list: M -> BMES, E -> BIOES, S -> BIOS, else BIO.

    Example:
    >>> infer_scheme(["O", "B-a", "I-a", "S-a"])
    'BIOS'
    """
    prefixes = {label.partition("-")[0] for label in labels if label != OUTSIDE}
    if "M" in prefixes:
        return "BMES"
    if "E" in prefixes:
        return "BIOES"
    if "S" in prefixes:
        return "BIOS"
    return "BIO"


class LabelVocabulary:
    """An ordered tag list with ``"O"`` at index 0, mapping tags to ids and back.

    Args:
        labels: the tags, ``"O"`` first, no duplicates, all valid in ``scheme``.
        scheme: the tag scheme (``"BIO"``, ``"BIOES"``, ``"BMES"`` or ``"BIOS"``).

    Example:
    >>> vocab = LabelVocabulary.from_types(["PER", "LOC"], "BIO")
    >>> vocab.labels
    ['O', 'B-LOC', 'I-LOC', 'B-PER', 'I-PER']
    >>> vocab.encode(["B-PER", "I-PER", "O"]).tolist()
    [3, 4, 0]
    >>> vocab.decode([1, 2])
    ['B-LOC', 'I-LOC']
    """

    def __init__(self, labels, scheme: str = "BIO"):
        self.scheme = normalize_scheme(scheme)
        labels = [str(label) for label in labels]
        if not labels or labels[0] != OUTSIDE:
            raise ValueError(f"the first label must be 'O', got {labels[:1]!r}")
        validate_scheme(labels, self.scheme, "labels")
        seen = set()
        for label in labels:
            if label in seen:
                raise ValueError(f"labels: duplicate label {label!r}")
            seen.add(label)
        self._labels = labels
        self._index = {label: i for i, label in enumerate(labels)}

    @classmethod
    def from_types(cls, types, scheme: str = "BIO") -> "LabelVocabulary":
        """Builds ``O`` then, for each type in sorted order, one tag per prefix of the scheme.

        Args:
            types: entity type names.
            scheme: tag scheme.
        """
        scheme = normalize_scheme(scheme)
        labels = [OUTSIDE]
        for type_ in sorted(set(types)):
            labels.extend(f"{prefix}-{type_}" for prefix in _SCHEME_PREFIXES[scheme])
        return cls(labels, scheme)

    @classmethod
    def from_sentences(cls, sentences, scheme: str = "BIO") -> "LabelVocabulary":
        """Builds the vocabulary of every entity type found in the tags of ``sentences``.

        Args:
            sentences: ``TaggedSentence`` objects or plain tag lists.
            scheme: the scheme of their tags (checked).
        """
        scheme = normalize_scheme(scheme)
        types = set()
        for i, sentence in enumerate(sentences):
            tags = getattr(sentence, "tags", sentence)
            where = getattr(sentence, "source", None) or f"sentence {i}"
            validate_scheme(tags, scheme, where)
            types.update(_parse_tag(tag, scheme)[1] for tag in tags if tag != OUTSIDE)
        return cls.from_types(types, scheme)

    @property
    def labels(self) -> list:
        return list(self._labels)

    @property
    def types(self) -> list:
        """Entity types in label order."""
        out = []
        for label in self._labels[1:]:
            type_ = label.partition("-")[2]
            if type_ not in out:
                out.append(type_)
        return out

    def __len__(self) -> int:
        return len(self._labels)

    def __contains__(self, tag) -> bool:
        return tag in self._index

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, LabelVocabulary)
            and self._labels == other._labels
            and self.scheme == other.scheme
        )

    def __repr__(self) -> str:
        return f"LabelVocabulary({self._labels!r}, scheme={self.scheme!r})"

    def index(self, tag: str) -> int:
        """The id of one tag."""
        try:
            return self._index[tag]
        except KeyError:
            raise ValueError(f"unknown tag {tag!r}; labels are {self._labels}") from None

    def encode(self, tags) -> np.ndarray:
        """Maps tags to an ``int32`` array of ids; an unknown tag raises ``ValueError``."""
        return np.asarray([self.index(tag) for tag in tags], dtype=np.int32)

    def decode(self, ids) -> list:
        """Maps ids (any integer sequence or array) back to tags."""
        out = []
        for i in np.asarray(ids).reshape(-1).tolist():
            if not (isinstance(i, int) and 0 <= i < len(self._labels)):
                raise ValueError(f"label id {i!r} is outside [0, {len(self._labels)})")
            out.append(self._labels[i])
        return out

    def get_config(self) -> dict:
        return {"labels": list(self._labels), "scheme": self.scheme}

    @classmethod
    def from_config(cls, config) -> "LabelVocabulary":
        return cls(**config)

    def save(self, path) -> None:
        """Writes one label per line (UTF-8)."""
        pathlib.Path(path).write_text("".join(label + "\n" for label in self._labels), "utf-8")

    @classmethod
    def load(cls, path, scheme: str | None = None) -> "LabelVocabulary":
        """Reads a file written by :meth:`save`; the scheme is inferred unless given."""
        labels = [
            line.rstrip("\r")
            for line in pathlib.Path(path).read_text("utf-8").lstrip("\ufeff").split("\n")
            if line.strip()
        ]
        return cls(labels, scheme or infer_scheme(labels))


# Role codes of tags in the lenient reading (M is an inside tag), as `label_tables` gives them.
ROLE_O, ROLE_B, ROLE_I, ROLE_E, ROLE_S = 0, 1, 2, 3, 4
_ROLE_OF_PREFIX = {"B": ROLE_B, "I": ROLE_I, "M": ROLE_I, "E": ROLE_E, "S": ROLE_S}


def label_tables(labels, scheme):
    """Per-tag role and type codes, entity type names and the strict tag of each (type, role).

    Args:
        labels: tag strings, index = tag id ("O" first).
        scheme: the tag scheme of ``labels`` (BIO, BIOES, BMES, BIOS).

    Returns:
        dict of numpy arrays: ``role`` [K] int32 (``ROLE_*``), ``type`` [K] int32 (-1 for "O"),
        ``types`` [X] entity type names, ``strict`` [X, 5] int32: the tag id to write for each
        type and role (-1 where the label list lacks it), and ``continues`` [K, K] bool:
        ``continues[i, j]`` when tag ``j`` right after tag ``i`` extends ``i``'s entity.

    Example:
    >>> t = label_tables(["O", "B-PER", "I-PER"], "BIO")
    >>> t["role"].tolist(), t["type"].tolist(), t["continues"][1].tolist()
    ([0, 1, 2], [-1, 0, 0], [False, False, True])
    """
    scheme = normalize_scheme(scheme)
    prefixes = scheme_prefixes(scheme)
    types, roles, type_ids = [], [], []
    for label in labels:
        role, type_ = parse_tag(label, scheme, where="labels")
        if role == "O":
            roles.append(ROLE_O)
            type_ids.append(-1)
            continue
        if type_ not in types:
            types.append(type_)
        roles.append(_ROLE_OF_PREFIX[label.partition("-")[0]])
        type_ids.append(types.index(type_))
    strict = np.full((max(len(types), 1), 5), -1, dtype=np.int32)
    inside = "M" if "M" in prefixes else "I"
    index = {label: i for i, label in enumerate(labels)}
    for x, type_ in enumerate(types):
        for role, prefix in ((ROLE_B, "B"), (ROLE_I, inside), (ROLE_E, "E"), (ROLE_S, "S")):
            if prefix in prefixes and f"{prefix}-{type_}" in index:
                strict[x, role] = index[f"{prefix}-{type_}"]
    roles = np.asarray(roles, dtype=np.int32)
    type_ids = np.asarray(type_ids, dtype=np.int32)
    continues = (
        np.isin(roles, [ROLE_B, ROLE_I])[:, None]
        & np.isin(roles, [ROLE_I, ROLE_E])[None, :]
        & (type_ids[:, None] == type_ids[None, :])
    )
    return {
        "role": roles,
        "type": type_ids,
        "types": list(types),
        "strict": strict,
        "continues": continues,
        "has_end": "E" in prefixes,
        "has_single": "S" in prefixes,
    }
