"""Pre-annotation of an NER corpus with word segmentation (CWS) and POS tags (paper C, section 3.1).

The NER sentences are segmented and POS-tagged by an external word tagger (default
:class:`~tfner.data.word_taggers.JiebaTagger`, or any callable ``text -> [(word, pos), ...]``),
the words are aligned to the characters, and the segmentation is corrected to the gold entities
wherever they disagree, so that an entity is always exactly one word (王/小/明 -> 王小明,
``B M E``, POS ``nr``). The result is three layers per character, stored in
``TaggedSentence.features``:

- ``features["cws"]``: the character's position in its word, in a CWS scheme (see below);
- ``features["pos"]``: position + POS, e.g. ``"B-nr"``, ``"M-nr"``, ``"E-nr"``, ``"S-v"``.

CWS schemes (``cws_scheme=``):

| name | labels | one-character word | longer word |
| --- | --- | --- | --- |
| ``BMES`` (default; the paper's "four tags") | B, M, E, S | ``S`` | ``B M ... M E`` |
| ``BIES`` | B, I, E, S | ``S`` | ``B I ... I E`` (the paper writes 王小明 as ``B I E``) |
| ``BIE`` | B, I, E | ``B`` (the paper's 王/小/明 -> ``B B B``) | ``B I ... I E`` |

Entity types become POS tags through ``type_to_pos`` (defaults: :data:`DEFAULT_TYPE_TO_POS`,
PER -> nr, LOC -> ns, ORG -> nt, GPE -> ns, and Weibo's named/nominal mentions). A type with no
POS raises :class:`PreAnnotationError` listing the types, unless ``unknown_type_pos`` gives one.

Also here: the targets of the label-consistency loss (:func:`consistency_targets`), the
three-layer corpus file (:func:`write_multitask_corpus`, :func:`read_multitask_corpus`), the cache
of pre-annotations per corpus and tagger version (:func:`pre_annotate_corpus`), Weibo's type
mapping (:func:`map_weibo_types`) and the agreement of a tagger's segmentation with the word
positions of Weibo's ``weiboNER_2nd_conll`` files (:func:`segmentation_agreement`). Those digits
agree with jieba's dictionary segmentation on 99.99 % of their word boundaries (Weibo train), so
they are most likely an automatic segmentation, not a human one.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import logging
import os
import pathlib
import tempfile
import time
import typing

import numpy as np

from tfner.data import resolve
from tfner.data.example import TaggedSentence
from tfner.data.readers import read_conll
from tfner.data.schemes import OUTSIDE, infer_scheme, normalize_scheme, spans_from_tags
from tfner.data.textio import CorpusError
from tfner.data.word_taggers import describe_tagger, make_tagger, tagger_identity

logger = logging.getLogger("tfner.data")

CWS_FEATURE = "cws"
POS_FEATURE = "pos"

# Labels of each CWS scheme, in vocabulary order.
CWS_SCHEMES = {
    "BMES": ("B", "M", "E", "S"),
    "BIES": ("B", "I", "E", "S"),
    "BIE": ("B", "I", "E"),
}

# POS of an entity type (ICTCLAS / jieba tags): person nr, place ns, organisation nt. Weibo's
# nominal mentions (老师, 学校, ...) are common nouns.
DEFAULT_TYPE_TO_POS = {
    "PER": "nr",
    "LOC": "ns",
    "ORG": "nt",
    "GPE": "ns",
    "PER.NAM": "nr",
    "LOC.NAM": "ns",
    "ORG.NAM": "nt",
    "GPE.NAM": "ns",
    "PER.NOM": "n",
    "LOC.NOM": "n",
    "ORG.NOM": "n",
    "GPE.NOM": "n",
}

# Paper C, section 4.1: both corpora "integrated into person, place and organisation names".
# Weibo's eight types (PER/LOC/ORG/GPE x named/nominal) -> PER/LOC/ORG, a geo-political entity
# being a place.
PAPER_C_WEIBO_MAPPING = {
    "PER.NAM": "PER",
    "PER.NOM": "PER",
    "LOC.NAM": "LOC",
    "LOC.NOM": "LOC",
    "GPE.NAM": "LOC",
    "GPE.NOM": "LOC",
    "ORG.NAM": "ORG",
    "ORG.NOM": "ORG",
}
# The same keeping only named mentions (nominal ones become O): the other reading of "names".
WEIBO_NAMED_ONLY_MAPPING = {
    "PER.NAM": "PER",
    "LOC.NAM": "LOC",
    "GPE.NAM": "LOC",
    "ORG.NAM": "ORG",
    "PER.NOM": None,
    "LOC.NOM": None,
    "GPE.NOM": None,
    "ORG.NOM": None,
}

MULTITASK_COLUMNS = ("char", "tag", CWS_FEATURE, POS_FEATURE)
_CACHE_FORMAT = 1
_ENTITY_POS_MODES = ("corrected", "all")


class PreAnnotationError(ValueError):
    """A sentence or setting that cannot be pre-annotated; the message names the sentence's source."""


class WordSpan(typing.NamedTuple):
    """A word of a sentence: characters ``[start, end)`` and its POS tag."""

    start: int
    end: int
    pos: str


# --- schemes -----------------------------------------------------------------------------------


def normalize_cws_scheme(scheme: str) -> str:
    """Canonical CWS scheme name (``"bmes"`` -> ``"BMES"``).

    Example:
    >>> normalize_cws_scheme("bie")
    'BIE'
    """
    name = str(scheme).strip().upper()
    if name not in CWS_SCHEMES:
        raise ValueError(f"unknown CWS scheme {scheme!r}; expected one of {', '.join(CWS_SCHEMES)}")
    return name


def cws_labels(scheme: str = "BMES") -> list:
    """The CWS labels of a scheme, in vocabulary order.

    Example:
    >>> cws_labels("BMES"), cws_labels("BIE")
    (['B', 'M', 'E', 'S'], ['B', 'I', 'E'])
    """
    return list(CWS_SCHEMES[normalize_cws_scheme(scheme)])


def word_position_tags(length: int, scheme: str = "BMES") -> list:
    """The CWS tags of one word of ``length`` characters.

    Example:
    >>> word_position_tags(3, "BMES"), word_position_tags(1, "BMES"), word_position_tags(1, "BIE")
    (['B', 'M', 'E'], ['S'], ['B'])
    """
    labels = CWS_SCHEMES[normalize_cws_scheme(scheme)]
    if length < 1:
        raise ValueError(f"a word has at least one character, got length {length}")
    if length == 1:
        return ["S" if "S" in labels else "B"]
    return ["B"] + [labels[1]] * (length - 2) + ["E"]


