"""The XLA-compiled CRF loops (TensorFlow graphs) against the op-by-op loops.

``crf_ops.set_implementation("auto")`` compiles the dynamic programmes when the CRF runs inside a
graph; ``"loop"`` keeps the previous ``keras.ops.scan`` loops. Both must give the same tags (ties
included), the same log-likelihoods and the same gradients to float32 rounding, with masks,
boundary scores, constraints, and in the exact log-sum-exp fallback regime. On JAX, ``"auto"``
runs the same formulations (one ``jax.custom_vjp`` forward-backward gradient, the one-loop-pair
Viterbi) under ``jax.jit``: ``test_jax_formulations_match_the_loops`` compares them in a
subprocess, and ``test_crf_ops.py`` runs its brute-force checks under JAX with the default.
"""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from tfner.layers import crf_ops  # noqa: E402


@pytest.fixture(autouse=True)
def restore_implementation():
    previous = crf_ops.set_implementation("auto")
    yield
    crf_ops.set_implementation(previous)


def _case(rng, num_tags, batch, max_len, scale=1.0, constrained=True, integer=False):
    if integer:  # ties everywhere
        emissions = rng.integers(-2, 3, size=(batch, max_len, num_tags)).astype("float32")
        trans = rng.integers(-1, 2, size=(num_tags, num_tags)).astype("float32")
        start, end = rng.integers(-1, 2, size=(2, num_tags)).astype("float32")
    else:
        emissions = rng.normal(scale=scale, size=(batch, max_len, num_tags)).astype("float32")
        trans = rng.normal(size=(num_tags, num_tags)).astype("float32")
        start, end = rng.normal(size=(2, num_tags)).astype("float32")
    if constrained:
        allowed = rng.random((num_tags, num_tags)) < 0.6
        allowed[:, 0] = True
        trans = np.asarray(crf_ops.constrain_transitions(trans, allowed), "float32")
    lengths = rng.integers(0, max_len + 1, size=batch).astype("int32")
    lengths[:3] = [0, 1, max_len]
    tags = rng.integers(0, num_tags, size=(batch, max_len)).astype("int32")
    return emissions, tags, lengths, trans, start, end


def _all_outputs(implementation, emissions, tags, lengths, trans, start, end, boundary=True):
    """Log-likelihood, its gradients, log-norm, decode and marginals in one tf.function."""
    crf_ops.set_implementation(implementation)
    trans_v = tf.Variable(trans)
    start_v, end_v = tf.Variable(start), tf.Variable(end)

    @tf.function
    def run(emissions):
        with tf.GradientTape() as tape:
            tape.watch(emissions)
            bounds = (start_v, end_v) if boundary else (None, None)
            ll, _ = crf_ops.crf_log_likelihood(emissions, tags, lengths, trans_v, *bounds)
            log_norm = crf_ops.crf_log_norm(emissions, lengths, trans_v, *bounds)
            loss = -tf.reduce_sum(ll * tf.range(1.0, ll.shape[0] + 1.0)) + tf.reduce_sum(log_norm)
        grads = tape.gradient(loss, [emissions, trans_v, start_v, end_v])
        grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
                 for g, v in zip(grads, [emissions, trans_v, start_v, end_v])]
        decoded, best = crf_ops.crf_decode(emissions, trans_v, lengths, *bounds)
        marginals = crf_ops.crf_marginals(emissions, lengths, trans_v, *bounds)
        return [ll, log_norm, *grads, decoded, best, marginals]

    return [np.asarray(v) for v in run(tf.constant(emissions))]


def _assert_same(compiled, loop, rtol=1e-5, atol=1e-5):
    names = ["ll", "log_norm", "grad_emissions", "grad_trans", "grad_start", "grad_end",
             "tags", "best_score", "marginals"]
    for name, c, l in zip(names, compiled, loop):
        if name == "tags":
            np.testing.assert_array_equal(c, l)
        else:
            np.testing.assert_allclose(c, l, rtol=rtol, atol=atol, err_msg=name)


@pytest.mark.parametrize("num_tags", [3, 7, 41])
def test_compiled_matches_loop_on_random_masked_batches(num_tags):
    rng = np.random.default_rng(num_tags)
    case = _case(rng, num_tags, batch=6, max_len=9)
    _assert_same(_all_outputs("auto", *case), _all_outputs("loop", *case))


