"""``SpanServingModule``: the serving graph of taggers with a span decoder (``span``, ``global_pointer``).

The signatures, inputs and outputs are those of :class:`TaggerServingModule` (raw text in; tags,
entities and confidences out; a ``tokens`` signature for pre-tokenized ids), with two differences:

- entities are the decoder's decoded spans, not the spans read from the tags: for
  ``global_pointer`` every ``(type, start, end)`` with a score > 0, nested entities included (one
  span may then be listed with two types), for ``span`` every start paired with its nearest end
  of the same type. They are listed by start, end and type (label order). The ``tags`` are the
  model's flat tags (derived from the same spans; of overlapping spans GlobalPointer keeps the best
  scoring, see ``tfner.layers.span_decoders``) stitched across windows as for every tagger;
- confidence of an entity: ``sigmoid(score)`` for ``global_pointer``; ``P(start type) *
  P(end type)`` (softmax probabilities) for ``span``.

Long texts are cut into overlapping windows as for every tagger; a span is reported by the window
that owns its first character in the stitching (``tfner.preprocessing.stitch``'s rule), so every
span comes from exactly one window and never twice.

Example:
>>> # module = serving_module(tagger)   # a SpanServingModule for a span-decoder tagger
>>> # module.serve(tf.constant(["王小明在北京大学工作。"]))["entity_text"]
"""

from __future__ import annotations

import tensorflow as tf

from tfner.export import graph
from tfner.export.serving import TaggerServingModule, _round_up


