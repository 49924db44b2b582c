"""Diagnostics for the CRF-vs-softmax study (paper B): token accuracy, illegal transitions in raw
predictions, entity F1 without repair, label and transition statistics, the CRF's "illegal mass",
and a Keras callback that logs dev token accuracy, dev loss and these measures every epoch.

Everything here works on tag strings (one list per sentence) except the callback, which needs a
tagger; nothing here changes a model.
"""

from __future__ import annotations

import collections
import logging
import time

import keras
import numpy as np

logger = logging.getLogger("tfner.evaluation")

_BEGIN_ROLES = ("B", "S")


def token_accuracy(y_true, y_pred) -> float:
    """Share of characters whose predicted tag equals the gold tag ("O" included).

    Example:
    >>> token_accuracy([["O", "B-PER"], ["O"]], [["O", "O"], ["O"]])
    0.6666666666666666
    """
    correct = total = 0
    for s, (t_seq, p_seq) in enumerate(zip(y_true, y_pred, strict=True)):
        if len(t_seq) != len(p_seq):
            raise ValueError(f"sentence {s}: {len(t_seq)} gold tags but {len(p_seq)} predicted")
        correct += sum(t == p for t, p in zip(t_seq, p_seq))
        total += len(t_seq)
    return correct / total if total else 0.0


def _labels_of(sequences, scheme):
    from tfner.data.schemes import parse_tag

    types = sorted({parse_tag(t, scheme)[1] for seq in sequences for t in seq if t != "O"})
    from tfner.data import LabelVocabulary

    return LabelVocabulary.from_types(types, scheme).labels


def illegal_transitions(tags, scheme: str = "BIO", labels=None) -> list:
    """Positions ``i`` where ``tags[i]`` may not follow ``tags[i-1]`` (``i == 0``: may not start).

    BIO forbids ``O -> I-X``, ``B-X -> I-Y``, ``I-X -> I-Y`` and a leading ``I-X`` (see
    ``tfner.layers.crf_ops.allowed_transitions``).

    Example:
    >>> illegal_transitions(["O", "I-PER", "B-LOC", "I-ORG"])
    [1, 3]
    """
    from tfner.layers.crf_ops import allowed_transitions

    labels = list(labels) if labels is not None else _labels_of([tags], scheme)
    allowed, allowed_start, _ = allowed_transitions(labels, scheme)
    index = {label: i for i, label in enumerate(labels)}
    bad = []
    for i, tag in enumerate(tags):
        j = index[tag]
        if (i == 0 and not allowed_start[j]) or (i > 0 and not allowed[index[tags[i - 1]], j]):
            bad.append(i)
    return bad


def illegal_sentence_share(sequences, scheme: str = "BIO") -> dict:
    """How many predicted sentences hold at least one illegal transition (before any repair).

    Returns:
        ``{"sentences", "with_illegal", "share", "transitions"}`` (``transitions``: illegal
        positions in all sentences).

    Example:
    >>> illegal_sentence_share([["O", "I-PER"], ["B-PER", "I-PER"]])["share"]
    0.5
    """
    sequences = [list(s) for s in sequences]
    labels = _labels_of(sequences, scheme)
    counts = [len(illegal_transitions(s, scheme, labels)) for s in sequences]
    with_illegal = sum(c > 0 for c in counts)
    return {"sentences": len(sequences), "with_illegal": with_illegal,
            "share": with_illegal / len(sequences) if sequences else 0.0,
            "transitions": int(sum(counts))}


def strict_spans(tags, scheme: str = "BIO") -> list:
    """Entities of the strict reading: only those that open with ``B-``/``S-``.

    An entity opened by an orphan ``I-X`` (after ``O`` or another type) is dropped: this is how raw
    softmax output scores *without* repair (:func:`tfner.evaluation.repair_transitions` turns the
    orphan into ``B-X``, which is what the default lenient reading does).

    Example:
    >>> strict_spans(["O", "I-PER", "I-PER", "B-LOC", "I-LOC"])
    [('LOC', 3, 5)]
    """
    from tfner.data.schemes import parse_tag, spans_from_tags

    return [s for s in spans_from_tags(tags, scheme) if parse_tag(tags[s[1]], scheme)[0] in _BEGIN_ROLES]


def strict_entity_scores(y_true, y_pred, scheme: str = "BIO") -> dict:
    """Micro entity P/R/F1 reading predictions strictly (:func:`strict_spans`); gold is read leniently.

    Example:
    >>> strict_entity_scores([["B-PER", "I-PER"]], [["I-PER", "I-PER"]])["f1"]
    0.0
    """
    from tfner.data.schemes import spans_from_tags

    correct = n_true = n_pred = 0
    for t_seq, p_seq in zip(y_true, y_pred, strict=True):
        gold = set(spans_from_tags(t_seq, scheme))
        pred = set(strict_spans(p_seq, scheme))
        correct += len(gold & pred)
        n_true += len(gold)
        n_pred += len(pred)
    p = correct / n_pred if n_pred else 0.0
    r = correct / n_true if n_true else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f, "true_entities": n_true, "pred_entities": n_pred,
            "correct": correct}


