"""Tests of tfner.layers.crf_ops against brute-force enumeration of every tag path.

The module-level helpers use only numpy and keras (no TensorFlow), so the JAX test can load this
file in a subprocess with ``KERAS_BACKEND=jax`` and run the same checks there.
"""

import doctest
import itertools
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from tfner.layers import crf_ops

NEG = crf_ops.FORBIDDEN_TRANSITION_SCORE


# --------------------------------------------------------------------------------------------
# Brute-force reference (numpy, float64)
# --------------------------------------------------------------------------------------------


def np_logsumexp(values):
    values = np.asarray(values, dtype=np.float64)
    top = values.max()
    return float(top + np.log(np.exp(values - top).sum()))


def path_score(emissions, path, trans, start=None, end=None):
    """Score of one tag path (a tuple of length L) over the first L rows of ``emissions``."""
    if len(path) == 0:
        return 0.0
    score = sum(float(emissions[t, tag]) for t, tag in enumerate(path))
    score += sum(float(trans[a, b]) for a, b in zip(path[:-1], path[1:]))
    if start is not None:
        score += float(start[path[0]])
    if end is not None:
        score += float(end[path[-1]])
    return score


def enumerate_paths(emissions, length, trans, start=None, end=None):
    """All ``K**length`` paths and their scores (one empty path of score 0 for length 0)."""
    num_tags = emissions.shape[-1]
    paths = list(itertools.product(range(num_tags), repeat=length))
    scores = np.array([path_score(emissions, p, trans, start, end) for p in paths])
    return paths, scores


def brute_force(emissions, length, trans, start=None, end=None):
    """Reference log-norm, best path, best score and ``[T, K]`` marginals of one sequence."""
    paths, scores = enumerate_paths(emissions, length, trans, start, end)
    log_norm = np_logsumexp(scores)
    best = int(np.argmax(scores))
    probabilities = np.exp(scores - log_norm)
    marginals = np.zeros(emissions.shape, dtype=np.float64)
    for path, p in zip(paths, probabilities):
        for t, tag in enumerate(path):
            marginals[t, tag] += p
    return log_norm, list(paths[best]), float(scores[best]), marginals


def np_forward_backward(emissions, length, trans, start=None, end=None):
    """Exact float64 log-norm and ``[T, K]`` marginals by log-space forward-backward."""
    emissions = np.asarray(emissions, np.float64)
    num_tags = emissions.shape[1]
    start = np.zeros(num_tags) if start is None else np.asarray(start, np.float64)
    end = np.zeros(num_tags) if end is None else np.asarray(end, np.float64)
    marginals = np.zeros(emissions.shape)
    if length == 0:
        return 0.0, marginals

    def lse(a, axis):
        top = a.max(axis=axis, keepdims=True)
        return np.squeeze(top, axis) + np.log(np.exp(a - top).sum(axis=axis))

    alpha = np.zeros((length, num_tags))
    beta = np.zeros((length, num_tags))
    alpha[0] = emissions[0] + start
    for t in range(1, length):
        alpha[t] = lse(alpha[t - 1][:, None] + trans, 0) + emissions[t]
    beta[length - 1] = end
    for t in range(length - 2, -1, -1):
        beta[t] = lse(trans + (emissions[t + 1] + beta[t + 1])[None, :], 1)
    log_norm = lse(alpha[-1] + end, 0)
    marginals[:length] = np.exp(alpha + beta - log_norm)
    return float(log_norm), marginals


def random_case(rng, num_tags, max_len, batch, boundary, constrained):
    """Random float32 emissions/parameters; lengths always include 0, 1 and ``max_len``."""
    emissions = rng.normal(scale=2.0, size=(batch, max_len, num_tags)).astype("float32")
    trans = rng.normal(size=(num_tags, num_tags)).astype("float32")
    start = end = None
    if boundary:
        start = rng.normal(size=num_tags).astype("float32")
        end = rng.normal(size=num_tags).astype("float32")
    if constrained:
        allowed = rng.random((num_tags, num_tags)) < 0.6
        allowed[:, 0] = True  # every tag can be followed by tag 0, so some path is allowed
        trans = np.asarray(crf_ops.constrain_transitions(trans, allowed), dtype="float32")
        if boundary:
            allowed_start = rng.random(num_tags) < 0.6
            allowed_start[0] = True
            start = np.asarray(crf_ops.constrain_transitions(start, allowed_start), "float32")
    lengths = np.concatenate(
        [[0, 1, max_len], rng.integers(0, max_len + 1, size=max(batch - 3, 0))]
    )[:batch].astype("int32")
    return emissions, lengths, trans, start, end


