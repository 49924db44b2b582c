"""Issue 14, section 7: what running tensorflow-addons' CRF tests against tfner found.

(a) In float32 the log-likelihoods of all 27 paths of tfa's 3-tag, length-3 case summed (in
    log space) to -1.67e-6, outside tfa's 1e-6; 16-bit inputs came back as float32.
(b) ``crf_sequence_score`` silently mis-scored ``tag_indices`` longer than ``inputs`` (tfa's own
    brute-force helper passes one extra tag for length-1 inputs).

The port of tfa's suite is ``tests/layers/test_tfa_crf_port.py``; these tests pin the fixes down
beyond tfa's cases (boundary scores, long sequences, graph mode with a dynamic time axis).
"""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfner.layers import crf_ops

TRANS = np.array([[-3, 5, -2], [3, 4, 1], [1, 2, 1]], "float32")
INPUTS = np.array([[4, 5, -3], [3, -1, 3], [-1, 2, 1], [0, 0, 0]], "float32")


def np_logsumexp(values):
    values = np.asarray(values, np.float64)
    top = values.max()
    return float(top + np.log(np.exp(values - top).sum()))


def np_log_norm(emissions, length, trans, start=None, end=None):
    """float64 log-space forward algorithm over the first ``length`` rows."""
    emissions, trans = np.asarray(emissions, np.float64), np.asarray(trans, np.float64)
    num_tags = emissions.shape[1]
    start = np.zeros(num_tags) if start is None else np.asarray(start, np.float64)
    end = np.zeros(num_tags) if end is None else np.asarray(end, np.float64)
    alpha = emissions[0] + start
    for t in range(1, length):
        scores = alpha[:, None] + trans
        top = scores.max(axis=0)
        alpha = top + np.log(np.exp(scores - top).sum(axis=0)) + emissions[t]
    return np_logsumexp(alpha + end)


def np_path_score(emissions, path, trans, start=None, end=None):
    score = sum(float(emissions[t, k]) for t, k in enumerate(path))
    score += sum(float(trans[a, b]) for a, b in zip(path[:-1], path[1:]))
    if start is not None:
        score += float(start[path[0]]) + float(end[path[-1]])
    return score


def all_path_log_likelihoods(emissions, length, trans, start=None, end=None, function=None):
    """tfner's log-likelihood of every path of one sequence (padded tags 0), one batch."""
    num_tags = emissions.shape[-1]
    paths = [
        list(p) + [0] * (emissions.shape[0] - length)
        for p in itertools.product(range(num_tags), repeat=length)
    ]
    batch = len(paths)
    function = function or crf_ops.crf_log_likelihood
    log_likelihood, _ = function(
        np.broadcast_to(emissions, (batch,) + emissions.shape).copy(),
        np.array(paths, "int32"),
        np.full([batch], length, "int32"),
        trans,
        start,
        end,
    )
    return np.asarray(log_likelihood, np.float64)


# --------------------------------------------------------------------------------------------
# (a) float32 precision of the log-likelihood
# --------------------------------------------------------------------------------------------


def test_tfa_case_all_path_probabilities_sum_to_one_within_tfa_tolerance():
    total = np_logsumexp(all_path_log_likelihoods(INPUTS, 3, TRANS))
    assert abs(total) <= 1e-6, total  # tfa's rtol=atol=1e-6; it was -1.67e-6


def test_all_path_sum_with_boundary_scores_and_in_graph_mode():
    rng = np.random.default_rng(0)
    start = rng.normal(size=3).astype("float32")
    end = rng.normal(size=3).astype("float32")
    assert abs(np_logsumexp(all_path_log_likelihoods(INPUTS, 3, TRANS, start, end))) <= 1e-6
    graph = tf.function(crf_ops.crf_log_likelihood)
    assert abs(np_logsumexp(all_path_log_likelihoods(INPUTS, 4, TRANS, function=graph))) <= 1e-6


def test_likely_paths_keep_float32_precision_on_long_sequences():
    """The Viterbi path's log-likelihood against float64, 64 positions, 7 tags.

    With ``score - log Z`` computed apart, float32 rounds to a fraction of log Z (~400 here):
    the error was up to 2.8e-5; relative to the gold path it is under 4e-6.
    """
    rng = np.random.default_rng(7)
    batch, max_len, num_tags = 16, 64, 7
    emissions = rng.normal(scale=3.0, size=(batch, max_len, num_tags)).astype("float32")
    trans = rng.normal(size=(num_tags, num_tags)).astype("float32")
    start, end = rng.normal(size=(2, num_tags)).astype("float32")
    lengths = np.concatenate([[max_len], rng.integers(1, max_len + 1, size=batch - 1)])
    lengths = lengths.astype("int32")
    best = np.asarray(crf_ops.crf_decode(emissions, trans, lengths, start, end)[0])
    log_likelihood, _ = crf_ops.crf_log_likelihood(emissions, best, lengths, trans, start, end)
    for b, length in enumerate(lengths):
        path = best[b, :length].tolist()
        expected = np_path_score(emissions[b], path, trans, start, end) - np_log_norm(
            emissions[b], length, trans, start, end
        )
        assert abs(float(log_likelihood[b]) - expected) <= 1e-5, (b, float(log_likelihood[b]))