def test_compiled_matches_loop_without_boundary_scores():
    rng = np.random.default_rng(11)
    case = _case(rng, 5, batch=5, max_len=7, constrained=False)
    _assert_same(_all_outputs("auto", *case, boundary=False),
                 _all_outputs("loop", *case, boundary=False))


@pytest.mark.parametrize("limit", [10**6, 0])  # both back-tracking strategies of the loop
@pytest.mark.parametrize("unrolled", [64, 0])  # the compiled max unrolled or a reduction
@pytest.mark.parametrize("num_tags", [7, 41])
def test_compiled_decode_breaks_ties_like_the_loop(num_tags, unrolled, limit, monkeypatch):
    monkeypatch.setattr(crf_ops, "_BACKPOINTER_MAX_TAGS", limit)
    monkeypatch.setattr(crf_ops, "_UNROLLED_MAX_TAGS", unrolled)
    rng = np.random.default_rng(num_tags + 1)
    emissions, _, lengths, trans, start, end = _case(rng, num_tags, 12, 30, integer=True)

    def decode(implementation):
        crf_ops.set_implementation(implementation)
        fn = tf.function(lambda x: crf_ops.crf_decode(x, trans, lengths, start, end))
        return [np.asarray(v) for v in fn(tf.constant(emissions))]

    compiled, loop = decode("auto"), decode("loop")
    np.testing.assert_array_equal(compiled[0], loop[0])
    np.testing.assert_array_equal(compiled[1], loop[1])


def test_compiled_exact_fallback_for_extreme_scores():
    """Scores that underflow the matrix-product path: the exact recursion, and its gradient."""
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    allowed, _, _ = crf_ops.allowed_transitions(labels)
    rng = np.random.default_rng(5)
    emissions, tags, lengths, trans, start, end = _case(rng, 5, 4, 6, scale=300.0,
                                                        constrained=False)
    trans = np.asarray(crf_ops.constrain_transitions(trans, allowed), "float32")
    compiled, loop = _all_outputs("auto", emissions, tags, lengths, trans, start, end), \
        _all_outputs("loop", emissions, tags, lengths, trans, start, end)
    _assert_same(compiled, loop, rtol=1e-5, atol=1e-4)