def label_distribution(sentences, scheme: str = "BIO") -> dict:
    """Tag counts and entity counts per type (lenient reading) of tagged sentences.

    Example:
    >>> from tfner.data import TaggedSentence
    >>> d = label_distribution([TaggedSentence(list("王明去"), ["B-PER", "I-PER", "O"])])
    >>> d["tags"], d["entities"]
    ({'B-PER': 1, 'I-PER': 1, 'O': 1}, {'PER': 1})
    """
    from tfner.data.schemes import spans_from_tags

    tags = collections.Counter()
    entities = collections.Counter()
    for s in sentences:
        tags.update(s.tags)
        entities.update(t for t, _, _ in spans_from_tags(s.tags, scheme))
    return {"tags": dict(sorted(tags.items())), "entities": dict(sorted(entities.items()))}


def entity_texts(sentences, scheme: str = "BIO") -> dict:
    """``{type: Counter(entity text -> count)}`` of tagged sentences (for word clouds).

    Example:
    >>> from tfner.data import TaggedSentence
    >>> entity_texts([TaggedSentence(list("王明去北京"), ["B-PER", "I-PER", "O", "B-LOC", "I-LOC"])])
    {'LOC': Counter({'北京': 1}), 'PER': Counter({'王明': 1})}
    """
    from tfner.data.schemes import spans_from_tags

    out = collections.defaultdict(collections.Counter)
    for s in sentences:
        for typ, start, end in spans_from_tags(s.tags, scheme):
            out[typ]["".join(s.chars[start:end])] += 1
    return dict(sorted(out.items()))


