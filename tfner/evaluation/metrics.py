"""Entity-level precision/recall/F1 (equal to seqeval's default mode), tag repair, confusion matrix.

An entity is ``(sentence, type, start, end)`` as read by
:func:`tfner.data.schemes.spans_from_tags` (the conlleval reading that seqeval's default mode uses);
a predicted entity is correct when all four match a true one.
"""

from __future__ import annotations

import collections

import numpy as np

from tfner.data.schemes import normalize_scheme, repair_tags, spans_from_tags, validate_scheme


def _check_pair(y_true, y_pred):
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} sentences but y_pred has {len(y_pred)}")
    for i, (t, p) in enumerate(zip(y_true, y_pred)):
        if len(t) != len(p):
            raise ValueError(f"sentence {i}: {len(t)} true tags but {len(p)} predicted tags")


def _prf(correct, pred, true):
    precision = correct / pred if pred else 0.0
    recall = correct / true if true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def entity_scores(y_true, y_pred, scheme: str = "BIO") -> dict:
    """Micro and per-type entity precision, recall and F1.

    Equal to ``seqeval.metrics`` in its default mode (``precision_score``, ``recall_score``,
    ``f1_score``, ``classification_report``); an undefined ratio (no predicted or no true entity)
    is 0.0, as seqeval reports it.

    Args:
        y_true: gold tag sequences, one list per sentence.
        y_pred: predicted tag sequences, same lengths.
        scheme: tag scheme of both (every tag is checked).

    Returns:
        ``{"precision", "recall", "f1", "true_entities", "pred_entities", "correct",
        "per_type": {type: {"precision", "recall", "f1", "support"}}, "macro": {"precision",
        "recall", "f1"}}`` with ratios in [0, 1]; ``per_type`` holds every type seen in either side,
        sorted.

    Example:
    >>> s = entity_scores([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "I-PER", "O", "O"]])
    >>> round(s["precision"], 3), round(s["recall"], 3), s["per_type"]["LOC"]["support"]
    (1.0, 0.5, 1)
    """
    scheme = normalize_scheme(scheme)
    _check_pair(y_true, y_pred)
    true_by_type = collections.defaultdict(set)
    pred_by_type = collections.defaultdict(set)
    for name, sequences, by_type in (("y_true", y_true, true_by_type), ("y_pred", y_pred, pred_by_type)):
        for i, tags in enumerate(sequences):
            validate_scheme(tags, scheme, f"{name}[{i}]")
            for type_, start, end in spans_from_tags(tags, scheme):
                by_type[type_].add((i, start, end))
    return entity_set_scores(true_by_type, pred_by_type)


def entity_set_scores(true_by_type, pred_by_type) -> dict:
    """Micro, per-type and macro P/R/F1 from entity sets: the counting that :func:`entity_scores`
    and :func:`tfner.evaluation.span_set_scores` share.

    Args:
        true_by_type: ``{type: set of hashable entity keys}`` (e.g. ``(sentence, start, end)``),
            the gold entities of each type.
        pred_by_type: the predicted ones, in the same form; a predicted key is correct when the
            same key is in the gold set of its type.

    Returns:
        The dict of :func:`entity_scores`.

    Example:
    >>> s = entity_set_scores({"PER": {(0, 0, 2)}}, {"PER": {(0, 0, 2), (0, 3, 4)}})
    >>> s["precision"], s["recall"], s["correct"]
    (0.5, 1.0, 1)
    """
    per_type = {}
    correct_total = pred_total = true_total = 0
    for type_ in sorted(set(true_by_type) | set(pred_by_type)):
        true, pred = set(true_by_type.get(type_, ())), set(pred_by_type.get(type_, ()))
        correct = len(true & pred)
        precision, recall, f1 = _prf(correct, len(pred), len(true))
        per_type[type_] = {"precision": precision, "recall": recall, "f1": f1, "support": len(true)}
        correct_total += correct
        pred_total += len(pred)
        true_total += len(true)
    precision, recall, f1 = _prf(correct_total, pred_total, true_total)
    macro = {
        key: (float(np.mean([v[key] for v in per_type.values()])) if per_type else 0.0)
        for key in ("precision", "recall", "f1")
    }
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "true_entities": true_total,
        "pred_entities": pred_total,
        "correct": correct_total,
        "per_type": per_type,
        "macro": macro,
    }