def char_tags_from_words(words, scheme: str = "BMES") -> tuple:
    """Per-character CWS and POS tags from word spans.

    Args:
        words: :class:`WordSpan` (or ``(start, end, pos)``) covering the sentence in order.
        scheme: CWS scheme (``"BMES"``, ``"BIES"``, ``"BIE"``).

    Returns:
        ``(cws_tags, pos_tags)``: e.g. ``["B", "E", "S"]`` and ``["B-ns", "E-ns", "S-v"]``.

    Example:
    >>> char_tags_from_words([(0, 2, "ns"), (2, 3, "v")], "BMES")
    (['B', 'E', 'S'], ['B-ns', 'E-ns', 'S-v'])
    """
    cws, pos = [], []
    for start, end, tag in words:
        positions = word_position_tags(end - start, scheme)
        cws.extend(positions)
        pos.extend(f"{p}-{tag}" for p in positions)
    return cws, pos


# Allowed CWS transitions per scheme (None = sentence start) and the tags a sentence may end with.
_NEXT = {
    "BMES": {None: "BS", "B": "ME", "M": "ME", "E": "BS", "S": "BS"},
    "BIES": {None: "BS", "B": "IE", "I": "IE", "E": "BS", "S": "BS"},
    "BIE": {None: "B", "B": "BIE", "I": "IE", "E": "B"},
}
_FINAL = {"BMES": "ES", "BIES": "ES", "BIE": "BE"}


def _cws_problem(tags, scheme):
    """``(position, problem)`` of the first illegal CWS tag, or ``None``."""
    allowed = _NEXT[scheme]
    previous = None
    for i, tag in enumerate(tags):
        if tag not in CWS_SCHEMES[scheme]:
            return i, f"CWS tag {tag!r} is not one of {', '.join(CWS_SCHEMES[scheme])} (scheme {scheme})"
        if tag not in allowed[previous]:
            after = f"after {previous!r}" if previous else "at the sentence start"
            return i, f"CWS tag {tag!r} cannot come {after} in scheme {scheme}"
        previous = tag
    if previous is not None and previous not in _FINAL[scheme]:
        return len(tags) - 1, f"the sentence ends inside a word (last CWS tag {previous!r}, scheme {scheme})"
    return None


def _char_tags_problem(cws_tags, pos_tags, scheme):
    """``(position, problem)`` of the first inconsistency in CWS/POS tags, or ``None``."""
    if len(cws_tags) != len(pos_tags):
        return 0, f"{len(cws_tags)} CWS tags but {len(pos_tags)} POS tags"
    problem = _cws_problem(cws_tags, scheme)
    if problem:
        return problem
    word_pos = None
    for i, (cws, pos) in enumerate(zip(cws_tags, pos_tags)):
        prefix, dash, tag = pos.partition("-") if isinstance(pos, str) else ("", "", "")
        if not dash or not tag or prefix != cws:
            return i, f"POS tag {pos!r} should be '{cws}-<POS>' to match CWS tag {cws!r}"
        if cws in "BS":
            word_pos = tag
        elif tag != word_pos:
            return i, f"POS changes inside a word: {word_pos!r} then {tag!r}"
    return None


def words_from_char_tags(cws_tags, pos_tags, scheme: str = "BMES", where: str | None = None) -> list:
    """Word spans back from per-character CWS and POS tags (inverse of :func:`char_tags_from_words`).

    Raises:
        ValueError: an illegal CWS sequence, a POS tag whose position prefix differs from the CWS
            tag, or a POS that changes inside a word (``where`` and the position are named).

    Example:
    >>> words_from_char_tags(["B", "E", "S"], ["B-ns", "E-ns", "S-v"])
    [WordSpan(start=0, end=2, pos='ns'), WordSpan(start=2, end=3, pos='v')]
    """
    scheme = normalize_cws_scheme(scheme)
    problem = _char_tags_problem(cws_tags, pos_tags, scheme)
    if problem:
        raise ValueError(f"{where or '<sentence>'}: {problem[1]} (position {problem[0]})")
    words = []
    for i, (cws, pos) in enumerate(zip(cws_tags, pos_tags)):
        if cws in "BS":
            words.append(WordSpan(i, i + 1, pos.partition("-")[2]))
        else:
            words[-1] = words[-1]._replace(end=i + 1)
    return words


# --- tagging and alignment ---------------------------------------------------------------------


def word_spans(words, text: str, where: str | None = None) -> list:
    """Aligns a tagger's ``[(word, pos), ...]`` to the characters of ``text``.

    Args:
        words: the tagger's output.
        text: the sentence.
        where: the sentence's source (``"path:line"``), for errors.

    Returns:
        A list of :class:`WordSpan`.

    Raises:
        PreAnnotationError: the words do not concatenate to ``text`` (the first differing character
            is shown), a word is empty or not a string, or a POS tag is empty or holds whitespace.

    Example:
    >>> word_spans([("王小明", "nr"), ("来", "v")], "王小明来")
    [WordSpan(start=0, end=3, pos='nr'), WordSpan(start=3, end=4, pos='v')]
    """
    where = where or "<sentence>"
    spans = []
    position = 0
    for item in words:
        try:
            word, pos = item
        except (TypeError, ValueError):
            raise PreAnnotationError(f"{where}: the tagger returned {item!r}, not a (word, pos) pair") from None
        if not isinstance(word, str) or not word:
            raise PreAnnotationError(f"{where}: the tagger returned an empty or non-string word {word!r}")
        if not isinstance(pos, str) or not pos or pos != "".join(pos.split()):
            raise PreAnnotationError(f"{where}: the tagger returned POS tag {pos!r} for {word!r} "
                                     "(must be non-empty, without whitespace)")
        if text[position:position + len(word)] != word:
            got = text[position:position + len(word)]
            raise PreAnnotationError(
                f"{where}: the tagger's words do not concatenate to the sentence: at character "
                f"{position} the tagger has {word!r}, the sentence has {got!r} "
                f"(sentence {text[:60]!r}{'...' if len(text) > 60 else ''})"
            )
        spans.append(WordSpan(position, position + len(word), pos))
        position += len(word)
    if position != len(text):
        raise PreAnnotationError(
            f"{where}: the tagger's words cover {position} of the sentence's {len(text)} characters "
            f"(missing {text[position:position + 20]!r})"
        )
    return spans