def test_gold_path_breaking_a_constraint_keeps_exact_value_and_gradient():
    """A forbidden gold transition (-1e4) is left out of the relative forward pass."""
    rng = np.random.default_rng(1)
    emissions = tf.constant(rng.normal(size=(2, 5, 3)).astype("float32"))
    allowed = np.ones((3, 3), bool)
    allowed[0, 2] = False
    trans = crf_ops.constrain_transitions(rng.normal(size=(3, 3)).astype("float32"), allowed)
    tags = np.array([[0, 2, 1, 1, 0], [1, 1, 0, 1, 2]], "int32")  # row 0 breaks 0 -> 2
    lengths = np.array([5, 5], "int32")
    with tf.GradientTape() as tape:
        tape.watch(emissions)
        log_likelihood, _ = crf_ops.crf_log_likelihood(emissions, tags, lengths, trans)
        total = tf.reduce_sum(log_likelihood)
    gradient = tape.gradient(total, emissions).numpy()
    for b in range(2):
        expected = np_path_score(emissions.numpy()[b], tags[b], trans.numpy()) - np_log_norm(
            emissions.numpy()[b], 5, trans.numpy()
        )
        np.testing.assert_allclose(float(log_likelihood[b]), expected, rtol=1e-6)
    assert float(log_likelihood[0]) < -5000
    marginals = np.asarray(crf_ops.crf_marginals(emissions, lengths, trans))
    np.testing.assert_allclose(gradient, np.eye(3)[tags] - marginals, atol=1e-5)


def test_gold_tag_with_minus_inf_emission_has_minus_inf_log_likelihood_not_nan():
    inputs = crf_ops.crf_filtered_inputs(INPUTS[None], [[[1, 1, 0]] * 4])
    log_likelihood, _ = crf_ops.crf_log_likelihood(inputs, [[2, 0, 0, 0]], [3], TRANS)
    assert np.asarray(log_likelihood).tolist() == [-np.inf]


# --------------------------------------------------------------------------------------------
# (a) results in the dtype of the inputs
# --------------------------------------------------------------------------------------------


def _outputs(inputs, trans):
    """Every float result of the CRF functions for ``inputs`` ``[2, 4, 3]``."""
    tags = np.array([[1, 2, 1, 0], [0, 0, 2, 2]], "int32")
    lengths = np.array([3, 4], "int32")
    bitmap = np.ones((2, 4, 3), bool)
    bitmap[:, :, 0] = False
    return {
        "sequence_score": crf_ops.crf_sequence_score(inputs, tags, lengths, trans),
        "unary_score": crf_ops.crf_unary_score(tags, lengths, inputs),
        "binary_score": crf_ops.crf_binary_score(tags, lengths, trans),
        "log_norm": crf_ops.crf_log_norm(inputs, lengths, trans),
        "log_likelihood": crf_ops.crf_log_likelihood(inputs, tags, lengths, trans)[0],
        "best_score": crf_ops.crf_decode(inputs, trans, lengths)[1],
        "marginals": crf_ops.crf_marginals(inputs, lengths, trans),
        "filtered_inputs": crf_ops.crf_filtered_inputs(inputs, bitmap),
        "multitag_score": crf_ops.crf_multitag_sequence_score(inputs, bitmap, lengths, trans),
        "constrained_best_score": crf_ops.crf_constrained_decode(inputs, bitmap, trans, lengths)[1],
        "forward": crf_ops.crf_forward(inputs[:, 1:], inputs[:, 0], trans, lengths),
        "decode_forward_state": crf_ops.crf_decode_forward(
            inputs[:, 1:], inputs[:, 0], trans, lengths - 1
        )[1],
    }


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64"])
def test_results_come_back_in_the_dtype_of_the_inputs(dtype):
    """16-bit inputs are computed in float32 and cast back (as tfa returns them)."""
    inputs32 = tf.constant(np.stack([INPUTS, INPUTS[::-1]]))
    reference = _outputs(inputs32, tf.constant(TRANS))
    results = _outputs(tf.cast(inputs32, dtype), tf.cast(TRANS, dtype))
    for name, value in results.items():
        assert keras.backend.standardize_dtype(value.dtype) == dtype, name
        expected = tf.cast(tf.cast(reference[name], dtype), "float64").numpy()
        actual = tf.cast(value, "float64").numpy()
        if dtype == "float64":  # computed in float64: float32's rounding apart
            np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)
        else:  # exact inputs, the same float32 computation, then one rounding
            np.testing.assert_array_equal(actual, expected)