def repair_transitions(tags, scheme: str = "BIO"):
    """Repairs illegal transitions in predicted tags (e.g. softmax outputs) the way they are read.

    An orphan ``I-X`` becomes ``B-X`` (BIO); in the other schemes the tags are rewritten into their
    strict form. Entities, and so :func:`entity_scores`, are unchanged by the repair.

    Args:
        tags: one tag sequence, or a list of tag sequences.
        scheme: tag scheme.

    Returns:
        The repaired sequence(s), same nesting as ``tags``.

    Example:
    >>> repair_transitions(["O", "I-PER", "I-PER", "B-LOC", "I-ORG"])
    ['O', 'B-PER', 'I-PER', 'B-LOC', 'B-ORG']
    """
    if len(tags) and not isinstance(tags[0], str):
        return [repair_tags(list(seq), scheme)[0] for seq in tags]
    return repair_tags(list(tags), scheme)[0]


def confusion_matrix(y_true, y_pred, labels) -> np.ndarray:
    """Tag-level confusion counts: rows are true tags, columns predicted tags, in ``labels`` order.

    Args:
        y_true: gold tag sequences.
        y_pred: predicted tag sequences, same lengths.
        labels: the tags to count (e.g. ``LabelVocabulary.labels``); any other tag raises.

    Returns:
        An ``int64`` array of shape ``(len(labels), len(labels))``.

    Example:
    >>> confusion_matrix([["O", "B-PER"]], [["O", "O"]], ["O", "B-PER"]).tolist()
    [[1, 0], [1, 0]]
    """
    _check_pair(y_true, y_pred)
    index = {label: i for i, label in enumerate(labels)}
    if len(index) != len(labels):
        raise ValueError("labels contain duplicates")
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for s, (t_seq, p_seq) in enumerate(zip(y_true, y_pred)):
        for position, (t, p) in enumerate(zip(t_seq, p_seq)):
            if t not in index or p not in index:
                bad = t if t not in index else p
                raise ValueError(f"sentence {s}, position {position}: tag {bad!r} is not in labels")
            matrix[index[t], index[p]] += 1
    return matrix


def normalize_rows(matrix) -> np.ndarray:
    """Divides each row by its sum (a row of zeros stays zeros); returns ``float64``.

    Example:
    >>> normalize_rows(np.array([[1, 3], [0, 0]])).tolist()
    [[0.25, 0.75], [0.0, 0.0]]
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    sums = matrix.sum(axis=-1, keepdims=True)
    return np.divide(matrix, sums, out=np.zeros_like(matrix), where=sums != 0)


def _paper_row(paper, key):
    if not paper or key not in paper:
        return None
    value = paper[key]
    if isinstance(value, dict):
        return tuple(value.get(k) for k in ("precision", "recall", "f1"))
    value = tuple(value)
    if len(value) != 3:
        raise ValueError(f"paper[{key!r}] must be (P, R, F1) or a dict, got {value!r}")
    return value


def _pct(value):
    return "" if value is None else f"{value:.2f}"


def format_report(scores: dict, paper: dict | None = None, *, overall_name: str = "overall") -> str:
    """A Markdown table: per type P/R/F1 in percent (2 decimals) and support, then the micro row.

    Args:
        scores: the output of :func:`entity_scores`.
        paper: optional published numbers in percent, ``{type or "overall": (P, R, F1)}`` (or dicts
            with ``precision``/``recall``/``f1``), shown in columns beside ours.
        overall_name: label of the micro-average row (and its key in ``paper``).

    Example:
    >>> s = entity_scores([["B-PER", "I-PER"]], [["B-PER", "I-PER"]])
    >>> print(format_report(s, {"PER": (97.87, 96.40, 97.13)}).splitlines()[2])
    | PER | 100.00 | 100.00 | 100.00 | 1 | 97.87 | 96.40 | 97.13 |
    """
    header = ["type", "P", "R", "F1", "support"]
    if paper:
        header += ["paper P", "paper R", "paper F1"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([" --- "] * len(header)) + "|"]
    rows = [(t, v, v["support"]) for t, v in scores["per_type"].items()]
    rows.append((overall_name, scores, scores["true_entities"]))
    for name, values, support in rows:
        cells = [name] + [f"{100 * values[k]:.2f}" for k in ("precision", "recall", "f1")] + [str(support)]
        if paper:
            published = _paper_row(paper, name) or (None, None, None)
            cells += [_pct(v) for v in published]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