@dataclasses.dataclass
class SegmentationCorrection:
    """What :func:`correct_word_spans` changed in one sentence.

    Attributes:
        entities: gold entities in the sentence.
        corrected: entities that were not exactly one word (now they are).
        split: entities with a word boundary inside them (王/小明).
        cut: entities with an edge inside a word reaching outside (王小明来 as one word).
        remnant_words: words made of the outside parts of cut words.
        pos_disagreements: entities that were one word but whose tagger POS differs from the
            entity's POS (relabelled only with ``entity_pos="all"``).
    """

    entities: int = 0
    corrected: int = 0
    split: int = 0
    cut: int = 0
    remnant_words: int = 0
    pos_disagreements: int = 0


def correct_word_spans(words, entities, entity_pos, *, relabel: str = "corrected") -> tuple:
    """Re-segments so every entity is exactly one word.

    Word boundaries inside an entity are removed, and boundaries are added at the entity's edges;
    the parts of a cut word outside the entity become words of their own with the cut word's POS.

    Args:
        words: :class:`WordSpan` covering the sentence.
        entities: ``(type, start, end)`` gold entities (non-overlapping, ``end`` exclusive).
        entity_pos: a mapping or callable from entity type to POS tag.
        relabel: ``"corrected"``: re-segmented entities get their type's POS, entities the tagger
            already made one word keep the tagger's POS; ``"all"``: every entity gets its type's POS.

    Returns:
        ``(new_words, SegmentationCorrection)``.

    Example:
    >>> words = [WordSpan(0, 1, "nr"), WordSpan(1, 3, "nr"), WordSpan(3, 5, "v")]
    >>> new, report = correct_word_spans(words, [("PER", 0, 4)], {"PER": "nr"})
    >>> new, report.corrected
    ([WordSpan(start=0, end=4, pos='nr'), WordSpan(start=4, end=5, pos='v')], 1)
    """
    if relabel not in _ENTITY_POS_MODES:
        raise ValueError(f"relabel must be one of {_ENTITY_POS_MODES}, got {relabel!r}")
    lookup = entity_pos if callable(entity_pos) else entity_pos.__getitem__
    report = SegmentationCorrection(entities=len(entities))
    if not words:
        if entities:
            raise ValueError("entities in a sentence without words")
        return [], report
    length = words[-1].end
    starts = {w.start for w in words}
    boundaries = starts | {length}
    original = {(w.start, w.end): w.pos for w in words}
    word_at = [None] * length
    for w in words:
        for i in range(w.start, w.end):
            word_at[i] = w
    by_span = {}
    inside = set()
    for type_, start, end in entities:
        if not 0 <= start < end <= length:
            raise ValueError(f"entity {(type_, start, end)!r} outside a sentence of {length} characters")
        split = any(b in boundaries for b in range(start + 1, end))
        cut = start not in boundaries or end not in boundaries
        pos = lookup(type_)
        if split or cut:
            report.corrected += 1
            report.split += split
            report.cut += cut
            by_span[(start, end)] = pos
        else:
            if original[(start, end)] != pos:
                report.pos_disagreements += 1
            by_span[(start, end)] = pos if relabel == "all" else original[(start, end)]
        inside.update(range(start + 1, end))
    new_boundaries = sorted((boundaries - inside) | {s for _, s, _ in entities} | {e for _, _, e in entities})
    new_words = []
    for start, end in zip(new_boundaries, new_boundaries[1:]):
        if (start, end) in by_span:
            new_words.append(WordSpan(start, end, by_span[(start, end)]))
            continue
        # Outside every entity only entity edges were added, so this is part of one original word.
        source = word_at[start]
        if (start, end) not in original:
            report.remnant_words += 1
        new_words.append(WordSpan(start, end, source.pos))
    return new_words, report


# --- entity types ------------------------------------------------------------------------------


def _type_to_pos(type_to_pos, unknown_type_pos):
    mapping = dict(DEFAULT_TYPE_TO_POS)
    if type_to_pos:
        mapping.update(type_to_pos)
    for type_, pos in mapping.items():
        if not isinstance(pos, str) or not pos or pos != "".join(pos.split()):
            raise ValueError(f"type_to_pos[{type_!r}] = {pos!r}: a POS tag must be a non-empty string "
                             "without whitespace")
    if unknown_type_pos is not None and (not isinstance(unknown_type_pos, str) or not unknown_type_pos.strip()):
        raise ValueError(f"unknown_type_pos must be a POS tag or None, got {unknown_type_pos!r}")
    return mapping


def _corpus_scheme(sentences, ner_scheme):
    if ner_scheme is not None:
        return normalize_scheme(ner_scheme)
    return infer_scheme({t for s in sentences for t in s.tags})


def _entities(sentence, scheme):
    if not sentence.tags:
        return []
    try:
        return spans_from_tags(sentence.tags, scheme)
    except ValueError as error:
        raise PreAnnotationError(f"{sentence.source or '<sentence>'}: {error} (NER scheme {scheme})") from None


def _check_types(sentences, scheme, mapping, unknown_type_pos):
    missing = collections.Counter()
    first = {}
    for sentence in sentences:
        for type_, _, _ in _entities(sentence, scheme):
            if type_ not in mapping:
                missing[type_] += 1
                first.setdefault(type_, sentence.source or "<sentence>")
    if not missing:
        return
    listed = ", ".join(f"{t} ({n:,}, first at {first[t]})" for t, n in sorted(missing.items()))
    if unknown_type_pos is None:
        raise PreAnnotationError(
            f"entity types without a POS tag: {listed}. Pass type_to_pos={{type: pos, ...}} "
            f"(known: {', '.join(sorted(mapping))}) or unknown_type_pos='n'"
        )
    logger.warning("entity types without a POS tag get %r: %s", unknown_type_pos, listed)