def check_against_brute_force(emissions, lengths, trans, start, end, rng, reference_trans=None):
    """Checks log-norm, decode, marginals and path log-likelihoods of one batch.

    ``reference_trans`` (default ``trans``) is what the brute force uses, to test the test.
    """
    batch, max_len, num_tags = emissions.shape
    ref_trans = trans if reference_trans is None else reference_trans
    log_norm = np.asarray(crf_ops.crf_log_norm(emissions, lengths, trans, start, end))
    tags, best_score = crf_ops.crf_decode(emissions, trans, lengths, start, end)
    tags, best_score = np.asarray(tags), np.asarray(best_score)
    marginals = np.asarray(crf_ops.crf_marginals(emissions, lengths, trans, start, end))
    assert tags.dtype == np.int32 and tags.shape == (batch, max_len)
    assert marginals.shape == (batch, max_len, num_tags)

    # Every path of every sequence, in one batch; padded tags are garbage (ignored).
    all_emissions, all_tags, all_lengths, all_expected, owners = [], [], [], [], []
    for b in range(batch):
        length = int(lengths[b])
        ref_log_norm, ref_path, ref_best, ref_marginals = brute_force(
            emissions[b], length, ref_trans, start, end
        )
        np.testing.assert_allclose(log_norm[b], ref_log_norm, rtol=1e-5, atol=1e-4)
        assert tags[b, :length].tolist() == ref_path
        assert (tags[b, length:] == 0).all()
        np.testing.assert_allclose(best_score[b], ref_best, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(marginals[b], ref_marginals, atol=1e-5)

        paths, scores = enumerate_paths(emissions[b], length, ref_trans, start, end)
        for path, score in zip(paths, scores):
            padded = rng.integers(-1, num_tags, size=max_len)
            padded[:length] = path
            all_emissions.append(emissions[b])
            all_tags.append(padded)
            all_lengths.append(length)
            all_expected.append((score, ref_log_norm))
            owners.append(b)
    all_tags = np.stack(all_tags).astype("int32")
    all_lengths = np.array(all_lengths, "int32")
    log_likelihood, returned = crf_ops.crf_log_likelihood(
        np.stack(all_emissions), all_tags, all_lengths, trans, start, end
    )
    np.testing.assert_array_equal(np.asarray(returned), trans)  # tfa returns them too
    log_likelihood = np.asarray(log_likelihood, np.float64)
    sequence_score = crf_ops.crf_sequence_score(
        np.stack(all_emissions), all_tags, all_lengths, trans, start, end
    )
    sequence_score = np.asarray(sequence_score)
    expected_score = np.array([s for s, _ in all_expected])
    expected_ll = np.array([s - z for s, z in all_expected])
    np.testing.assert_allclose(sequence_score, expected_score, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(log_likelihood, expected_ll, rtol=1e-5, atol=1e-3)
    owners = np.array(owners)
    for b in range(batch):
        np.testing.assert_allclose(np_logsumexp(log_likelihood[owners == b]), 0.0, atol=1e-6)


def run_brute_force_suite(num_cases, seed=0):
    """Random small cases: K in {2, 3, 4}, T up to 5, with/without boundaries and constraints."""
    rng = np.random.default_rng(seed)
    for case in range(num_cases):
        num_tags = (2, 3, 4)[case % 3]
        max_len = int(rng.integers(1, 6 if num_tags < 4 else 5))
        boundary = bool(case % 2)
        constrained = case % 4 >= 2
        case_args = random_case(rng, num_tags, max_len, 4, boundary, constrained)
        check_against_brute_force(*case_args, rng)


def check_padding_invariance(seed=0, extra=3):
    """Appending padded positions with garbage emissions/tags changes nothing."""
    rng = np.random.default_rng(seed)
    for boundary in (False, True):
        emissions, lengths, trans, start, end = random_case(rng, 3, 4, 5, boundary, True)
        tags = rng.integers(0, 3, size=lengths.shape + (4,)).astype("int32")
        garbage = rng.normal(scale=50.0, size=(5, extra, 3)).astype("float32")
        long_emissions = np.concatenate([emissions, garbage], axis=1)
        long_tags = np.concatenate([tags, rng.integers(0, 3, size=(5, extra))], 1).astype("int32")

        def outputs(x, y):
            ll, _ = crf_ops.crf_log_likelihood(x, y, lengths, trans, start, end)
            decoded, best = crf_ops.crf_decode(x, trans, lengths, start, end)
            marginals = crf_ops.crf_marginals(x, lengths, trans, start, end)
            return [np.asarray(v) for v in (ll, decoded, best, marginals)]

        short, long = outputs(emissions, tags), outputs(long_emissions, long_tags)
        np.testing.assert_allclose(long[0], short[0], rtol=1e-6, atol=1e-5)
        np.testing.assert_array_equal(long[1][:, :4], short[1])
        assert (long[1][:, 4:] == 0).all()
        np.testing.assert_allclose(long[2], short[2], rtol=1e-6, atol=1e-5)
        np.testing.assert_allclose(long[3][:, :4], short[3], atol=1e-6)
        assert (long[3][:, 4:] == 0).all()


# --------------------------------------------------------------------------------------------
# Tests (TensorFlow backend, eager unless stated)
# --------------------------------------------------------------------------------------------


@pytest.fixture(params=["backpointers", "recompute"])
def decode_strategy(request, monkeypatch):
    """Runs a test with each of crf_decode's two back-tracking strategies (chosen by K)."""
    limit = 10**6 if request.param == "backpointers" else 0
    monkeypatch.setattr(crf_ops, "_BACKPOINTER_MAX_TAGS", limit)
    return request.param


def test_brute_force_random_cases(decode_strategy):
    run_brute_force_suite(num_cases=24, seed=0)


def test_padding_invariance(decode_strategy):
    check_padding_invariance(seed=1)


def np_viterbi(emissions, length, trans, start=None, end=None):
    """Viterbi in numpy (float32, the same sums as crf_decode), ties to the lowest tag id."""
    score = emissions[0] + (0 if start is None else start)
    backpointers = []
    for t in range(1, length):
        candidates = score[:, None] + trans  # [from, to]
        backpointers.append(np.argmax(candidates, axis=0))
        score = candidates.max(axis=0) + emissions[t]
    if end is not None:
        score = score + end
    path = [int(np.argmax(score))]
    for bp in reversed(backpointers):
        path.append(int(bp[path[-1]]))
    return path[::-1]


@pytest.mark.parametrize("num_tags", [7, 41])
def test_decode_strategies_agree_with_numpy_viterbi_including_ties(num_tags, monkeypatch):
    """K = 7 and 41 (BIOS over CLUENER's 10 types); integer scores make ties frequent."""
    rng = np.random.default_rng(num_tags)
    batch, max_len = 16, 40
    emissions = rng.integers(-2, 3, size=(batch, max_len, num_tags)).astype("float32")
    trans = rng.integers(-1, 2, size=(num_tags, num_tags)).astype("float32")
    start, end = rng.integers(-1, 2, size=(2, num_tags)).astype("float32")
    lengths = rng.integers(0, max_len + 1, size=batch).astype("int32")
    lengths[:2] = [1, max_len]
    decoded = {}
    for name, limit in (("backpointers", 10**6), ("recompute", 0)):
        monkeypatch.setattr(crf_ops, "_BACKPOINTER_MAX_TAGS", limit)
        decoded[name] = np.asarray(crf_ops.crf_decode(emissions, trans, lengths, start, end)[0])
    np.testing.assert_array_equal(decoded["backpointers"], decoded["recompute"])
    for b in range(batch):
        length = int(lengths[b])
        if length:
            assert decoded["recompute"][b, :length].tolist() == np_viterbi(
                emissions[b], length, trans, start, end)


def test_brute_force_catches_a_wrong_transition_direction():
    """A CRF reading transitions as [to, from] fails the brute-force check."""
    rng = np.random.default_rng(3)
    emissions, lengths, trans, start, end = random_case(rng, 3, 4, 4, True, False)
    check_against_brute_force(emissions, lengths, trans, start, end, rng)
    with pytest.raises(AssertionError):
        check_against_brute_force(emissions, lengths, trans.T.copy(), start, end, rng, trans)


def test_confident_long_sequences_with_bio_constraints_match_exact_reference():
    """Large, confident emissions (the regime of a trained model) over longer sequences."""
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
    allowed, allowed_start, allowed_end = crf_ops.allowed_transitions(labels)
    rng = np.random.default_rng(8)
    # float32 keeps ~7 digits of scores that grow to about scale * length.
    for scale, tolerance in ((1.0, 5e-5), (30.0, 2e-4), (300.0, 2e-3)):
        emissions = rng.normal(scale=scale, size=(6, 40, 7)).astype("float32")
        lengths = np.array([40, 33, 1, 0, 17, 40], "int32")
        trans = crf_ops.constrain_transitions(rng.normal(scale=3.0, size=(7, 7)), allowed)
        trans = np.asarray(trans, "float32")
        start = crf_ops.constrain_transitions(rng.normal(size=7), allowed_start)
        end = crf_ops.constrain_transitions(rng.normal(size=7), allowed_end)
        start, end = np.asarray(start, "float32"), np.asarray(end, "float32")
        log_norm = np.asarray(crf_ops.crf_log_norm(emissions, lengths, trans, start, end))
        marginals = np.asarray(crf_ops.crf_marginals(emissions, lengths, trans, start, end))
        for b, length in enumerate(lengths):
            ref_log_norm, ref_marginals = np_forward_backward(
                emissions[b], length, trans, start, end
            )
            np.testing.assert_allclose(log_norm[b], ref_log_norm, rtol=1e-5, atol=1e-3)
            np.testing.assert_allclose(
                marginals[b], ref_marginals, atol=tolerance, err_msg=f"scale {scale}"
            )


def test_fast_forward_path_and_exact_fallback_are_both_used(monkeypatch):
    """Moderate scores take the matrix-product path; extreme ones the exact log-sum-exp path."""
    calls = []
    exact = crf_ops._forward_alphas_logsumexp
    monkeypatch.setattr(
        crf_ops, "_forward_alphas_logsumexp", lambda *args: calls.append(1) or exact(*args)
    )
    allowed, _, _ = crf_ops.allowed_transitions(["O", "B-PER", "I-PER"])
    trans = np.asarray(crf_ops.constrain_transitions(np.zeros((3, 3), "float32"), allowed))
    rng = np.random.default_rng(9)
    emissions = rng.normal(size=(2, 5, 3)).astype("float32")
    fast = np.asarray(crf_ops.crf_log_norm(emissions, [5, 3], trans))
    assert calls == []
    # Position 1 strongly prefers I-PER while position 0 strongly prefers O: B-PER, the only
    # way into I-PER, is far below the best tag, so the fast path would underflow.
    emissions[:, 0, 0] += 200.0
    emissions[:, 1, 2] += 200.0
    log_norm = np.asarray(crf_ops.crf_log_norm(emissions, [5, 3], trans))
    assert calls == [1]
    for b, length in enumerate([5, 3]):
        expected = np_forward_backward(emissions[b], length, trans)[0]
        np.testing.assert_allclose(log_norm[b], expected, rtol=1e-6)
    assert not np.allclose(fast, log_norm)


def test_tfa_hand_computed_cases():
    """Values of tensorflow-addons' crf_test.py cases, computed by hand."""
    trans = np.array([[-3, 5, -2], [3, 4, 1], [1, 2, 1]], "float32")
    inputs = np.array([[[4, 5, -3], [3, -1, 3], [-1, 2, 1], [0, 0, 0]]], "float32")
    tags = np.array([[1, 2, 1, 0]], "int32")
    # unary 5 + 3 + 2, binary trans[1, 2] + trans[2, 1] = 1 + 2
    score = crf_ops.crf_sequence_score(inputs, tags, [3], trans)
    np.testing.assert_allclose(np.asarray(score), [13.0])
    # length-1 sequences: unary only
    score = crf_ops.crf_sequence_score(inputs[:, :1], tags[:, :1], [1], trans)
    np.testing.assert_allclose(np.asarray(score), [5.0])
    # Viterbi: 1 -> 0 -> 1 scores 5 + 3 + 2 + trans[1, 0] + trans[0, 1] = 18
    decoded, best = crf_ops.crf_decode(inputs, trans, [3])
    assert np.asarray(decoded).tolist() == [[1, 0, 1, 0]]
    np.testing.assert_allclose(np.asarray(best), [18.0])
    decoded, best = crf_ops.crf_decode(np.array([[[-1, 2, 1]]], "float32"), trans, [1])
    assert np.asarray(decoded).tolist() == [[1]]
    np.testing.assert_allclose(np.asarray(best), [2.0])


def test_tfa_zero_length_cases():
    inputs = np.ones([2, 10, 5], "float32")
    trans = np.ones([5, 5], "float32")
    lengths = np.zeros([2], "int32")
    tags = np.ones([2, 10], "int32")
    np.testing.assert_array_equal(np.asarray(crf_ops.crf_log_norm(inputs, lengths, trans)), 0)
    ll, _ = crf_ops.crf_log_likelihood(inputs, tags, lengths, trans)
    np.testing.assert_array_equal(np.asarray(ll), 0)
    score = crf_ops.crf_sequence_score(inputs, tags, lengths, trans, np.ones(5), np.ones(5))
    np.testing.assert_array_equal(np.asarray(score), 0)
    decoded, best = crf_ops.crf_decode(inputs, trans, lengths)
    np.testing.assert_array_equal(np.asarray(decoded), np.zeros([2, 10]))
    np.testing.assert_array_equal(np.asarray(best), 0)
    np.testing.assert_array_equal(np.asarray(crf_ops.crf_marginals(inputs, lengths, trans)), 0)


def test_none_lengths_mean_full_length_and_lengths_from_mask():
    rng = np.random.default_rng(4)
    emissions, _, trans, start, end = random_case(rng, 4, 5, 3, True, False)
    full = np.full([3], 5, "int32")
    a = crf_ops.crf_log_norm(emissions, None, trans, start, end)
    b = crf_ops.crf_log_norm(emissions, full, trans, start, end)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b))
    mask = np.array([[1, 1, 0, 0], [0, 0, 0, 0], [True, True, True, True]])
    assert np.asarray(crf_ops.lengths_from_mask(mask)).tolist() == [2, 0, 4]
    assert np.asarray(crf_ops.lengths_from_mask(mask.astype(bool))).dtype == np.int32


