"""``TaggerServingModule``: raw text in, tags and entities out, as one TensorFlow graph.

The module wraps a trained ``NERTagger`` and its character lookup in a ``tf.Module`` with two
``tf.function`` signatures, ready for ``tf.saved_model.save`` (see
:func:`tfner.export.export_saved_model`):

``serving_default`` (``serve``)
    Input ``text``: ``[batch]`` UTF-8 strings of any length (empty strings allowed). Each text is
    decoded to Unicode characters (invalid bytes become U+FFFD), looked up in the vocabulary, cut
    into windows of at most ``window`` characters (ending after punctuation where possible, with
    ``overlap`` characters of shared context, exactly as ``tfner.preprocessing.window_spans``),
    tagged (``max_batch_windows`` windows per pass), and stitched back
    (``tfner.preprocessing.stitch``), so every text gets one tag per character. Entities are read
    from the stitched tags with the lenient conlleval reading (``tfner.data.spans_from_tags``).
    Outputs, padded per batch:

    - ``tags`` ``[batch, max_chars]`` string: one tag per character, ``""`` past ``length``;
    - ``length`` ``[batch]`` int32: characters per text;
    - ``entity_start`` / ``entity_end`` ``[batch, max_entities]`` int32: character offsets, end
      exclusive (-1 past ``num_entities``);
    - ``entity_type`` / ``entity_text`` ``[batch, max_entities]`` string: the type and the
      surface text (``""`` past ``num_entities``);
    - ``entity_confidence`` ``[batch, max_entities]`` float32 (0 past ``num_entities``);
    - ``num_entities`` ``[batch]`` int32.

``tokens``
    Inputs ``token_ids`` and ``padding_mask``, int32 ``[batch, length]`` (one id per character, as
    ``CharTokenizer.encode`` gives; the mask is 1 on real characters, left-aligned); output
    ``tags`` int32 ``[batch, length]`` (0 at padding). No windowing: a row must fit the model
    (at most 510 characters for BERT encoders). Ids outside ``[0, vocabulary_size)`` and shapes
    that differ are refused with ``InvalidArgumentError`` naming the problem.

Confidence of an entity:

- CRF taggers: the CRF's marginal probability of the span, computed exactly by forward-backward
  in log space: ``P(tags s..e-1 are the decoded B-X I-X ... and tag e does not continue the
  entity | text)``. When a span's characters come from two windows (it crosses a stitch point),
  it is the product of each window's probability of its part.
- Softmax taggers: the product over the span's characters of the softmax probability of the tag
  the model picked for the character (its top probability), i.e. the probability of the span's
  per-character decisions under the model's independence assumption.

For softmax taggers the output tags are rewritten into the strict form of the scheme (an orphan
``I-X`` becomes ``B-X``), exactly as ``tfner.models.predict_tags`` does; entities are unchanged.

XLA (``jit_compile=True``): the tagger part of both signatures (encoder, context layer, decoder,
and the forward-backward of the confidences) is compiled with XLA. XLA compiles once per input shape, so the windows of a pass are padded to
a few fixed shapes first (``compiled_shapes``: lengths 16, 32, 64, ... up to the window; rows
1, 2, 4, ... up to ``max_batch_windows``; padding rows repeat a real row, padding characters are
masked, and both are cut off again), which bounds the compilations of a served model (at most
``len(lengths) * len(rows)``, each paid once, on the first request of that shape). Text
handling, windows and entities stay in plain TensorFlow ops. On two CPU cores this cuts the
latency of one sentence several-fold for a BiLSTM tagger (the recurrent loop and the CRF
recursions run as compiled loops instead of one graph-executor step per time step; see
``BENCHMARKS.md``). TF Serving runs such a model only with ``--xla_cpu_compilation_enabled=true``
(without it the first request fails), which is why it is not the default.
"""

from __future__ import annotations

import logging

import numpy as np
import tensorflow as tf