def map_entity_types(sentences, mapping, *, scheme: str | None = None, keep_unmapped: bool = False) -> list:
    """Renames entity types (``mapping[type]``; ``None`` turns the entity into ``O``).

    Args:
        sentences: ``TaggedSentence`` objects (not changed).
        mapping: ``{old_type: new_type or None}``.
        scheme: the tags' scheme (``None``: inferred from the corpus); output tags keep it.
        keep_unmapped: keep types missing from ``mapping`` as they are; otherwise they raise.

    Returns:
        New ``TaggedSentence`` objects (features and sources kept). Entities turned into ``O`` are
        logged with a count per type.

    Example:
    >>> s = TaggedSentence(list("李娜去"), ["B-PER.NAM", "I-PER.NAM", "O"])
    >>> map_entity_types([s], {"PER.NAM": "PER"})[0].tags
    ['B-PER', 'I-PER', 'O']
    """
    from tfner.data.schemes import tags_from_spans

    scheme = _corpus_scheme(sentences, scheme)
    dropped = collections.Counter()
    out = []
    for sentence in sentences:
        spans = []
        for type_, start, end in _entities(sentence, scheme):
            if type_ not in mapping:
                if keep_unmapped:
                    spans.append((type_, start, end))
                    continue
                raise PreAnnotationError(
                    f"{sentence.source or '<sentence>'}: entity type {type_!r} is not in the mapping "
                    f"({', '.join(sorted(mapping))}); pass keep_unmapped=True to keep it"
                )
            if mapping[type_] is None:
                dropped[type_] += 1
            else:
                spans.append((mapping[type_], start, end))
        tags = tags_from_spans(spans, len(sentence.chars), scheme) if sentence.tags else []
        out.append(TaggedSentence(list(sentence.chars), tags, dict(sentence.features), sentence.source))
    if dropped:
        logger.info("entity types mapped to O: %s", ", ".join(f"{t} {n:,}" for t, n in sorted(dropped.items())))
    return out


def map_weibo_types(sentences, mapping=PAPER_C_WEIBO_MAPPING) -> list:
    """Weibo's eight types -> PER/LOC/ORG as in paper C (:data:`PAPER_C_WEIBO_MAPPING`).

    ``mapping=WEIBO_NAMED_ONLY_MAPPING`` keeps only named mentions. See :func:`map_entity_types`.

    Example:
    >>> s = TaggedSentence(list("去北京"), ["O", "B-GPE.NAM", "I-GPE.NAM"])
    >>> map_weibo_types([s])[0].tags
    ['O', 'B-LOC', 'I-LOC']
    """
    return map_entity_types(sentences, mapping, scheme="BIO")


def entity_type_counts(sentences, scheme: str | None = None) -> dict:
    """``{type: number of entities}`` (sorted by type), lenient reading as in evaluation.

    Example:
    >>> entity_type_counts([TaggedSentence(list("去北京"), ["O", "B-LOC", "I-LOC"])])
    {'LOC': 1}
    """
    scheme = _corpus_scheme(sentences, scheme)
    counts = collections.Counter(t for s in sentences for t, _, _ in _entities(s, scheme))
    return dict(sorted(counts.items()))


# --- pre-annotation ----------------------------------------------------------------------------


@dataclasses.dataclass
class PreAnnotationReport:
    """Counts of one pre-annotation run (see :class:`SegmentationCorrection` for the entity counts).

    Attributes:
        sentences, sentences_corrected: sentences, and those whose segmentation was corrected.
        entities, entities_corrected, entities_split, entities_cut, remnant_words,
        entity_pos_disagreements: summed over the corpus.
        tagger: the tagger's description (name, version, HMM, dictionary hash).
        cws_scheme: the CWS scheme written.
        seconds: time spent tagging and correcting (0 when read from the cache).
        from_cache: whether the result was read from the cache.
        cache_file: the cache file, or ``None`` when not cached.
    """

    sentences: int = 0
    sentences_corrected: int = 0
    entities: int = 0
    entities_corrected: int = 0
    entities_split: int = 0
    entities_cut: int = 0
    remnant_words: int = 0
    entity_pos_disagreements: int = 0
    tagger: str = ""
    cws_scheme: str = "BMES"
    seconds: float = 0.0
    from_cache: bool = False
    cache_file: str | None = None

    def summary(self) -> str:
        share = self.entities_corrected / self.entities if self.entities else 0.0
        return (
            f"pre-annotated {self.sentences:,} sentences with {self.tagger} ({self.cws_scheme}): "
            f"corrected the segmentation of {self.sentences_corrected:,} sentences and "
            f"{self.entities_corrected:,} of {self.entities:,} entities ({share:.1%}; split "
            f"{self.entities_split:,}, cut {self.entities_cut:,}, {self.remnant_words:,} remnant words); "
            f"{self.entity_pos_disagreements:,} single-word entities with another POS"
            + (f"; read from {self.cache_file}" if self.from_cache else f" in {self.seconds:.1f} s")
        )


def annotate_sentence(sentence, tagger, *, cws_scheme: str = "BMES", ner_scheme: str = "BIO",
                      type_to_pos=None, unknown_type_pos: str | None = None,
                      entity_pos: str = "corrected") -> tuple:
    """Pre-annotates one sentence: tag, align, correct to the entities.

    Args:
        sentence: a ``TaggedSentence``.
        tagger: a callable ``text -> [(word, pos), ...]``.
        cws_scheme, ner_scheme, type_to_pos, unknown_type_pos, entity_pos: see
            :func:`pre_annotate_corpus`.

    Returns:
        ``(TaggedSentence with features "cws" and "pos", SegmentationCorrection)``.

    Example:
    >>> fake = lambda text: [("王", "nr"), ("小明", "nr"), ("来", "v")]
    >>> s, report = annotate_sentence(TaggedSentence(list("王小明来"), ["B-PER", "I-PER", "I-PER", "O"]), fake)
    >>> s.features["cws"], s.features["pos"], report.corrected
    (['B', 'M', 'E', 'S'], ['B-nr', 'M-nr', 'E-nr', 'S-v'], 1)
    """
    mapping = _type_to_pos(type_to_pos, unknown_type_pos)
    ner_scheme = normalize_scheme(ner_scheme)
    cws_scheme = normalize_cws_scheme(cws_scheme)
    if entity_pos not in _ENTITY_POS_MODES:
        raise ValueError(f"entity_pos must be one of {_ENTITY_POS_MODES}, got {entity_pos!r}")
    return _annotate(sentence, tagger, cws_scheme, ner_scheme, mapping, unknown_type_pos, entity_pos)