def test_transition_params_required():
    with pytest.raises(ValueError, match="transition_params is required"):
        crf_ops.crf_log_likelihood(np.zeros([1, 2, 2], "float32"), [[0, 1]], [2], None)


def test_gradients_are_finite_and_equal_marginals():
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    allowed, allowed_start, allowed_end = crf_ops.allowed_transitions(labels)
    rng = np.random.default_rng(5)
    for scale, tolerance in ((1.0, 1e-5), (300.0, 2e-3)):  # fast path, exact fallback
        _check_gradients(rng, scale, tolerance, allowed, allowed_start, allowed_end)


def _check_gradients(rng, scale, tolerance, allowed, allowed_start, allowed_end):
    import tensorflow as tf

    emissions = tf.constant(rng.normal(scale=scale, size=(4, 6, 5)).astype("float32"))
    # Gold paths breaking constraints (I-PER first, O -> I-LOC) must still give finite grads.
    tags = tf.constant([[2, 2, 0, 4, 0, 0], [1, 0, 0, 0, 0, 0], [0] * 6, [3, 4, 4, 0, 1, 2]])
    lengths = tf.constant([6, 1, 0, 6])
    trans = tf.Variable(rng.normal(size=(5, 5)).astype("float32"))
    start = tf.Variable(rng.normal(size=5).astype("float32"))
    end = tf.Variable(rng.normal(size=5).astype("float32"))

    def loss_and_gradients(emissions):
        with tf.GradientTape() as tape:
            tape.watch(emissions)
            effective = crf_ops.constrain_transitions(trans, allowed)
            eff_start = crf_ops.constrain_transitions(start, allowed_start)
            eff_end = crf_ops.constrain_transitions(end, allowed_end)
            ll, _ = crf_ops.crf_log_likelihood(
                emissions, tags, lengths, effective, eff_start, eff_end
            )
            loss = -tf.reduce_sum(ll)
        return ll, tape.gradient(loss, [emissions, trans, start, end])

    ll, grads = loss_and_gradients(emissions)
    assert ll.numpy()[0] < -5000  # the constraint-breaking gold path is heavily penalised
    for grad in grads:
        assert np.isfinite(grad.numpy()).all()
    # The same in graph mode (the scans' while loops and the fallback's cond differentiated).
    graph_ll, graph_grads = tf.function(loss_and_gradients)(emissions)
    np.testing.assert_allclose(graph_ll.numpy(), ll.numpy(), rtol=1e-6)
    for graph_grad, grad in zip(graph_grads, grads):
        np.testing.assert_allclose(graph_grad.numpy(), grad.numpy(), rtol=1e-5, atol=1e-5)

    with tf.GradientTape(persistent=True) as tape:
        tape.watch(emissions)
        effective = crf_ops.constrain_transitions(trans, allowed)
        eff_start = crf_ops.constrain_transitions(start, allowed_start)
        eff_end = crf_ops.constrain_transitions(end, allowed_end)
        log_norm = crf_ops.crf_log_norm(emissions, lengths, effective, eff_start, eff_end)
        log_norm = tf.reduce_sum(log_norm)
    # d log Z / d emissions = marginals; forbidden transitions get no gradient.
    marginals = crf_ops.crf_marginals(emissions, lengths, effective, eff_start, eff_end)
    gradient = tape.gradient(log_norm, emissions).numpy()
    np.testing.assert_allclose(gradient, marginals.numpy(), atol=tolerance)
    assert (tape.gradient(log_norm, trans).numpy()[~allowed] == 0).all()