def test_compiled_in_graph_with_dynamic_time():
    """``"compiled"`` in a graph traced for any [B, T] ("auto" takes the loops there)."""
    rng = np.random.default_rng(6)
    trans = rng.normal(size=(3, 3)).astype("float32")

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.float32),
                                  tf.TensorSpec([None, None], tf.int32),
                                  tf.TensorSpec([None], tf.int32)])
    def run(emissions, tags, lengths):
        with tf.GradientTape() as tape:
            tape.watch(emissions)
            ll, _ = crf_ops.crf_log_likelihood(emissions, tags, lengths, trans)
        return ll, tape.gradient(ll, emissions), crf_ops.crf_decode(emissions, trans, lengths)[0]

    for max_len in (1, 4):
        emissions = rng.normal(size=(3, max_len, 3)).astype("float32")
        tags = rng.integers(0, 3, size=(3, max_len)).astype("int32")
        lengths = np.array([0, 1, max_len], "int32")
        crf_ops.set_implementation("compiled")
        ll, grad, decoded = run(emissions, tags, lengths)
        crf_ops.set_implementation("loop")
        with tf.GradientTape() as tape:
            x = tf.constant(emissions)
            tape.watch(x)
            ref_ll, _ = crf_ops.crf_log_likelihood(x, tags, lengths, trans)
        ref_grad = tape.gradient(ref_ll, x)
        ref_decoded = crf_ops.crf_decode(emissions, trans, lengths)[0]
        crf_ops.set_implementation("auto")
        np.testing.assert_allclose(ll.numpy(), ref_ll.numpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(grad.numpy(), ref_grad.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(decoded.numpy(), np.asarray(ref_decoded))


def test_implementation_rule():
    x = tf.zeros([2, 3, 4])
    assert crf_ops._use_compiled(x) is False  # eager: op-by-op loops

    def rule():
        return tf.constant(crf_ops._use_compiled(x))

    def dynamic_rule(y):
        return tf.constant(crf_ops._use_compiled(y))

    dynamic = [tf.TensorSpec([None, None, 4], tf.float32)]
    assert tf.function(rule)().numpy()  # a static shape in a graph: compiled
    assert not tf.function(dynamic_rule, input_signature=dynamic)(x).numpy()
    crf_ops.set_implementation("loop")
    assert not tf.function(rule)().numpy()
    crf_ops.set_implementation("compiled")
    assert crf_ops._use_compiled(x) is True
    assert tf.function(dynamic_rule, input_signature=dynamic)(x).numpy()
    with pytest.raises(ValueError, match="implementation must be one of"):
        crf_ops.set_implementation("xla")


def test_compiled_eagerly_equals_loop():
    """"compiled" also compiles eager calls (each op then runs inside XLA)."""
    rng = np.random.default_rng(3)
    emissions, tags, lengths, trans, start, end = _case(rng, 4, 4, 5)
    results = {}
    for implementation in ("compiled", "loop"):
        crf_ops.set_implementation(implementation)
        x = tf.constant(emissions)
        with tf.GradientTape() as tape:
            tape.watch(x)
            ll, _ = crf_ops.crf_log_likelihood(x, tags, lengths, trans, start, end)
        results[implementation] = (ll.numpy(), tape.gradient(ll, x).numpy(),
                                   np.asarray(crf_ops.crf_decode(x, trans, lengths)[0]))
    for c, l in zip(results["compiled"], results["loop"]):
        np.testing.assert_allclose(c, l, rtol=1e-5, atol=1e-5)


_JAX_SCRIPT = """
import sys
import jax, jax.numpy as jnp, numpy as np
from tfner.layers import crf_ops
crf_ops._JAX_FORWARD_BACKWARD_MIN_TAGS = 0  # the forward-backward gradient at any K
rng = np.random.default_rng(1)
labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
allowed, _, _ = crf_ops.allowed_transitions(labels)
for scale in (1.0, 300.0):  # the fast path and the exact fallback
    batch, max_len, num_tags = 6, 9, 5
    x = jnp.asarray(rng.normal(scale=scale, size=(batch, max_len, num_tags)).astype("float32"))
    trans = rng.normal(size=(num_tags, num_tags)).astype("float32")
    tr = jnp.asarray(np.asarray(crf_ops.constrain_transitions(trans, allowed)))
    st, en = (jnp.asarray(rng.normal(size=num_tags).astype("float32")) for _ in range(2))
    lengths = jnp.asarray(np.array([0, 1, 9, 4, 7, 9], "int32"))
    tags = jnp.asarray(rng.integers(0, num_tags, size=(batch, max_len)).astype("int32"))
    weights = jnp.arange(1.0, batch + 1.0)
    results = {}
    for implementation in ("loop", "auto"):
        crf_ops.set_implementation(implementation)
        def f(x, tr, st, en):
            ll = crf_ops.crf_log_likelihood(x, tags, lengths, tr, st, en)[0]
            return jnp.sum(ll * weights)
        value, grads = jax.jit(jax.value_and_grad(f, (0, 1, 2, 3)))(x, tr, st, en)
        for bounds in ((st, en), (None, None)):
            decoded = jax.jit(lambda x: crf_ops.crf_decode(x, tr, lengths, *bounds))(x)
            results.setdefault(implementation, []).append(decoded)
        results[implementation] += [value, *grads]
    loop, auto = results["loop"], results["auto"]
    for i in (0, 1):
        np.testing.assert_array_equal(np.asarray(loop[i][0]), np.asarray(auto[i][0]))
        np.testing.assert_allclose(np.asarray(loop[i][1]), np.asarray(auto[i][1]), rtol=1e-6)
    for a, b in zip(loop[2:], auto[2:]):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-4)
print("JAX-OK")
"""


def test_jax_formulations_match_the_loops():
    pytest.importorskip("jax", reason="jax is not installed (pip install 'jax[cpu]')")
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", _JAX_SCRIPT], capture_output=True, text=True, env=env,
        cwd=str(pathlib.Path(__file__).resolve().parents[2]), timeout=600,
    )
    assert result.returncode == 0 and "JAX-OK" in result.stdout, result.stderr[-4000:]