def test_integer_inputs_give_float32_results():
    score = crf_ops.crf_sequence_score(INPUTS[None].astype("int32"), [[1, 2, 1, 0]], [3], TRANS)
    assert keras.backend.standardize_dtype(score.dtype) == "float32"
    assert np.asarray(score).tolist() == [13.0]


# --------------------------------------------------------------------------------------------
# (b) tag_indices whose time axis differs from the inputs'
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_len", [1, 3])
def test_tags_longer_than_inputs_are_ignored_like_tfa(max_len):
    inputs = INPUTS[None, :max_len]
    lengths = [max_len]
    tags = np.array([[1, 2, 1]], "int32")[:, :max_len]
    longer = np.concatenate([tags, [[2, 2]]], axis=1)
    assert np.asarray(crf_ops.crf_sequence_score(inputs, tags, lengths, TRANS)).tolist() != [0]
    for function in (
        lambda t: crf_ops.crf_sequence_score(inputs, t, lengths, TRANS),
        lambda t: crf_ops.crf_unary_score(t, lengths, inputs),
        lambda t: crf_ops.crf_log_likelihood(inputs, t, lengths, TRANS)[0],
    ):
        np.testing.assert_array_equal(np.asarray(function(longer)), np.asarray(function(tags)))
    # tfa's brute force with its extra tag: the best path agrees with crf_decode.
    best = max(
        itertools.product(range(3), repeat=max_len),
        key=lambda p: float(crf_ops.crf_sequence_score(inputs, [list(p) + [0]], lengths, TRANS)[0]),
    )
    assert list(best) == np.asarray(crf_ops.crf_decode(inputs, TRANS, lengths)[0])[0].tolist()


def test_tags_shorter_than_inputs_raise_a_clear_error():
    expected = "tag_indices has 2 positions per sequence but the inputs have 4"
    for function in (
        lambda: crf_ops.crf_sequence_score(INPUTS[None], [[1, 2]], [2], TRANS),
        lambda: crf_ops.crf_unary_score([[1, 2]], [2], INPUTS[None]),
        lambda: crf_ops.crf_log_likelihood(INPUTS[None], [[1, 2]], [2], TRANS),
    ):
        with pytest.raises(ValueError, match=expected):
            function()
    with pytest.raises(ValueError, match=r"tag_indices must be \[batch_size, max_seq_len\]"):
        crf_ops.crf_sequence_score(INPUTS[None], [1, 2, 1, 0], [3], TRANS)


def test_dynamic_time_axis_never_mis_scores():
    """In a graph with an unknown time axis, short tags give NaN where a sequence needs them."""
    spec = (
        tf.TensorSpec([None, None, 3]),
        tf.TensorSpec([None, None], tf.int32),
        tf.TensorSpec([None], tf.int32),
    )
    score = tf.function(
        lambda x, t, n: crf_ops.crf_sequence_score(x, t, n, TRANS), input_signature=spec
    )
    log_likelihood = tf.function(
        lambda x, t, n: crf_ops.crf_log_likelihood(x, t, n, TRANS)[0], input_signature=spec
    )
    inputs = np.stack([INPUTS, INPUTS])
    lengths = np.array([2, 4], "int32")
    full_tags = np.array([[1, 2, 0, 0], [1, 2, 1, 0]], "int32")
    eager_score = np.asarray(crf_ops.crf_sequence_score(inputs, full_tags, lengths, TRANS))
    eager_ll = np.asarray(crf_ops.crf_log_likelihood(inputs, full_tags, lengths, TRANS)[0])
    # Longer tags: ignored past the inputs.
    longer = np.concatenate([full_tags, [[2, 2], [2, 2]]], axis=1).astype("int32")
    np.testing.assert_array_equal(score(inputs, longer, lengths).numpy(), eager_score)
    np.testing.assert_allclose(log_likelihood(inputs, longer, lengths).numpy(), eager_ll)
    # Two tags per sequence: enough for the length-2 sequence, not for the length-4 one.
    short = full_tags[:, :2]
    short_score = score(inputs, short, lengths).numpy()
    assert short_score[0] == eager_score[0] and np.isnan(short_score[1])
    short_ll = log_likelihood(inputs, short, lengths).numpy()
    np.testing.assert_allclose(short_ll[0], eager_ll[0])
    assert np.isnan(short_ll[1])