def test_tf_function_with_dynamic_time_matches_eager(decode_strategy):
    import tensorflow as tf

    rng = np.random.default_rng(6)
    trans = rng.normal(size=(3, 3)).astype("float32")
    start, end = rng.normal(size=(2, 3)).astype("float32")

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None, 3], tf.float32),
            tf.TensorSpec([None, None], tf.int32),
            tf.TensorSpec([None], tf.int32),
        ]
    )
    def all_ops(emissions, tags, lengths):
        ll, _ = crf_ops.crf_log_likelihood(emissions, tags, lengths, trans, start, end)
        decoded, best = crf_ops.crf_decode(emissions, trans, lengths, start, end)
        return ll, decoded, best, crf_ops.crf_marginals(emissions, lengths, trans, start, end)

    for max_len in (1, 2, 5):
        emissions = rng.normal(size=(3, max_len, 3)).astype("float32")
        tags = rng.integers(0, 3, size=(3, max_len)).astype("int32")
        lengths = np.array([0, 1, max_len], "int32")
        graph = all_ops(emissions, tags, lengths)
        eager = (
            crf_ops.crf_log_likelihood(emissions, tags, lengths, trans, start, end)[0],
            *crf_ops.crf_decode(emissions, trans, lengths, start, end),
            crf_ops.crf_marginals(emissions, lengths, trans, start, end),
        )
        for g, e in zip(graph, eager):
            np.testing.assert_allclose(g.numpy(), np.asarray(e), rtol=1e-6, atol=1e-6)
        assert graph[1].dtype == tf.int32
    outputs = all_ops.get_concrete_function().structured_outputs
    assert [o.shape.rank for o in outputs] == [1, 2, 1, 3]  # static ranks survive dynamic T
    assert all_ops.experimental_get_tracing_count() == 1