def _annotate(sentence, tagger, cws_scheme, ner_scheme, mapping, unknown_type_pos, entity_pos):
    where = sentence.source or "<sentence>"
    text = sentence.text
    try:
        words = tagger(text) if text else []
    except Exception as error:
        raise PreAnnotationError(f"{where}: the tagger failed on {text[:60]!r}: {error}") from error
    spans = word_spans(words, text, where)
    entities = _entities(sentence, ner_scheme)

    def pos_of(type_):
        pos = mapping.get(type_, unknown_type_pos)
        if pos is None:
            raise PreAnnotationError(f"{where}: entity type {type_!r} has no POS tag (pass type_to_pos)")
        return pos

    spans, correction = correct_word_spans(spans, entities, pos_of, relabel=entity_pos)
    cws, pos = char_tags_from_words(spans, cws_scheme)
    features = dict(sentence.features)
    features[CWS_FEATURE] = cws
    features[POS_FEATURE] = pos
    return TaggedSentence(list(sentence.chars), list(sentence.tags), features, sentence.source), correction


def _corpus_digest(sentences) -> str:
    digest = hashlib.sha256()
    for sentence in sentences:
        digest.update(json.dumps([sentence.chars, sentence.tags], ensure_ascii=False).encode("utf-8", "surrogatepass"))
        digest.update(b"\n")
    return digest.hexdigest()


def pre_annotation_cache_dir() -> pathlib.Path:
    """Default cache folder: ``tfner.data.user_cache_dir() / "pre_annotation"``."""
    return resolve.user_cache_dir() / "pre_annotation"


def pre_annotate_corpus(sentences, *, tagger="jieba", hmm: bool = True, cws_scheme: str = "BMES",
                        ner_scheme: str | None = None, type_to_pos=None, unknown_type_pos: str | None = None,
                        entity_pos: str = "corrected", cache: bool = True, cache_dir=None,
                        tagger_id: str | None = None) -> tuple:
    """Segments and POS-tags an NER corpus, corrected to its entities, with a cache.

    Every sentence is tagged, aligned to its characters and corrected so each gold entity is one
    word (see :func:`correct_word_spans`); the tags go to ``features["cws"]`` and
    ``features["pos"]`` of new sentences (other features and ``source`` are kept). Counts are
    logged and returned.

    The result is cached under ``cache_dir`` (default :func:`pre_annotation_cache_dir`) keyed by a
    sha256 of the sentences (characters and tags), the tagger's identity (for jieba: its version,
    the dictionary's sha256 and ``hmm``), ``cws_scheme``, ``ner_scheme``, the type-to-POS mapping,
    ``unknown_type_pos`` and ``entity_pos``; an identical later call reads the cache and does not
    run the tagger. A callable tagger is cached only when it has a ``cache_key`` attribute or
    ``tagger_id`` names it (change ``tagger_id`` when its output changes).

    Args:
        sentences: ``TaggedSentence`` objects (not changed).
        tagger: ``"jieba"`` (:class:`~tfner.data.word_taggers.JiebaTagger`) or a callable
            ``text -> [(word, pos), ...]``.
        hmm: for ``"jieba"``: use jieba's HMM for words missing from its dictionary.
        cws_scheme: ``"BMES"`` (default), ``"BIES"`` or ``"BIE"`` (see the module docstring).
        ner_scheme: the scheme of the NER tags; ``None`` infers it from the corpus.
        type_to_pos: ``{entity type: POS}`` added to (and overriding) :data:`DEFAULT_TYPE_TO_POS`.
        unknown_type_pos: the POS for entity types missing from the mapping; ``None`` (default)
            raises :class:`PreAnnotationError` listing them before any tagging.
        entity_pos: ``"corrected"`` (default): re-segmented entities get their type's POS, entities
            the tagger already made one word keep its POS; ``"all"``: every entity gets its type's POS.
        cache: read and write the cache.
        cache_dir: the cache folder.
        tagger_id: names a callable tagger for the cache key (overrides its ``cache_key``).

    Returns:
        ``(sentences, PreAnnotationReport)``.

    Raises:
        PreAnnotationError: the tagger's words do not concatenate to a sentence (naming its
            source), an entity type without POS, an invalid NER tag.

    Example:
    >>> fake = lambda text: [(c, "n") for c in text]
    >>> corpus = [TaggedSentence(list("去北京"), ["O", "B-LOC", "I-LOC"], source="a.txt:1")]
    >>> out, report = pre_annotate_corpus(corpus, tagger=fake, cache=False)
    >>> out[0].features["cws"], out[0].features["pos"], report.entities_corrected
    (['S', 'B', 'E'], ['S-n', 'B-ns', 'E-ns'], 1)
    """
    sentences = list(sentences)
    cws_scheme = normalize_cws_scheme(cws_scheme)
    ner_scheme = _corpus_scheme(sentences, ner_scheme)
    mapping = _type_to_pos(type_to_pos, unknown_type_pos)
    if entity_pos not in _ENTITY_POS_MODES:
        raise ValueError(f"entity_pos must be one of {_ENTITY_POS_MODES}, got {entity_pos!r}")
    tagger = make_tagger(tagger, hmm=hmm)
    description = describe_tagger(tagger, tagger_id)
    _check_types(sentences, ner_scheme, mapping, unknown_type_pos)

    identity = tagger_identity(tagger, tagger_id) if cache else None
    cache_file = None
    if cache and identity is None:
        logger.info("pre-annotation not cached: tagger %s has no cache_key; pass tagger_id to cache it",
                    description)
    if identity is not None:
        key = {
            "format": _CACHE_FORMAT,
            "corpus_sha256": _corpus_digest(sentences),
            "sentences": len(sentences),
            "tagger": identity,
            "cws_scheme": cws_scheme,
            "ner_scheme": ner_scheme,
            "type_to_pos": dict(sorted(mapping.items())),
            "unknown_type_pos": unknown_type_pos,
            "entity_pos": entity_pos,
        }
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()
        folder = pathlib.Path(cache_dir).expanduser() if cache_dir is not None else pre_annotation_cache_dir()
        cache_file = folder / f"{digest}.tsv"
        cached = _read_cache(cache_file, sentences, cws_scheme, ner_scheme)
        if cached is not None:
            out, report = cached
            logger.info("%s", report.summary())
            return out, report

    started = time.perf_counter()
    report = PreAnnotationReport(sentences=len(sentences), tagger=description, cws_scheme=cws_scheme)
    out = []
    for sentence in sentences:
        annotated, correction = _annotate(sentence, tagger, cws_scheme, ner_scheme, mapping,
                                          unknown_type_pos, entity_pos)
        out.append(annotated)
        report.entities += correction.entities
        report.entities_corrected += correction.corrected
        report.entities_split += correction.split
        report.entities_cut += correction.cut
        report.remnant_words += correction.remnant_words
        report.entity_pos_disagreements += correction.pos_disagreements
        report.sentences_corrected += correction.corrected > 0
    report.seconds = time.perf_counter() - started
    if cache_file is not None:
        try:
            _write_cache(cache_file, out, report, key)
            report.cache_file = str(cache_file)
        except OSError as error:
            logger.warning("could not write the pre-annotation cache %s: %s", cache_file, error)
    logger.info("%s", report.summary())
    return out, report


