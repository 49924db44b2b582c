"""Span-set scores: exact ``(type, start, end)`` matches, for decoders that predict nested entities.

:func:`entity_scores` reads entities from flat tags, which cannot hold an entity nested in another
one. :func:`span_set_scores` compares entity *sets* directly (the gold spans of
``read_cluener(..., nested="keep")``, the decoded spans of ``tfner.models.predict_spans``) and
returns the same dict, so :func:`tfner.evaluation.format_report` prints it. On non-nested data
with spans read from the tags, both give the same numbers.
"""

from __future__ import annotations

import collections

from tfner.evaluation.metrics import entity_set_scores


def gold_spans(sentences, scheme="BIO"):
    """Per sentence, the gold ``(type, start, end_exclusive)`` entities: ``sentence.spans`` when set
    (nested entities included), else the entities of its tags.

    Example:
    >>> from tfner.data import TaggedSentence
    >>> gold_spans([TaggedSentence(list("ab"), ["B-PER", "I-PER"])])
    [[('PER', 0, 2)]]
    """
    from tfner.data.schemes import spans_from_tags

    out = []
    for sentence in sentences:
        spans = getattr(sentence, "spans", None)
        if spans is None:
            spans = spans_from_tags(list(sentence.tags), scheme)
        out.append([tuple(s[:3]) for s in spans])
    return out


def span_set_scores(y_true, y_pred) -> dict:
    """Micro and per-type P/R/F1 of entity sets, exact ``(type, start, end)`` matches.

    Args:
        y_true: per sentence, gold entities ``(type, start, end, ...)`` (extra fields, such as a
            confidence, are ignored; duplicates count once).
        y_pred: per sentence, predicted entities in the same form.

    Returns:
        The dict of :func:`tfner.evaluation.entity_scores` (``precision``, ``recall``, ``f1``,
        ``true_entities``, ``pred_entities``, ``correct``, ``per_type``, ``macro``).

    Example:
    >>> s = span_set_scores([[("PER", 0, 4), ("LOC", 1, 3)]], [[("PER", 0, 4, 0.9), ("LOC", 1, 2, 0.6)]])
    >>> s["precision"], s["recall"], s["per_type"]["LOC"]["f1"]
    (0.5, 0.5, 0.0)
    """
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} sentences but y_pred has {len(y_pred)}")
    true_by_type = collections.defaultdict(set)
    pred_by_type = collections.defaultdict(set)
    for sequences, by_type in ((y_true, true_by_type), (y_pred, pred_by_type)):
        for i, spans in enumerate(sequences):
            for span in spans:
                type_, start, end = span[:3]
                by_type[type_].add((i, int(start), int(end)))
    return entity_set_scores(true_by_type, pred_by_type)