# --------------------------------------------------------------------------------------------
# Tag-scheme constraints
# --------------------------------------------------------------------------------------------


def _allowed_pairs(labels, scheme):
    allowed, start, end = crf_ops.allowed_transitions(labels, scheme)
    assert allowed.dtype == bool and allowed.shape == (len(labels), len(labels))
    pairs = {(labels[i], labels[j]) for i, j in zip(*np.nonzero(allowed))}
    return pairs, {labels[i] for i in np.nonzero(start)[0]}, {labels[i] for i in np.nonzero(end)[0]}


def test_bio_constraints():
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    pairs, start, end = _allowed_pairs(labels, "BIO")
    forbidden = {("O", "I-PER"), ("O", "I-LOC"), ("B-PER", "I-LOC"), ("B-LOC", "I-PER"),
                 ("I-PER", "I-LOC"), ("I-LOC", "I-PER")}
    assert pairs == set(itertools.product(labels, labels)) - forbidden
    assert start == {"O", "B-PER", "B-LOC"}
    assert end == set(labels)
    assert _allowed_pairs(labels, "iob2") == (pairs, start, end)


def test_bioes_and_bios_constraints():
    labels = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "S-LOC"]
    pairs, start, end = _allowed_pairs(labels, "BIOES")
    closed = ["O", "E-PER", "S-PER", "S-LOC"]
    expected = {(a, b) for a in closed for b in ["O", "B-PER", "S-PER", "S-LOC"]}
    expected |= {(a, b) for a in ["B-PER", "I-PER"] for b in ["I-PER", "E-PER"]}
    assert pairs == expected
    assert start == {"O", "B-PER", "S-PER", "S-LOC"}
    assert end == {"O", "E-PER", "S-PER", "S-LOC"}
    bmes = [label.replace("I-", "M-") for label in labels]
    assert _allowed_pairs(bmes, "BMES")[0] == {
        (a.replace("I-", "M-"), b.replace("I-", "M-")) for a, b in expected
    }

    labels = ["O", "B-PER", "I-PER", "S-PER"]
    pairs, start, end = _allowed_pairs(labels, "BIOS")
    assert pairs == set(itertools.product(labels, labels)) - {("O", "I-PER"), ("S-PER", "I-PER")}
    assert start == {"O", "B-PER", "S-PER"} and end == set(labels)