class SpanServingModule(TaggerServingModule):
    """A ``tf.Module`` serving an ``NERTagger`` whose decoder is ``"span"`` or ``"global_pointer"``.

    Arguments as :class:`TaggerServingModule` (see the module docstring for what differs).
    """

    def export_info(self) -> dict:
        info = super().export_info()
        info["entities"] = ("decoded spans, nested ones included" if self.decoder == "global_pointer"
                            else "decoded spans (start/end pointers)")
        return info

    # === The tagger ===

    def _tagger_outputs(self, token_ids, padding_mask, with_terms):
        """``[tags]``, then (``with_terms``) the decoder's scores: ``span_scores`` [rows, C, T, T], or
        ``start_logits`` and ``end_logits`` [rows, T, C + 1]."""
        out = self.tagger({"token_ids": token_ids, "padding_mask": padding_mask}, training=False)
        tags = tf.cast(out["tags"], tf.int32)
        if not with_terms:
            return [tags]
        if self.decoder == "global_pointer":
            return [tags, tf.cast(out["span_scores"], tf.float32)]
        return [tags, tf.cast(out["start_logits"], tf.float32), tf.cast(out["end_logits"], tf.float32)]

    def _tag_rows(self, token_ids, padding_mask, with_terms):
        if not self.jit_compile:
            return self._tagger_outputs(token_ids, padding_mask, with_terms)
        rows, length = tf.shape(token_ids)[0], tf.shape(token_ids)[1]
        padded_rows = _round_up(rows, self.compiled_rows)
        padded_length = _round_up(length, self.compiled_lengths)
        repeat = tf.minimum(tf.range(padded_rows), rows - 1)
        columns = [[0, 0], [0, padded_length - length]]
        ids = tf.pad(tf.gather(token_ids, repeat), columns, constant_values=self.pad_id)
        mask = tf.pad(tf.gather(tf.cast(padding_mask, tf.int32), repeat), columns) > 0
        outputs = self._compiled_tagger(ids, mask, with_terms)
        cut = [outputs[0][:rows, :length]]
        if self.decoder == "global_pointer" and with_terms:
            return cut + [outputs[1][:rows, :, :length, :length]]
        return cut + [x[:rows, :length] for x in outputs[1:]]

    def _decode_rows(self, scores, padding_mask):
        """``(spans [n, 4] int32 (row, type, start, end inclusive), confidence [n] float32)``."""
        if self.decoder == "global_pointer":
            (span_scores,) = scores
            found = tf.where(span_scores > 0)  # [n, 4]: row, type, start, end
            confidence = tf.sigmoid(tf.gather_nd(span_scores, found))
            return tf.cast(found, tf.int32), confidence
        span_type, span_end, confidence = self.tagger.decoder_layer.decode_starts(*scores, padding_mask)
        found = tf.where(span_type >= 0)  # [n, 2]: row, start
        spans = tf.stack([tf.cast(found[:, 0], tf.int32), tf.gather_nd(span_type, found),
                          tf.cast(found[:, 1], tf.int32), tf.gather_nd(span_end, found)], axis=1)
        return spans, tf.gather_nd(confidence, found)

    def _run_span_tagger(self, token_ids, padding_mask):
        """``(tags [W, T] int32, spans [n, 4] int32 (window, type, start, end inclusive),
        confidence [n] float32)``, in passes of at most ``max_batch_windows`` rows as
        :meth:`_run_tagger`."""
        padding_mask = tf.cast(padding_mask, tf.bool)

        def run():
            lengths = tf.reduce_sum(tf.cast(padding_mask, tf.int32), axis=1)
            width = tf.shape(token_ids)[1]
            order, starts, ends = self._chunks(lengths)

            def body(step, tags_array, spans_array, confidence_array):
                rows = order[starts[step]:ends[step]]
                chunk_width = tf.maximum(tf.reduce_max(tf.gather(lengths, rows)), 1)
                mask = tf.gather(padding_mask, rows)[:, :chunk_width]
                tags, *scores = self._tag_rows(tf.gather(token_ids, rows)[:, :chunk_width], mask, True)
                spans, confidence = self._decode_rows(scores, mask)
                spans = tf.concat([tf.gather(rows, spans[:, :1]), spans[:, 1:]], axis=1)
                tags = tf.pad(tags, [[0, 0], [0, width - chunk_width]])
                return (step + 1, tags_array.write(step, tags), spans_array.write(step, spans),
                        confidence_array.write(step, confidence))

            steps = tf.size(starts)
            arrays = (tf.TensorArray(tf.int32, size=steps, infer_shape=False,
                                     element_shape=tf.TensorShape([None, None])),
                      tf.TensorArray(tf.int32, size=steps, infer_shape=False,
                                     element_shape=tf.TensorShape([None, 4])),
                      tf.TensorArray(tf.float32, size=steps, infer_shape=False,
                                     element_shape=tf.TensorShape([None])))
            _, tags, spans, confidence = tf.while_loop(lambda step, *_: step < steps, body,
                                                       (tf.constant(0),) + arrays)
            return tf.gather(tags.concat(), tf.argsort(order)), spans.concat(), confidence.concat()

        def empty():
            return (tf.zeros([0, tf.shape(token_ids)[1]], tf.int32), tf.zeros([0, 4], tf.int32),
                    tf.zeros([0], tf.float32))

        return tf.cond(tf.size(token_ids) > 0, run, empty)

    # === Signatures ===

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text):
        """Raw UTF-8 texts -> tags, decoded entities and confidences (see the module docstring)."""
        windows = self._text_windows(text)
        codepoints, lengths = windows["codepoints"], windows["lengths"]
        row, start, end = windows["row"], windows["start"], windows["end"]
        window_ids, in_window = windows["window_ids"], windows["in_window"]

        # Windows of every text -> the tagger.
        window_tags, spans, confidence = self._run_span_tagger(window_ids, in_window)

        # Stitch the tags: flat per-character values in text order.
        source = graph.stitch_sources(row, start, end, lengths)
        tags = tf.gather_nd(window_tags, tf.stack([source["window"], source["local"]], axis=1))

        # Entities: each span from the window owning its first character, sorted.
        window = spans[:, 0]
        entity_row = tf.gather(row, window)
        local_start = tf.gather(start, window) + spans[:, 2]
        local_end = tf.gather(start, window) + spans[:, 3] + 1
        row_offset = tf.cumsum(lengths, exclusive=True)
        span_start = tf.gather(row_offset, entity_row) + local_start
        keep = tf.equal(tf.gather(source["window"], span_start), window)
        num_types = len(self.tagger.decoder_layer.types)
        key = ((tf.cast(span_start, tf.int64) * tf.cast(tf.reduce_max(tf.concat([lengths, [0]], 0)) + 1, tf.int64)
                + tf.cast(local_end, tf.int64)) * num_types + tf.cast(spans[:, 1], tf.int64))
        order = tf.argsort(tf.boolean_mask(key, keep), stable=True)

        def kept(values):
            return tf.gather(tf.boolean_mask(values, keep), order)

        entity_row, local_start, local_end = kept(entity_row), kept(local_start), kept(local_end)
        span_start, type_ids, confidence = kept(span_start), kept(spans[:, 1]), kept(confidence)
        span_end = span_start + local_end - local_start
        type_names = tf.gather(tf.constant(self.tagger.decoder_layer.types), type_ids)
        surface = tf.strings.unicode_encode(
            tf.gather(codepoints.flat_values, tf.ragged.range(span_start, span_end)), "UTF-8")

        return self._serve_outputs(windows, tags, entity_row, local_start, local_end, type_names,
                                   surface, confidence)