def _write_cache(cache_file, sentences, report, key):
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    write_multitask_corpus(sentences, cache_file)
    meta = {"key": key, "report": dataclasses.asdict(report)}
    meta["report"]["cache_file"] = str(cache_file)
    _write_text_atomic(cache_file.with_suffix(".json"), json.dumps(meta, ensure_ascii=False, indent=1) + "\n")


def _read_cache(cache_file, sentences, cws_scheme, ner_scheme):
    meta_file = cache_file.with_suffix(".json")
    if not (cache_file.is_file() and meta_file.is_file()):
        return None
    try:
        meta = json.loads(meta_file.read_text("utf-8"))
        report = PreAnnotationReport(**meta["report"])
        if sentences:
            cached = read_multitask_corpus(cache_file, ner_scheme=ner_scheme, cws_scheme=cws_scheme)
        else:
            cached = []
        if len(cached) != len(sentences) or any(
            c.chars != s.chars or c.tags != s.tags for c, s in zip(cached, sentences)
        ):
            raise ValueError("its sentences differ from the corpus")
    except (OSError, ValueError, KeyError, TypeError) as error:
        logger.warning("ignoring the pre-annotation cache %s (%s); tagging again", cache_file, error)
        return None
    out = []
    for sentence, stored in zip(sentences, cached):
        features = dict(sentence.features)
        features[CWS_FEATURE] = stored.features[CWS_FEATURE]
        features[POS_FEATURE] = stored.features[POS_FEATURE]
        out.append(TaggedSentence(list(sentence.chars), list(sentence.tags), features, sentence.source))
    report.from_cache = True
    report.seconds = 0.0
    report.cache_file = str(cache_file)
    return out, report


def _write_text_atomic(path, text):
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# --- label-consistency targets -----------------------------------------------------------------


@dataclasses.dataclass
class ConsistencyTargets:
    """Per-character CWS and POS targets converted from gold NER tags (paper C, eq. 11).

    Attributes:
        cws: CWS tag at each entity character (``"B"``, ``"M"``, ``"E"``, ``"S"`` in BMES), ``None``
            at characters without a target.
        pos: position + entity POS (``"B-nr"``) at entity characters, else ``None``.
        mask: ``True`` where there is a target.
    """

    cws: list
    pos: list
    mask: list


def consistency_targets(sentence, *, ner_scheme: str = "BIO", cws_scheme: str = "BMES", type_to_pos=None,
                        unknown_type_pos: str | None = None, boundaries_only: bool = False) -> ConsistencyTargets:
    """The label-consistency targets of a sentence (or a tag list): entity characters only.

    An entity ``[start, end)`` gives the CWS tags of one word of its length (BMES: ``B M ... E``,
    a one-character entity ``S``; BIE: ``B I ... E``, one character ``B``) and POS tags of the
    same positions with the type's POS (:data:`DEFAULT_TYPE_TO_POS` plus ``type_to_pos``). ``O``
    characters have no target (``mask`` False).

    Args:
        sentence: a ``TaggedSentence`` or a list of NER tags.
        ner_scheme: scheme of the NER tags.
        cws_scheme: CWS scheme of the targets.
        type_to_pos: extra ``{type: POS}``; a type without POS raises unless ``unknown_type_pos``.
        unknown_type_pos: POS for types missing from the mapping.
        boundaries_only: targets only at entity boundaries (first and last character; the paper's
            "only B and E"), inner characters masked.

    Example:
    >>> t = consistency_targets(["O", "B-PER", "I-PER", "I-PER", "B-LOC"])
    >>> t.cws, t.pos, t.mask
    ([None, 'B', 'M', 'E', 'S'], [None, 'B-nr', 'M-nr', 'E-nr', 'S-ns'], [False, True, True, True, True])
    """
    tags = sentence.tags if isinstance(sentence, TaggedSentence) else list(sentence)
    where = getattr(sentence, "source", None) or "<sentence>"
    mapping = _type_to_pos(type_to_pos, unknown_type_pos)
    try:
        entities = spans_from_tags(tags, ner_scheme)
    except ValueError as error:
        raise PreAnnotationError(f"{where}: {error}") from None
    cws = [None] * len(tags)
    pos = [None] * len(tags)
    mask = [False] * len(tags)
    for type_, start, end in entities:
        tag = mapping.get(type_, unknown_type_pos)
        if tag is None:
            raise PreAnnotationError(
                f"{where}: entity type {type_!r} has no POS tag; pass type_to_pos={{{type_!r}: ...}}"
            )
        for offset, position in enumerate(word_position_tags(end - start, cws_scheme)):
            i = start + offset
            if boundaries_only and start < i < end - 1:
                continue
            cws[i] = position
            pos[i] = f"{position}-{tag}"
            mask[i] = True
    return ConsistencyTargets(cws, pos, mask)


def _label_index(labels):
    if hasattr(labels, "index") and hasattr(labels, "labels") and not isinstance(labels, (list, tuple)):
        return labels.index  # a LabelVocabulary
    if isinstance(labels, dict):
        table = labels
    else:
        table = {label: i for i, label in enumerate(labels)}

    def index(tag):
        try:
            return table[tag]
        except KeyError:
            raise ValueError(f"unknown label {tag!r}; labels are {list(table)}") from None

    return index


def consistency_target_ids(targets: ConsistencyTargets, cws_vocabulary, pos_vocabulary) -> tuple:
    """Maps consistency targets to ids: ``(cws_ids, pos_ids, mask)`` int32/int32/bool arrays.

    Positions without a target get id 0 (and ``mask`` False).

    Args:
        targets: from :func:`consistency_targets`.
        cws_vocabulary, pos_vocabulary: a label list, a ``{label: id}`` dict or a ``LabelVocabulary``.

    Example:
    >>> t = consistency_targets(["O", "B-LOC", "I-LOC"])
    >>> [a.tolist() for a in consistency_target_ids(t, cws_labels(), ["O", "B-ns", "E-ns"])]
    [[0, 0, 2], [0, 1, 2], [False, True, True]]
    """
    cws_index, pos_index = _label_index(cws_vocabulary), _label_index(pos_vocabulary)
    cws = np.asarray([cws_index(t) if m else 0 for t, m in zip(targets.cws, targets.mask)], dtype=np.int32)
    pos = np.asarray([pos_index(t) if m else 0 for t, m in zip(targets.pos, targets.mask)], dtype=np.int32)
    return cws, pos, np.asarray(targets.mask, dtype=bool)