def test_bad_labels_and_schemes_raise():
    with pytest.raises(ValueError, match="E-PER"):
        crf_ops.allowed_transitions(["O", "B-PER", "E-PER"], "BIO")
    with pytest.raises(ValueError, match="unknown tag scheme"):
        crf_ops.allowed_transitions(["O"], "XYZ")
    with pytest.raises(ValueError, match="'PER'"):
        crf_ops.allowed_transitions(["O", "PER"], "BIO")


def test_constrained_decoding_never_breaks_the_scheme(decode_strategy):
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    allowed, allowed_start, allowed_end = crf_ops.allowed_transitions(labels)
    rng = np.random.default_rng(7)
    emissions = rng.normal(scale=3.0, size=(32, 8, 5)).astype("float32")
    emissions[..., [2, 4]] += 2.0  # push towards I- tags so unconstrained decoding breaks BIO
    lengths = rng.integers(1, 9, size=32).astype("int32")
    zeros = np.zeros((5, 5), "float32")

    def violations(decoded):
        count = 0
        for row, length in zip(decoded, lengths):
            row = row[:length]
            count += int(not allowed_start[row[0]])
            count += sum(int(not allowed[a, b]) for a, b in zip(row[:-1], row[1:]))
        return count

    free, _ = crf_ops.crf_decode(emissions, zeros, lengths)
    assert violations(np.asarray(free)) > 0
    start = crf_ops.constrain_transitions(np.zeros(5, "float32"), allowed_start)
    constrained, _ = crf_ops.crf_decode(
        emissions, crf_ops.constrain_transitions(zeros, allowed), lengths, start
    )
    assert violations(np.asarray(constrained)) == 0


# --------------------------------------------------------------------------------------------
# The rest of tfa.text: tag bitmaps, tfa's building blocks, numpy Viterbi (backend-agnostic
# checks, also run under JAX)
# --------------------------------------------------------------------------------------------


def random_bitmap(rng, shape):
    """A ``[B, T, K]`` tag bitmap with at least one allowed tag at every position."""
    bitmap = rng.random(shape) < 0.5
    bitmap[np.arange(shape[0])[:, None], np.arange(shape[1])[None, :],
           rng.integers(0, shape[2], size=shape[:2])] = True
    return bitmap


def check_multitag_and_constrained_decode(seed=0):
    """crf_multitag_sequence_score and crf_constrained_decode against path enumeration."""
    rng = np.random.default_rng(seed)
    for boundary in (False, True):
        emissions, lengths, trans, start, end = random_case(rng, 3, 4, 5, boundary, False)
        bitmap = random_bitmap(rng, emissions.shape)
        bitmap[1, 2:] = False  # padding of the length-1 sequence: no tag at all, ignored
        multitag = np.asarray(
            crf_ops.crf_multitag_sequence_score(emissions, bitmap, lengths, trans, start, end)
        )
        tags, best = crf_ops.crf_constrained_decode(
            emissions, bitmap, trans, lengths, start, end
        )
        tags, best = np.asarray(tags), np.asarray(best)
        for b, length in enumerate(lengths):
            paths, scores = enumerate_paths(emissions[b], int(length), trans, start, end)
            allowed = np.array([all(bitmap[b, t, k] for t, k in enumerate(p)) for p in paths])
            np.testing.assert_allclose(
                multitag[b], np_logsumexp(scores[allowed]), rtol=1e-5, atol=1e-5
            )
            best_allowed = int(np.flatnonzero(allowed)[np.argmax(scores[allowed])])
            assert tags[b, :length].tolist() == list(paths[best_allowed])
            assert (tags[b, length:] == 0).all()
            np.testing.assert_allclose(best[b], scores[best_allowed], rtol=1e-5, atol=1e-5)
        # One-hot bitmaps score exactly the one path.
        gold = rng.integers(0, 3, size=emissions.shape[:2]).astype("int32")
        one_hot = np.eye(3, dtype=bool)[gold]
        np.testing.assert_allclose(
            np.asarray(crf_ops.crf_multitag_sequence_score(
                emissions, one_hot, lengths, trans, start, end)),
            np.asarray(crf_ops.crf_sequence_score(emissions, gold, lengths, trans, start, end)),
            rtol=1e-6, atol=1e-5,
        )


def check_tfa_building_blocks(seed=0):
    """crf_forward, crf_decode_forward/backward (reassembled as tfa's crf_decode) and
    viterbi_decode agree with crf_log_norm / crf_decode."""
    rng = np.random.default_rng(seed)
    # Integer scores: frequent ties, which must resolve to the lowest tag id everywhere.
    emissions = rng.integers(-2, 3, size=(6, 5, 4)).astype("float32")
    trans = rng.integers(-1, 2, size=(4, 4)).astype("float32")
    lengths = np.array([5, 1, 0, 3, 5, 2], "int32")
    state, rest = emissions[:, 0], emissions[:, 1:]

    alphas = np.asarray(crf_ops.crf_forward(rest, state, trans, lengths))
    log_norm = np.asarray(crf_ops.crf_log_norm(emissions, lengths, trans))
    np.testing.assert_allclose(np_lse_rows(alphas)[lengths > 0], log_norm[lengths > 0], rtol=1e-6)
    np.testing.assert_array_equal(alphas[lengths == 0], state[lengths == 0])

    # tfa's crf_decode (_multi_seq_fn) built from the two halves, numpy for reverse_sequence.
    steps = np.maximum(lengths - 1, 0)
    backpointers, last = crf_ops.crf_decode_forward(rest, state, trans, steps)
    backpointers, last = np.asarray(backpointers), np.asarray(last)
    assert backpointers.dtype == np.int32 and backpointers.shape == rest.shape
    for b, n in enumerate(steps):
        assert (backpointers[b, n:] == 0).all()  # masked steps output 0, as tfa's masked RNN
    reversed_bp = np_reverse_sequence(backpointers, steps)
    last_tag = np.argmax(last, axis=1).astype("int32")[:, None]
    back = np.asarray(crf_ops.crf_decode_backward(reversed_bp, last_tag))[..., 0]
    tags = np_reverse_sequence(np.concatenate([last_tag, back], axis=1), lengths)
    expected_tags, expected_best = crf_ops.crf_decode(emissions, trans, lengths)
    expected_tags = np.asarray(expected_tags)
    for b, length in enumerate(lengths):
        assert tags[b, :length].tolist() == expected_tags[b, :length].tolist()
        if length:
            np.testing.assert_allclose(last[b].max(), np.asarray(expected_best)[b])
            viterbi, score = crf_ops.viterbi_decode(emissions[b, :length], trans)
            assert viterbi == expected_tags[b, :length].tolist()
            assert viterbi == np_viterbi(emissions[b], int(length), trans)
            np.testing.assert_allclose(score, np.asarray(expected_best)[b])


