"""Encoded corpora and a deterministic, resumable, length-bucketed ``tf.data`` pipeline.

Batch plan ("pool sort", :func:`plan_batches`): the example indices are shuffled with a generator
seeded by ``(seed, epoch)``, cut into pools of ``pool_batches * batch_size``, each pool is sorted by
length and cut into batches, and the batch order is shuffled. Similar lengths share a batch (little
padding) while batches stay random. Every example appears exactly once per epoch, there are always
``ceil(N / batch_size)`` batches (only the last pool can leave one short batch), and the same
``(seed, epoch)`` always gives the same plan, so a run killed and resumed at epoch ``k`` sees exactly
the data order of an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
import tensorflow as tf

logger = logging.getLogger("tfner.preprocessing")


@dataclasses.dataclass
class EncodedCorpus:
    """Sentences as id arrays, ready for :func:`make_dataset`.

    Args:
        token_ids: one int32 array of token ids per sentence.
        tag_ids: one int32 array of tag ids per sentence (same lengths), or ``None`` (no labels).
        lengths: int array, the length of each sentence.
        pad_id: token id used for padding (the tokenizer's ``[PAD]``).
        tag_pad_id: tag id used for padding (masked out by ``padding_mask`` anyway).
        spans: optional gold entities per sentence, each an int32 array ``[n, 3]`` of ``(type index,
            start, end_exclusive)`` (nested ones included): :func:`make_dataset` then yields
            ``y = {"tags", "spans"}`` for the span decoders (see ``encode_corpus(spans=True)``).

    Example:
    >>> import numpy as np
    >>> corpus = EncodedCorpus([np.array([5, 6], np.int32)], None, np.array([2]))
    >>> len(corpus)
    1
    """

    token_ids: list
    tag_ids: list | None
    lengths: np.ndarray
    pad_id: int = 0
    tag_pad_id: int = 0
    spans: list | None = None

    def __post_init__(self):
        self.lengths = np.asarray(self.lengths, dtype=np.int64).reshape(-1)
        if len(self.token_ids) != self.lengths.size:
            raise ValueError(f"{len(self.token_ids)} token arrays but {self.lengths.size} lengths")
        if self.tag_ids is not None and len(self.tag_ids) != len(self.token_ids):
            raise ValueError(f"{len(self.token_ids)} token arrays but {len(self.tag_ids)} tag arrays")

    def __len__(self) -> int:
        return len(self.token_ids)


def encode_corpus(sentences, tokenizer, labels=None, *, spans=False) -> EncodedCorpus:
    """Encodes sentences with a character tokenizer and, optionally, a label vocabulary.

    Args:
        sentences: ``TaggedSentence`` objects (or strings / character lists for unlabelled text).
        tokenizer: a :class:`CharTokenizer` (anything with ``encode`` and ``pad_id``).
        labels: optional object with ``encode(tags) -> np.ndarray`` of int32 (e.g.
            ``tfner.data.schemes.LabelVocabulary``); its ``pad_id`` attribute, if any, pads tags
            (else 0).
        spans: also encode each sentence's gold entities (``TaggedSentence.spans`` when set, which
            may hold nested entities, else the entities of its tags) as ``(type index, start,
            end_exclusive)`` rows, type index into ``labels.types`` (needs ``labels``).

    Returns:
        An :class:`EncodedCorpus`.

    Example:
    >>> from tfner.preprocessing.tokenizer import CharTokenizer
    >>> tokenizer = CharTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "北", "京"])
    >>> encode_corpus(["北京", "京"], tokenizer).lengths.tolist()
    [2, 1]
    """
    if spans and labels is None:
        raise ValueError("encode_corpus(spans=True) needs `labels` (their types index the spans)")
    token_ids, tag_ids, lengths = [], [] if labels is not None else None, []
    span_arrays = [] if spans else None
    for index, sentence in enumerate(sentences):
        chars = sentence.chars if hasattr(sentence, "chars") else sentence
        where = getattr(sentence, "source", None) or f"sentence {index}"
        ids = np.asarray(tokenizer.encode(chars), dtype=np.int32)
        if ids.shape != (len(chars),):
            raise ValueError(f"{where}: {len(chars)} characters but {ids.shape} token ids")
        token_ids.append(ids)
        lengths.append(len(chars))
        if labels is not None:
            tags = getattr(sentence, "tags", None)
            if not tags and len(chars):
                raise ValueError(f"{where}: labels were given but the sentence has no tags")
            tag_array = np.asarray(labels.encode(tags or []), dtype=np.int32)
            if tag_array.shape != ids.shape:
                raise ValueError(f"{where}: {len(chars)} characters but {tag_array.shape} tag ids")
            tag_ids.append(tag_array)
        if spans:
            span_arrays.append(_span_array(sentence, labels, where))
    tag_pad_id = getattr(labels, "pad_id", 0) if labels is not None else 0
    if not isinstance(tag_pad_id, (int, np.integer)):
        tag_pad_id = 0
    return EncodedCorpus(
        token_ids=token_ids,
        tag_ids=tag_ids,
        lengths=np.asarray(lengths, dtype=np.int64),
        pad_id=int(tokenizer.pad_id),
        tag_pad_id=int(tag_pad_id),
        spans=span_arrays,
    )


def _span_array(sentence, labels, where):
    """``[n, 3]`` int32 ``(type index, start, end_exclusive)`` of a sentence's gold entities."""
    from tfner.data.schemes import spans_from_tags

    types = {t: i for i, t in enumerate(labels.types)}
    entities = getattr(sentence, "spans", None)
    if entities is None:
        entities = spans_from_tags(list(getattr(sentence, "tags", None) or []), labels.scheme)
    rows = []
    for type_, start, end in entities:
        if type_ not in types:
            raise ValueError(f"{where}: entity type {type_!r} is not in the labels")
        rows.append((types[type_], start, end))
    return np.asarray(rows, dtype=np.int32).reshape(-1, 3)