def pos_labels(sentences, *, cws_scheme: str = "BMES", ner_scheme: str | None = None, type_to_pos=None,
               unknown_type_pos: str | None = None) -> list:
    """The POS label list of a pre-annotated corpus: every ``features["pos"]`` tag, plus the
    position + POS tags its entities can take as consistency targets; sorted by POS, then position.

    Example:
    >>> layers = {"cws": ["S", "B", "E"], "pos": ["S-v", "B-ns", "E-ns"]}
    >>> s = TaggedSentence(list("去北京"), ["O", "B-LOC", "I-LOC"], layers)
    >>> pos_labels([s])
    ['B-ns', 'M-ns', 'E-ns', 'S-ns', 'S-v']
    """
    positions = cws_labels(cws_scheme)
    mapping = _type_to_pos(type_to_pos, unknown_type_pos)
    tags = set()
    for sentence in sentences:
        tags.update(sentence.features.get(POS_FEATURE, ()))
    for type_ in entity_type_counts(sentences, ner_scheme):
        pos = mapping.get(type_, unknown_type_pos)
        if pos is not None:
            tags.update(f"{p}-{pos}" for p in positions)
    order = {p: i for i, p in enumerate(positions)}
    return sorted(tags, key=lambda t: (t.partition("-")[2], order.get(t.partition("-")[0], len(order))))


# --- the three-layer corpus file ---------------------------------------------------------------


_UNWRITABLE = {"\t", "\n", "\r"}


def write_multitask_corpus(sentences, path) -> None:
    """Writes ``char<TAB>NER<TAB>CWS<TAB>POS`` per character, a blank line between sentences (UTF-8).

    Only these four layers are written (other features, e.g. Weibo's ``word_position``, are not).
    :func:`read_multitask_corpus` reads the file back exactly. The file is written atomically.

    Raises:
        ValueError: naming the sentence's source: a sentence without NER tags (unlabelled),
            without ``features["cws"]``/``["pos"]``, empty, or with a tab or line break as a character.

    Example:
    >>> import pathlib, tempfile
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "c.tsv"
    >>> layers = {"cws": ["S", "B", "E"], "pos": ["S-v", "B-ns", "E-ns"]}
    >>> s = TaggedSentence(list("去北京"), ["O", "B-LOC", "I-LOC"], layers)
    >>> write_multitask_corpus([s], f)
    >>> f.read_text("utf-8").splitlines()[1]
    '北\\tB-LOC\\tB\\tB-ns'
    """
    path = pathlib.Path(path)
    lines = []
    for i, sentence in enumerate(sentences):
        where = sentence.source or f"sentence {i}"
        if not sentence.chars:
            raise ValueError(f"{where}: an empty sentence cannot be written (it would be a blank line)")
        if not sentence.tags:
            raise ValueError(f"{where}: the sentence has no NER tags (unlabelled); the file needs them")
        missing = [name for name in (CWS_FEATURE, POS_FEATURE) if name not in sentence.features]
        if missing:
            raise ValueError(f"{where}: no features {missing} (pre-annotate the corpus first)")
        cws, pos = sentence.features[CWS_FEATURE], sentence.features[POS_FEATURE]
        for j, row in enumerate(zip(sentence.chars, sentence.tags, cws, pos)):
            for value in row:
                if not isinstance(value, str) or not value or _UNWRITABLE & set(value):
                    raise ValueError(f"{where}: cannot write {value!r} at character {j} "
                                     "(empty, not a string, or holding a tab or line break)")
            if j == 0 and i == 0 and row[0] == "\ufeff":
                raise ValueError(f"{where}: a first character U+FEFF would be read as a byte-order mark")
            if row[1] != row[1].strip(" "):
                raise ValueError(f"{where}: NER tag {row[1]!r} at character {j} is space-padded")
            lines.append("\t".join(row))
        lines.append("")
    try:
        text = "\n".join(lines) + ("\n" if lines else "")
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"{path}: a character cannot be written as UTF-8 ({error})") from None
    _write_text_atomic(path, text)


def read_multitask_corpus(path, *, ner_scheme: str | None = "BIO", cws_scheme: str | None = None,
                          encoding: str | None = None) -> list:
    """Reads a file written by :func:`write_multitask_corpus` (``char NER CWS POS``, tab-separated).

    The CWS and POS columns go to ``features["cws"]`` and ``features["pos"]`` and are checked:
    a legal CWS sequence, POS tags ``<CWS tag>-<POS>``, one POS per word.

    Args:
        path: the file.
        ner_scheme: scheme of the NER column (``None``: inferred).
        cws_scheme: ``"BMES"``, ``"BIES"``, ``"BIE"``, or ``None``: inferred from the file
            (``M`` -> BMES, else ``S`` -> BIES, else BIE).
        encoding: ``None`` (UTF-8 / byte-order mark) or a codec name.

    Raises:
        CorpusError: ``"path:line: problem"`` (a wrong number of fields, an invalid NER tag, an
            illegal CWS tag or transition, a POS tag not matching its CWS tag).

    Example:
    >>> import pathlib, tempfile
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "c.tsv"
    >>> _ = f.write_text("去\\tO\\tS\\tS-v\\n北\\tB-LOC\\tB\\tB-ns\\n京\\tI-LOC\\tE\\tE-ns\\n", "utf-8")
    >>> read_multitask_corpus(f)[0].features
    {'cws': ['S', 'B', 'E'], 'pos': ['S-v', 'B-ns', 'E-ns']}
    """
    sentences = read_conll(path, columns=MULTITASK_COLUMNS, sep="\t", scheme=ner_scheme, encoding=encoding)
    if cws_scheme is None:
        found = {t for s in sentences for t in s.features[CWS_FEATURE]}
        cws_scheme = "BMES" if "M" in found else "BIES" if "S" in found else "BIE"
    cws_scheme = normalize_cws_scheme(cws_scheme)
    for sentence in sentences:
        problem = _char_tags_problem(sentence.features[CWS_FEATURE], sentence.features[POS_FEATURE], cws_scheme)
        if problem:
            # Lines of a sentence are consecutive: character i is on the first line + i.
            first_line = int(sentence.source.rpartition(":")[2])
            raise CorpusError(path, first_line + problem[0], problem[1])
    return sentences