def np_lse_rows(values):
    top = values.max(axis=1, keepdims=True)
    return (top + np.log(np.exp(values - top).sum(axis=1, keepdims=True)))[:, 0]


def np_reverse_sequence(values, lengths):
    """tf.reverse_sequence along axis 1 in numpy: the first ``lengths[b]`` entries reversed."""
    values = np.array(values)
    for b, length in enumerate(lengths):
        values[b, :length] = values[b, :length][::-1].copy()
    return values


def test_multitag_score_and_constrained_decode_match_brute_force(decode_strategy):
    check_multitag_and_constrained_decode(seed=20)


def test_tfa_building_blocks_reassemble_crf_decode(decode_strategy):
    check_tfa_building_blocks(seed=21)


def test_filtered_inputs_and_empty_bitmaps():
    x = np.array([[[1.0, 2.0], [3.0, 4.0]]], "float16")
    filtered = np.asarray(crf_ops.crf_filtered_inputs(x, [[[1, 0], [0, 1]]]))
    assert filtered.dtype == np.float16
    assert filtered.tolist() == [[[1.0, -np.inf], [-np.inf, 4.0]]]
    # A real position with no allowed tag: no path matches, -inf (not NaN).
    trans = np.zeros((2, 2), "float32")
    nothing = np.zeros((1, 2, 2), bool)
    score = crf_ops.crf_multitag_sequence_score(x.astype("float32"), nothing, [2], trans)
    assert np.asarray(score).tolist() == [-np.inf]
    _, best = crf_ops.crf_constrained_decode(x.astype("float32"), nothing, trans, [2])
    assert np.asarray(best).tolist() == [-np.inf]


def test_multitag_gradients_are_the_constrained_marginals():
    import tensorflow as tf

    rng = np.random.default_rng(22)
    emissions, lengths, trans, start, end = random_case(rng, 3, 4, 5, True, False)
    bitmap = random_bitmap(rng, emissions.shape)
    bitmap[:, -1] = False  # padded positions without any tag must not poison the gradient
    bitmap[lengths == 4, -1, 0] = True
    x = tf.constant(emissions)
    with tf.GradientTape() as tape:
        tape.watch(x)
        score = crf_ops.crf_multitag_sequence_score(x, bitmap, lengths, trans, start, end)
        total = tf.reduce_sum(score)
    gradient = tape.gradient(total, x).numpy()
    assert np.isfinite(gradient).all()
    for b, length in enumerate(lengths):
        paths, scores = enumerate_paths(emissions[b], int(length), trans, start, end)
        allowed = np.array([all(bitmap[b, t, k] for t, k in enumerate(p)) for p in paths])
        weights = np.exp(scores[allowed] - np_logsumexp(scores[allowed]))
        expected = np.zeros(emissions.shape[1:])
        for path, weight in zip([p for p, a in zip(paths, allowed) if a], weights):
            expected[np.arange(len(path)), list(path)] += weight
        np.testing.assert_allclose(gradient[b], expected, atol=1e-5)


def test_crf_forward_and_decode_forward_in_tf_function_with_dynamic_time():
    import tensorflow as tf

    rng = np.random.default_rng(23)
    emissions = rng.normal(size=(3, 6, 4)).astype("float32")
    trans = rng.normal(size=(4, 4)).astype("float32")
    steps = np.array([5, 0, 2], "int32")
    spec = (
        tf.TensorSpec([None, None, 4]), tf.TensorSpec([None, 4]), tf.TensorSpec([None], tf.int32)
    )
    forward = tf.function(lambda x, s, n: crf_ops.crf_forward(x, s, trans, n), input_signature=spec)
    decode_forward = tf.function(
        lambda x, s, n: crf_ops.crf_decode_forward(x, s, trans, n), input_signature=spec)
    rest, state = emissions[:, 1:], emissions[:, 0]
    np.testing.assert_allclose(forward(rest, state, steps + 1).numpy(),
                               np.asarray(crf_ops.crf_forward(rest, state, trans, steps + 1)))
    graph = decode_forward(rest, state, steps)
    eager = crf_ops.crf_decode_forward(rest, state, trans, steps)
    np.testing.assert_array_equal(graph[0].numpy(), np.asarray(eager[0]))
    np.testing.assert_allclose(graph[1].numpy(), np.asarray(eager[1]))