def steps_per_epoch(n, batch_size) -> int:
    """Batches per epoch: ``ceil(n / batch_size)`` (the last batch may be short).

    Example:
    >>> steps_per_epoch(10, 4)
    3
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return int(math.ceil(int(n) / batch_size))


def plan_batches(
    lengths,
    batch_size,
    *,
    shuffle=True,
    seed=0,
    epoch=0,
    bucket=True,
    pool_batches=50,
) -> list:
    """The batches of one epoch as arrays of example indices (see the module docstring).

    Args:
        lengths: length of each example.
        batch_size: examples per batch.
        shuffle: shuffle examples and batch order (with a generator seeded by ``(seed, epoch)``);
            ``False`` keeps the corpus order (sorted by length inside each pool when bucketing).
        seed: base seed.
        epoch: epoch number; each epoch has its own, reproducible, order.
        bucket: sort by length inside pools; ``False`` cuts the (shuffled) order as it is.
        pool_batches: pool size in batches (larger: less padding, less randomness).

    Returns:
        ``ceil(N / batch_size)`` int64 arrays; together they hold every index exactly once.

    Example:
    >>> plan = plan_batches([3, 1, 2, 5, 4], 2, seed=1)
    >>> len(plan), sorted(int(i) for batch in plan for i in batch)
    (3, [0, 1, 2, 3, 4])
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if pool_batches < 1:
        raise ValueError(f"pool_batches must be >= 1, got {pool_batches}")
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    n = lengths.size
    if n == 0:
        return []
    rng = np.random.default_rng([int(seed), int(epoch)])
    order = rng.permutation(n) if shuffle else np.arange(n)
    batches = []
    pool_size = pool_batches * batch_size if bucket else n
    for pool_start in range(0, n, pool_size):
        pool = order[pool_start : pool_start + pool_size]
        if bucket:
            pool = pool[np.argsort(lengths[pool], kind="stable")]
        batches.extend(pool[i : i + batch_size] for i in range(0, pool.size, batch_size))
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return [np.asarray(batch, dtype=np.int64) for batch in batches]


def padding_fraction(lengths, plan, pad_to=None) -> float:
    """Share of padded positions when each batch is padded to its longest example (or ``pad_to``).

    Example:
    >>> round(padding_fraction([1, 3, 2, 2], [[0, 1], [2, 3]]), 3)
    0.2
    """
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    real = padded = 0
    for batch in plan:
        batch_lengths = lengths[np.asarray(batch, dtype=np.int64)]
        if batch_lengths.size == 0:
            continue
        width = int(pad_to) if pad_to is not None else int(batch_lengths.max())
        real += int(batch_lengths.sum())
        padded += width * batch_lengths.size
    return 0.0 if padded == 0 else 1.0 - real / padded


def _pad_batch(arrays, width, pad_value):
    out = np.full((len(arrays), width), pad_value, dtype=np.int32)
    for row, array in enumerate(arrays):
        out[row, : array.size] = array
    return out


def _pad_spans(arrays):
    """``[B, S, 3]`` int32, rows padded with -1 (``S`` >= 1)."""
    out = np.full((len(arrays), max([1] + [len(a) for a in arrays]), 3), -1, dtype=np.int32)
    for row, array in enumerate(arrays):
        out[row, : len(array)] = array
    return out


