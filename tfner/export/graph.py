"""In-graph serving pieces, in core TensorFlow ops only: windows, stitching, entities, confidences.

Everything here runs inside the exported SavedModel, so it uses only ops that the stock TF
Serving binary registers (no tensorflow-text, no py_function). Each function mirrors a Python
reference of the library and is tested against it:

- :func:`window_bounds` is :func:`tfner.preprocessing.window_spans` (punctuation-aware greedy cut,
  optional overlap margins) for a batch of texts at once;
- :func:`stitch_sources` is :func:`tfner.preprocessing.stitch` (each character comes from the
  window in which it is most central);
- :func:`entity_flags` is :func:`tfner.data.spans_from_tags` (the lenient conlleval reading);
- :func:`strict_tags` is :func:`tfner.data.repair_tags` (rewrite into the strict scheme form,
  entities unchanged);
- :func:`crf_span_terms` gives the pieces of the exact CRF probability of an entity span,
  computed by forward-backward in log space (see :func:`span_log_probabilities`).

Tensors are "flat": the characters of all texts of a batch concatenated in order, as in the
``flat_values`` of a ``tf.RaggedTensor`` ``[batch, (chars)]``.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

# Role codes and label tables live in `tfner.data.schemes` (numpy only, shared with the span
# decoders of `tfner.layers.span_decoders`); `graph.label_tables` stays importable from here.
from tfner.data.schemes import ROLE_B, ROLE_E, ROLE_I, ROLE_O, ROLE_S, label_tables  # noqa: F401


# ------------------------------------------------------------------------------------------
# Windows
# ------------------------------------------------------------------------------------------


def window_bounds(lengths, is_break, max_length, overlap=0):
    """Windows of every text of a batch, exactly as :func:`tfner.preprocessing.window_spans`.

    Args:
        lengths: ``[B]`` int32 text lengths (characters).
        is_break: ``[B, N]`` bool, true at punctuation a window may end after (``N >= max(lengths)``).
        max_length: the longest window (Python int).
        overlap: context characters added on each side of a window's core (Python int).

    Returns:
        ``(row [W], start [W], end [W])`` int32, ordered by text then position; texts of length 0
        have no window.
    """
    core = int(max_length) - 2 * int(overlap)
    if core < 1:
        raise ValueError(f"overlap {overlap} leaves no core in windows of {max_length}")
    lengths = tf.cast(lengths, tf.int32)
    batch = tf.shape(lengths)[0]
    width = tf.shape(is_break)[1]
    positions = tf.range(width, dtype=tf.int32)
    # last_break[b, p]: the last punctuation position <= p, or -1.
    breaks = tf.cast(is_break, tf.int32)
    count = tf.cumsum(breaks, axis=1)  # breaks at or before p
    break_positions = tf.RaggedTensor.from_row_lengths(
        tf.boolean_mask(tf.broadcast_to(positions, tf.shape(is_break)), is_break),
        tf.reduce_sum(breaks, axis=1),
    ).to_tensor(default_value=-1)
    break_positions = tf.concat([break_positions, -tf.ones([batch, 1], tf.int32)], axis=1)
    last_break = tf.gather(break_positions, tf.maximum(count - 1, 0), batch_dims=1)
    last_break = tf.where(count > 0, last_break, -1)
    last_break = tf.concat([last_break, -tf.ones([batch, 1], tf.int32)], axis=1)  # width >= 1

    single = lengths <= max_length

    def body(step, start, active, starts, ends, actives):
        limit = start + core
        final = tf.logical_or(limit >= lengths, single)
        lookup = tf.clip_by_value(limit - 1, 0, width)
        previous_break = tf.gather(last_break, lookup, batch_dims=1)
        cut = tf.where(previous_break >= start, previous_break + 1, limit)
        end = tf.where(final, lengths, cut)
        starts = starts.write(step, start)
        ends = ends.write(step, end)
        actives = actives.write(step, active)
        return step + 1, end, tf.logical_and(active, tf.logical_not(final)), starts, ends, actives

    def cond(step, start, active, *_):
        # At least one step, so the arrays below are never empty (an all-empty batch).
        return tf.logical_or(tf.equal(step, 0), tf.reduce_any(active))

    arrays = [tf.TensorArray(dtype, size=0, dynamic_size=True, element_shape=[None])
              for dtype in (tf.int32, tf.int32, tf.bool)]
    _, _, _, starts, ends, actives = tf.while_loop(
        cond, body, [tf.constant(0), tf.zeros([batch], tf.int32), lengths > 0] + arrays)
    # [steps, B] -> [B, steps] so boolean_mask lists windows by text, then position.
    starts = tf.transpose(tf.reshape(starts.stack(), [-1, batch]))
    ends = tf.transpose(tf.reshape(ends.stack(), [-1, batch]))
    actives = tf.transpose(tf.reshape(actives.stack(), [-1, batch]))
    row = tf.cast(tf.where(actives)[:, 0], tf.int32)
    start = tf.boolean_mask(starts, actives)
    end = tf.boolean_mask(ends, actives)
    if overlap:
        text_length = tf.gather(lengths, row)

        def margin(cut):
            return tf.minimum(tf.minimum(overlap, cut), text_length - cut)

        start, end = start - margin(start), end + margin(end)
    return row, start, end


def stitch_sources(row, start, end, lengths):
    """Which window and which position in it each character is taken from (:func:`stitch`'s rule).

    Args:
        row, start, end: ``[W]`` windows from :func:`window_bounds`.
        lengths: ``[B]`` int32 text lengths.

    Returns:
        dict of flat ``[sum(lengths)]`` int32 tensors (characters in text order): ``window``,
        ``local`` (position inside the window), ``first`` / ``last`` (bool: first / last
        character its window contributes).
    """
    lengths = tf.cast(lengths, tf.int32)
    same_as_previous = tf.concat([[False], tf.equal(row[1:], row[:-1])], axis=0)
    previous_end = tf.concat([[0], end[:-1]], axis=0)
    kept_start = tf.where(same_as_previous, (start + previous_end) // 2, start)
    same_as_next = tf.concat([tf.equal(row[1:], row[:-1]), [False]], axis=0)
    next_kept_start = tf.concat([kept_start[1:], [0]], axis=0)
    kept_end = tf.where(same_as_next, next_kept_start, tf.gather(lengths, row))
    positions = tf.ragged.range(kept_start, kept_end)
    window = tf.cast(positions.value_rowids(), tf.int32)
    flat_positions = positions.flat_values
    return {
        "window": window,
        "local": flat_positions - tf.gather(start, window),
        "first": tf.equal(flat_positions, tf.gather(kept_start, window)),
        "last": tf.equal(flat_positions, tf.gather(kept_end, window) - 1),
    }


# ------------------------------------------------------------------------------------------
# Entities
# ------------------------------------------------------------------------------------------


def entity_flags(tags, row_ids, role_table, type_table):
    """Where entities start and end in flat tags (the lenient reading of ``spans_from_tags``).

    Args:
        tags: flat ``[P]`` int32 tag ids.
        row_ids: flat ``[P]`` text index of each character (non-decreasing).
        role_table, type_table: ``[K]`` int32 from :func:`label_tables`.

    Returns:
        ``(starts [P] bool, ends [P] bool)``: an entity starts at / ends at (inclusive) the position.
    """
    role = tf.gather(role_table, tags)
    type_ = tf.gather(type_table, tags)
    o = tf.constant([ROLE_O], tf.int32)
    none = tf.constant([-1], tf.int32)
    same_row_prev = tf.concat([[False], tf.equal(row_ids[1:], row_ids[:-1])], axis=0)
    same_row_next = tf.concat([tf.equal(row_ids[1:], row_ids[:-1]), [False]], axis=0)
    prev_role = tf.where(same_row_prev, tf.concat([o, role[:-1]], 0), ROLE_O)
    prev_type = tf.where(same_row_prev, tf.concat([none, type_[:-1]], 0), -1)
    next_role = tf.where(same_row_next, tf.concat([role[1:], o], 0), ROLE_O)
    next_type = tf.where(same_row_next, tf.concat([type_[1:], none], 0), -1)

    def is_in(x, codes):
        return tf.reduce_any(tf.equal(tf.expand_dims(x, -1), codes), axis=-1)

    entity = tf.not_equal(role, ROLE_O)
    starts = entity & (is_in(role, [ROLE_B, ROLE_S]) | is_in(prev_role, [ROLE_E, ROLE_S, ROLE_O])
                       | tf.not_equal(prev_type, type_))
    ends = entity & (is_in(role, [ROLE_E, ROLE_S]) | is_in(next_role, [ROLE_B, ROLE_S, ROLE_O])
                     | tf.not_equal(next_type, type_))
    return starts, ends


def strict_tags(tags, starts, ends, type_table, strict_table, has_end, has_single):
    """Rewrites flat tags into the strict form of their scheme (``repair_tags``): entities unchanged.

    Args:
        tags: flat ``[P]`` int32 tag ids.
        starts, ends: from :func:`entity_flags`.
        type_table: ``[K]`` int32; strict_table: ``[X, 5]`` int32 (from :func:`label_tables`).
        has_end, has_single: whether the scheme has E- / S- tags (Python bools).

    Returns:
        ``[P]`` int32 tag ids (a tag whose strict form is missing from the labels is kept).
    """
    type_ = tf.gather(type_table, tags)
    entity = type_ >= 0
    single = starts & ends
    if has_single:
        role = tf.where(single, ROLE_S, tf.where(starts, ROLE_B, ROLE_I))
    else:
        role = tf.where(starts, ROLE_B, ROLE_I)
    if has_end:
        role = tf.where(ends & tf.logical_not(single), ROLE_E, role)
    wanted = tf.gather_nd(strict_table, tf.stack([tf.maximum(type_, 0), role], axis=1))
    return tf.where(entity & (wanted >= 0), wanted, tags)


# ------------------------------------------------------------------------------------------
# Confidences
# ------------------------------------------------------------------------------------------


def _logsumexp(x, axis):
    """Log-sum-exp that returns -inf (not NaN) where every entry is -inf."""
    peak = tf.reduce_max(x, axis=axis, keepdims=True)
    peak = tf.where(tf.math.is_finite(peak), peak, tf.zeros_like(peak))
    return tf.squeeze(peak, axis) + tf.math.log(tf.reduce_sum(tf.exp(x - peak), axis=axis))


def crf_span_terms(emissions, lengths, tags, transitions, start=None, end=None, continues=None):
    """Per-position pieces of exact CRF span probabilities, by forward-backward in log space.

    With ``alpha_t(k)`` the log-sum of the scores of all prefixes ending in tag ``k`` at ``t``
    (emission at ``t`` included), ``beta_t(k)`` the log-sum of all continuations after ``t``
    (``beta_{L-1} = end``) and ``Z`` the partition function, the log-probability that the tags
    ``a..b-1`` equal the decoded ``y_a..y_{b-1}`` is
    ``alpha_a(y_a) + sum_{t=a+1}^{b-1} step_t + beta_{b-1}(y_{b-1}) - log Z``; requiring also that
    tag ``b`` does not extend the entity replaces the last term by ``tail_t`` below.

    Args:
        emissions: ``[W, T, K]`` float32 emission scores; lengths: ``[W]`` int32.
        tags: ``[W, T]`` int32 decoded tags.
        transitions: ``[K, K]``; start, end: optional ``[K]`` boundary scores.
        continues: ``[K, K]`` bool (:func:`label_tables`): tags that extend an entity.

    Returns:
        dict of ``[W, T]`` float32: ``alpha`` (``alpha_t(y_t)``), ``step``
        (``trans[y_{t-1}, y_t] + emission_t(y_t)``), ``open`` (``beta_t(y_t) - log Z``) and
        ``closed`` (``log sum_{k: not continues[y_t, k]} exp(trans[y_t, k] + emission_{t+1}(k) +
        beta_{t+1}(k)) - log Z``, or ``end[y_t] - log Z`` at the last position).
    """
    emissions = tf.cast(emissions, tf.float32)
    transitions = tf.cast(transitions, tf.float32)
    num_tags = tf.shape(emissions)[2]
    steps = tf.shape(emissions)[1]
    # Two dummy steps at the end (after every sequence), so the scans below never run over an
    # empty sequence (windows of one character, or none); they are dropped again at the end.
    emissions = tf.pad(emissions, [[0, 0], [0, 2], [0, 0]])
    tags = tf.pad(tf.cast(tags, tf.int32), [[0, 0], [0, 2]])
    lengths = tf.cast(lengths, tf.int32)
    start = tf.zeros([num_tags]) if start is None else tf.cast(start, tf.float32)
    end = tf.zeros([num_tags]) if end is None else tf.cast(end, tf.float32)
    time_major = tf.transpose(emissions, [1, 0, 2])  # [T, W, K]

    def forward(alpha, emission):
        return _logsumexp(alpha[:, :, None] + transitions[None], axis=1) + emission

    first = time_major[0] + start
    alphas = tf.scan(forward, time_major[1:], initializer=first)
    alphas = tf.concat([first[None], alphas], axis=0)  # [T, W, K]

    t_index = tf.range(steps + 2, dtype=tf.int32)
    at_or_after_last = t_index[:, None] >= (lengths - 1)[None, :]  # [T, W]

    def backward(beta_next, inputs):
        emission_next, reset = inputs
        beta = _logsumexp(transitions[None] + (emission_next + beta_next)[:, None, :], axis=2)
        return tf.where(reset[:, None], tf.broadcast_to(end, tf.shape(beta)), beta)

    last = tf.broadcast_to(end, tf.shape(first))
    betas = tf.scan(backward, (time_major[1:], at_or_after_last[:-1]), initializer=last,
                    reverse=True)
    betas = tf.concat([betas, last[None]], axis=0)  # [T, W, K]

    alphas = tf.transpose(alphas, [1, 0, 2])  # [W, T, K]
    betas = tf.transpose(betas, [1, 0, 2])
    last_alpha = tf.gather(alphas, tf.maximum(lengths - 1, 0), batch_dims=1)  # [W, K]
    log_z = _logsumexp(last_alpha + end[None], axis=1)  # [W]

    alpha_y = tf.gather(alphas, tags, batch_dims=2)
    beta_y = tf.gather(betas, tags, batch_dims=2)
    emission_y = tf.gather(emissions, tags, batch_dims=2)
    previous = tf.concat([tf.zeros_like(tags[:, :1]), tags[:, :-1]], axis=1)
    step = tf.gather_nd(transitions, tf.stack([previous, tags], axis=-1)) + emission_y

    trans_from_y = tf.gather(transitions, tags)  # [W, T, K]
    following = tf.concat([emissions[:, 1:] + betas[:, 1:], tf.zeros_like(emissions[:, :1])], axis=1)
    scores = trans_from_y + following
    if continues is not None:
        blocked = tf.gather(tf.constant(continues, tf.bool), tags)  # [W, T, K]
        scores = tf.where(blocked, tf.constant(-np.inf, tf.float32), scores)
    closed = _logsumexp(scores, axis=2)
    is_last = tf.equal(t_index[None, :], (lengths - 1)[:, None])
    closed = tf.where(is_last, tf.gather(end, tags), closed)
    return {
        "alpha": alpha_y[:, :steps],
        "step": step[:, :steps],
        "open": (beta_y - log_z[:, None])[:, :steps],
        "closed": (closed - log_z[:, None])[:, :steps],
    }


def span_log_probabilities(span_start, span_end, alpha, step, open_, closed, first, last):
    """Log-probability of each entity span from flat per-character pieces.

    The span ``[s, e)`` is cut into pieces, one per window its characters were taken from; each
    piece ``[a, b)`` of window ``w`` contributes its window's probability that tags ``a..b-1`` are
    the decoded ones (and, for the piece ending at ``e``, that the next tag does not extend the
    entity): ``alpha[a] + sum(step[a+1..b-1]) + (closed or open)[b-1]``. For a text in one
    window this is exactly the CRF marginal probability of the span.

    Args:
        span_start, span_end: ``[E]`` flat positions, end exclusive.
        alpha, step, open_, closed: flat ``[P]`` float32 (from :func:`crf_span_terms`, gathered).
        first, last: flat ``[P]`` bool: first / last character contributed by its window.

    Returns:
        ``[E]`` float32 log-probabilities.
    """
    positions = tf.ragged.range(span_start, span_end)
    index = positions.flat_values
    entity = positions.value_rowids()
    is_start = tf.equal(index, tf.gather(span_start, entity))
    is_end = tf.equal(index, tf.gather(span_end, entity) - 1)
    head = tf.where(is_start | tf.gather(first, index), tf.gather(alpha, index), tf.gather(step, index))
    tail = tf.where(is_end, tf.gather(closed, index),
                    tf.where(tf.gather(last, index), tf.gather(open_, index), 0.0))
    return tf.math.unsorted_segment_sum(head + tail, entity, tf.shape(span_start)[0])