def transition_counts(sequences, labels) -> np.ndarray:
    """``[K, K]`` counts of tag bigrams ``(from, to)`` in tag sequences, in ``labels`` order.

    Example:
    >>> transition_counts([["O", "B-PER", "I-PER"]], ["O", "B-PER", "I-PER"]).tolist()
    [[0, 1, 0], [0, 0, 1], [0, 0, 0]]
    """
    index = {label: i for i, label in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for seq in sequences:
        for a, b in zip(seq[:-1], seq[1:]):
            counts[index[a], index[b]] += 1
    return counts


def transition_probabilities(scores) -> np.ndarray:
    """Row-wise softmax of a ``[K, K]`` transition score matrix: ``P(to | from)`` ignoring emissions.

    Example:
    >>> transition_probabilities(np.zeros((2, 2))).tolist()
    [[0.5, 0.5], [0.5, 0.5]]
    """
    scores = np.asarray(scores, dtype=np.float64)
    scores = scores - scores.max(axis=-1, keepdims=True)
    e = np.exp(scores)
    return e / e.sum(axis=-1, keepdims=True)


def illegal_transition_mass(transitions, labels, scheme: str = "BIO", start_transitions=None) -> dict:
    """How much probability a CRF's learned transitions put on transitions the scheme forbids.

    Each row of ``transitions`` (``[from, to]`` scores) is turned into ``P(to | from)`` by a softmax
    (:func:`transition_probabilities`); the mass on forbidden targets is averaged over the rows that
    have a forbidden target (with BIO and two or more types every row forbids some ``I-Y``).
    0 for a sane matrix, ``(#forbidden / K)`` on average for an untrained (all-zero) one.

    Args:
        transitions: ``[K, K]`` scores (e.g. ``crf.transitions``, trained *unconstrained*).
        labels: the ``K`` tags.
        scheme: their tag scheme.
        start_transitions: optional ``[K]`` start scores; adds ``start_mass``.

    Returns:
        ``{"mean_row_mass", "max_row_mass", "per_row": {from_tag: mass}, "start_mass"?}``.

    Example:
    >>> round(illegal_transition_mass(np.zeros((3, 3)), ["O", "B-PER", "I-PER"])["mean_row_mass"], 3)
    0.333
    """
    from tfner.layers.crf_ops import allowed_transitions

    allowed, allowed_start, _ = allowed_transitions(list(labels), scheme)
    probs = transition_probabilities(np.asarray(transitions))
    masses = (probs * ~allowed).sum(axis=-1)
    rows = [i for i in range(len(labels)) if not allowed[i].all()]
    out = {
        "mean_row_mass": float(np.mean(masses[rows])) if rows else 0.0,
        "max_row_mass": float(np.max(masses[rows])) if rows else 0.0,
        "per_row": {labels[i]: float(masses[i]) for i in range(len(labels))},
    }
    if start_transitions is not None:
        start = transition_probabilities(np.asarray(start_transitions)[None, :])[0]
        out["start_mass"] = float((start * ~allowed_start).sum())
    return out


def dev_loss(tagger, sentences, tokenizer=None, *, batch_size=64, max_length=None) -> float:
    """The model's own loss on tagged sentences (CRF: mean negative log-likelihood per sentence;
    softmax: mean token cross-entropy), averaged over batches weighted by their sentences.

    Sentences longer than ``max_length`` (default: the encoder's limit or 510) are split at
    punctuation first, as for training.
    """
    from tfner.preprocessing import split_long_sentences

    tokenizer = tokenizer or tagger.tokenizer()
    if max_length is None:
        max_length = getattr(tagger.representation, "max_length", None) or 510
    pieces, _ = split_long_sentences(list(sentences), max_length)
    index = {label: i for i, label in enumerate(tagger.labels)}
    order = sorted(range(len(pieces)), key=lambda i: len(pieces[i].chars))
    total = weight = 0.0
    for b in range(0, len(order), batch_size):
        batch = [pieces[i] for i in order[b:b + batch_size]]
        width = max(len(s.chars) for s in batch)
        ids = np.full((len(batch), width), tokenizer.pad_id, dtype="int32")
        tags = np.zeros((len(batch), width), dtype="int32")
        mask = np.zeros((len(batch), width), dtype=bool)
        for r, s in enumerate(batch):
            ids[r, :len(s.chars)] = tokenizer.encode(s.chars)
            tags[r, :len(s.chars)] = [index[t] for t in s.tags]
            mask[r, :len(s.chars)] = True
        x = {"token_ids": ids, "padding_mask": mask}
        y_pred = tagger(x, training=False)
        loss = tagger.compute_loss(x, tags, y_pred, training=False)
        total += float(keras.ops.convert_to_numpy(loss)) * len(batch)
        weight += len(batch)
    return total / weight if weight else 0.0


class DevDiagnostics(keras.callbacks.Callback):
    """Adds per-epoch dev measures to the logs (and so to ``fit_tagger``'s history):

    - ``val_token_accuracy``: tag accuracy per character (the report's "accuracy", Fig. 4, 9, 12),
    - ``val_loss``: the model's loss on dev (Fig. 6, 10, 11),
    - ``val_illegal_share``: share of dev sentences whose raw prediction (before repair) holds an
      illegal transition,
    - ``val_entity_f1_strict``: entity F1 of the raw predictions read strictly (no repair).

    Pass it in ``fit_tagger(..., callbacks=[DevDiagnostics(dev, tokenizer)])``.

    Example:
    >>> # result = fit_tagger(tagger, corpus, dev, tokenizer, config, out,
    >>> #                     callbacks=[DevDiagnostics(dev, tokenizer, max_length=128)])
    >>> # [h["val_token_accuracy"] for h in result.history]
    """

    def __init__(self, sentences, tokenizer, *, batch_size=128, max_length=None, prefix="val_"):
        super().__init__()
        self.sentences = list(sentences)
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_length = max_length
        self.prefix = prefix

    def on_epoch_end(self, epoch, logs=None):
        start = time.perf_counter()
        measures = evaluate_raw(self.model, self.sentences, self.tokenizer,
                                batch_size=self.batch_size, max_length=self.max_length)
        measures["loss"] = dev_loss(self.model, self.sentences, self.tokenizer,
                                    batch_size=self.batch_size, max_length=self.max_length)
        if logs is not None:
            for key in ("token_accuracy", "loss", "illegal_share", "entity_f1_strict"):
                logs[self.prefix + key] = measures[key]
            logs[self.prefix + "diagnostics_seconds"] = time.perf_counter() - start
        logger.info("epoch %d: dev token accuracy %.4f, dev loss %.4f, illegal share %.4f",
                    epoch + 1, measures["token_accuracy"], measures["loss"], measures["illegal_share"])


def evaluate_raw(tagger, sentences, tokenizer=None, *, batch_size=128, max_length=None) -> dict:
    """Scores a tagger's predictions before and after repair on tagged sentences.

    Returns:
        ``{"token_accuracy", "illegal_share", "illegal" (see :func:`illegal_sentence_share`),
        "entity_f1" (repaired = lenient reading, seqeval's default), "entity_f1_strict" (raw,
        read strictly), "scores" (:func:`tfner.evaluation.entity_scores` of the repaired tags),
        "raw_tags", "tags"}``.
    """
    from tfner.evaluation.metrics import entity_scores, repair_transitions
    from tfner.models.predict import predict_tags

    raw = predict_tags(tagger, sentences, tokenizer=tokenizer, batch_size=batch_size,
                       max_length=max_length, repair=False)
    gold = [s.tags for s in sentences]
    repaired = [repair_transitions(t, scheme=tagger.scheme) if t else t for t in raw]
    scores = entity_scores(gold, repaired, scheme=tagger.scheme)
    illegal = illegal_sentence_share(raw, tagger.scheme)
    return {
        "token_accuracy": token_accuracy(gold, raw),
        "illegal_share": illegal["share"],
        "illegal": illegal,
        "entity_f1": scores["f1"],
        "entity_f1_strict": strict_entity_scores(gold, raw, tagger.scheme)["f1"],
        "scores": scores,
        "raw_tags": raw,
        "tags": repaired,
    }
