"""Word-segmented text (SIGHAN 2005 gold files) as character-level CWS sentences (paper C).

A segmented file has one sentence per line and its words separated by whitespace (the SIGHAN 2005
``*_test_gold.utf8`` files: two spaces between words, CRLF line ends). Each line becomes a
``TaggedSentence`` without NER tags whose ``features["cws"]`` holds the characters' word
positions in a CWS scheme (``B M E S`` by default), the layer a multi-task tagger's CWS head trains
on (:func:`tfner.training.encode_multitask_corpus`).

Also here: word-level scores of CWS and POS tag sequences (:func:`word_scores`), the SIGHAN
measure (a word counts when its span, and for POS its tag, match).
"""

from __future__ import annotations

import logging
import pathlib

from tfner.data import resolve
from tfner.data.example import TaggedSentence
from tfner.data.pre_annotation import CWS_FEATURE, normalize_cws_scheme, word_position_tags
from tfner.data.textio import CorpusError

logger = logging.getLogger("tfner.data")

SIGHAN2005_CORPUS = "cws_sighan2005"
# name -> gold file of the SIGHAN 2005 bakeoff (test sets; the training sets are not obtainable here).
SIGHAN2005_GOLD_FILES = {"pku": "pku_test_gold.utf8", "msr": "msr_test_gold.utf8"}


def read_segmented(path, *, scheme: str = "BMES", encoding: str = "utf-8-sig", name: str | None = None) -> list:
    """Reads a whitespace-segmented file into CWS sentences (``features["cws"]``, no NER tags).

    Args:
        path: the file (one sentence per line, words separated by whitespace).
        scheme: CWS scheme of the tags (``"BMES"``, ``"BIES"``, ``"BIE"``).
        encoding: text encoding (default UTF-8, with or without a byte-order mark).
        name: a name for the log line (default: the file name).

    Returns:
        ``TaggedSentence`` objects with ``tags == []``, ``features["cws"]`` and ``source``
        ``"path:line"``. Blank lines are skipped.

    Raises:
        CorpusError: a file that is not text in ``encoding`` (naming the file), or with no words.

    Example:
    >>> import pathlib, tempfile
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "seg.txt"
    >>> _ = f.write_bytes("共同  创造  美好  的  新  世纪\\r\\n".encode("utf-8"))
    >>> s = read_segmented(f)[0]
    >>> s.text, s.features["cws"]
    ('共同创造美好的新世纪', ['B', 'E', 'B', 'E', 'B', 'E', 'S', 'S', 'B', 'E'])
    """
    path = pathlib.Path(path)
    scheme = normalize_cws_scheme(scheme)
    try:
        text = path.read_bytes().decode(encoding)
    except UnicodeDecodeError as error:
        raise CorpusError(path, None, f"not {encoding} text ({error}); pass the file's encoding") from None
    sentences = []
    words_total = 0
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split()
        if not words:
            continue
        chars, cws = [], []
        for word in words:
            chars.extend(word)
            cws.extend(word_position_tags(len(word), scheme))
        words_total += len(words)
        sentences.append(TaggedSentence(chars, [], {CWS_FEATURE: cws}, f"{path}:{number}"))
    if not sentences:
        raise CorpusError(path, None, "no segmented sentences (empty or blank-only file)")
    logger.info("%s: %d segmented sentences, %d words, %d characters", name or path.name, len(sentences),
                words_total, sum(len(s.chars) for s in sentences))
    return sentences


def read_sighan2005(name: str = "pku", data_dir=None, *, path=None, scheme: str = "BMES") -> list:
    """A SIGHAN 2005 gold segmentation (``"pku"`` or ``"msr"`` test gold) via the corpus resolver.

    Looks for ``<data dir>/cws_sighan2005/<name>_test_gold.utf8`` (``$TFNER_DATA_DIR``,
    ``../shared/data``, the user cache), or reads ``path``; see :func:`read_segmented`.
    """
    if name not in SIGHAN2005_GOLD_FILES:
        raise ValueError(f"unknown SIGHAN 2005 corpus {name!r}; known: {', '.join(SIGHAN2005_GOLD_FILES)}")
    file = resolve.resolve_corpus(SIGHAN2005_CORPUS, SIGHAN2005_GOLD_FILES[name], path, root=data_dir)
    return read_segmented(file, scheme=scheme, name=f"SIGHAN 2005 {name.upper()} gold")


def word_scores(gold, pred, *, typed: bool = False, scheme: str = "BMES") -> dict:
    """Word precision/recall/F1 of CWS (``typed=False``) or POS (``typed=True``) tag sequences.

    CWS tags are bare word positions (``B M E S``); POS tags are position + POS (``B-nr``). A
    predicted word is correct when its span (and, for POS, its tag) equals a gold word's. An
    illegal sequence is read leniently, as entity scores are.

    Returns:
        ``{"precision", "recall", "f1", "true_words", "pred_words", "correct"}``.

    Example:
    >>> word_scores([["B", "E", "S"]], [["B", "E", "S"]])["f1"]
    1.0
    >>> round(word_scores([["B-ns", "E-ns", "S-v"]], [["B-ns", "E-ns", "S-n"]], typed=True)["f1"], 3)
    0.5
    """
    from tfner.evaluation import entity_scores

    scheme = normalize_cws_scheme(scheme)
    ner_scheme = {"BMES": "BMES", "BIES": "BIOES", "BIE": "BIOES"}[scheme]

    def convert(tags):
        out = []
        for tag in tags:
            position, _, pos = tag.partition("-")
            if scheme == "BMES" and position == "I":
                position = "M"
            if scheme != "BMES" and position == "M":
                position = "I"
            out.append(f"{position}-{pos if typed and pos else 'w'}")
        return out

    scores = entity_scores([convert(t) for t in gold], [convert(t) for t in pred], scheme=ner_scheme)
    return {"precision": scores["precision"], "recall": scores["recall"], "f1": scores["f1"],
            "true_words": scores["true_entities"], "pred_words": scores["pred_entities"],
            "correct": scores["correct"]}