from tfner.export import graph
from tfner.preprocessing.windows import DEFAULT_PUNCTUATION

logger = logging.getLogger("tfner.export")

DEFAULT_WINDOW = 510
DEFAULT_OVERLAP = 32
DEFAULT_MAX_BATCH_WINDOWS = 64
SMALLEST_COMPILED_LENGTH = 16

CONFIDENCE_METHODS = {
    "crf": "crf-span-marginal",
    "softmax": "softmax-tag-probability-product",
    "span": "span-start-end-probability-product",
    "global_pointer": "global-pointer-sigmoid",
}


def resolve_window(tagger, window=None, overlap=None):
    """``(window, overlap)``: the defaults a tagger is served with, checked.

    ``window`` defaults to the encoder's limit (510 characters for BERT, [CLS]/[SEP] excluded) or
    510 for character models; ``overlap`` to ``min(32, window // 4)``.
    """
    limit = getattr(getattr(tagger, "representation", None), "max_length", None)
    if window is None:
        window = limit or DEFAULT_WINDOW
    window = int(window)
    if limit is not None and window > limit:
        raise ValueError(f"window {window} exceeds the encoder's maximum of {limit} characters")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if overlap is None:
        overlap = min(DEFAULT_OVERLAP, window // 4)
    overlap = int(overlap)
    if overlap < 0 or window - 2 * overlap < 1:
        raise ValueError(f"overlap {overlap} must be >= 0 and leave a core in windows of {window} "
                         f"(window > 2 * overlap)")
    return window, overlap


def compiled_shapes(window, max_batch_windows):
    """The padded ``(lengths, rows)`` an XLA-compiled tagger is called with.

    Powers of two from 16 characters (1 row) up to the window (``max_batch_windows`` rows), the
    limit itself last, so padding at most doubles a pass's work.

    Example:
    >>> compiled_shapes(100, 6)
    ([16, 32, 64, 100], [1, 2, 4, 6])
    """
    def doubling(first, limit):
        values, value = [], first
        while value < limit:
            values.append(value)
            value *= 2
        return values + [limit]

    return doubling(SMALLEST_COMPILED_LENGTH, int(window)), doubling(1, int(max_batch_windows))


def _round_up(value, buckets):
    """The smallest bucket >= value (value itself above the largest bucket)."""
    buckets = tf.constant(buckets, tf.int32)
    index = tf.minimum(tf.searchsorted(buckets, tf.reshape(value, [1]), side="left")[0],
                       tf.size(buckets) - 1)
    return tf.maximum(tf.gather(buckets, index), value)


class TaggerServingModule(tf.Module):
    """A ``tf.Module`` serving an ``NERTagger`` on raw text (see the module docstring).

    Args:
        tagger: a trained ``NERTagger`` (Keras, TensorFlow backend).
        window: window size in characters; default: the encoder's limit or 510.
        overlap: context characters shared by neighbouring windows; default ``min(32, window // 4)``.
        punctuation: characters a window may end after.
        max_batch_windows: windows per pass through the tagger (bounds the memory of a request
            with many long texts; larger requests loop inside the graph).
        jit_compile: compile the tagger with XLA, on padded fixed shapes (see the module
            docstring; TF Serving then needs ``--xla_cpu_compilation_enabled=true``).

    Example:
    >>> # module = TaggerServingModule(tagger)
    >>> # out = module.serve(tf.constant(["王小明在北京工作。"]))
    >>> # out["tags"], out["entity_text"], out["entity_confidence"]
    """

    def __init__(self, tagger, window=None, overlap=None, punctuation=DEFAULT_PUNCTUATION,
                 max_batch_windows=DEFAULT_MAX_BATCH_WINDOWS, jit_compile=False, name=None):
        super().__init__(name=name)
        self.window, self.overlap = resolve_window(tagger, window, overlap)
        if int(max_batch_windows) < 1:
            raise ValueError(f"max_batch_windows must be >= 1, got {max_batch_windows}")
        self.max_batch_windows = int(max_batch_windows)
        self.punctuation = str(punctuation)
        self.jit_compile = bool(jit_compile)
        self.compiled_lengths, self.compiled_rows = compiled_shapes(self.window, self.max_batch_windows)
        self.tagger = tagger
        if self.jit_compile:
            self._compiled_tagger = tf.function(self._tagger_outputs, jit_compile=True)
        self.decoder = tagger.decoder
        self.labels = list(tagger.labels)
        self.scheme = tagger.scheme
        tokenizer = tagger.tokenizer()
        self.pad_id = tokenizer.pad_id
        self.vocabulary_size = len(tokenizer.vocabulary)
        self.char_lookup = tokenizer.tf_lookup()
        tables = graph.label_tables(self.labels, self.scheme)
        self._role = tables["role"]
        self._type = tables["type"]
        self._types = tables["types"] or [""]
        self._strict = tables["strict"]
        self._continues = tables["continues"]
        self._has_end = tables["has_end"]
        self._has_single = tables["has_single"]
        self._punctuation_codepoints = np.asarray(
            sorted({ord(c) for c in self.punctuation}) or [-2], dtype=np.int32)

    # === Description ===

    def export_info(self) -> dict:
        """What a client needs to know about the served model (written to ``assets/``)."""
        return {
            "format": "tfner-saved-model/1",
            "labels": self.labels,
            "scheme": self.scheme,
            "decoder": self.decoder,
            "window": self.window,
            "overlap": self.overlap,
            "punctuation": self.punctuation,
            "max_batch_windows": self.max_batch_windows,
            "vocabulary_size": self.vocabulary_size,
            "jit_compile": self.jit_compile,
            **({"compiled_shapes": {"lengths": self.compiled_lengths, "rows": self.compiled_rows},
                "tf_serving_flags": ["--xla_cpu_compilation_enabled=true"]}
               if self.jit_compile else {}),
            "confidence": CONFIDENCE_METHODS[self.decoder],
            "signatures": {
                "serving_default": {
                    "inputs": {"text": "string [batch]"},
                    "outputs": {
                        "tags": "string [batch, max_chars]", "length": "int32 [batch]",
                        "entity_start": "int32 [batch, max_entities]",
                        "entity_end": "int32 [batch, max_entities] (exclusive)",
                        "entity_type": "string [batch, max_entities]",
                        "entity_text": "string [batch, max_entities]",
                        "entity_confidence": "float32 [batch, max_entities]",
                        "num_entities": "int32 [batch]",
                    },
                },
                "tokens": {
                    "inputs": {"token_ids": "int32 [batch, length]",
                               "padding_mask": "int32 [batch, length]"},
                    "outputs": {"tags": "int32 [batch, length]"},
                },
            },
        }

    # === Pieces ===

    TERMS = ("alpha", "step", "open", "closed")

    def _tagger_outputs(self, token_ids, padding_mask, with_terms):
        """One pass of the Keras tagger: ``[tags int32]``, then (``with_terms``) the four
        ``[rows, length]`` float32 pieces of the entity confidences (:meth:`_position_terms`)."""
        out = self.tagger({"token_ids": token_ids, "padding_mask": padding_mask}, training=False)
        tags = tf.cast(out["tags"], tf.int32)
        if not with_terms:
            return [tags]
        lengths = tf.reduce_sum(tf.cast(padding_mask, tf.int32), axis=1)
        terms = self._position_terms(tf.cast(out["emissions"], tf.float32), tags, lengths)
        return [tags] + [terms[k] for k in self.TERMS]

    def _tag_rows(self, token_ids, padding_mask, with_terms):
        """``_tagger_outputs`` of some rows; with XLA, through the padded fixed shapes."""
        if not self.jit_compile:
            return self._tagger_outputs(token_ids, padding_mask, with_terms)
        rows, length = tf.shape(token_ids)[0], tf.shape(token_ids)[1]
        padded_rows = _round_up(rows, self.compiled_rows)
        padded_length = _round_up(length, self.compiled_lengths)
        repeat = tf.minimum(tf.range(padded_rows), rows - 1)  # padding rows repeat the last row
        columns = [[0, 0], [0, padded_length - length]]
        ids = tf.pad(tf.gather(token_ids, repeat), columns, constant_values=self.pad_id)
        mask = tf.pad(tf.gather(tf.cast(padding_mask, tf.int32), repeat), columns) > 0
        outputs = self._compiled_tagger(ids, mask, with_terms)
        return [x[:rows, :length] for x in outputs]

    def _chunks(self, lengths):
        """``(order, starts, ends)``: the rows sorted by length, ``max_batch_windows`` per pass.

        Sorting groups rows of similar length, so that each pass is cut to a width close to all
        of its rows (a request with many windows pads little). Splitting a pass further by
        compiled length did not pay with XLA (measured: four smaller passes of 32 windows of
        8-99 characters took 59 ms against 52 ms for one pass padded to 128).
        """
        order = tf.argsort(lengths, stable=True)
        starts = tf.range(tf.shape(lengths)[0])[::self.max_batch_windows]
        ends = tf.concat([starts[1:], tf.shape(lengths)], axis=0)
        return order, starts, ends

    def _run_tagger(self, token_ids, padding_mask, with_terms=False):
        """``[tags [W, T] int32]`` (+ with ``with_terms`` the confidence pieces, ``[W, T]`` float32).

        Rows go through the tagger in passes of at most ``max_batch_windows``, sorted by length
        (a loop in the graph, see :meth:`_chunks`), each cut to its longest row, so a request
        with many long texts neither builds one huge batch nor pads short rows to the longest
        one; empty inputs skip the model.
        """
        dtypes = [tf.int32] + [tf.float32] * (len(self.TERMS) if with_terms else 0)
        padding_mask = tf.cast(padding_mask, tf.bool)

        def run():
            lengths = tf.reduce_sum(tf.cast(padding_mask, tf.int32), axis=1)
            width = tf.shape(token_ids)[1]
            order, starts, ends = self._chunks(lengths)

            def body(step, *arrays):
                rows = order[starts[step]:ends[step]]
                chunk_width = tf.maximum(tf.reduce_max(tf.gather(lengths, rows)), 1)
                outputs = self._tag_rows(tf.gather(token_ids, rows)[:, :chunk_width],
                                         tf.gather(padding_mask, rows)[:, :chunk_width], with_terms)
                outputs = [tf.pad(x, [[0, 0], [0, width - chunk_width]]) for x in outputs]
                return (step + 1,) + tuple(a.write(step, x) for a, x in zip(arrays, outputs))

            steps = tf.size(starts)
            arrays = tuple(tf.TensorArray(dtype, size=steps, infer_shape=False,
                                          element_shape=tf.TensorShape([None, None]))
                           for dtype in dtypes)
            results = tf.while_loop(lambda step, *_: step < steps, body, (tf.constant(0),) + arrays)
            restore = tf.argsort(order)  # back from pass order to row order
            return [tf.gather(a.concat(), restore) for a in results[1:]]

        def empty():
            return [tf.zeros([0, tf.shape(token_ids)[1]], dtype) for dtype in dtypes]

        return tf.cond(tf.size(token_ids) > 0, run, empty)

    def _position_terms(self, emissions, tags, lengths):
        """Per-window pieces of the entity confidences (see ``graph.crf_span_terms``)."""
        if self.decoder == "crf":
            crf = self.tagger.decoder_layer
            start, end = crf.effective_boundary_transitions()
            return graph.crf_span_terms(
                emissions, lengths, tags, tf.convert_to_tensor(crf.effective_transitions()),
                None if start is None else tf.convert_to_tensor(start),
                None if end is None else tf.convert_to_tensor(end),
                continues=self._continues)
        log_probs = tf.gather(tf.nn.log_softmax(emissions, axis=-1), tags, batch_dims=2)
        zeros = tf.zeros_like(log_probs)
        return {"alpha": log_probs, "step": log_probs, "open": zeros, "closed": zeros}

    def _repair(self, tags, row_ids):
        """Softmax outputs: strict scheme form (as ``predict_tags``); CRF tags are left as decoded."""
        if self.decoder != "softmax":
            return tags
        starts, ends = graph.entity_flags(tags, row_ids, self._role, self._type)
        return graph.strict_tags(tags, starts, ends, self._type, self._strict,
                                 self._has_end, self._has_single)

    def _text_windows(self, text):
        """The start of ``serve`` that every tagger shares: texts -> characters -> windows.

        Returns a dict: ``codepoints`` (``tf.RaggedTensor`` [batch, (chars)]), ``batch``,
        ``lengths`` [batch] int32, the windows ``row``, ``start``, ``end`` [W] int32
        (:func:`graph.window_bounds`), ``window_ids`` [W, width] int32 (the character ids of each
        window, ``pad_id`` past its end) and ``in_window`` [W, width] bool.
        """
        codepoints = tf.strings.unicode_decode(text, "UTF-8", errors="replace",
                                               replacement_char=0xFFFD)
        lengths = tf.cast(codepoints.row_lengths(), tf.int32)
        ids = tf.ragged.map_flat_values(self.char_lookup.table.lookup, codepoints)
        padded_ids = ids.to_tensor(default_value=self.pad_id)
        is_break = tf.reduce_any(
            tf.equal(codepoints.to_tensor(default_value=-1)[..., None],
                     tf.constant(self._punctuation_codepoints)), axis=-1)
        row, start, end = graph.window_bounds(lengths, is_break, self.window, self.overlap)
        window_lengths = end - start
        width = tf.reduce_max(tf.concat([window_lengths, [0]], axis=0))
        offsets = tf.range(width, dtype=tf.int32)
        in_window = offsets[None, :] < window_lengths[:, None]
        columns = tf.minimum(start[:, None] + offsets[None, :], tf.shape(padded_ids)[1] - 1)
        rows = tf.broadcast_to(row[:, None], tf.shape(columns))
        window_ids = tf.gather_nd(padded_ids, tf.stack([rows, tf.maximum(columns, 0)], axis=-1))
        window_ids = tf.where(in_window, window_ids, self.pad_id)
        return {"codepoints": codepoints, "batch": tf.shape(text)[0], "lengths": lengths, "row": row,
                "start": start, "end": end, "window_ids": window_ids, "in_window": in_window}

    def _serve_outputs(self, windows, tags, entity_row, local_start, local_end, type_names, surface,
                       confidence):
        """The end of ``serve`` that every tagger shares: flat tags and entities -> the padded
        outputs of the signature (see the module docstring)."""
        batch, lengths = windows["batch"], windows["lengths"]

        def per_text(values, default):
            return tf.RaggedTensor.from_value_rowids(
                values, tf.cast(entity_row, tf.int64), nrows=tf.cast(batch, tf.int64)
            ).to_tensor(default_value=default)

        tag_strings = tf.gather(tf.constant(self.labels), tags)
        num_entities = tf.math.bincount(entity_row, minlength=batch, maxlength=batch, dtype=tf.int32)
        return {
            "tags": tf.RaggedTensor.from_row_lengths(tag_strings, lengths).to_tensor(default_value=""),
            "length": lengths,
            "entity_start": per_text(local_start, -1),
            "entity_end": per_text(local_end, -1),
            "entity_type": per_text(type_names, ""),
            "entity_text": per_text(surface, ""),
            "entity_confidence": per_text(confidence, 0.0),
            "num_entities": num_entities,
        }

    # === Signatures ===

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text):
        """Raw UTF-8 texts -> tags, entities and confidences (see the module docstring)."""
        windows = self._text_windows(text)
        codepoints, lengths = windows["codepoints"], windows["lengths"]
        row, start, end = windows["row"], windows["start"], windows["end"]
        window_ids, in_window = windows["window_ids"], windows["in_window"]

        # Windows of every text -> the tagger.
        window_tags, *window_terms = self._run_tagger(window_ids, in_window, with_terms=True)
        terms = dict(zip(self.TERMS, window_terms))

        # Stitch: flat per-character values in text order.
        source = graph.stitch_sources(row, start, end, lengths)
        where = tf.stack([source["window"], source["local"]], axis=1)
        tags = tf.gather_nd(window_tags, where)
        row_ids = tf.cast(tf.RaggedTensor.from_row_lengths(tags, lengths).value_rowids(), tf.int32)
        tags = self._repair(tags, row_ids)

        # Entities.
        starts, ends = graph.entity_flags(tags, row_ids, self._role, self._type)
        span_start = tf.cast(tf.where(starts)[:, 0], tf.int32)
        span_end = tf.cast(tf.where(ends)[:, 0], tf.int32) + 1
        flat_terms = [tf.gather_nd(terms[k], where) for k in self.TERMS]
        log_p = graph.span_log_probabilities(span_start, span_end, *flat_terms,
                                             source["first"], source["last"])
        confidence = tf.minimum(tf.exp(log_p), 1.0)
        entity_row = tf.gather(row_ids, span_start)
        row_offset = tf.cumsum(lengths, exclusive=True)
        local_start = span_start - tf.gather(row_offset, entity_row)
        local_end = span_end - tf.gather(row_offset, entity_row)
        type_names = tf.gather(tf.constant(self._types), tf.maximum(
            tf.gather(tf.constant(self._type), tf.gather(tags, span_start)), 0))
        surface = tf.strings.unicode_encode(
            tf.gather(codepoints.flat_values, tf.ragged.range(span_start, span_end)), "UTF-8")

        return self._serve_outputs(windows, tags, entity_row, local_start, local_end, type_names,
                                   surface, confidence)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="token_ids"),
                                  tf.TensorSpec([None, None], tf.int32, name="padding_mask")])
    def tokens(self, token_ids, padding_mask):
        """Pre-tokenized ids (one per character) -> tag ids ``[batch, length]`` (0 at padding)."""
        checks = [
            tf.debugging.assert_equal(tf.shape(token_ids), tf.shape(padding_mask),
                                      message="token_ids and padding_mask must have the same shape"),
            tf.debugging.assert_non_negative(token_ids, message="token_ids must be >= 0"),
            tf.debugging.assert_less(token_ids, tf.cast(self.vocabulary_size, tf.int32),
                                     message=f"token_ids must be < {self.vocabulary_size} "
                                             f"(the vocabulary size)"),
        ]
        with tf.control_dependencies(checks):
            mask = tf.not_equal(padding_mask, 0)
        (tags,) = self._run_tagger(token_ids, mask)
        tags = tf.where(mask, tags, 0)
        if self.decoder == "softmax":
            where = tf.where(mask)
            flat = self._repair(tf.gather_nd(tags, where), tf.cast(where[:, 0], tf.int32))
            tags = tf.tensor_scatter_nd_update(tags, where, flat)
        return {"tags": tags}


def serving_module(tagger, **kwargs):
    """The serving module of a tagger: :class:`TaggerServingModule`, or for a span decoder
    (``"span"``, ``"global_pointer"``) ``tfner.export.span_serving.SpanServingModule``, whose
    entities are the decoded spans. ``kwargs``: the module's arguments."""
    if getattr(tagger, "decoder", None) in ("span", "global_pointer"):
        from tfner.export.span_serving import SpanServingModule

        return SpanServingModule(tagger, **kwargs)
    return TaggerServingModule(tagger, **kwargs)