def make_dataset(
    corpus: EncodedCorpus,
    batch_size,
    *,
    shuffle=True,
    seed=0,
    bucket=True,
    start_epoch=0,
    repeat=False,
    pad_to=None,
    prefetch=True,
    pool_batches=50,
) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of padded batches following :func:`plan_batches`.

    Elements are ``({"token_ids": int32 [B, T], "padding_mask": bool [B, T]}, tag_ids int32 [B, T])``,
    or just the dict when the corpus has no tags; with ``corpus.spans`` the labels are
    ``{"tags": int32 [B, T], "spans": int32 [B, S, 3]}`` (``S``: the batch's most entities, at least
    1; rows padded with -1); ``T`` is the batch's longest example (or
    ``pad_to``). Without ``repeat`` the dataset is the single epoch ``start_epoch`` (iterating it
    again replays that epoch); with ``repeat=True`` it yields epochs ``start_epoch``,
    ``start_epoch + 1``, ... forever, each from ``plan_batches(..., epoch=e)``: use it with
    ``model.fit(steps_per_epoch=steps_per_epoch(len(corpus), batch_size), initial_epoch=...)``.

    Args:
        corpus: an :class:`EncodedCorpus`.
        batch_size: examples per batch.
        shuffle, seed, bucket, pool_batches: see :func:`plan_batches`.
        start_epoch: the first epoch to yield (to resume a run).
        repeat: loop over epochs forever.
        pad_to: pad every batch to this length (``ValueError`` when an example is longer: split
            long sentences first, see ``split_long_sentences``).
        prefetch: add ``prefetch(tf.data.AUTOTUNE)``.

    Example:
    >>> import numpy as np
    >>> corpus = EncodedCorpus([np.array([5, 6], np.int32), np.array([7], np.int32)], None, [2, 1])
    >>> batch = next(iter(make_dataset(corpus, 2, shuffle=False)))
    >>> batch["token_ids"].numpy().tolist(), batch["padding_mask"].numpy().tolist()
    ([[7, 0], [5, 6]], [[True, False], [True, True]])
    """
    if len(corpus) == 0:
        raise ValueError("the corpus is empty: no batches to make")
    if pad_to is not None:
        too_long = np.flatnonzero(corpus.lengths > pad_to)
        if too_long.size:
            raise ValueError(
                f"{too_long.size} examples are longer than pad_to={pad_to} (first: example "
                f"{too_long[0]}, length {corpus.lengths[too_long[0]]}); split them first"
            )
    labelled = corpus.tag_ids is not None
    with_spans = labelled and corpus.spans is not None
    lengths = corpus.lengths

    def generate():
        epoch = int(start_epoch)
        while True:
            plan = plan_batches(
                lengths,
                batch_size,
                shuffle=shuffle,
                seed=seed,
                epoch=epoch,
                bucket=bucket,
                pool_batches=pool_batches,
            )
            for batch in plan:
                batch_lengths = lengths[batch]
                width = int(pad_to) if pad_to is not None else int(batch_lengths.max())
                token_ids = _pad_batch([corpus.token_ids[i] for i in batch], width, corpus.pad_id)
                mask = np.arange(width)[None, :] < batch_lengths[:, None]
                features = {"token_ids": token_ids, "padding_mask": mask}
                if labelled:
                    tags = _pad_batch([corpus.tag_ids[i] for i in batch], width, corpus.tag_pad_id)
                    if with_spans:
                        yield features, {"tags": tags, "spans": _pad_spans([corpus.spans[i] for i in batch])}
                        continue
                    yield features, tags
                else:
                    yield features
            if not repeat:
                return
            epoch += 1

    width = None if pad_to is None else int(pad_to)
    feature_spec = {
        "token_ids": tf.TensorSpec(shape=(None, width), dtype=tf.int32),
        "padding_mask": tf.TensorSpec(shape=(None, width), dtype=tf.bool),
    }
    label_spec = tf.TensorSpec(shape=(None, width), dtype=tf.int32)
    if with_spans:
        label_spec = {"tags": label_spec, "spans": tf.TensorSpec(shape=(None, None, 3), dtype=tf.int32)}
    signature = (feature_spec, label_spec) if labelled else feature_spec
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    # Known length for Keras progress bars; infinite when repeating.
    cardinality = tf.data.INFINITE_CARDINALITY if repeat else steps_per_epoch(len(corpus), batch_size)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(cardinality))
    if prefetch:
        dataset = dataset.prefetch(tf.data.AUTOTUNE)
    return dataset