def test_viterbi_decode_is_numpy_and_checks_its_shapes():
    tags, score = crf_ops.viterbi_decode(np.array([[1.0, 0.0]], "float16"), np.zeros((2, 2)))
    assert tags == [0] and isinstance(tags[0], int)
    with pytest.raises(ValueError, match=r"score must be \[seq_len >= 1, num_tags\]"):
        crf_ops.viterbi_decode(np.zeros((0, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"transition_params must be \[3, 3\]"):
        crf_ops.viterbi_decode(np.zeros((2, 3)), np.zeros((2, 2)))


def test_tfa_names_are_exported_from_tfner_layers():
    import tfner.layers

    for name in (
        "crf_binary_score crf_constrained_decode crf_decode crf_decode_backward "
        "crf_decode_forward crf_filtered_inputs crf_forward crf_log_likelihood crf_log_norm "
        "crf_multitag_sequence_score crf_sequence_score crf_unary_score viterbi_decode"
    ).split():
        assert getattr(tfner.layers, name) is getattr(crf_ops, name), name


def test_doctests():
    assert doctest.testmod(crf_ops).failed == 0


# --------------------------------------------------------------------------------------------
# JAX backend, in a subprocess
# --------------------------------------------------------------------------------------------

_JAX_SCRIPT = """
import importlib.util, sys
import numpy as np
import jax, jax.numpy as jnp
import keras
assert keras.backend.backend() == "jax", keras.backend.backend()
spec = importlib.util.spec_from_file_location("crf_ops_tests", sys.argv[1])
tests = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tests)
import types
from tfner.layers import crf_ops

# Eager JAX re-compiles every small op and scan; jit the CRF functions the checks call.
jitted = ["crf_log_norm", "crf_decode", "crf_marginals", "crf_log_likelihood", "crf_sequence_score",
          "crf_multitag_sequence_score", "crf_constrained_decode", "crf_forward",
          "crf_decode_forward", "crf_decode_backward"]
tests.crf_ops = types.SimpleNamespace(**{
    **vars(crf_ops), **{name: jax.jit(getattr(crf_ops, name)) for name in jitted}})
tests.run_brute_force_suite(num_cases=3, seed=10)
tests.test_tfa_hand_computed_cases()
tests.check_multitag_and_constrained_decode(seed=13)
tests.check_tfa_building_blocks(seed=14)
default_limit = crf_ops._BACKPOINTER_MAX_TAGS
crf_ops._BACKPOINTER_MAX_TAGS = 0  # crf_decode's other back-tracking strategy, freshly jitted
tests.crf_ops = types.SimpleNamespace(**{
    **vars(crf_ops), **{name: jax.jit(getattr(crf_ops, name)) for name in jitted}})
tests.run_brute_force_suite(num_cases=3, seed=11)
crf_ops._BACKPOINTER_MAX_TAGS = default_limit

rng = np.random.default_rng(12)
emissions = jnp.asarray(rng.normal(size=(3, 4, 3)).astype("float32"))
tags = jnp.asarray([[2, 0, 1, 1], [1, 2, 0, 0], [0, 0, 0, 0]], dtype="int32")
lengths = jnp.asarray([4, 1, 0], dtype="int32")
allowed = np.ones((3, 3), bool); allowed[0, 2] = False

def loss(x, trans, start, end):
    eff = crf_ops.constrain_transitions(trans, allowed)
    ll, _ = crf_ops.crf_log_likelihood(x, tags, lengths, eff, start, end)
    return -jnp.mean(ll)

params = (emissions, jnp.asarray(rng.normal(size=(3, 3)), "float32"),
          jnp.asarray(rng.normal(size=3), "float32"), jnp.asarray(rng.normal(size=3), "float32"))
grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3)))(*params)
assert all(bool(jnp.isfinite(g).all()) for g in grads), grads
assert float(grads[1][0, 2]) == 0.0
decode = jax.jit(lambda x: crf_ops.crf_decode(x, params[1], lengths, params[2], params[3]))
decoded, best = decode(emissions)
assert decoded.dtype == jnp.int32 and decoded.shape == (3, 4)
eager = crf_ops.crf_decode(emissions, params[1], lengths, params[2], params[3])
np.testing.assert_array_equal(np.asarray(decoded), np.asarray(eager[0]))
marginals = tests.crf_ops.crf_marginals(emissions, lengths, params[1], params[2], params[3])
expected_sums = [[1] * 4, [1, 0, 0, 0], [0] * 4]
np.testing.assert_allclose(np.asarray(marginals).sum(-1), expected_sums, atol=1e-5)
# d log Z / d emissions = marginals
log_norm = lambda x: jnp.sum(crf_ops.crf_log_norm(x, lengths, params[1], params[2], params[3]))
grad_log_norm = jax.jit(jax.grad(log_norm))(emissions)
np.testing.assert_allclose(np.asarray(grad_log_norm), np.asarray(marginals), atol=1e-5)
print("JAX-OK")
"""


def test_jax_backend_in_subprocess():
    pytest.importorskip("jax", reason="jax is not installed (pip install 'jax[cpu]')")
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", _JAX_SCRIPT, str(pathlib.Path(__file__).resolve())],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and "JAX-OK" in result.stdout, result.stderr[-4000:]
