"""Span decoders: start/end pointers (the BERT+Span baseline) and GlobalPointer (Su 2021).

Both read the hidden states of the context layer (or of the representation when there is none)
and score entity *spans* instead of per-character tags:

- `SpanPointerDecoder` ("span"): per position, `types + 1` start logits and `types + 1` end logits
  (class 0 = "no entity starts/ends here"), trained with token cross-entropy, decoded as in the
  CLUENER2020 baselines: every start of type `t` is paired with the nearest end `>= start` of the
  same type. Non-nested by construction (one type per start).
- `GlobalPointerDecoder` ("global_pointer"): every `(start, end)` pair is scored for every type
  (per-type query/key projections, rotary position embedding), trained with the multi-label
  categorical cross-entropy; decoded as all `(type, start, end)` with a score > 0, so nested
  entities (and one span with two types) can be predicted.

Both layers also return flat tags `[B, T]` in the tagger's scheme, derived from their decoded
spans, so every tag-based tool of tfner (entity metrics, `predict_tags`, the export's serving
signature) works unchanged. Flat tags hold no overlapping entities, so where decoded spans
overlap some are left out of the tags (they stay in the decoded span list):

- GlobalPointer (`GlobalPointerDecoder.flat_spans`): the higher score wins. The best scoring span
  is written first, then the best scoring span overlapping none written so far, and so on; on
  equal scores the earlier start wins, then the longer span. A nested span that scores higher than
  the span around it is thus the one in the tags, and so is the later of two crossing spans when
  it scores higher.
- Start/end pointers: a start has one span (its nearest end), and the spans are written by a left
  to right sweep (`spans_to_tags`): a span is written when it starts after the last written span
  has ended, so of two crossing spans the earlier one wins.

No `"emissions"` output: the CRF and softmax taggers output per-character tag scores
`"emissions"` `[B, T, K]`, which their loss, the CRF and the export's entity confidences read.
A span decoder has no per-character tag scores (its tags are written from decoded spans); its
scores are per span, already in the outputs (`"span_scores"`, or `"start_logits"` /
`"end_logits"`), and the consumers that read `"emissions"` for the other taggers read these
instead: the model's loss (`loss` of each layer), the export's confidences
(`tfner.export.span_serving`) and `tfner.models.predict_spans`.

Everything is written with `keras.ops` (TensorFlow and JAX backends). Spans are
`(type, start, end)` with `end` exclusive, as in `tfner.data.spans_from_tags`.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from tfner.data.schemes import ROLE_B, ROLE_E, ROLE_I, ROLE_O, ROLE_S, label_tables

SPAN_DECODERS = ("span", "global_pointer")
MASKED_SCORE = -1e12  # GlobalPointer score of impossible spans (padding, end before start)

# Tag roles, as `tfner.data.schemes.label_tables` codes them: 0 = O, then B, I (or M), E, S.
_O, _B, _I, _E, _S = ROLE_O, ROLE_B, ROLE_I, ROLE_E, ROLE_S


def span_label_tables(labels, scheme="BIO"):
    """The entity types of a label list and the tag tables the span decoders need.

    Built on `tfner.data.schemes.label_tables` (the tables of the export graph), with the roles a
    label list lacks filled in.

    Args:
        labels: tag strings, index = tag id, "O" first.
        scheme: their tag scheme.

    Returns:
        dict: `types` (entity type names in label order, as `LabelVocabulary.types`), `role` [K]
        int32 (0 O, 1 B, 2 I/M, 3 E, 4 S), `type` [K] int32 (index into `types`, -1 for "O"), and
        `tag` [X, 5] int32: the tag id written for a character of each type and role (a scheme
        without S- writes B- for single characters, one without E- writes I-/M- at the end).

    Example:
    >>> t = span_label_tables(["O", "B-PER", "I-PER", "S-PER"], "BIOS")
    >>> t["types"], t["tag"].tolist()
    (['PER'], [[0, 1, 2, 2, 3]])
    """
    tables = label_tables(labels, scheme)
    types, strict = tables["types"], tables["strict"]
    tag = np.zeros((max(len(types), 1), 5), dtype=np.int32)
    for x in range(len(types)):
        ids = {role: int(i) for role, i in enumerate(strict[x]) if i >= 0}
        begin = ids.get(_B, ids.get(_S, ids.get(_I, 0)))
        inside = ids.get(_I, begin)
        tag[x] = [0, begin, inside, ids.get(_E, inside), ids.get(_S, begin)]
    return {"types": types, "role": tables["role"], "type": tables["type"], "tag": tag}


def _bool_mask(mask, like):
    if mask is None:
        return ops.ones(ops.shape(like)[:2], dtype="bool")
    return ops.cast(mask, "bool")


def _masked_cross_entropy(logits, labels, mask):
    mask = ops.cast(mask, "float32")
    per_token = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    return ops.sum(per_token * mask) / ops.maximum(ops.sum(mask), 1.0)


class _SpanDecoderBase(keras.layers.Layer):
    """What both span decoders share: label tables, gold spans from tags, flat tags from spans."""

    def __init__(self, labels, scheme="BIO", **kwargs):
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        if not labels:
            raise ValueError(f"{type(self).__name__} needs `labels` (tag strings, 'O' first)")
        self.labels = list(labels)
        self.scheme = scheme
        tables = span_label_tables(self.labels, scheme)
        if not tables["types"]:
            raise ValueError(f"{type(self).__name__}: the labels hold no entity type")
        self.types = tables["types"]
        self.num_types = len(self.types)
        self._role_table = tables["role"]
        self._type_table = tables["type"]
        self._tag_table = tables["tag"].reshape(-1)
        self.supports_masking = True

    # === Gold spans from tag ids (the lenient conlleval reading of `spans_from_tags`) ===

    def gold_span_flags(self, tags, mask=None):
        """`(starts [B, T] bool, ends [B, T] bool, type [B, T] int32)` of the entities in gold tag ids.

        An entity starts / ends (inclusive) where `tfner.data.spans_from_tags` starts / ends one;
        `type` is the entity type index at every position (-1 outside entities and at padding).
        """
        tags = ops.cast(tags, "int32")
        mask = _bool_mask(mask, tags)
        role = ops.where(mask, ops.take(ops.convert_to_tensor(self._role_table), tags), _O)
        type_ = ops.where(mask, ops.take(ops.convert_to_tensor(self._type_table), tags), -1)
        edge_role = ops.zeros_like(role[:, :1])
        edge_type = edge_role - 1
        prev_role = ops.concatenate([edge_role, role[:, :-1]], axis=1)
        prev_type = ops.concatenate([edge_type, type_[:, :-1]], axis=1)
        next_role = ops.concatenate([role[:, 1:], edge_role], axis=1)
        next_type = ops.concatenate([type_[:, 1:], edge_type], axis=1)
        entity = role != _O
        starts = entity & ((role == _B) | (role == _S) | (prev_role == _E) | (prev_role == _S)
                           | (prev_role == _O) | (prev_type != type_))
        ends = entity & ((role == _E) | (role == _S) | (next_role == _B) | (next_role == _S)
                         | (next_role == _O) | (next_type != type_))
        return starts, ends, type_

    @staticmethod
    def _first_end(ends):
        """`[B, T]` int32: for every position, the first position `>= it` flagged in `ends`."""
        positions = ops.arange(ops.shape(ends)[1], dtype="int32")
        later = ends[:, None, :] & (positions[None, None, :] >= positions[None, :, None])
        return ops.cast(ops.argmax(ops.cast(later, "int32"), axis=-1), "int32")

    # === Flat tags from decoded spans ===

    def spans_to_tags(self, span_type, span_end, mask=None):
        """Flat tag ids `[B, T]` from at most one decoded span per start position.

        Args:
            span_type: `[B, T]` int: the type index of the span starting at each position, -1 none.
            span_end: `[B, T]` int: its last position (inclusive).
            mask: `[B, T]` padding mask.

        A left to right sweep writes a span when it starts after the last written span ended (the
        start/end pointers' rule for overlapping spans; GlobalPointer passes spans that do not
        overlap, see `GlobalPointerDecoder.flat_spans`); 0 ("O") elsewhere.
        """
        span_type = ops.cast(span_type, "int32")
        mask = _bool_mask(mask, span_type)
        span_type = ops.where(mask, span_type, -1)
        span_end = ops.cast(span_end, "int32")
        table = ops.convert_to_tensor(self._tag_table)
        none = ops.zeros_like(span_type[:, 0]) - 1
        positions = ops.arange(ops.shape(span_type)[1], dtype="int32")

        def step(carry, inputs):
            current_type, current_start, current_end = carry
            new_type, new_end, p = inputs[:, 0], inputs[:, 1], inputs[:, 2]
            accept = (new_type >= 0) & (p > current_end)
            carry = (ops.where(accept, new_type, current_type), ops.where(accept, p, current_start),
                     ops.where(accept, new_end, current_end))
            return carry, carry  # (keras.ops.scan on TensorFlow wants outputs shaped like the carry)

        # One scanned [T, B, 3] tensor of known rank: TensorFlow's ops.scan fails on several inputs
        # of dynamic length (see tfner.layers.crf_ops).
        shape = ops.shape(span_type)
        batch, length = shape[0], shape[1]
        packed = ops.stack([span_type, span_end, ops.broadcast_to(positions[None, :], shape)], axis=-1)
        packed = ops.reshape(ops.transpose(packed, (1, 0, 2)), (length, batch, 3))
        _, spans = ops.scan(step, (none, none, none), packed)
        current_type, current_start, current_end = (
            ops.transpose(ops.reshape(x, (length, batch))) for x in spans)  # [B, T]: the span
        p = positions[None, :]  # written over each position, if any
        inside = (p <= current_end) & (current_type >= 0) & mask
        role = ops.where(p == current_start, ops.where(p == current_end, _S, _B),
                         ops.where(p == current_end, _E, _I))
        tags = ops.take(table, ops.maximum(current_type, 0) * 5 + role)
        return ops.where(inside, tags, 0)

    # === Keras plumbing ===

    def build(self, input_shape):
        for layer in self._dense_layers():
            layer.build(input_shape)
        self.built = True

    def _dense_layers(self):
        return []

    def get_config(self):
        config = super().get_config()
        config.update({"labels": self.labels, "scheme": self.scheme})
        return config


@keras.saving.register_keras_serializable(package="tfner")
class SpanPointerDecoder(_SpanDecoderBase):
    """Start/end pointer heads over hidden states (the "BERT+Span" baseline of CLUENER2020).

    `call(hidden [B, T, H], mask [B, T])` returns a dict:

    - `"start_logits"`, `"end_logits"`: float32 `[B, T, types + 1]`, class 0 = no entity starts
      (ends) here, class `t + 1` = an entity of type `t` (index into `types`) starts (ends) here;
    - `"tags"`: int32 `[B, T]` flat tags of the decoded spans (see the module docstring); only
      computed in inference (zeros when called with `training=True`, where nothing reads them).

    Decoding (`decode_starts`): the type at a position is the argmax of its start logits; a start
    of type `t` is paired with the nearest position `>= start` whose end argmax is `t`; a start
    with no such end gives no span. The confidence of a span is `P(start type) * P(end type)`
    (softmax probabilities). Loss (`loss`): the mean over real positions of the start and end
    cross-entropies, averaged; the targets come from gold tag ids. The end head is a plain dense
    layer (the CLUENER PyTorch baseline conditions it on the start label; lonePatient's span model
    and this layer do not).

    Args:
        labels: the tagger's tag strings ("O" first); the entity types are read from them.
        scheme: their tag scheme (the flat tags are written in it).
        **kwargs: base `keras.layers.Layer` arguments.

    Example:
    >>> import numpy as np
    >>> layer = SpanPointerDecoder(["O", "B-PER", "I-PER"], name="span")
    >>> out = layer(np.random.rand(2, 5, 8).astype("float32"), mask=np.array([[1] * 5, [1] * 3 + [0] * 2], bool))
    >>> tuple(out["start_logits"].shape), tuple(out["tags"].shape)
    ((2, 5, 2), (2, 5))
    >>> loss = layer.loss(out, np.array([[1, 2, 0, 0, 0], [0, 1, 0, 0, 0]]), np.ones((2, 5), bool))
    """

    def __init__(self, labels, scheme="BIO", **kwargs):
        super().__init__(labels, scheme, **kwargs)
        self.start_dense = keras.layers.Dense(self.num_types + 1, name="start")
        self.end_dense = keras.layers.Dense(self.num_types + 1, name="end")

    def _dense_layers(self):
        return [self.start_dense, self.end_dense]

    def call(self, inputs, mask=None, training=None):
        start_logits = ops.cast(self.start_dense(inputs), "float32")
        end_logits = ops.cast(self.end_dense(inputs), "float32")
        mask = _bool_mask(mask, start_logits)
        if training:
            tags = ops.zeros(ops.shape(start_logits)[:2], dtype="int32")
        else:
            span_type, span_end, _ = self.decode_starts(start_logits, end_logits, mask)
            tags = self.spans_to_tags(span_type, span_end, mask)
        return {"start_logits": start_logits, "end_logits": end_logits, "tags": tags}

    def decode_starts(self, start_logits, end_logits, mask=None):
        """`(span_type, span_end, confidence)`, each `[B, T]`: the span starting at each position.

        `span_type` is -1 where no span starts; `span_end` is the span's last position (inclusive);
        `confidence` is `P(start type) * P(end type)` (0 where no span starts).
        """
        start_logits = ops.cast(start_logits, "float32")
        end_logits = ops.cast(end_logits, "float32")
        mask = _bool_mask(mask, start_logits)
        start_class = ops.where(mask, ops.cast(ops.argmax(start_logits, axis=-1), "int32"), 0)
        end_class = ops.where(mask, ops.cast(ops.argmax(end_logits, axis=-1), "int32"), 0)
        positions = ops.arange(ops.shape(start_logits)[1], dtype="int32")
        match = ((end_class[:, None, :] == start_class[:, :, None]) & (start_class[:, :, None] > 0)
                 & (positions[None, None, :] >= positions[None, :, None]))
        found = ops.any(match, axis=-1)
        span_end = ops.cast(ops.argmax(ops.cast(match, "int32"), axis=-1), "int32")
        span_type = ops.where(found, start_class - 1, -1)
        p_start = ops.take_along_axis(ops.softmax(start_logits, axis=-1), start_class[..., None],
                                      axis=-1)[..., 0]
        # P(end class = the start's class) at the span's end: one gather in the flattened [T * (C+1)].
        p_end_flat = ops.reshape(ops.softmax(end_logits, axis=-1), (ops.shape(end_logits)[0], -1))
        p_end = ops.take_along_axis(p_end_flat, span_end * (self.num_types + 1) + start_class, axis=1)
        confidence = ops.where(found, p_start * p_end, 0.0)
        return span_type, span_end, confidence

    def targets(self, y, mask=None):
        """`(start_labels, end_labels)` `[B, T]` int32 (0 none, `t + 1` type `t`) from gold tag ids
        (or a dict holding them under `"tags"`)."""
        if isinstance(y, dict):
            y = y["tags"]
        starts, ends, type_ = self.gold_span_flags(y, mask)
        return ops.where(starts, type_ + 1, 0), ops.where(ends, type_ + 1, 0)

    def loss(self, outputs, y, mask=None):
        """Scalar loss: `(start cross-entropy + end cross-entropy) / 2` over real positions."""
        mask = _bool_mask(mask, outputs["start_logits"])
        start_labels, end_labels = self.targets(y, mask)
        return 0.5 * (_masked_cross_entropy(outputs["start_logits"], start_labels, mask)
                      + _masked_cross_entropy(outputs["end_logits"], end_labels, mask))

    def decode(self, outputs, mask=None):
        """Decoded spans per row: lists of `(type, start, end_exclusive, confidence)` (numpy side).

        Example:
        >>> import numpy as np
        >>> layer = SpanPointerDecoder(["O", "B-PER", "I-PER"])
        >>> start = np.array([[[0, 5], [5, 0], [5, 0]]], "float32")   # PER starts at 0
        >>> end = np.array([[[5, 0], [0, 5], [5, 0]]], "float32")     # PER ends at 1
        >>> [(t, s, e) for t, s, e, _ in layer.decode({"start_logits": start, "end_logits": end})[0]]
        [('PER', 0, 2)]
        """
        span_type, span_end, confidence = (
            np.asarray(x) for x in self.decode_starts(outputs["start_logits"], outputs["end_logits"], mask))
        results = []
        for row in range(span_type.shape[0]):
            results.append([(self.types[int(span_type[row, s])], int(s), int(span_end[row, s]) + 1,
                             float(confidence[row, s])) for s in np.flatnonzero(span_type[row] >= 0)])
        return results

    def compute_output_spec(self, inputs, mask=None, training=None):
        batch, length = inputs.shape[0], inputs.shape[1]
        logits = keras.KerasTensor((batch, length, self.num_types + 1), dtype="float32")
        return {"start_logits": logits,
                "end_logits": keras.KerasTensor((batch, length, self.num_types + 1), dtype="float32"),
                "tags": keras.KerasTensor((batch, length), dtype="int32")}


@keras.saving.register_keras_serializable(package="tfner")
class GlobalPointerDecoder(_SpanDecoderBase):
    """GlobalPointer (Su Jianlin, 2021): every `(start, end)` pair scored for every entity type.

    One dense layer gives, per position and type, a query and a key of `head_size` each; with
    `use_rope` both are rotated by the rotary position embedding of their position (RoPE, base
    10000, the two halves of a vector rotated against each other), so the score
    `s_t(i, j) = q_{t,i} . k_{t,j} / sqrt(head_size)` depends on the relative offset `j - i`.
    Pairs with `j < i` and pairs touching padding get `MASKED_SCORE` (-1e12).

    `call(hidden [B, T, H], mask [B, T])` returns a dict:

    - `"span_scores"`: float32 `[B, types, T, T]`, `[b, t, i, j]` the score of type `t` for the
      span from `i` to `j` (inclusive); a span is predicted when its score is > 0, with the
      confidence `sigmoid(score)`;
    - `"tags"`: int32 `[B, T]` flat tags of the decoded spans (one type per span: the best
      scoring; of overlapping spans the best scoring, see `flat_spans`); computed in inference only (zeros when
      called with `training=True`).

    Loss (`loss`): the multi-label categorical cross-entropy of Su (2020) over the `T * T` pairs of
    each sentence and type, `log(1 + sum_neg e^{s}) + log(1 + sum_pos e^{-s})`, averaged over
    sentences and types. Targets: gold tag ids `[B, T]`, or a dict with `"spans"` `[B, S, 3]`
    int32 rows `(type, start, end_exclusive)` padded with -1, which can hold nested entities.

    Args:
        labels: the tagger's tag strings ("O" first); the entity types are read from them.
        scheme: their tag scheme (the flat tags are written in it).
        head_size: size of each query and key (64 in the paper); must be even with RoPE.
        use_rope: rotate queries and keys by position (the paper's default).
        **kwargs: base `keras.layers.Layer` arguments.

    Example:
    >>> import numpy as np
    >>> layer = GlobalPointerDecoder(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"], head_size=8)
    >>> out = layer(np.random.rand(2, 5, 16).astype("float32"), mask=np.ones((2, 5), bool))
    >>> tuple(out["span_scores"].shape), tuple(out["tags"].shape)
    ((2, 2, 5, 5), (2, 5))
    >>> spans = np.array([[[0, 0, 3], [1, 1, 2]], [[1, 2, 4], [-1, -1, -1]]])  # PER 0-3 holds LOC 1-2
    >>> loss = layer.loss(out, {"spans": spans}, np.ones((2, 5), bool))
    """

    def __init__(self, labels, scheme="BIO", head_size=64, use_rope=True, **kwargs):
        super().__init__(labels, scheme, **kwargs)
        self.head_size = int(head_size)
        self.use_rope = bool(use_rope)
        if self.head_size < 1 or (self.use_rope and self.head_size % 2):
            raise ValueError(f"head_size must be a positive even number with RoPE, got {head_size}")
        self.dense = keras.layers.Dense(self.num_types * 2 * self.head_size, name="query_key")

    def _dense_layers(self):
        return [self.dense]

    def _rope(self, x):
        """Rotary position embedding of `x` [B, T, C, D] along T."""
        half = self.head_size // 2
        inverse_frequency = np.power(10000.0, -np.arange(half, dtype=np.float32) * 2.0 / self.head_size)
        positions = ops.cast(ops.arange(ops.shape(x)[1]), "float32")
        angles = positions[:, None] * ops.convert_to_tensor(inverse_frequency)[None, :]  # [T, D/2]
        cos, sin = ops.cos(angles)[:, None, :], ops.sin(angles)[:, None, :]
        first, second = x[..., :half], x[..., half:]
        return ops.concatenate([first * cos - second * sin, first * sin + second * cos], axis=-1)

    def call(self, inputs, mask=None, training=None):
        hidden = ops.cast(self.dense(inputs), "float32")
        shape = ops.shape(hidden)
        hidden = ops.reshape(hidden, (shape[0], shape[1], self.num_types, 2, self.head_size))
        query, key = hidden[:, :, :, 0], hidden[:, :, :, 1]
        if self.use_rope:
            query, key = self._rope(query), self._rope(key)
        scores = ops.einsum("bmcd,bncd->bcmn", query, key) / math.sqrt(self.head_size)
        mask = _bool_mask(mask, hidden)
        positions = ops.arange(shape[1], dtype="int32")
        upper = positions[:, None] <= positions[None, :]
        valid = mask[:, None, :, None] & mask[:, None, None, :] & upper[None, None]
        scores = ops.where(valid, scores, MASKED_SCORE)
        if training:
            tags = ops.zeros((shape[0], shape[1]), dtype="int32")
        else:
            span_type, span_end = self.flat_spans(scores)
            tags = self.spans_to_tags(span_type, span_end, mask)
        return {"span_scores": scores, "tags": tags}

    @staticmethod
    def flat_spans(scores):
        """`(span_type, span_end)` `[B, T]`: the non-overlapping spans written into the flat tags,
        as one span per start position (type -1 where none starts; end inclusive).

        Of the predicted spans (score > 0, each with its best scoring type), the best scoring is
        kept first, then the best scoring one that overlaps no kept span, and so on; on equal
        scores the earlier start wins, then the longer span. (A loop with one step per kept span;
        each step is an argmax over the `[B, T, T]` scores.)
        """
        scores = ops.cast(scores, "float32")
        best = ops.max(scores, axis=1)  # [B, T, T]: the best type's score of each span
        best_type = ops.cast(ops.argmax(scores, axis=1), "int32")
        shape = ops.shape(best)
        batch, length = shape[0], shape[1]
        positions = ops.arange(length, dtype="int32")
        # Tie order of the spans: smaller is preferred (earlier start, then later end).
        order = positions[:, None] * length + (length - 1 - positions[None, :])  # [T, T]
        flat_type = ops.reshape(best_type, (batch, -1))
        none = ops.zeros((batch, length), dtype="int32") - 1

        def pending(candidates, span_type, span_end):
            return ops.any(candidates > 0)

        def keep_best(candidates, span_type, span_end):
            top = ops.max(candidates, axis=(1, 2))  # [B]
            found = top > 0
            is_top = (candidates == top[:, None, None]) & found[:, None, None]
            chosen = ops.min(ops.where(is_top, order[None], length * length), axis=(1, 2))
            start, end = chosen // length, length - 1 - chosen % length
            type_ = ops.take_along_axis(flat_type, ops.minimum(start * length + end, length * length - 1)[:, None],
                                        axis=1)[:, 0]
            here = (positions[None, :] == start[:, None]) & found[:, None]
            span_type = ops.where(here, type_[:, None], span_type)
            span_end = ops.where(here, end[:, None], span_end)
            overlaps = ((positions[None, :, None] <= end[:, None, None])
                        & (positions[None, None, :] >= start[:, None, None]) & found[:, None, None])
            return ops.where(overlaps, MASKED_SCORE, candidates), span_type, span_end

        _, span_type, span_end = ops.while_loop(pending, keep_best, (best, none, none))
        return span_type, ops.maximum(span_end, 0)

    def targets(self, y, mask=None, length=None):
        """Gold span matrix `[B, types, T, T]` float32 (1 at `[b, t, start, end_inclusive]`), from
        gold tag ids `[B, T]`, or a dict with `"spans"` `[B, S, 3]` (`(type, start, end_exclusive)`,
        -1 padded) or else `"tags"`."""
        types = ops.arange(self.num_types, dtype="int32")
        if isinstance(y, dict) and "spans" in y:
            spans = ops.cast(y["spans"], "int32")
            positions = ops.arange(length, dtype="int32")
            type_, start, end = spans[..., 0], spans[..., 1], spans[..., 2] - 1
            valid = (type_ >= 0) & (start >= 0) & (end >= start)
            type_hot = ops.cast((types[None, None, :] == type_[..., None]) & valid[..., None], "float32")
            start_hot = ops.cast(positions[None, None, :] == start[..., None], "float32")
            end_hot = ops.cast(positions[None, None, :] == end[..., None], "float32")
            pairs = type_hot[:, :, :, None] * start_hot[:, :, None, :]  # [B, S, C, T]
            return ops.minimum(ops.einsum("bsct,bse->bcte", pairs, end_hot), 1.0)
        tags = y["tags"] if isinstance(y, dict) else y
        starts, ends, type_ = self.gold_span_flags(tags, mask)
        positions = ops.arange(ops.shape(starts)[1], dtype="int32")
        type_hot = ops.cast((types[None, None, :] == type_[..., None]) & starts[..., None], "float32")
        end_hot = ops.cast(positions[None, None, :] == self._first_end(ends)[..., None], "float32")
        return ops.einsum("bsc,bse->bcse", type_hot, end_hot)

    def loss(self, outputs, y, mask=None):
        """Scalar multi-label categorical cross-entropy (see the class docstring)."""
        scores = ops.cast(outputs["span_scores"], "float32")
        gold = self.targets(y, mask, ops.shape(scores)[2]) > 0.5
        negatives = ops.where(gold, MASKED_SCORE, scores)
        positives = ops.where(gold, -scores, MASKED_SCORE)
        per_type = (ops.softplus(ops.logsumexp(negatives, axis=(2, 3)))
                    + ops.softplus(ops.logsumexp(positives, axis=(2, 3))))
        return ops.mean(per_type)

    def decode(self, outputs, mask=None):
        """Decoded spans per row: lists of `(type, start, end_exclusive, confidence)`, every
        `(type, start, end)` with a score > 0, sorted by start, end, type index (numpy side).

        Example:
        >>> import numpy as np
        >>> layer = GlobalPointerDecoder(["O", "B-PER", "I-PER"], head_size=4)
        >>> scores = np.full((1, 1, 3, 3), -5.0, "float32"); scores[0, 0, 1, 2] = 2.0
        >>> [(t, s, e) for t, s, e, _ in layer.decode({"span_scores": scores})[0]]
        [('PER', 1, 3)]
        """
        scores = np.asarray(outputs["span_scores"], dtype=np.float32)
        if mask is not None:
            mask = np.asarray(mask, bool)
            scores = np.where(mask[:, None, :, None] & mask[:, None, None, :], scores, MASKED_SCORE)
        results = []
        for row in range(scores.shape[0]):
            found = np.argwhere(np.triu(np.ones(scores.shape[2:], bool))[None] & (scores[row] > 0))
            found = sorted(found.tolist(), key=lambda f: (f[1], f[2], f[0]))
            results.append([(self.types[t], s, e + 1, float(1.0 / (1.0 + np.exp(-scores[row, t, s, e]))))
                            for t, s, e in found])
        return results

    def compute_output_spec(self, inputs, mask=None, training=None):
        batch, length = inputs.shape[0], inputs.shape[1]
        return {"span_scores": keras.KerasTensor((batch, self.num_types, length, length), dtype="float32"),
                "tags": keras.KerasTensor((batch, length), dtype="int32")}

    def get_config(self):
        config = super().get_config()
        config.update({"head_size": self.head_size, "use_rope": self.use_rope})
        return config


def build_span_decoder(decoder, labels, scheme="BIO", options=None, name=None):
    """A span decoder by name: `"span"` -> `SpanPointerDecoder`, `"global_pointer"` ->
    `GlobalPointerDecoder`; `options`: further keyword arguments (e.g. `{"head_size": 32}`).

    Example:
    >>> build_span_decoder("global_pointer", ["O", "B-PER", "I-PER"], options={"head_size": 8}).head_size
    8
    """
    if decoder not in SPAN_DECODERS:
        raise ValueError(f"span decoder must be one of {SPAN_DECODERS}, got {decoder!r}")
    cls = SpanPointerDecoder if decoder == "span" else GlobalPointerDecoder
    return cls(labels, scheme=scheme, name=name or decoder, **dict(options or {}))