# --- agreement with a reference segmentation (Weibo) -------------------------------------------


@dataclasses.dataclass
class SegmentationAgreement:
    """How a tagger's segmentation agrees with a reference segmentation.

    Word scores count words with the same span (the SIGHAN measure); boundary scores count the
    boundaries between characters inside a sentence (its start and end always agree). Precision is
    the tagger's, against the reference.

    Attributes:
        sentences, identical_sentences: sentences, and those segmented exactly as the reference.
        reference_words, tagger_words, matched_words: word counts.
        reference_boundaries, tagger_boundaries, matched_boundaries: inner-boundary counts.
        irregular_positions: reference positions that neither start a word (0) nor continue the
            previous character's (previous + 1); read as continuing the word.
    """

    sentences: int = 0
    identical_sentences: int = 0
    reference_words: int = 0
    tagger_words: int = 0
    matched_words: int = 0
    reference_boundaries: int = 0
    tagger_boundaries: int = 0
    matched_boundaries: int = 0
    irregular_positions: int = 0
    tagger: str = ""

    @staticmethod
    def _prf(matched, predicted, gold):
        p = matched / predicted if predicted else 0.0
        r = matched / gold if gold else 0.0
        return p, r, (2 * p * r / (p + r) if p + r else 0.0)

    @property
    def word_scores(self) -> tuple:
        """``(precision, recall, f1)`` of words."""
        return self._prf(self.matched_words, self.tagger_words, self.reference_words)

    @property
    def boundary_scores(self) -> tuple:
        """``(precision, recall, f1)`` of inner word boundaries."""
        return self._prf(self.matched_boundaries, self.tagger_boundaries, self.reference_boundaries)

    @property
    def identical_share(self) -> float:
        return self.identical_sentences / self.sentences if self.sentences else 0.0

    def summary(self) -> str:
        wp, wr, wf = self.word_scores
        bp, br, bf = self.boundary_scores
        return (
            f"{self.tagger} vs the reference segmentation on {self.sentences:,} sentences: words "
            f"P {wp:.2%} R {wr:.2%} F1 {wf:.2%}; boundaries P {bp:.2%} R {br:.2%} F1 {bf:.2%}; "
            f"identical sentences {self.identical_sentences:,} ({self.identical_share:.1%})"
        )


def reference_word_starts(positions) -> tuple:
    """Word starts from per-character word positions (Weibo's digits): a word starts at 0.

    Returns:
        ``(starts, irregular)``: the sorted start indices (always including 0 for a non-empty
        sentence) and the number of positions that are neither 0 nor previous + 1.

    Example:
    >>> reference_word_starts([0, 1, 0, 0, 1, 2])
    ([0, 2, 3], 0)
    """
    starts, irregular = [], 0
    for i, p in enumerate(positions):
        p = int(p)
        if i == 0 or p == 0:
            starts.append(i)
            irregular += i == 0 and p != 0
        elif p != int(positions[i - 1]) + 1:
            irregular += 1
    return starts, irregular


def segmentation_agreement(sentences, *, tagger="jieba", hmm: bool = True,
                           reference_feature: str = "word_position", corrected: bool = False,
                           ner_scheme: str | None = None, tagger_id: str | None = None) -> SegmentationAgreement:
    """Compares a tagger's segmentation with a reference one stored per character (Weibo's digits).

    Args:
        sentences: ``TaggedSentence`` objects with ``features[reference_feature]`` (the word
            position of each character, 0 at a word start, as :func:`tfner.data.read_weibo` reads it).
        tagger: ``"jieba"`` or a callable ``text -> [(word, pos), ...]``.
        hmm: jieba's HMM setting.
        reference_feature: the feature holding the positions.
        corrected: compare the segmentation after the correction to the gold entities
            (:func:`correct_word_spans`) instead of the tagger's own.
        ner_scheme: NER scheme (for ``corrected``); ``None`` infers it.
        tagger_id: a name for a callable tagger in the summary.

    Returns:
        A :class:`SegmentationAgreement` (also logged).

    Example:
    >>> s = TaggedSentence(list("我爱北京"), ["O"] * 4, {"word_position": [0, 0, 0, 1]})
    >>> segmentation_agreement([s], tagger=lambda t: [("我", "r"), ("爱北京", "v")]).word_scores
    (0.5, 0.3333333333333333, 0.4)
    """
    sentences = list(sentences)
    tagger = make_tagger(tagger, hmm=hmm)
    ner_scheme = _corpus_scheme(sentences, ner_scheme)
    result = SegmentationAgreement(tagger=describe_tagger(tagger, tagger_id)
                                   + (" (corrected to the entities)" if corrected else ""))
    for sentence in sentences:
        where = sentence.source or "<sentence>"
        if reference_feature not in sentence.features:
            raise PreAnnotationError(f"{where}: no feature {reference_feature!r} with the reference segmentation")
        if not sentence.chars:
            continue
        text = sentence.text
        spans = word_spans(tagger(text), text, where)
        if corrected:
            spans, _ = correct_word_spans(spans, _entities(sentence, ner_scheme), lambda t: "x")
        ref_starts, irregular = reference_word_starts(sentence.features[reference_feature])
        ref_words = set(zip(ref_starts, ref_starts[1:] + [len(text)]))
        hyp_words = {(w.start, w.end) for w in spans}
        ref_bounds, hyp_bounds = set(ref_starts[1:]), {w.start for w in spans[1:]}
        result.sentences += 1
        result.irregular_positions += irregular
        result.identical_sentences += ref_words == hyp_words
        result.reference_words += len(ref_words)
        result.tagger_words += len(hyp_words)
        result.matched_words += len(ref_words & hyp_words)
        result.reference_boundaries += len(ref_bounds)
        result.tagger_boundaries += len(hyp_bounds)
        result.matched_boundaries += len(ref_bounds & hyp_bounds)
    if result.irregular_positions:
        logger.warning("%d irregular word positions (neither 0 nor previous + 1) read as continuing "
                       "the word", result.irregular_positions)
    logger.info("%s", result.summary())
    return result
